"""An EventSource client that resumes after event 5, the way a reconnecting
client does, on trio (docs/eventsource.md), for ``python -m faye_websocket demo``."""

import trio

from faye_websocket import EventSource


async def main(url="http://127.0.0.1:7000/"):
    async with EventSource.Client(url, last_event_id="5",
                                  headers={"User-Agent": "ticker/1.0"}) as source:
        print(source.status_code, source.headers)
        print(await source.receive())
        print(await source.receive())     # Time: 6: the server went on from 5


if __name__ == "__main__":
    trio.run(main)
