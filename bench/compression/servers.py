"""Echo servers with permessage-deflate, driven by websockets' asyncio client.

Every peer is a fresh process, built on its library's public API with
compression at its defaults (ours: ``extensions=[PerMessageDeflate()]``;
websockets: ``compression="deflate"``, its default), 1 MiB messages and no
keep-alive pings. ``ours-asyncio+zlib`` and ``ours-trio+zlib`` are ours with
zlib's defaults (15-bit windows, memory level 8, no threshold), as faye had
them: the "before". The clients are websockets' asyncio client, which offers
permessage-deflate the way browsers do (``client_max_window_bits`` without a
value), in a few worker processes. Phases, each measured as the server's
RSS growth over its start divided by the number of connections:

1. ``idle``: every client connected, nothing sent;
2. ``one``: every client sent one 60-byte JSON message and got its echo;
3. ``soak``: every client sends ``--messages`` messages of 1 B - 64 KiB
   (log-uniform-ish, text and binary: ``bench.soak.make_message``) while it
   reads the echoes, each checked by SHA-256 in order; ``--abort`` of the
   clients drop their TCP connection mid-run. The peak is ``VmHWM``.
4. ``after``: everyone left; RSS after 2 s.

For experiments, ours reads JSON from the environment:
``BENCH_DEFLATE_OPTIONS`` (keywords of ``PerMessageDeflate``)
and ``BENCH_WS_OPTIONS`` (of ``WebSocket``); ``BENCH_PROFILE=FILE`` and
``BENCH_TRACEMALLOC=FILE`` profile the server (see :func:`_exit_on_eof`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from .._proc import raise_nofile, rss_bytes
from ..soak import digest, make_message

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_SIZE = 2**20
SMALL_JSON = '{"type":"message","room":"general","user":"alice","text":"hi"}'
PEERS = ("ours-asyncio", "ours-trio", "websockets", "ours-asyncio+zlib", "ours-trio+zlib")


# -- servers -------------------------------------------------------------------


#: ``ours-<backend>+zlib``: zlib's defaults, as faye (and this package
#: before issue 19) had them.
ZLIB_DEFAULTS = {"max_window_bits": 15, "request_max_window_bits": 15, "mem_level": 8,
                 "threshold": 0}


def _serve_ours(backend: str, max_queue: int, zlib_defaults: bool = False) -> None:
    import os

    import anyio
    import anyio.abc

    from faye_websocket import ConnectionClosed, PerMessageDeflate, WebSocket
    from faye_websocket.http import Request, Server
    deflate_options = json.loads(os.environ.get("BENCH_DEFLATE_OPTIONS", "{}"))
    ws_options = json.loads(os.environ.get("BENCH_WS_OPTIONS", "{}"))
    extensions = [PerMessageDeflate(**ZLIB_DEFAULTS) if zlib_defaults
                  else PerMessageDeflate(**deflate_options)]

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        try:
            async with WebSocket(request, stream, body, extensions=extensions,
                                 max_length=MAX_SIZE, ping=None, max_queue=max_queue,
                                 **ws_options) as ws:
                async for message in ws:
                    await ws.send(message)
        except ConnectionClosed:
            pass

    async def main() -> None:
        server = Server(on_upgrade=on_upgrade)
        async with anyio.create_task_group() as tg:
            port = await tg.start(server.serve, "127.0.0.1", 0)
            print(f"PORT {port}", flush=True)

    anyio.run(main, backend=backend)


def _serve_websockets() -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, max_size=MAX_SIZE,
                         ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"PORT {port}", flush=True)
            await server.serve_forever()

    asyncio.run(main())


# -- client workers ------------------------------------------------------------


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def _readline() -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


async def _worker(config: dict[str, Any]) -> None:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed

    first, count, messages = config["first"], config["count"], config["messages"]
    url = f"ws://127.0.0.1:{config['port']}/"
    slots = asyncio.Semaphore(64)
    conns: list[ClientConnection | None] = [None] * count
    totals = {"ok": 0, "lost": 0, "corrupted": 0, "aborted": 0, "failed": 0}
    negotiated: set[str] = set()

    async def open_one(i: int) -> None:
        async with slots:
            try:
                conns[i] = await connect(url, max_size=None, ping_interval=None,
                                         open_timeout=60, close_timeout=30,
                                         compression=config["compression"])
            except Exception:
                totals["failed"] += 1
                return
            ext = conns[i].response.headers.get("Sec-WebSocket-Extensions")  # type: ignore[union-attr]
            negotiated.add(ext or "none")

    await asyncio.gather(*(open_one(i) for i in range(count)))
    _emit("ready", connected=count - totals["failed"], negotiated=sorted(negotiated))

    async def one(ws: ClientConnection) -> None:
        await ws.send(SMALL_JSON)
        if await ws.recv() != SMALL_JSON:
            totals["corrupted"] += 1

    async def soak(i: int, ws: ClientConnection) -> None:
        index = first + i
        rng = random.Random(f"soak-{index}")
        abort_at = rng.randint(5, messages - 5) if rng.random() < config["abort"] else None
        expected: deque[bytes] = deque()
        done = asyncio.Event()

        async def sender() -> None:
            for k in range(messages):
                if k == abort_at:
                    ws.transport.abort()
                    done.set()
                    return
                message = make_message(rng)
                expected.append(digest(message))
                await ws.send(message)

        task = asyncio.create_task(sender())
        received = 0
        try:
            while received < messages:
                get = asyncio.ensure_future(ws.recv())
                waited = asyncio.ensure_future(done.wait())
                finished, _ = await asyncio.wait({get, waited}, timeout=120,
                                                 return_when=asyncio.FIRST_COMPLETED)
                if get not in finished:
                    get.cancel()
                    waited.cancel()
                    break
                waited.cancel()
                message = get.result()
                received += 1
                if expected and expected.popleft() == digest(message):
                    totals["ok"] += 1
                else:
                    totals["corrupted"] += 1
        except ConnectionClosed:
            pass
        await asyncio.gather(task, return_exceptions=True)
        if abort_at is not None:
            totals["aborted"] += 1
        else:
            totals["lost"] += messages - received

    while (command := await _readline()) != "quit":
        live = [ws for ws in conns if ws is not None]
        if command == "one":
            await asyncio.gather(*(one(ws) for ws in live))
            _emit("one_done")
        elif command == "go":
            t = time.monotonic()
            await asyncio.gather(*(soak(i, ws) for i, ws in enumerate(conns) if ws is not None))
            _emit("result", seconds=time.monotonic() - t, **totals)
        elif command == "close":
            await asyncio.gather(*(ws.close() for ws in live), return_exceptions=True)
            _emit("closed")
        elif not command:
            return


# -- the driver ----------------------------------------------------------------


class _Proc:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT)

    def line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args!r} exited ({self.proc.wait()})")
        return line.strip()

    def expect(self, event: str) -> dict[str, Any]:
        while True:
            line = self.line()
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                if data["event"] == event:
                    return data

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _server_argv(peer: str, args: argparse.Namespace) -> list[str]:
    base = [sys.executable, "-m", "bench.compression.servers", "_server"]
    if peer == "websockets":
        return [*base, "websockets"]
    return [*base, "ours", peer.removeprefix("ours-"), str(args.max_queue)]


def measure(peer: str, args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    server = _Proc(_server_argv(peer, args))
    workers: list[_Proc] = []
    try:
        port = int(server.line().split()[1])
        pid = server.proc.pid
        time.sleep(1)
        start = rss_bytes(pid)
        per = [args.clients // args.workers + (1 if i < args.clients % args.workers else 0)
               for i in range(args.workers)]
        first = 0
        for count in per:
            config = {"port": port, "first": first, "count": count,
                      "messages": args.messages, "abort": args.abort,
                      "compression": None if args.no_deflate else "deflate"}
            workers.append(_Proc([sys.executable, "-m", "bench.compression.servers",
                                  "_worker", json.dumps(config)]))
            first += count
        ready = [w.expect("ready") for w in workers]
        connected = sum(r["connected"] for r in ready)
        negotiated = sorted({n for r in ready for n in r["negotiated"]})
        time.sleep(1)
        idle = rss_bytes(pid)
        for w in workers:
            w.send("one")
        for w in workers:
            w.expect("one_done")
        time.sleep(1)
        one = rss_bytes(pid)
        cpu0 = _cpu(pid)
        t = time.monotonic()
        for w in workers:
            w.send("go")
        results = [w.expect("result") for w in workers]
        soak_s = time.monotonic() - t
        cpu = _cpu(pid) - cpu0
        peak = _hwm(pid)
        for w in workers:
            w.send("close")
        for w in workers:
            w.expect("closed")
        time.sleep(2)
        after = rss_bytes(pid)
    finally:
        for w in workers:
            w.stop()
        server.stop()
    row = {"peer": peer, "round": round_no, "connected": connected,
           "negotiated": " / ".join(negotiated), "rss_start": start,
           "idle_per_conn": (idle - start) / connected,
           "one_msg_per_conn": (one - start) / connected,
           "peak_per_conn": (peak - start) / connected, "rss_after": after,
           "soak_s": soak_s, "server_cpu_s": cpu,
           **{k: sum(r[k] for r in results) for k in ("ok", "lost", "corrupted", "aborted")}}
    print(f"{peer} round {round_no}: idle {row['idle_per_conn'] / 1024:.1f} KiB, one "
          f"{row['one_msg_per_conn'] / 1024:.1f} KiB, peak {row['peak_per_conn'] / 1024:.1f} "
          f"KiB, soak {soak_s:.1f} s, ok {row['ok']} lost {row['lost']} corrupted "
          f"{row['corrupted']}, after {after / 2**20:.1f} MiB; {negotiated}", flush=True)
    return row


def _cpu(pid: int) -> float:
    from .._proc import cpu_seconds

    return cpu_seconds(pid)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import websockets

    raise_nofile()
    if args.quick:
        args.clients, args.messages = min(args.clients, 200), min(args.messages, 20)
    peers = [p for p in args.peers.split(",") if p]
    rows: list[dict[str, Any]] = []
    for round_no in range(1, args.rounds + 1):
        for peer in peers:  # interleaved, so that load drifts hit every peer alike
            try:
                rows.append(measure(peer, args, round_no))
            except Exception as exc:  # reported in the table, the run goes on
                rows.append({"peer": peer, "round": round_no, "error": repr(exc)})
    good = [r for r in rows if "error" not in r]
    ratios: dict[str, dict[str, float]] = {}

    def med(peer: str, key: str) -> float:
        return statistics.median(r[key] for r in good if r["peer"] == peer)

    if any(r["peer"] == "websockets" for r in good):
        for peer in peers:
            if peer == "websockets" or not any(r["peer"] == peer for r in good):
                continue
            ratios[peer] = {
                "idle": med(peer, "idle_per_conn") / med("websockets", "idle_per_conn"),
                "one": med(peer, "one_msg_per_conn") / med("websockets", "one_msg_per_conn"),
                "peak": med(peer, "peak_per_conn") / med("websockets", "peak_per_conn"),
                "throughput": med("websockets", "soak_s") / med(peer, "soak_s")}
    ok = len(good) == len(rows) and all(r["lost"] == 0 and r["corrupted"] == 0 for r in good)
    return {"clients": args.clients, "messages": args.messages, "abort": args.abort,
            "rounds": args.rounds, "websockets": websockets.__version__, "rows": rows,
            "ratios": ratios, "ok": ok}


def _exit_on_eof() -> None:
    """Exit as soon as the driver closes our stdin; with ``BENCH_PROFILE=FILE``
    in the environment, the server runs under cProfile and dumps its stats
    to FILE first; with ``BENCH_TRACEMALLOC=FILE``, see :func:`_watch_peak`."""
    import os
    import threading

    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()

    traced = os.environ.get("BENCH_TRACEMALLOC")
    if traced:
        import tracemalloc

        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "4")))
        _watch_peak(traced)

    def wait() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        if profile is not None:
            profile.disable()
            profile.dump_stats(os.environ["BENCH_PROFILE"])
        os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


def _watch_peak(path: str) -> None:
    """With ``BENCH_TRACEMALLOC=FILE``: every second, if the traced memory is
    the highest yet, dump a snapshot to FILE (compare with ``VmHWM`` to see
    what of the peak is Python objects and zlib, and what is the allocator's)."""
    import threading
    import time
    import tracemalloc

    def watch() -> None:
        best = 0
        while True:
            time.sleep(1)
            current = tracemalloc.get_traced_memory()[0]
            if current > best * 1.02:
                best = current
                tracemalloc.take_snapshot().dump(path)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    raise_nofile()
    if sys.argv[1] == "_server":
        _exit_on_eof()
        if sys.argv[2] == "websockets":
            _serve_websockets()
        else:
            backend, _, variant = sys.argv[3].partition("+")
            _serve_ours(backend, int(sys.argv[4]), variant == "zlib")
    elif sys.argv[1] == "_worker":
        asyncio.run(_worker(json.loads(sys.argv[2])))
