"""One Starlette WebSocket echo app under three ASGI servers:
``python -m bench.servers.asgi_starlette --server ours|uvicorn|hypercorn
[--backend asyncio|trio]``.

The app is Starlette's documented shape (``accept``, then ``receive`` and
``send_text``/``send_bytes`` until the disconnect); each server is set up
with its defaults except for the message size limit (MAX_SIZE for all) and
logging (off).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._common import HOST, MAX_SIZE, announce, prepare


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/", echo)])


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    return sock


async def _ours() -> None:
    from faye_websocket.http import Server

    server = Server(app=app, ws_max_length=MAX_SIZE)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, HOST, 0)
        announce(port)


def run_uvicorn(asgi_app: Any) -> None:
    """Serve ``asgi_app`` with uvicorn's defaults (the message limit aside)."""
    import uvicorn

    sock = _listening_socket()
    config = uvicorn.Config(asgi_app, ws_max_size=MAX_SIZE, log_level="warning",
                            access_log=False)
    announce(sock.getsockname()[1])
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


def _hypercorn(backend: str) -> None:
    from hypercorn.config import Config

    sock = _listening_socket()
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.websocket_max_message_size = MAX_SIZE
    config.accesslog = None
    config.errorlog = None
    announce(sock.getsockname()[1])
    if backend == "trio":
        import trio
        from hypercorn.trio import serve as trio_serve

        trio.run(trio_serve, app, config)  # type: ignore[arg-type]
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        asyncio.run(asyncio_serve(app, config))  # type: ignore[arg-type]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--server", choices=["ours", "uvicorn", "hypercorn"], required=True)
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    a = p.parse_args()
    prepare()
    if a.server == "ours":
        anyio.run(_ours, backend=a.backend)
    elif a.server == "uvicorn":
        run_uvicorn(app)
    else:
        _hypercorn(a.backend)


if __name__ == "__main__":
    main()
