"""A client that connects again after losing its connection (docs/client.md),
for ``python -m faye_websocket demo``."""

import anyio

from faye_websocket import ConnectionClosed, WebSocket


async def main(url="ws://127.0.0.1:7000/"):
    async for ws in WebSocket.Client.reconnecting(url, initial_delay=0.5):
        try:
            await ws.send("hello")
            print(await ws.receive())
            break                           # done: the client is closed with 1000
        except ConnectionClosed:
            continue                        # lost: connect again, after a backoff


if __name__ == "__main__":
    anyio.run(main)
