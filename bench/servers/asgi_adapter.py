"""A Starlette WebSocket echo on uvicorn, with our adapter or with
Starlette's own WebSocket object, to measure what the adapter costs:
``python -m bench.servers.asgi_adapter --impl faye|starlette``.

uvicorn runs on the stock asyncio loop with h11 and its default WebSocket
implementation; compression is off on both, as in the other scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect

from faye_websocket import ConnectionClosed, WebSocket

from ._common import HOST, MAX_SIZE, announce, prepare


async def faye_echo(websocket: StarletteWebSocket) -> None:
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   max_length=MAX_SIZE) as ws:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


async def starlette_echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


async def main(impl: str) -> None:
    echo = faye_echo if impl == "faye" else starlette_echo
    app = Starlette(routes=[WebSocketRoute("/", echo), WebSocketRoute("/{path:path}", echo)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    config = uvicorn.Config(app, loop="asyncio", http="h11", lifespan="off",
                            log_level="warning", access_log=False, ws_max_size=MAX_SIZE,
                            ws_per_message_deflate=False, backlog=4096)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(3000):  # bounded: 30 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        raise SystemExit("uvicorn did not start")
    announce(sock.getsockname()[1])
    await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["faye", "starlette"], required=True)
    args = parser.parse_args()
    prepare()
    asyncio.run(main(args.impl))
