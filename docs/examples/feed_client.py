"""Follow the feed of feed_server.py through its disconnects
(docs/tutorial-feed.md)."""

import anyio

from faye_websocket import EventSource


async def main(url="http://127.0.0.1:7000/feed", until=30):
    async with EventSource.Client(url) as source:
        async for event in source:      # reconnects by itself, with Last-Event-ID
            print(event.id, event.data)
            if int(event.id) >= until:
                break


if __name__ == "__main__":
    anyio.run(main)
