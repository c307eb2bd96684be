"""An EventSource server and client on trio (docs/eventsource.md)."""

import trio

from faye_websocket import EventSource
from faye_websocket.http import Server


async def on_request(request, response):
    if not EventSource.is_eventsource(request):
        response.write_head(404, {"Content-Type": "text/plain"})
        await response.end("Not found\n")
        return
    async with EventSource(request, response, ping=15, retry=10) as es:
        start = int(es.last_event_id or 0)     # where a reconnecting client left off
        for n in range(start + 1, start + 4):
            await es.send(f"tick {n}", event="tick", id=str(n))
            await trio.sleep(0.1)


async def main():
    server = Server(on_request=on_request)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with EventSource.Client(f"http://127.0.0.1:{port}/ticks") as source:
            async for event in source:
                print(event.type, event.data, event.id)     # tick tick 1 1 ...
                if event.id == "3":
                    break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
