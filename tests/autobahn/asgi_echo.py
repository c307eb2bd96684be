"""A Starlette WebSocket echo route on any path, for Autobahn's server suite
through the ASGI host::

    python -m faye_websocket serve tests.autobahn.asgi_echo:app --port 9011 \\
        --ws-max-length 16777216 --ws-ping 0

(16 MiB: the largest message of the 9.* cases, as ``echo`` allows.)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


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


app = Starlette(routes=[WebSocketRoute("/{path:path}", echo)])
