"""An EventSource client (docs/eventsource.md), for
``python -m faye_websocket demo``."""

import anyio

from faye_websocket import EventSource


async def main(url="http://127.0.0.1:7000/updates"):
    async with EventSource.Client(url) as source:
        async for event in source:
            print(event.type, repr(event.data), repr(event.id), event.origin)
            if event.data.startswith("Time:"):
                break


if __name__ == "__main__":
    anyio.run(main)                 # or anyio.run(main, backend="trio")
