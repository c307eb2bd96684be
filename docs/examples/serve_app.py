"""Serving an ASGI application from a program of your own (docs/asgi-serving.md).

Run it next to main.py: ``python serve_app.py`` (``python serve_app.py 0``
picks a free port). SIGTERM or Ctrl-C shuts it down gracefully.
"""

import signal
import sys

import anyio
from main import app

from faye_websocket.http import Server


async def serve_app(port):
    server = Server(app=app, root_path="", ws_ping=20)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            # Returns once the application has started (lifespan) and the
            # server listens.
            port = await tg.start(server.serve, "127.0.0.1", port)
            print(f"open http://127.0.0.1:{port}/", flush=True)
            async for _signal in signals:
                await server.shutdown()  # 1001 to WebSockets, then the lifespan shutdown
                break


if __name__ == "__main__":
    anyio.run(serve_app, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
