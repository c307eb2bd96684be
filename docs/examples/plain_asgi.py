"""A plain ASGI application using both adapters (docs/asgi.md).

Serve it with ``uvicorn plain_asgi:app``, ``hypercorn plain_asgi:app`` or
``python -m faye_websocket serve plain_asgi:app``.
"""

from faye_websocket import ConnectionClosed, EventSource, WebSocket


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return  # nothing to start or stop (the server goes on without lifespan)
    if WebSocket.is_websocket(scope):
        async with WebSocket.from_asgi(scope, receive, send, ["chat"]) as ws:
            try:
                async for message in ws:  # str for text, bytes for binary
                    await ws.send(message)
            except ConnectionClosed:
                pass  # closed with an error code, or lost
    elif EventSource.is_eventsource(scope):
        async with EventSource.from_asgi(scope, receive, send, ping=15, retry=10) as es:
            start = es.last_event_id  # the header, or ?last_event_id= on the URL
            await es.send("hello", id=str(int(start or 0) + 1))
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
