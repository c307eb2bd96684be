"""websockets' asyncio implementation: ``python -m bench.servers.websockets_asyncio``."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve

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
                broadcast(clients, message)
        finally:
            clients.discard(ws)

    async with serve(handler, HOST, 0, max_size=MAX_SIZE, ping_interval=None,
                     compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        announce(port)
        await server.serve_forever()


if __name__ == "__main__":
    prepare()
    asyncio.run(main())
