"""faye_websocket's WebSocket.Client: ``python -m bench.clients.ours --backend B``."""

from __future__ import annotations

import argparse

import anyio

from faye_websocket import WebSocket

from ._loop import parse_args, run, url


async def main(args: argparse.Namespace) -> None:
    async with WebSocket.Client(url(args), max_length=4 * 2**20) as ws:
        await run(args, ws.send, ws.receive)


if __name__ == "__main__":
    arguments = parse_args()
    anyio.run(main, arguments, backend=arguments.backend)
