"""ASGI applications using our adapters, served by real ASGI servers in
tests/test_asgi.py (uvicorn, hypercorn) and by our own host."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from faye_websocket import EventSource, WebSocket

#: What the server side saw: close events of the WebSocket routes.
closes: list[dict[str, Any]] = []


async def echo(websocket: StarletteWebSocket) -> None:
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   ["chat", "echo"], max_length=1 << 16) as ws:
        ws.on("close", lambda e: closes.append({"path": "/echo", "code": e.code,
                                                 "reason": e.reason}))
        async for message in ws:
            if message == "close please":
                await ws.close(4001, "asked to")
                break
            await ws.send(message)


async def info(websocket: StarletteWebSocket) -> None:
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   ["chat"], headers={"X-Adapter": "faye"}) as ws:
        await ws.send(json.dumps({
            "protocol": ws.protocol, "url": ws.url, "version": ws.version,
            "ready_state": ws.ready_state.name, "repr": repr(ws),
            "origin": ws.request.header("origin"),
        }))
        await ws.receive()


async def deny(websocket: StarletteWebSocket) -> None:
    ws = WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send)
    await ws.reject(401, {"WWW-Authenticate": "Bearer"}, b"log in first")


async def origin(websocket: StarletteWebSocket) -> None:
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   allowed_origins=["https://good.example"]) as ws:
        await ws.send("welcome")
        await ws.receive()


async def events(request: Request) -> Response:
    async with EventSource.from_asgi(request.scope, request.receive, request._send,
                                     ping=None, retry=2) as es:
        start = int(es.last_event_id or 0)
        for n in range(start + 1, start + 4):
            await es.send(f"event {n}", id=str(n))
    return Response()


async def log(request: Request) -> JSONResponse:
    return JSONResponse(closes)


app = Starlette(routes=[
    WebSocketRoute("/echo", echo),
    WebSocketRoute("/info", info),
    WebSocketRoute("/deny", deny),
    WebSocketRoute("/origin", origin),
    Route("/events", events),
    Route("/log", log),
])
