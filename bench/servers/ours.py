"""faye_websocket on anyio: ``python -m bench.servers.ours --backend asyncio|trio``."""

from __future__ import annotations

import argparse

import anyio
import anyio.abc

from faye_websocket import EventSource, WebSocket
from faye_websocket.exceptions import ConnectionClosed
from faye_websocket.http import Request, Response, Server

from ._common import EVENT_DATA, HOST, MAX_SIZE, announce, event_count, prepare


def make_server() -> Server:
    clients: set[WebSocket] = set()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body, max_length=MAX_SIZE) as ws:
            if request.path != "/broadcast":
                async for message in ws:
                    await ws.send(message)
                return
            clients.add(ws)
            try:
                async for message in ws:
                    for client in clients:
                        try:
                            client.send_nowait(message)
                        except (anyio.WouldBlock, ConnectionClosed):
                            pass  # a slow or closing client misses this one
            finally:
                clients.discard(ws)

    async def on_request(request: Request, response: Response) -> None:
        if request.path == "/events" and EventSource.is_eventsource(request):
            async with EventSource(request, response, ping=None) as es:
                for _ in range(event_count(request.target)):
                    await es.send(EVENT_DATA)
            return
        response.write_head(404, {"Content-Type": "text/plain"})
        await response.end("Not found\n")

    return Server(on_request=on_request, on_upgrade=on_upgrade)


async def serve() -> None:
    server = make_server()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, HOST, 0)
        announce(port)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    backend = p.parse_args().backend
    prepare()
    anyio.run(serve, backend=backend)


if __name__ == "__main__":
    main()
