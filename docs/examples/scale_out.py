"""One process of a chat that runs in several, sharing Redis (docs/howto-redis.md).

Start a Redis, then as many processes as you like, each on its own port::

    python scale_out.py 7000 redis://127.0.0.1:6379/0 &
    python scale_out.py 7001 redis://127.0.0.1:6379/0 &

A text sent to ``ws://127.0.0.1:7000/chat`` reaches the WebSockets and the
EventSource streams (``http://127.0.0.1:7001/events``) of every process.
"""

import sys

import anyio

from faye_websocket import EventSource, Hub, WebSocket
from faye_websocket.http import Server


def chat_server(hub):
    """A server whose /chat WebSockets and /events streams share ``hub``."""

    async def on_upgrade(request, stream, body):
        ws = WebSocket(request, stream, body, max_length=2**16)
        if request.path != "/chat":
            await ws.reject(404)
            return
        async with ws, hub.subscribe(ws, "room"):
            async for message in ws:
                if isinstance(message, str):
                    await hub.publish("room", message)  # to every process

    async def on_request(request, response):
        if request.path != "/events" or not EventSource.is_eventsource(request):
            response.write_head(404)
            await response.end()
            return
        # Resumes after the Last-Event-ID the browser sends when it reconnects,
        # to this process or another: the history is in Redis.
        async with EventSource(request, response) as es, hub.subscribe(es, "room"):
            await es.wait_closed()

    return Server(on_request=on_request, on_upgrade=on_upgrade)


async def main(port, redis_url):
    async with Hub(redis=redis_url) as hub:
        server = chat_server(hub)
        await server.serve("127.0.0.1", port)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), sys.argv[2])
