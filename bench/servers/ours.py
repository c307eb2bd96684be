"""faye_websocket on anyio: ``python -m bench.servers.ours --backend asyncio|trio``.

``/fanout`` (the fan-out scenarios and ``bench/hub_soak.py``): every
connection subscribes (permessage-deflate when the client offers it); a
``burst M N SIZE`` text message publishes M messages of SIZE bytes once N
connections are subscribed. ``--fanout hub`` (default) uses a memory
:class:`~faye_websocket.Hub`; ``--fanout naive`` the hand-written loop the
docs showed before the hub (``send_nowait`` to each, skipping the full and
the closing). ``--no-shared-deflate`` makes deflate subscribers compress
each message themselves (the hub before encode-once covered deflate).
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

from faye_websocket import EventSource, Hub, PerMessageDeflate, WebSocket
from faye_websocket.exceptions import ConnectionClosed
from faye_websocket.http import Request, Response, Server

from ._common import (
    EVENT_DATA,
    HOST,
    MAX_SIZE,
    SUBSCRIBE_LIMIT,
    announce,
    event_count,
    fanout_message,
    parse_burst,
    prepare,
)

CHANNEL = "bench"


def make_server(hub: Hub | None = None, *, naive: bool = False, write_limit: int = 65536,
                sndbuf: int | None = None, subscribe: dict[str, Any] | None = None) -> Server:
    clients: set[WebSocket] = set()
    fanout: set[WebSocket] = set()

    def count() -> int:
        return len(fanout) if naive or hub is None else hub.subscriber_count(CHANNEL)

    async def burst(messages: int, subscribers: int, size: int) -> None:
        with anyio.fail_after(SUBSCRIBE_LIMIT):
            while count() < subscribers:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        message = fanout_message(size)
        for _ in range(messages):
            if naive:
                for client in fanout:
                    try:
                        client.send_nowait(message)
                    except (anyio.WouldBlock, ConnectionClosed):
                        pass  # a slow or closing client misses this one
                await anyio.lowlevel.checkpoint()
            else:
                assert hub is not None
                await hub.publish(CHANNEL, message)

    async def on_fanout(ws: WebSocket) -> None:
        async for message in ws:
            spec = parse_burst(str(message))
            if spec is not None:
                await burst(*spec)

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        if request.path == "/fanout":
            if sndbuf is not None:
                raw = stream.extra(SocketAttribute.raw_socket, None)
                if raw is not None:
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            async with WebSocket(request, stream, body, write_limit=write_limit,
                                 extensions=[PerMessageDeflate()]) as ws:
                if naive or hub is None:
                    fanout.add(ws)
                    try:
                        await on_fanout(ws)
                    finally:
                        fanout.discard(ws)
                else:
                    async with hub.subscribe(ws, CHANNEL, **(subscribe or {})):
                        await on_fanout(ws)
            return
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


async def serve(a: argparse.Namespace) -> None:
    options: dict[str, Any] = {}
    for name in ("policy", "max_pending", "max_pending_bytes"):
        if getattr(a, name) is not None:
            options[name] = getattr(a, name)
    async with Hub(**options) as hub, anyio.create_task_group() as tg:
        server = make_server(hub, naive=a.fanout == "naive", write_limit=a.write_limit,
                             sndbuf=a.sndbuf)
        port = await tg.start(server.serve, HOST, 0)
        announce(port)


def _no_shared_deflate() -> None:
    """Deflate subscribers compress each message on their own: only the
    plain frame is shared (what the hub did before encode-once covered
    permessage-deflate)."""
    from faye_websocket._runtime.connection import Connection

    shared = Connection._frame_key.fget
    assert shared is not None

    def plain_only(self: Connection) -> str | None:
        return "plain" if shared(self) == "plain" else None

    Connection._frame_key = property(plain_only)  # type: ignore[assignment,method-assign]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    p.add_argument("--fanout", choices=["hub", "naive"], default="hub")
    p.add_argument("--no-shared-deflate", action="store_true")
    p.add_argument("--policy", choices=["drop_oldest", "close", "wait"])
    p.add_argument("--max-pending", type=int)
    p.add_argument("--max-pending-bytes", type=int)
    p.add_argument("--write-limit", type=int, default=65536)
    p.add_argument("--sndbuf", type=int, help="SO_SNDBUF of /fanout connections")
    a = p.parse_args()
    if a.no_shared_deflate:
        _no_shared_deflate()
    prepare()
    anyio.run(serve, a, backend=a.backend)


if __name__ == "__main__":
    main()
