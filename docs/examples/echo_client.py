"""A client for the echo server (docs/tutorial-echo.md): run echo_page.py
first, then ``python echo_client.py``."""

import anyio

from faye_websocket import WebSocket


async def main(url="ws://127.0.0.1:7000/echo"):
    async with WebSocket.Client(url) as ws:
        await ws.send("hello")
        print(await ws.receive())    # hello


if __name__ == "__main__":
    anyio.run(main)
