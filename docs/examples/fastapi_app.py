"""faye-websocket inside a FastAPI application (docs/asgi.md).

Serve it with any ASGI server, from this directory::

    uvicorn fastapi_app:app
    python -m faye_websocket serve fastapi_app:app --backend trio

or run ``python fastapi_app.py``, which serves it on port 8000 with this
package's server. It has a WebSocket echo at /chat, a WebSocket at /private
that needs ``Authorization: Bearer secret``, and an event stream at /feed.
"""

import anyio
from fastapi import FastAPI
from fastapi import WebSocket as StarletteWebSocket

from faye_websocket import EventSource, WebSocket
from faye_websocket.http import Server

app = FastAPI()


@app.get("/")
async def index():
    return {"chat": "/chat", "private": "/private", "feed": "/feed"}


@app.websocket("/chat")
async def chat(websocket: StarletteWebSocket):
    # Hand over scope, receive and send; do not call websocket.accept():
    # entering our WebSocket accepts. Pings and compression are the ASGI
    # server's options (uvicorn's --ws-*, our serve's --ws-ping).
    async with WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send,
                                   ["chat"], max_length=2**16) as ws:
        async for message in ws:
            await ws.send(message)


@app.websocket("/private")
async def private(websocket: StarletteWebSocket):
    ws = WebSocket.from_asgi(websocket.scope, websocket.receive, websocket.send)
    if websocket.headers.get("authorization") != "Bearer secret":
        await ws.reject(401, {"WWW-Authenticate": "Bearer"}, "log in first")
        return
    async with ws:
        await ws.send("welcome")


class Feed:
    """An event stream needs the ASGI call itself, so the endpoint is an
    object that Starlette calls with ``scope, receive, send``."""

    async def __call__(self, scope, receive, send):
        async with EventSource.from_asgi(scope, receive, send, ping=15, retry=10) as es:
            start = int(es.last_event_id or 0)  # the header, or ?last_event_id=
            for n in range(start + 1, start + 4):
                await es.send(f"tick {n}", event="tick", id=str(n))


app.router.add_route("/feed", Feed())


async def main():
    await Server(app=app).serve("127.0.0.1", 8000)


if __name__ == "__main__":
    anyio.run(main)
