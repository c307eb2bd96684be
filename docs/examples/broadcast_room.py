"""One room: every WebSocket and EventSource subscribed to it, every
message published to all of them (docs/broadcast.md)."""

import anyio

from faye_websocket import EventSource, Hub, WebSocket
from faye_websocket.http import Server

hub = Hub()            # Hub(redis="redis://localhost:6379/0") to share it between processes


async def on_upgrade(request, stream, body):
    async with WebSocket(request, stream, body) as ws, hub.subscribe(ws, "room"):
        async for message in ws:
            await hub.publish("room", message)      # to everyone, the sender too


async def on_request(request, response):
    async with EventSource(request, response) as es, hub.subscribe(es, "room"):
        await es.wait_closed()                       # resumes after its Last-Event-ID


async def main():
    server = Server(on_request=on_request, on_upgrade=on_upgrade)
    async with hub, anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        async with EventSource.Client(f"http://127.0.0.1:{port}/") as source:
            while not hub.subscriber_count("room"):
                await anyio.sleep(0.01)
            await hub.publish("room", "hello, everyone")
            event = await source.receive()
            print(event.id, event.data)
        await server.shutdown()


if __name__ == "__main__":
    anyio.run(main)
