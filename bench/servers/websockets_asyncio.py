"""websockets' asyncio implementation: ``python -m bench.servers.websockets_asyncio``.

``/fanout``: every connection joins; ``burst M N SIZE`` sends M messages of
SIZE bytes to all of them with ``websockets.asyncio.server.broadcast()``,
once N are connected (see bench/servers/ours.py).
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve

from ._common import (
    HOST,
    MAX_SIZE,
    SUBSCRIBE_LIMIT,
    announce,
    fanout_message,
    parse_burst,
    prepare,
)


async def main() -> None:
    clients: set[ServerConnection] = set()
    fanout: set[ServerConnection] = set()

    async def burst(messages: int, subscribers: int, size: int) -> None:
        deadline = asyncio.get_running_loop().time() + SUBSCRIBE_LIMIT
        while len(fanout) < subscribers:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(fanout)} of {subscribers} subscribers")
            await asyncio.sleep(0.005)
        message = fanout_message(size)
        for _ in range(messages):
            broadcast(fanout, message)
            await asyncio.sleep(0)  # as the hub's publish: let the writers run

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        if path == "/fanout":
            fanout.add(ws)
            try:
                async for message in ws:
                    spec = parse_burst(str(message))
                    if spec is not None:
                        await burst(*spec)
            finally:
                fanout.discard(ws)
            return
        if path != "/broadcast":
            async for message in ws:
                await ws.send(message)
            return
        clients.add(ws)
        try:
            async for message in ws:
                broadcast(clients, message)
        finally:
            clients.discard(ws)

    # compression: negotiated only when a client offers it (the fan-out
    # scenario with deflate does; no other scenario does).
    async with serve(handler, HOST, 0, max_size=MAX_SIZE, ping_interval=None,
                     compression="deflate") as server:
        port = next(iter(server.sockets)).getsockname()[1]
        announce(port)
        await server.serve_forever()


if __name__ == "__main__":
    prepare()
    asyncio.run(main())
