"""aiohttp's WebSocket server: ``python -m bench.servers.aiohttp_server``."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from ._common import HOST, MAX_SIZE, announce, prepare

clients: set[web.WebSocketResponse] = set()


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_SIZE)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def broadcast(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_SIZE)
    await ws.prepare(request)
    clients.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                for client in list(clients):
                    if not client.closed:
                        await client.send_str(msg.data)
    finally:
        clients.discard(ws)
    return ws


async def main() -> None:
    app = web.Application()
    app.router.add_get("/", echo)
    app.router.add_get("/broadcast", broadcast)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    announce(runner.addresses[0][1])
    await asyncio.Event().wait()


if __name__ == "__main__":
    prepare()
    asyncio.run(main())
