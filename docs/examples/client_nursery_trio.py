"""The nursery-managed client on trio (docs/client.md), for
``python -m faye_websocket demo``."""

import trio

from faye_websocket import WebSocket


async def main(url="ws://127.0.0.1:7000/"):
    async with trio.open_nursery() as nursery:
        ws = await WebSocket.Client.connect(nursery, url)
        ws.onmessage = lambda event: print("got", event.data)
        await ws.send("hello")
        await trio.sleep(1)
        await ws.close()


if __name__ == "__main__":
    trio.run(main)
