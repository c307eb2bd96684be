"""A trio nursery of WebSocket clients (docs/tutorial-nursery.md).

Start an echo server (``python -m faye_websocket echo --port 7000``), then
run ``python nursery_clients.py``.
"""

import trio

from faye_websocket import WebSocket


async def client(number, url, replies):
    """One client: three messages, each answered before the next one goes."""
    async with WebSocket.Client(url) as ws, replies:
        for count in range(1, 4):
            await ws.send(f"client {number}, message {count}")
            await replies.send(await ws.receive())


async def main(url="ws://127.0.0.1:7000/", clients=5):
    send_replies, receive_replies = trio.open_memory_channel(0)
    with trio.fail_after(10):                   # one deadline for all of them
        async with trio.open_nursery() as nursery:
            async with send_replies:
                for number in range(1, clients + 1):
                    nursery.start_soon(client, number, url, send_replies.clone())
            async with receive_replies:
                async for reply in receive_replies:     # until every client is done
                    print(reply)
    print("all done")


if __name__ == "__main__":
    trio.run(main)
