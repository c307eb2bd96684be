"""Autobahn|Testsuite echo client (``wstest -m fuzzingserver`` testee).

Uses only the public client API. Run it through the shared runner::

    AB_AGENT=faye_websocket ../shared/tools/autobahn/run_client_suite.sh 9402 -- \\
        python tests/autobahn/client.py --backend asyncio

The standard loop: read the case count from ``$AB_URL/getCaseCount``, then
for each case connect to ``$AB_URL/runCase?case=I&agent=$AB_AGENT`` and echo
every message until the server closes (each case bounded by ``--case-timeout``),
and finally call ``$AB_URL/updateReports?agent=$AB_AGENT``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import anyio

from faye_websocket import (
    Client,
    ConnectionClosed,
    FayeWebSocketError,
    PerMessageDeflate,
    WebSocket,
)

#: The 9.* cases send messages up to 16 MiB.
MAX_LENGTH = 16 * 2**20


def log(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def client(url: str) -> Client:
    return WebSocket.Client(url, extensions=[PerMessageDeflate()], max_length=MAX_LENGTH)


async def case_count(base: str) -> int:
    async with client(f"{base}/getCaseCount") as ws:
        message = await ws.receive()
    return int(message)


async def run_case(base: str, agent: str, case: int) -> str:
    """Echo one case; returns how it ended (for the log)."""
    async with client(f"{base}/runCase?case={case}&agent={agent}") as ws:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        return f"close {ws.close_code} {ws.close_reason!r}"


async def update_reports(base: str, agent: str) -> None:
    async with client(f"{base}/updateReports?agent={agent}") as ws:
        await ws.wait_closed()


async def main(base: str, agent: str, case_timeout: float) -> None:
    count = await case_count(base)
    log(f"{count} cases")
    for case in range(1, count + 1):
        started = time.monotonic()
        outcome = "timed out"
        with anyio.move_on_after(case_timeout):
            try:
                outcome = await run_case(base, agent, case)
            except (FayeWebSocketError, OSError) as exc:
                outcome = f"error {type(exc).__name__}: {exc}"
        log(f"case {case}/{count}: {outcome} ({time.monotonic() - started:.2f} s)")
    await update_reports(base, agent)
    log("reports updated")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("AB_URL", "ws://127.0.0.1:9001"),
                        help="the fuzzingserver (default: $AB_URL)")
    parser.add_argument("--agent", default=os.environ.get("AB_AGENT", "faye_websocket"),
                        help="agent name in the report (default: $AB_AGENT)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--case-timeout", type=float, default=120.0,
                        help="seconds one case may take")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, args.url.rstrip("/"), args.agent, args.case_timeout,
              backend=args.backend)
