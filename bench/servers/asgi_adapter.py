"""A Starlette WebSocket echo on uvicorn, with our adapter or with
Starlette's own WebSocket object, to measure what the adapter costs:
``python -m bench.servers.asgi_adapter --impl faye|starlette``.

uvicorn runs as in :mod:`bench.servers.asgi_starlette` (whose echo route is
the Starlette side); no client offers compression, so none is negotiated.
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from faye_websocket import ConnectionClosed, WebSocket

from ._common import MAX_SIZE, prepare
from .asgi_starlette import echo as starlette_echo
from .asgi_starlette import run_uvicorn


async def faye_echo(websocket: StarletteWebSocket) -> None:
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   max_length=MAX_SIZE) as ws:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["faye", "starlette"], required=True)
    args = parser.parse_args()
    prepare()
    echo = faye_echo if args.impl == "faye" else starlette_echo
    run_uvicorn(Starlette(routes=[WebSocketRoute("/", echo)]))


if __name__ == "__main__":
    main()
