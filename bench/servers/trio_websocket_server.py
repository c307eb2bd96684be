"""trio-websocket: ``python -m bench.servers.trio_websocket_server``."""

from __future__ import annotations

import functools

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from ._common import HOST, MAX_SIZE, announce, prepare


async def main() -> None:
    clients: set[WebSocketConnection] = set()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        if request.path != "/broadcast":
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed:
                return
        clients.add(ws)
        try:
            while True:
                message = await ws.get_message()
                for client in list(clients):
                    try:
                        await client.send_message(message)
                    except ConnectionClosed:
                        pass
        except ConnectionClosed:
            pass
        finally:
            clients.discard(ws)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(
            serve_websocket, handler, HOST, 0, None, max_message_size=MAX_SIZE))
        announce(server.port)


if __name__ == "__main__":
    prepare()
    trio.run(main)
