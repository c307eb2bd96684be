"""websockets' trio implementation: ``python -m bench.servers.websockets_trio``.

``/fanout`` as in bench/servers/websockets_asyncio.py, with
``websockets.trio.server.broadcast()`` (a coroutine there).
"""

from __future__ import annotations

import trio
from websockets.trio.server import ServerConnection, broadcast, serve

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
        with trio.fail_after(SUBSCRIBE_LIMIT):
            while len(fanout) < subscribers:  # noqa: ASYNC110
                await trio.sleep(0.005)
        message = fanout_message(size)
        for _ in range(messages):
            await broadcast(fanout, message)
            await trio.lowlevel.checkpoint()

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
                await broadcast(clients, message)
        finally:
            clients.discard(ws)

    # compression: negotiated only when a client offers it (the fan-out
    # scenario with deflate does; no other scenario does).
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve(handler, 0, host=HOST, max_size=MAX_SIZE,
                                      ping_interval=None, compression="deflate",
                                      task_status=task_status))
        port = server.listeners[0].socket.getsockname()[1]
        announce(port)


if __name__ == "__main__":
    prepare()
    trio.run(main)
