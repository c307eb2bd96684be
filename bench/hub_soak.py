"""Soak of the hub's slow-consumer policy: ``python -m bench.hub_soak``.

A server (``bench/servers/ours.py``, a memory Hub on ``/fanout``) gets
``--subscribers`` WebSocket subscribers, of which ``--stalled`` stop reading
after the handshake (a 4 KiB receive buffer, and the server's send buffer
fixed at 16 KiB, so they are soon behind in the server's own buffers).
Messages of ``--size`` bytes are published at ``--rate`` per second for
``--duration`` seconds; the readers read everything. The server's RSS is
sampled every 0.5 s and compared with what the configuration bounds:

    stalled x (write_limit + max_pending_bytes) + history x size

on top of its RSS once everyone was subscribed. Without a bound, each
stalled subscriber would hold everything published: ``rate x size x
duration``. Each policy (``drop_oldest``, ``close``) runs on each backend,
each on a fresh server. Results: a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import selectors
import statistics
import sys
import tempfile
import time
from typing import Any

from faye_websocket._hub import SLOW_CLOSE_REASON

from . import _proc
from ._wire import OP_TEXT, client_frame
from .loadgen import _frame_size, open_many
from .runner import server

MIB = 2**20
HISTORY = 1000  # the Hub's default history, in messages
# The Close frame the hub sends a subscriber too slow for the "close" policy.
CLOSE_1013 = (b"\x88" + bytes([2 + len(SLOW_CLOSE_REASON)]) + (1013).to_bytes(2, "big")
              + SLOW_CLOSE_REASON.encode())


def soak(backend: str, policy: str, a: argparse.Namespace) -> dict[str, Any]:
    args = ("-m", "bench.servers.ours", "--backend", backend, "--policy", policy,
            "--max-pending", str(a.max_pending), "--max-pending-bytes",
            str(a.max_pending_bytes), "--write-limit", str(a.write_limit), "--sndbuf", "16384")
    with tempfile.TemporaryFile() as log, server(args, False, log) as (port, pid):
        readers = open_many(port, "/fanout", a.subscribers - a.stalled, 64, 120)
        stalled = open_many(port, "/fanout", a.stalled, 64, 120, rcvbuf=4096)
        sel = selectors.DefaultSelector()
        for sock in readers:
            sel.register(sock, selectors.EVENT_READ, sock)
        got = dict.fromkeys(readers, 0)
        trigger = readers[0]
        # One message once everyone is subscribed: the frame size, and the start.
        trigger.send(client_frame(OP_TEXT, f"burst 1 {a.subscribers} {a.size}".encode()))
        frame = 0
        deadline = time.monotonic() + 60
        while not frame or any(v < frame for v in got.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the first message did not reach every reader")
            for key, _ in sel.select(1.0):
                data = key.data.recv(1 << 18)
                if not frame:
                    frame = _frame_size(data)
                got[key.data] += len(data)
        time.sleep(0.5)
        rss0 = _proc.rss_bytes(pid)
        per_tick = max(1, round(a.rate / 10))
        # N=0: publish at once (the "close" policy leaves fewer subscribers).
        request = client_frame(OP_TEXT, f"burst {per_tick} 0 {a.size}".encode())
        samples: list[float] = []
        published = 1
        start = time.monotonic()
        next_tick = next_sample = start
        while time.monotonic() - start < a.duration:
            now = time.monotonic()
            if now >= next_tick:
                trigger.send(request)
                published += per_tick
                next_tick += 0.1
            if now >= next_sample:
                samples.append((_proc.rss_bytes(pid) - rss0) / MIB)
                next_sample += 0.5
            for key, _ in sel.select(max(0.0, min(next_tick, next_sample) - time.monotonic())):
                data = key.data.recv(1 << 18)
                if not data:
                    sel.unregister(key.data)
                    continue
                got[key.data] += len(data)
        # Let the readers catch up (bounded), then look at the stalled ones.
        want = published * frame
        deadline = time.monotonic() + 30
        while any(v < want for v in got.values()) and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                data = key.data.recv(1 << 18)
                if not data:
                    sel.unregister(key.data)
                    continue
                got[key.data] += len(data)
        samples.append((_proc.rss_bytes(pid) - rss0) / MIB)
        complete = sum(v == want for v in got.values())
        # What the stalled ones hold now, read for at most 5 s in all: a Close
        # 1013 at the end of it for those the "close" policy closed.
        tails = dict.fromkeys(stalled, b"")
        sel2 = selectors.DefaultSelector()
        for sock in stalled:
            sel2.register(sock, selectors.EVENT_READ, sock)
        deadline = time.monotonic() + 5
        while sel2.get_map() and time.monotonic() < deadline:
            for key, _ in sel2.select(0.5):
                try:
                    data = key.data.recv(1 << 20)
                except OSError:
                    data = b""
                if not data:
                    sel2.unregister(key.data)
                    continue
                tails[key.data] = (tails[key.data] + data)[-64:]
        sel2.close()
        closed_1013 = sum(CLOSE_1013 in tail for tail in tails.values())
        sel.close()
        for sock in readers + stalled:
            sock.close()
    bound = (a.stalled * (a.write_limit + a.max_pending_bytes) + HISTORY * a.size) / MIB
    return {"backend": backend, "policy": policy, "rss0_mib": rss0 / MIB,
            "max_growth_mib": max(samples), "median_growth_mib": statistics.median(samples),
            "final_growth_mib": samples[-1], "bound_mib": bound,
            "unbounded_mib": a.stalled * published * a.size / MIB,
            "readers_complete": complete, "readers": len(readers),
            "stalled_closed_1013": closed_1013, "published": published}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hub_soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, default=300)
    p.add_argument("--stalled", type=int, default=100)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rate", type=float, default=100, help="messages per second")
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--max-pending", type=int, default=64)
    p.add_argument("--max-pending-bytes", type=int, default=64 * 1024)
    p.add_argument("--write-limit", type=int, default=64 * 1024)
    p.add_argument("--backend", default="asyncio,trio")
    p.add_argument("--policy", default="drop_oldest,close")
    a = p.parse_args(argv)
    _proc.raise_nofile()
    rows = []
    for backend in a.backend.split(","):
        for policy in a.policy.split(","):
            row = soak(backend, policy, a)
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    print(f"{a.subscribers} subscribers, {a.stalled} stalled; {a.size} B x {a.rate:g}/s for "
          f"{a.duration:g} s; max_pending={a.max_pending}, max_pending_bytes="
          f"{a.max_pending_bytes}, write_limit={a.write_limit}\n")
    print("| backend | policy | RSS growth max / end (MiB) | bound (MiB) | unbounded (MiB) "
          "| readers with every message | stalled closed with 1013 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['policy']} | {r['max_growth_mib']:.1f} / "
              f"{r['final_growth_mib']:.1f} | {r['bound_mib']:.1f} | {r['unbounded_mib']:.0f} "
              f"| {r['readers_complete']} of {r['readers']} | {r['stalled_closed_1013']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
