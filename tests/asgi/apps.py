"""An ASGI application using our adapters, served by real ASGI servers in
tests/test_asgi.py (uvicorn with each of its WebSocket implementations,
hypercorn with asyncio and trio workers).

Starlette routes use the adapters as a Starlette or FastAPI user would;
``/raw`` is a plain ASGI application, no framework; ``/`` and ``/events`` are
the demo page's endpoints (the page from the package, its WebSocket echo and
its event stream), for Chromium.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket as StarletteWebSocket

from faye_websocket import ConnectionClosed, EventSource, HandshakeError, WebSocket

#: What the server side saw, for /log: how each connection ended.
log: list[dict[str, Any]] = []


def _record(ws: WebSocket) -> None:
    target = ws.request.target
    ws.on("close", lambda e: log.append({"target": target, "code": e.code,
                                         "reason": e.reason}))


async def echo(websocket: StarletteWebSocket) -> None:
    """Echo, with subprotocols; "close please" closes with 4001; messages
    over 64 KiB close with 1009."""
    ws = WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                             ["chat", "echo"], max_length=1 << 16)
    _record(ws)
    async with ws:
        try:
            async for message in ws:
                if message == "close please":
                    await ws.close(4001, "asked to")
                    break
                await ws.send(message)
        except ConnectionClosed:
            pass  # the client closed with an error code, or vanished


async def info(websocket: StarletteWebSocket) -> None:
    """Sends what the adapter knows about the connection, then waits."""
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   ["chat"], headers={"X-Adapter": "faye"}) as ws:
        await ws.send(json.dumps({
            "protocol": ws.protocol, "url": ws.url, "version": ws.version,
            "ready_state": ws.ready_state.name, "repr": repr(ws),
            "origin": ws.request.header("origin"),
        }))
        try:
            await ws.receive()
        except ConnectionClosed:
            pass


async def deny(websocket: StarletteWebSocket) -> None:
    ws = WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send)
    await ws.reject(401, {"WWW-Authenticate": "Bearer"}, b"log in first")


async def origin(websocket: StarletteWebSocket) -> None:
    try:
        async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                       allowed_origins=["https://good.example"]) as ws:
            await ws.send("welcome")
            await ws.receive()
    except ConnectionClosed:
        pass
    except HandshakeError:
        log.append({"path": "/origin", "refused": True})


async def count(scope: Scope, receive: Receive, send: Send) -> None:
    """Three events after ``Last-Event-ID`` (a plain ASGI endpoint)."""
    es = EventSource.from_asgi(scope, receive, send, ping=None, retry=2)
    es.on("close", lambda _e: log.append({"path": "/count", "closed": True}))
    async with es:
        start = int(es.last_event_id or 0)
        for n in range(start + 1, start + 4):
            await es.send(f"event {n}", id=str(n))


async def forever(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams until the client leaves; logs how long it took to notice."""
    async with EventSource.from_asgi(scope, receive, send, ping=None) as es:
        await es.send("hello")
        with anyio.move_on_after(10):
            await es.wait_closed()
        log.append({"path": "/forever", "state": es.ready_state.name})


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain ASGI application: a WebSocket echo, or an event stream."""
    if WebSocket.is_websocket(scope):
        async with WebSocket.from_asgi(scope, receive, send) as ws:
            with contextlib.suppress(ConnectionClosed):  # hypercorn: 1006 for any close
                async for message in ws:
                    await ws.send(message)
    elif EventSource.is_eventsource(scope):
        async with EventSource.from_asgi(scope, receive, send, ping=None) as es:
            await es.send("raw", event="greeting")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not here"})


async def show_log(request: Request) -> JSONResponse:
    return JSONResponse(log)


class Endpoint:
    """A plain ASGI callable as a Starlette route's endpoint (Starlette
    calls a plain function with a Request; an object, with scope, receive
    and send)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# -- the demo page's endpoints, for Chromium ------------------------------

async def page(request: Request) -> HTMLResponse:
    html = resources.files("faye_websocket").joinpath("demo.html").read_text("utf-8")
    return HTMLResponse(html)


async def demo_socket(websocket: StarletteWebSocket) -> None:
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   ["irc", "xmpp"]) as ws:
        _record(ws)
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)


async def demo_events(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo's stream: welcome, then ``Time: N`` and an ``update``."""
    async with EventSource.from_asgi(scope, receive, send) as es:
        await es.send("Welcome!\n\nThis is an EventSource server.")
        time = int(es.last_event_id or 0)
        for _ in range(100):
            await anyio.sleep(0.25)
            time += 1
            if not await es.send(f"Time: {time}"):
                break
            await anyio.sleep(0.1)
            await es.send("Update!!", event="update", id=str(time))


app = Starlette(routes=[
    Route("/", page),
    WebSocketRoute("/", demo_socket),
    Route("/events", Endpoint(demo_events)),
    WebSocketRoute("/echo", echo),
    WebSocketRoute("/info", info),
    WebSocketRoute("/deny", deny),
    WebSocketRoute("/origin", origin),
    Route("/count", Endpoint(count)),
    Route("/forever", Endpoint(forever)),
    Route("/log", show_log),
    Mount("/raw", raw),
])
