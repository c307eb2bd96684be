"""A hub that closes subscribers that fall behind (docs/production.md)."""

import anyio

from faye_websocket import EventSource, Hub
from faye_websocket.http import Server

hub = Hub(policy="close", max_pending=256)   # a client that falls behind is closed


async def on_request(request, response):
    async with EventSource(request, response) as es, hub.subscribe(es, "news"):
        await es.wait_closed()


async def main():
    server = Server(on_request=on_request)
    async with hub, anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        async with EventSource.Client(f"http://127.0.0.1:{port}/") as source:
            while not hub.subscriber_count("news"):
                await anyio.sleep(0.01)
            await hub.publish("news", "hello, everyone")
            print((await source.receive()).data)
        await server.shutdown()


if __name__ == "__main__":
    anyio.run(main)
