"""websockets' trio implementation: ``python -m bench.servers.websockets_trio``."""

from __future__ import annotations

import trio
from websockets.trio.server import ServerConnection, broadcast, serve

from ._common import HOST, MAX_SIZE, announce, prepare


async def main() -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != "/broadcast":
            async for message in ws:
                await ws.send(message)
            return
        clients.add(ws)
        try:
            async for message in ws:
                await broadcast(clients, message)
        finally:
            clients.discard(ws)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve(handler, 0, host=HOST, max_size=MAX_SIZE,
                                      ping_interval=None, compression=None,
                                      task_status=task_status))
        port = server.listeners[0].socket.getsockname()[1]
        announce(port)


if __name__ == "__main__":
    prepare()
    trio.run(main)
