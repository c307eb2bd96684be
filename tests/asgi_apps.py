"""ASGI applications served by ``Server(app=...)`` in tests/test_asgi_host.py
(and by ``python -m faye_websocket serve tests.asgi_apps:app``).

They are written as their frameworks' documentation writes them: nothing in
here knows which server runs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import anyio
import anyio.lowlevel
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket


class State(TypedDict):
    greeting: str


#: Where the subprocess test's app writes "shutdown" (set by the test).
MARKER = os.environ.get("FAYE_TEST_LIFESPAN_MARKER")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    if MARKER:
        await anyio.Path(MARKER).write_text("startup\n")
    yield {"greeting": "hello from lifespan"}
    if MARKER:
        async with await anyio.open_file(MARKER, "a") as marker:
            await marker.write("shutdown\n")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello World"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/items/")
async def create_item(item: Item) -> Item:
    return item


@app.get("/state")
async def read_state(request: Request) -> dict[str, Any]:
    return {"greeting": request.state.greeting, "root_path": request.scope["root_path"],
            "path": request.scope["path"]}


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@app.post("/count")
async def count(request: Request) -> dict[str, int]:
    """Stream the body in, counting chunks and bytes."""
    chunks = size = 0
    async for chunk in request.stream():
        chunks += 1
        size += len(chunk)
    return {"chunks": chunks, "size": size}


@app.get("/stream")
async def stream(n: int = 5) -> StreamingResponse:
    async def numbers() -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i}\n"
            await anyio.lowlevel.checkpoint()

    return StreamingResponse(numbers(), media_type="text/plain")


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@app.websocket("/ws")
async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat" if "chat" in websocket.scope["subprotocols"]
                           else None)
    try:
        while True:
            text = await websocket.receive_text()
            if text == "close me":
                await websocket.close(code=4001, reason="as asked")
                return
            if text == "raise":
                raise RuntimeError("application failure")
            await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/deny")
async def websocket_deny(websocket: WebSocket) -> None:
    await websocket.send_denial_response(
        PlainTextResponse("go away", status_code=401, headers={"WWW-Authenticate": "Bearer"}))


@app.websocket("/ws/close-first")
async def websocket_close_first(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def starlette_home(request: Any) -> JSONResponse:
    return JSONResponse({"framework": "starlette", "method": request.method})


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


#: A plain Starlette app: a route and a WebSocket echo (text and binary).
starlette_app = Starlette(routes=[Route("/", starlette_home, methods=["GET", "HEAD", "POST"]),
                                  WebSocketRoute("/echo", starlette_echo)])

if __name__ == "__main__":  # pragma: no cover
    sys.exit("serve it with: python -m faye_websocket serve tests.asgi_apps:app")
