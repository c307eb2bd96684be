"""The task-group-managed client through anyio (docs/client.md), for
``python -m faye_websocket demo``."""

import anyio

from faye_websocket import WebSocket


async def main(url="ws://127.0.0.1:7000/"):
    async with anyio.create_task_group() as tg:
        ws = await WebSocket.Client.connect(tg, url)
        await ws.send("hello")
        print(await ws.receive())
        await ws.close()


if __name__ == "__main__":
    anyio.run(main)
