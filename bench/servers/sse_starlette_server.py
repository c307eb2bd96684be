"""sse-starlette on uvicorn: ``python -m bench.servers.sse_starlette_server``.

uvicorn runs on the stock asyncio loop with h11, as our servers do.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from ._common import EVENT_DATA, HOST, announce, prepare


async def events(request: Request) -> EventSourceResponse:
    n = int(request.query_params.get("n", "0"))

    async def stream() -> AsyncIterator[dict[str, str]]:
        for _ in range(n):
            yield {"data": EVENT_DATA}

    return EventSourceResponse(stream(), ping=3600)


async def main() -> None:
    app = Starlette(routes=[Route("/events", events)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    config = uvicorn.Config(app, loop="asyncio", http="h11", lifespan="off",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(3000):  # bounded: 30 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        raise SystemExit("uvicorn did not start")
    announce(sock.getsockname()[1])
    await task


if __name__ == "__main__":
    prepare()
    asyncio.run(main())
