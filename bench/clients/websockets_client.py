"""websockets' client: ``python -m bench.clients.websockets_client --backend asyncio|trio``."""

from __future__ import annotations

import argparse
import asyncio

from ._loop import parse_args, run, url

OPTIONS = {"max_size": 4 * 2**20, "compression": None, "ping_interval": None}


async def main_asyncio(args: argparse.Namespace) -> None:
    from websockets.asyncio.client import connect

    async with connect(url(args), **OPTIONS) as ws:  # type: ignore[arg-type]
        await run(args, ws.send, ws.recv)


async def main_trio(args: argparse.Namespace) -> None:
    from websockets.trio.client import connect

    async with connect(url(args), **OPTIONS) as ws:  # type: ignore[arg-type]
        await run(args, ws.send, ws.recv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.backend == "trio":
        import trio

        trio.run(main_trio, arguments)
    else:
        asyncio.run(main_asyncio(arguments))
