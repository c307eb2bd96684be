"""An EventSource feed that clients resume after a disconnect
(docs/tutorial-feed.md).

Run ``python feed_server.py`` and open http://127.0.0.1:7000/, or follow the
feed with ``python feed_client.py``.
"""

import sys

import anyio

from faye_websocket import EventSource
from faye_websocket.http import Server

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Feed</title>
<ul id="log"></ul>
<script>
  const source = new EventSource("/feed");
  source.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = `${event.lastEventId}: ${event.data}`;
    document.getElementById("log").append(item);
  };
</script>
"""


class Feed:
    """Numbered events, all kept, so that a client can ask for what it missed."""

    def __init__(self):
        self.events = []                # event number n is self.events[n - 1]
        self._more = anyio.Event()

    def append(self, data):
        self.events.append(data)
        self._more.set()                # wake every stream waiting for more
        self._more = anyio.Event()

    async def wait_for_more(self):
        await self._more.wait()


async def produce(feed, interval):
    """A new event every ``interval`` seconds."""
    while True:
        feed.append(f"tick {len(feed.events) + 1}")
        await anyio.sleep(interval)


def feed_server(feed, stream_seconds):
    """The page at / and the feed at /feed; each stream of the feed ends
    after ``stream_seconds``, as a proxy's read timeout would end it."""

    async def on_request(request, response):
        if request.path == "/feed" and EventSource.is_eventsource(request):
            async with EventSource(request, response, retry=1) as es:
                last = int(es.last_event_id) if es.last_event_id.isdigit() else 0
                print(f"stream opened after event {last}", flush=True)
                with anyio.move_on_after(stream_seconds):
                    while True:
                        for number in range(last + 1, len(feed.events) + 1):
                            if not await es.send(feed.events[number - 1], id=str(number)):
                                return          # the client has gone
                            last = number
                        await feed.wait_for_more()
        elif request.path == "/":
            response.write_head(200, {"Content-Type": "text/html; charset=utf-8"})
            await response.end(PAGE)
        else:
            response.write_head(404, {"Content-Type": "text/plain; charset=utf-8"})
            await response.end("Not found\n")

    return Server(on_request=on_request)


async def main(port=7000, interval=1.0, stream_seconds=10.0):
    feed = Feed()
    server = feed_server(feed, stream_seconds)
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce, feed, interval)
        port = await tg.start(server.serve, "127.0.0.1", port)
        print(f"open http://127.0.0.1:{port}/", flush=True)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 7000)
