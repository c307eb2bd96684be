"""The HTTP helper with a plain handler and an upgrade handler (docs/http.md)."""

import anyio

from faye_websocket import WebSocket
from faye_websocket.http import Server


async def on_request(request, response):
    response.write_head(200, {"Content-Type": "text/plain"})
    await response.end("Hello\n")


async def on_upgrade(request, stream, body):
    async with WebSocket(request, stream, body) as ws:
        async for message in ws:
            await ws.send(message)


async def main():
    server = Server(on_request=on_request, on_upgrade=on_upgrade)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)   # 0: any free port
        print("listening on", port)
        ...                              # serve until it is time to stop
        await server.shutdown()          # closes open WebSockets with 1001


if __name__ == "__main__":
    anyio.run(main)
