"""The measuring loops, written once for every client (send/recv callables)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

SMALL = "0123456789abcdef0123456789abcdef"
INFLIGHT = 64
LARGE_SIZE = 1 << 20

Send = Callable[[Any], Awaitable[Any]]
Recv = Callable[[], Awaitable[Any]]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["client_small", "client_large"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--backend", default="asyncio")
    return p.parse_args()


def url(args: argparse.Namespace) -> str:
    return f"ws://127.0.0.1:{args.port}/"


async def small(send: Send, recv: Recv, duration: float, warmup: float) -> dict[str, Any]:
    """32-byte text messages, 64 in flight: send one for each one received."""
    perf = time.perf_counter
    for _ in range(INFLIGHT):
        await send(SMALL)
    count = start = 0
    t0 = c0 = 0.0
    measuring = False
    warm_end = perf() + warmup
    end = warm_end + duration
    while True:
        message = await recv()
        count += 1
        await send(SMALL)
        if count & 63 == 0:
            now = perf()
            if not measuring:
                if now >= warm_end:
                    measuring, start, t0, c0 = True, count, now, time.process_time()
            elif now >= end:
                break
    elapsed = perf() - t0
    cpu = time.process_time() - c0
    if message != SMALL:
        raise RuntimeError(f"echo differs: {message!r}")
    for _ in range(INFLIGHT):
        await recv()
    n = count - start
    return {"messages": n, "msgs_per_s": n / elapsed, "cpu_us_per_msg": 1e6 * cpu / n,
            "cpu_pct": 100 * cpu / elapsed}


async def large(send: Send, recv: Recv, duration: float, warmup: float) -> dict[str, Any]:
    """1 MiB binary messages, one in flight; the first echo is compared."""
    payload = os.urandom(LARGE_SIZE)
    perf = time.perf_counter
    count = start = 0
    t0 = c0 = 0.0
    measuring = False
    warm_end = perf() + warmup
    end = warm_end + duration
    while True:
        await send(payload)
        message = await recv()
        if count == 0 and message != payload:
            raise RuntimeError("the 1 MiB echo differs from what was sent")
        count += 1
        now = perf()
        if not measuring:
            if now >= warm_end:
                measuring, start, t0, c0 = True, count, now, time.process_time()
        elif now >= end:
            break
    elapsed = now - t0
    cpu = time.process_time() - c0
    n = count - start
    return {"messages": n, "mib_per_s": n / elapsed, "cpu_ms_per_mib": 1e3 * cpu / n,
            "cpu_pct": 100 * cpu / elapsed}


async def run(args: argparse.Namespace, send: Send, recv: Recv) -> None:
    loop = small if args.scenario == "client_small" else large
    result = await loop(send, recv, args.duration, args.warmup)
    sys.stdout.write(json.dumps(result) + "\n")
