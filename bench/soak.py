"""Soak and load tool: many clients against ``bench/soak_server.py``.

Scenarios, each against a fresh server process (its memory is read from
``/proc/<pid>/status``, so this runs on Linux):

echo
    N clients (default 1,000), split over a few worker processes, each send
    M messages (default 100) of random size (1 B to 64 KiB, text and binary)
    to ``/echo`` and check every echo by its SHA-256, in order. Lost or
    corrupted messages make the exit status non-zero.
slow
    K clients (default 200) connect to ``/push``, ask the server to start
    pushing and never read again, while one normal client keeps measuring
    echo round trips. Server memory is sampled over time and checked against
    the bound that ``write_limit`` implies.
broadcast
    N clients connect to ``/broadcast``; one of them sends a message that
    the server relays to all of them, for a few rounds. Every client must
    get every message exactly once; the time to full delivery is reported.

``python bench/soak.py`` runs them all on both backends (and the echo
scenario through TLS on the backends given by ``--tls``); ``--quick`` uses
small sizes. Results go to ``bench/results/soak-<time>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import json
import os
import platform
import queue
import random
import resource
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "soak_server.py"
KIB = 1024
MIB = 1024 * 1024
MAX_MESSAGE = 64 * KIB
#: Appended to text messages so that UTF-8 decoding is exercised.
UNICODE_TAIL = " ünïcødé ✓ 😀"
UNICODE_TAIL_BYTES = len(UNICODE_TAIL.encode("utf-8"))


# =====================================================================
# Messages
# =====================================================================


def message_size(rng: random.Random) -> int:
    """60 % up to 512 B, 30 % up to 8 KiB, 10 % up to 64 KiB."""
    r = rng.random()
    if r < 0.6:
        return rng.randint(1, 512)
    if r < 0.9:
        return rng.randint(513, 8 * KIB)
    return rng.randint(8 * KIB + 1, MAX_MESSAGE)


def make_message(rng: random.Random) -> str | bytes:
    """A random message: half binary, half text (at most 64 KiB of UTF-8)."""
    size = message_size(rng)
    if rng.random() < 0.5:
        return rng.randbytes(size)
    text = base64.b64encode(rng.randbytes(size * 3 // 4 + 3)).decode("ascii")
    if size > UNICODE_TAIL_BYTES + 8:
        return text[: size - UNICODE_TAIL_BYTES] + UNICODE_TAIL
    return text[:size]


def digest(message: str | bytes) -> bytes:
    """SHA-256 of the message's type and payload."""
    if isinstance(message, str):
        return hashlib.sha256(b"t" + message.encode("utf-8")).digest()
    return hashlib.sha256(b"b" + message).digest()


def message_length(message: str | bytes) -> int:
    return len(message.encode("utf-8")) if isinstance(message, str) else len(message)


def broadcast_payload(seed: int, round_no: int, size: int) -> bytes:
    """Round ``round_no``'s message: its number, then seeded random bytes."""
    body = random.Random(f"broadcast-{seed}-{round_no}").randbytes(max(0, size - 4))
    return struct.pack("!I", round_no) + body


# =====================================================================
# Worker processes (the clients)
# =====================================================================


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class _Errors:
    """Error messages by kind, with a count (the first few kept verbatim)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.samples: list[str] = []

    def add(self, exc: BaseException | str) -> None:
        kind = exc if isinstance(exc, str) else type(exc).__name__
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.samples) < 5:
            self.samples.append(exc if isinstance(exc, str) else f"{kind}: {exc}")

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "samples": self.samples}


def run_worker(config: dict[str, Any]) -> None:
    import anyio

    raise_fd_limit()
    scenario = config["scenario"]
    main = {"echo": _worker_echo, "broadcast": _worker_broadcast,
            "slow": _worker_slow, "probe": _worker_probe}[scenario]
    anyio.run(main, config, backend=config["backend"])


async def _command() -> str:
    """The next line from the driver ('' once it hung up)."""
    import anyio.to_thread

    line: str = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return line.strip()


def _client_options(config: dict[str, Any]) -> dict[str, Any]:
    from faye_websocket import PerMessageDeflate

    options: dict[str, Any] = {"open_timeout": config["open_timeout"],
                               "close_timeout": 30}
    if config.get("ca"):
        options["ca"] = config["ca"]
    if config.get("max_length"):
        options["max_length"] = config["max_length"]
    if config.get("deflate"):
        options["extensions"] = [PerMessageDeflate()]
    return options


@dataclass
class _EchoTotals:
    connected: int = 0
    connect_failed: int = 0
    received_ok: int = 0
    corrupted: int = 0
    lost: int = 0
    extra: int = 0
    chain_mismatch: int = 0
    close_errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    first_send: float = 0.0
    last_receive: float = 0.0
    errors: _Errors = field(default_factory=_Errors)


async def _worker_echo(config: dict[str, Any]) -> None:
    import anyio

    from faye_websocket import ConnectionClosed, WebSocket

    count, messages = config["count"], config["messages"]
    totals = _EchoTotals()
    connect_slots = anyio.Semaphore(config["connect_concurrency"])
    settled = 0
    all_settled = anyio.Event()
    go = anyio.Event()
    options = _client_options(config)

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == count:
            all_settled.set()

    async def exchange(ws: Any, index: int) -> None:
        rng = random.Random(f"echo-{config['seed']}-{index}")
        expected: deque[bytes] = deque()
        sent_chain, received_chain = hashlib.sha256(), hashlib.sha256()
        received = 0

        async def sender() -> None:
            try:
                for _ in range(messages):
                    message = make_message(rng)
                    d = digest(message)
                    expected.append(d)
                    sent_chain.update(d)
                    totals.bytes_sent += message_length(message)
                    if not totals.first_send:
                        totals.first_send = time.monotonic()
                    await ws.send(message)
            except ConnectionClosed as exc:
                totals.errors.add(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            try:
                while received < messages:
                    with anyio.fail_after(config["receive_timeout"]):
                        message = await ws.receive()
                    received += 1
                    d = digest(message)
                    received_chain.update(d)
                    totals.bytes_received += message_length(message)
                    if expected and expected.popleft() == d:
                        totals.received_ok += 1
                    else:
                        totals.corrupted += 1
                totals.last_receive = max(totals.last_receive, time.monotonic())
            except (ConnectionClosed, TimeoutError) as exc:
                totals.errors.add(exc)
                totals.lost += messages - received
                tg.cancel_scope.cancel()
                return
        if sent_chain.digest() != received_chain.digest():
            totals.chain_mismatch += 1
        # Nothing more may arrive: an extra echo would be a duplicate.
        with contextlib.suppress(ConnectionClosed, anyio.WouldBlock):
            ws.receive_nowait()
            totals.extra += 1

    async def client(index: int) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with connect_slots:
                        ws = await stack.enter_async_context(
                            WebSocket.Client(config["url"], **options))
                except Exception as exc:  # counted: every message of it is lost
                    totals.connect_failed += 1
                    totals.lost += messages
                    totals.errors.add(exc)
                    settle()
                    return
                totals.connected += 1
                settle()
                await go.wait()
                await exchange(ws, index)
        except Exception as exc:  # e.g. the closing handshake failed
            totals.errors.add(exc)
            totals.close_errors += 1

    async with anyio.create_task_group() as tg:
        for index in range(config["first"], config["first"] + count):
            tg.start_soon(client, index)
        await all_settled.wait()
        _emit("ready", connected=totals.connected, failed=totals.connect_failed)
        if await _command() != "go":
            tg.cancel_scope.cancel()
            return
        cpu_at_go = time.process_time()
        go.set()
    _emit("result", connected=totals.connected, connect_failed=totals.connect_failed,
          expected=count * messages, received_ok=totals.received_ok,
          corrupted=totals.corrupted, lost=totals.lost, extra=totals.extra,
          chain_mismatch=totals.chain_mismatch, bytes_sent=totals.bytes_sent,
          bytes_received=totals.bytes_received, first_send=totals.first_send,
          last_receive=totals.last_receive, closed_at=time.monotonic(),
          close_errors=totals.close_errors, errors=totals.errors.as_dict(),
          cpu_s=time.process_time() - cpu_at_go)


@dataclass
class _Round:
    """One broadcast round, as this worker's clients saw it."""

    done: Any
    delivered: int = 0
    last_at: float | None = None


async def _worker_broadcast(config: dict[str, Any]) -> None:
    import anyio

    from faye_websocket import ConnectionClosed, WebSocket

    count, seed, first = config["count"], config["seed"], config["first"]
    options = _client_options(config)
    connect_slots = anyio.Semaphore(config["connect_concurrency"])
    sockets: dict[int, Any] = {}
    failed = 0
    settled = anyio.Event()
    #: per client: round -> times received
    received: dict[int, dict[int, int]] = {}
    corrupted = 0
    #: (round, size) -> SHA-256 of the round's message
    digests: dict[tuple[int, int], bytes] = {}
    rounds: dict[int, _Round] = {}
    errors = _Errors()
    quit_ = anyio.Event()

    def round_state(round_no: int) -> _Round:
        # Created by whichever comes first: the driver's command, or the
        # message itself (another worker's client may send it before this
        # worker has read the command).
        if round_no not in rounds:
            rounds[round_no] = _Round(anyio.Event())
        return rounds[round_no]

    def is_intact(message: str | bytes) -> int | None:
        """The round number of an intact broadcast message, else None."""
        if not isinstance(message, bytes) or len(message) < 4:
            return None
        (round_no,) = struct.unpack("!I", message[:4])
        key = (round_no, len(message))
        if key not in digests:
            digests[key] = hashlib.sha256(broadcast_payload(seed, *key)).digest()
        return round_no if digests[key] == hashlib.sha256(message).digest() else None

    async def client(index: int) -> None:
        nonlocal failed, corrupted
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with connect_slots:
                    ws = await stack.enter_async_context(
                        WebSocket.Client(config["url"], **options))
            except Exception as exc:
                failed += 1
                errors.add(exc)
                if len(sockets) + failed == count:
                    settled.set()
                return
            sockets[index] = ws
            counts = received[index] = {}
            if len(sockets) + failed == count:
                settled.set()
            try:
                async for message in ws:
                    now = time.monotonic()
                    round_no = is_intact(message)
                    if round_no is None:
                        corrupted += 1
                        continue
                    counts[round_no] = counts.get(round_no, 0) + 1
                    if counts[round_no] == 1:
                        state = round_state(round_no)
                        state.delivered += 1
                        state.last_at = now
                        if state.delivered == len(sockets):
                            state.done.set()
            except ConnectionClosed as exc:
                if not quit_.is_set():
                    errors.add(exc)

    announced: list[int] = []
    async with anyio.create_task_group() as tg:
        for index in range(first, first + count):
            tg.start_soon(client, index)
        await settled.wait()
        _emit("ready", connected=len(sockets), failed=failed)
        while True:
            command = (await _command()).split()
            if not command or command[0] != "round":
                break
            round_no, size = int(command[1]), int(command[2])
            announced.append(round_no)
            state = round_state(round_no)
            sent_at = None
            if first == 0 and 0 in sockets:
                sent_at = time.monotonic()
                try:
                    await sockets[0].send(broadcast_payload(seed, round_no, size))
                except ConnectionClosed as exc:
                    errors.add(exc)
            with anyio.move_on_after(config["round_timeout"]):
                await state.done.wait()
            _emit("round", round=round_no, sent_at=sent_at, last_at=state.last_at,
                  delivered=state.delivered, clients=len(sockets))
        quit_.set()
        for ws in list(sockets.values()):
            with contextlib.suppress(ConnectionClosed):
                ws.close_nowait()
    n_rounds = len(announced)
    missing = sum(1 for counts in received.values() for r in announced if r not in counts)
    unannounced = sum(1 for counts in received.values() for r in counts if r not in announced)
    duplicates = sum(n - 1 for counts in received.values() for n in counts.values() if n > 1)
    _emit("result", connected=len(sockets), connect_failed=failed, rounds=n_rounds,
          expected=(len(sockets) + failed) * n_rounds, missing=missing + failed * n_rounds,
          duplicates=duplicates + unannounced, corrupted=corrupted, errors=errors.as_dict(),
          cpu_s=time.process_time())


def _masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def _open_raw(config: dict[str, Any], path: str) -> Any:
    """A hand-made WebSocket connection that reads nothing past the 101."""
    import anyio
    import anyio.abc

    stream: anyio.abc.ByteStream
    if config.get("ca"):
        context = ssl.create_default_context(cafile=config["ca"])
        stream = await anyio.connect_tcp(config["host"], config["port"], ssl_context=context,
                                         tls_standard_compatible=False)
    else:
        stream = await anyio.connect_tcp(config["host"], config["port"])
    key = base64.b64encode(os.urandom(16))
    await stream.send(b"GET " + path.encode() + b" HTTP/1.1\r\n"
                      b"Host: " + f"{config['host']}:{config['port']}".encode() + b"\r\n"
                      b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive()
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:40]!r}")
    return stream


async def _worker_slow(config: dict[str, Any]) -> None:
    """K connections to /push that, once told, ask for data and never read."""
    import anyio

    count = config["count"]
    streams: list[Any] = []
    errors = _Errors()
    slots = anyio.Semaphore(config["connect_concurrency"])

    async def connect() -> None:
        try:
            async with slots:
                with anyio.fail_after(config["open_timeout"]):
                    streams.append(await _open_raw(config, "/push"))
        except Exception as exc:
            errors.add(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(connect)
    _emit("ready", connected=len(streams), failed=count - len(streams))
    if await _command() == "go":
        start = _masked_frame(b"start")
        for stream in streams:
            try:
                await stream.send(start)
            except Exception as exc:
                errors.add(exc)
        _emit("started", at=time.monotonic())
        await _command()  # "quit"
    for stream in streams:
        await anyio.aclose_forcefully(stream)
    _emit("result", connected=len(streams), errors=errors.as_dict())


async def _worker_probe(config: dict[str, Any]) -> None:
    """One normal client timing echo round trips until told to stop."""
    import anyio

    from faye_websocket import WebSocket

    rng = random.Random(f"probe-{config['seed']}")
    samples: list[tuple[float, float]] = []
    corrupted = lost = 0
    errors = _Errors()
    stop = anyio.Event()
    async with WebSocket.Client(config["url"], **_client_options(config)) as ws:
        _emit("ready", connected=1, failed=0)
        if await _command() != "go":
            return

        async def probe() -> None:
            nonlocal corrupted, lost
            while not stop.is_set():
                message = rng.randbytes(config["probe_size"])
                sent = time.monotonic()
                try:
                    await ws.send(message)
                    with anyio.fail_after(config["receive_timeout"]):
                        echo = await ws.receive()
                except Exception as exc:
                    errors.add(exc)
                    lost += 1
                    return
                samples.append((sent, time.monotonic() - sent))
                if echo != message:
                    corrupted += 1
                await anyio.sleep(config["probe_interval"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe)
            await _command()  # "quit"
            stop.set()
    _emit("result", samples=samples, corrupted=corrupted, lost=lost, errors=errors.as_dict())


# =====================================================================
# The driver
# =====================================================================


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM... of a process, in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name.startswith("Vm") and rest.strip().endswith("kB"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MIB:.1f} MiB"


def kib(n: float | None) -> str:
    return "-" if n is None else f"{n / KIB:.1f} KiB"


class Failure(Exception):
    """A scenario could not run (timeout, a process died)."""


class Process:
    """A child process speaking JSON lines on stdout."""

    def __init__(self, argv: list[str], log: Path, name: str) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log_file, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise Failure(f"{self.name}: no answer within {timeout:.0f} s") from None
        if line is None:
            raise Failure(f"{self.name} exited ({self.proc.wait()}); see {self.log}")
        return line

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(self.line(timeout))
            if message.get("event") == event:
                return message

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log_file.close()
        return code

    def finish(self, timeout: float) -> int:
        """Wait for a worker to exit by itself (it was told to quit)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log_file.close()
        return code


class ServerProcess(Process):
    def __init__(self, args: argparse.Namespace, backend: str, tls: TLSFiles | None,
                 log: Path, extra: list[str]) -> None:
        argv = [sys.executable, str(SERVER_SCRIPT), "--backend", backend,
                "--max-length", str(args.max_length), *extra]
        if tls is not None:
            argv += ["--tls", str(tls.cert), str(tls.key)]
        super().__init__(argv, log, f"server ({backend})")
        self.tls = tls
        line = self.line(30)
        if not line.startswith("listening "):
            raise Failure(f"server said {line!r}")
        self.port = int(line.split()[1])

    def memory(self) -> dict[str, int]:
        return read_status(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stats(self, trim: bool = False) -> dict[str, Any]:
        """``GET /stats`` (``?trim=1``: after gc and ``malloc_trim``), over
        TLS if the server speaks it."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        with sock:
            target = b"/stats?trim=1" if trim else b"/stats"
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Connection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        _head, _, body = data.partition(b"\r\n\r\n")
        stats: dict[str, Any] = json.loads(body)
        return stats


class Sampler:
    """Samples a process's RSS in a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), read_status(self.pid)["VmRSS"]))
            self._stop.wait(self.interval)

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join()
        return self.samples


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TLSFiles:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    files.cert.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(files.key))
    return files


class Run:
    """One invocation: options, a log directory, and the scenarios' results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.stamp = stamp
        self.out = Path(args.out)
        self.logs = self.out / f"soak-{stamp}-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: list[dict[str, Any]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="soak-"))
        self._tls: TLSFiles | None = None

    @property
    def tls(self) -> TLSFiles:
        if self._tls is None:
            self._tls = make_tls_files(self.tmp)
        return self._tls

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def worker(self, name: str, config: dict[str, Any]) -> Process:
        argv = [sys.executable, str(Path(__file__).resolve()), "_worker", json.dumps(config)]
        return Process(argv, self.log(name), name)

    def base_config(self, scenario: str, backend: str, server: ServerProcess,
                    path: str) -> dict[str, Any]:
        scheme = "wss" if server.tls else "ws"
        return {
            "scenario": scenario, "backend": backend, "host": "127.0.0.1",
            "port": server.port, "url": f"{scheme}://127.0.0.1:{server.port}{path}",
            "ca": str(server.tls.ca) if server.tls else None,
            "seed": self.args.seed, "max_length": self.args.max_length,
            "deflate": self.args.deflate, "open_timeout": 60,
            "receive_timeout": self.args.receive_timeout,
            "connect_concurrency": self.args.connect_concurrency,
        }

    def server(self, name: str, backend: str, tls: bool, extra: list[str]) -> ServerProcess:
        extra = list(extra)
        if self.args.deflate:
            extra.append("--deflate")
        return ServerProcess(self.args, backend, self.tls if tls else None,
                             self.log(f"{name}-server"), extra)


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``(first, count)`` for each of ``parts`` contiguous slices of ``total``."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    slices, first = [], 0
    for i in range(parts):
        count = base + (1 if i < extra else 0)
        slices.append((first, count))
        first += count
    return slices


@contextlib.contextmanager
def cleanup(processes: list[Process]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.proc.poll() is None:
                process.proc.kill()
                process.proc.wait()


def settle(seconds: float = 1.0) -> None:
    time.sleep(seconds)


def scenario_echo(run: Run, backend: str, tls: bool) -> dict[str, Any]:
    args = run.args
    name = f"echo-{backend}{'-tls' if tls else ''}"
    print(f"== {name}: {args.clients} clients x {args.messages} messages", flush=True)
    server = run.server(name, backend, tls, ["--max-queue", str(args.max_queue),
                                             "--write-limit", str(args.write_limit)])
    processes: list[Process] = [server]
    result: dict[str, Any] = {"scenario": "echo", "backend": backend, "tls": tls,
                              "clients": args.clients, "messages": args.messages}
    with cleanup(processes):
        settle()
        rss_start = server.memory()["VmRSS"]
        workers = []
        t_connect = time.monotonic()
        for i, (first, count) in enumerate(split(args.clients, args.workers)):
            config = run.base_config("echo", args.client_backend or backend, server, "/echo")
            config.update(first=first, count=count, messages=args.messages)
            workers.append(run.worker(f"{name}-worker{i}", config))
        processes += workers
        ready = [w.expect("ready", args.timeout) for w in workers]
        connect_time = time.monotonic() - t_connect
        settle()
        rss_connected = server.memory()["VmRSS"]
        connected = sum(r["connected"] for r in ready)
        sampler = Sampler(server.pid, 0.5)
        cpu_before = server.cpu()
        t_go = time.monotonic()
        for w in workers:
            w.send("go")
        results = [w.expect("result", args.timeout) for w in workers]
        for w in workers:
            w.finish(30)
        cpu = server.cpu() - cpu_before
        settle()
        samples = sampler.stop()
        memory = server.memory()
        stats = server.stats(trim=True)
        rss_trimmed = server.memory()["VmRSS"]
        server_exit = server.stop()
    first_send = min((r["first_send"] for r in results if r["first_send"]), default=0.0)
    last_receive = max((r["last_receive"] for r in results), default=0.0)
    run_time = max(0.0, last_receive - first_send)
    received = sum(r["received_ok"] for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for kind, n in r["errors"]["counts"].items():
            errors[kind] = errors.get(kind, 0) + n
    result.update(
        connected=connected,
        connect_failed=sum(r["connect_failed"] for r in results),
        connect_time_s=round(connect_time, 2),
        expected=sum(r["expected"] for r in results),
        received_ok=received,
        lost=sum(r["lost"] for r in results),
        corrupted=sum(r["corrupted"] for r in results),
        extra=sum(r["extra"] for r in results),
        chain_mismatch=sum(r["chain_mismatch"] for r in results),
        bytes_each_way=sum(r["bytes_sent"] for r in results),
        run_time_s=round(run_time, 2),
        messages_per_s=round(received / run_time, 1) if run_time else None,
        mib_per_s_each_way=round(sum(r["bytes_received"] for r in results) / MIB / run_time, 2)
        if run_time else None,
        rss_start=rss_start, rss_connected=rss_connected,
        rss_per_connection=(rss_connected - rss_start) / connected if connected else None,
        rss_peak_sampled=max((rss for _t, rss in samples), default=None),
        rss_load_per_connection=(memory["VmHWM"] - rss_start) / connected if connected else None,
        rss_end=memory["VmRSS"], rss_end_trimmed=rss_trimmed, vm_hwm=memory["VmHWM"],
        server_cpu_s=round(cpu, 1),
        client_cpu_s=round(sum(r["cpu_s"] for r in results), 1),
        close_errors=sum(r["close_errors"] for r in results),
        server_stats=stats, server_exit=server_exit, errors=errors,
        rss_samples=[(round(t - t_go, 1), rss) for t, rss in samples],
        error_samples=[s for r in results for s in r["errors"]["samples"]][:5],
    )
    result["ok"] = (result["lost"] == 0 and result["corrupted"] == 0 and result["extra"] == 0
                    and result["chain_mismatch"] == 0 and result["connect_failed"] == 0
                    and received == result["expected"] and stats["handler_errors"] == 0
                    and stats["alive_websockets"] == 0)
    print(f"   {'ok' if result['ok'] else 'FAILED'}: {received}/{result['expected']} echoed, "
          f"lost {result['lost']}, corrupted {result['corrupted']}, "
          f"{result['run_time_s']} s, {result['messages_per_s']} msg/s, "
          f"peak RSS {mib(result['vm_hwm'])}, "
          f"{kib(result['rss_per_connection'])}/connection; after: {mib(result['rss_end'])}, "
          f"trimmed {mib(rss_trimmed)}; server CPU {result['server_cpu_s']} s", flush=True)
    return result


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def scenario_slow(run: Run, backend: str, tls: bool) -> dict[str, Any]:
    args = run.args
    name = f"slow-{backend}{'-tls' if tls else ''}"
    k, limit, size = args.slow_clients, args.write_limit, args.push_size
    print(f"== {name}: {k} clients that stop reading, write_limit {limit}, "
          f"{size}-byte pushes, {args.slow_duration:.0f} s", flush=True)
    server = run.server(name, backend, tls, [
        "--write-limit", str(limit), "--push-size", str(size),
        "--max-queue", str(args.max_queue), "--push-mode", args.push_mode])
    processes: list[Process] = [server]
    result: dict[str, Any] = {"scenario": "slow", "backend": backend, "tls": tls,
                              "slow_clients": k, "write_limit": limit, "push_size": size,
                              "push_mode": args.push_mode, "duration_s": args.slow_duration}
    with cleanup(processes):
        settle()
        rss_start = server.memory()["VmRSS"]
        client_backend = args.client_backend or backend
        probe_config = run.base_config("probe", client_backend, server, "/echo")
        probe_config.update(probe_size=args.probe_size, probe_interval=args.probe_interval)
        probe = run.worker(f"{name}-probe", probe_config)
        processes.append(probe)
        probe.expect("ready", args.timeout)
        slow_config = run.base_config("slow", client_backend, server, "/push")
        slow_config.update(count=k)
        slow = run.worker(f"{name}-readers", slow_config)
        processes.append(slow)
        ready = slow.expect("ready", args.timeout)
        settle()
        rss_idle = server.memory()["VmRSS"]
        sampler = Sampler(server.pid, 0.25)
        probe.send("go")
        time.sleep(args.probe_baseline)
        slow.send("go")
        push_started = slow.expect("started", args.timeout)["at"]
        time.sleep(args.slow_duration)
        stats = server.stats()
        probe.send("quit")
        probe_result = probe.expect("result", args.timeout)
        probe.finish(30)
        push_ended = time.monotonic()
        slow.send("quit")
        slow_result = slow.expect("result", args.timeout)
        slow.finish(30)
        # The server must notice the vanished readers and let go of them.
        released_in = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            after = server.stats()
            if after["push"] == 0 and after["opened"] == after["closed"]:
                released_in = time.monotonic() - t0
                break
            time.sleep(0.25)
        settle()
        samples = sampler.stop()
        memory = server.memory()
        stats_after = server.stats(trim=True)
        rss_trimmed = server.memory()["VmRSS"]
        server_exit = server.stop()
    connected = ready["connected"]
    pushing = [(t, rss) for t, rss in samples if push_started <= t <= push_ended]
    peak_push = max((rss for _t, rss in pushing), default=rss_idle)

    def window_max(lo: float, hi: float) -> int | None:
        span = push_ended - push_started
        values = [rss for t, rss in pushing
                  if push_started + lo * span <= t <= push_started + hi * span]
        return max(values) if values else None

    # Bound: per connection, the library holds at most write_limit + one
    # message (send_nowait refuses at write_limit, one message may cross it);
    # the transport may hold one more copy of the chunk being written, and
    # TLS one more (its ciphertext).
    copies = 3 if tls else 2
    per_connection_bound = copies * (limit + size)
    bound = rss_idle + connected * per_connection_bound
    buffered = stats["push_buffered"]
    base = [rtt for t, rtt in probe_result["samples"] if t < push_started]
    during = [rtt for t, rtt in probe_result["samples"] if t >= push_started]
    kernel_per_connection = (stats["pushed_bytes"] / connected - statistics.mean(buffered)) \
        if connected and buffered else None
    result.update(
        connected=connected, rss_start=rss_start, rss_idle=rss_idle,
        rss_per_idle_connection=(rss_idle - rss_start) / connected if connected else None,
        rss_peak_while_pushing=peak_push, vm_hwm=memory["VmHWM"],
        rss_growth_per_connection=(peak_push - rss_idle) / connected if connected else None,
        rss_by_quarter=[window_max(q / 4, (q + 1) / 4) for q in range(4)],
        rss_growth_last_half=(window_max(0.5, 1.0) or 0) - (window_max(0.0, 0.5) or 0),
        rss_after_release=memory["VmRSS"], rss_after_release_trimmed=rss_trimmed,
        released_in_s=released_in,
        bound=bound, per_connection_bound=per_connection_bound,
        pushed_bytes=stats["pushed_bytes"], pushed_messages=stats["pushed_messages"],
        would_block=stats["push_would_block"],
        buffered_max=max(buffered, default=0), buffered_total=sum(buffered),
        kernel_bytes_per_connection=kernel_per_connection,
        probe_samples=len(probe_result["samples"]),
        probe_baseline_p50_ms=_ms(_percentile(base, 50)),
        probe_p50_ms=_ms(_percentile(during, 50)), probe_p99_ms=_ms(_percentile(during, 99)),
        probe_max_ms=_ms(max(during, default=None)),
        probe_lost=probe_result["lost"], probe_corrupted=probe_result["corrupted"],
        reader_errors=slow_result["errors"], server_stats_after=stats_after,
        server_exit=server_exit,
        rss_samples=[(round(t - push_started, 2), rss) for t, rss in samples],
    )
    result["ok"] = bool(
        connected == k and peak_push <= bound and result["buffered_max"] < limit + size
        and released_in is not None and probe_result["lost"] == 0
        and probe_result["corrupted"] == 0 and during
        and (result["probe_max_ms"] or 0) <= args.probe_max_ms
        and stats_after["handler_errors"] == 0 and stats_after["alive_websockets"] == 0)
    print(f"   {'ok' if result['ok'] else 'FAILED'}: RSS idle {mib(rss_idle)}, peak while "
          f"pushing {mib(peak_push)} (bound {mib(bound)}), by quarter "
          f"{', '.join(mib(v) for v in result['rss_by_quarter'])}; "
          f"probe p50 {result['probe_p50_ms']} ms, max {result['probe_max_ms']} ms; "
          f"released in {released_in and round(released_in, 2)} s", flush=True)
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def scenario_broadcast(run: Run, backend: str, tls: bool) -> dict[str, Any]:
    args = run.args
    name = f"broadcast-{backend}{'-tls' if tls else ''}"
    sizes = args.broadcast_sizes
    print(f"== {name}: {args.broadcast_clients} clients, {len(sizes)} rounds of "
          f"{', '.join(str(s) for s in sizes)} bytes", flush=True)
    server = run.server(name, backend, tls, ["--write-limit", str(args.write_limit),
                                             "--max-queue", str(args.max_queue)])
    processes: list[Process] = [server]
    result: dict[str, Any] = {"scenario": "broadcast", "backend": backend, "tls": tls,
                              "clients": args.broadcast_clients, "sizes": sizes}
    with cleanup(processes):
        settle()
        rss_start = server.memory()["VmRSS"]
        workers = []
        for i, (first, count) in enumerate(split(args.broadcast_clients, args.workers)):
            config = run.base_config("broadcast", args.client_backend or backend, server,
                                     "/broadcast")
            config.update(first=first, count=count, round_timeout=args.round_timeout)
            workers.append(run.worker(f"{name}-worker{i}", config))
        processes += workers
        ready = [w.expect("ready", args.timeout) for w in workers]
        settle()
        rss_connected = server.memory()["VmRSS"]
        sampler = Sampler(server.pid, 0.25)
        rounds = []
        for round_no, size in enumerate(sizes, 1):
            for w in workers:
                w.send(f"round {round_no} {size}")
            lines = [w.expect("round", args.round_timeout + 30) for w in workers]
            sent_at = next((line["sent_at"] for line in lines if line["sent_at"] is not None),
                           None)
            last = [line["last_at"] for line in lines]
            delivered = sum(line["delivered"] for line in lines)
            full = max(last) - sent_at if sent_at is not None and None not in last else None
            rounds.append({"round": round_no, "size": size, "delivered": delivered,
                           "full_delivery_ms": _ms(full)})
            print(f"   round {round_no}: {size} B to {delivered} clients in "
                  f"{_ms(full)} ms", flush=True)
            settle(0.5)
        for w in workers:
            w.send("quit")
        results = [w.expect("result", args.timeout) for w in workers]
        for w in workers:
            w.finish(30)
        settle()
        samples = sampler.stop()
        memory = server.memory()
        stats = server.stats(trim=True)
        rss_trimmed = server.memory()["VmRSS"]
        server_exit = server.stop()
    connected = sum(r["connected"] for r in ready)
    result.update(rss_end=memory["VmRSS"], rss_end_trimmed=rss_trimmed,
        connected=connected, connect_failed=sum(r["connect_failed"] for r in results),
        rounds=rounds,
        expected=sum(r["expected"] for r in results),
        missing=sum(r["missing"] for r in results),
        duplicates=sum(r["duplicates"] for r in results),
        corrupted=sum(r["corrupted"] for r in results),
        rss_start=rss_start, rss_connected=rss_connected,
        rss_per_connection=(rss_connected - rss_start) / connected if connected else None,
        rss_peak_sampled=max((rss for _t, rss in samples), default=None),
        vm_hwm=memory["VmHWM"], slow_path=stats["broadcast_slow_path"],
        server_stats=stats, server_exit=server_exit,
        errors=[r["errors"] for r in results],
    )
    result["ok"] = (result["missing"] == 0 and result["duplicates"] == 0
                    and result["corrupted"] == 0 and result["connect_failed"] == 0
                    and all(r["delivered"] == connected for r in rounds)
                    and stats["handler_errors"] == 0 and stats["alive_websockets"] == 0)
    print(f"   {'ok' if result['ok'] else 'FAILED'}: missing {result['missing']}, duplicates "
          f"{result['duplicates']}, corrupted {result['corrupted']}, peak RSS "
          f"{mib(result['vm_hwm'])}", flush=True)
    return result


SCENARIOS = {"echo": scenario_echo, "slow": scenario_slow, "broadcast": scenario_broadcast}


# =====================================================================
# Report
# =====================================================================


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    versions: dict[str, str | None] = {}
    for package in ("faye-websocket", "anyio", "trio", "wsproto", "h11"):
        try:
            versions[package] = version(package)
        except Exception:
            versions[package] = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(), "commit": commit, "versions": versions}


def markdown(run: Run, env: dict[str, Any], elapsed: float) -> str:
    args = run.args
    lines = [
        f"# Soak run {run.stamp}",
        "",
        f"Commit `{env['commit']}`, Python {env['python']}, {env['cpus']} CPUs, "
        f"{env['platform']}; total {elapsed:.0f} s; load average at start "
        f"{env['load_average'][0]:.1f}, at the end {os.getloadavg()[0]:.1f} (the machine is "
        "shared: timings are noisy, CPU seconds less so).",
        f"Options: write_limit {args.write_limit}, max_queue {args.max_queue}, "
        f"max_length {args.max_length}, deflate {'on' if args.deflate else 'off'}, "
        f"{args.workers} client processes, seed {args.seed}.",
        "",
    ]
    echo = [r for r in run.results if r["scenario"] == "echo"]
    if echo:
        lines += [
            "## Echo",
            "",
            "| backend | TLS | clients x msgs | lost | corrupted | run time | msg/s "
            "| MiB/s each way | CPU server / clients | RSS start | RSS connected | RSS/connection "
            "| peak RSS (VmHWM) | peak/connection | RSS after (trimmed) | result |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in echo:
            lines.append(
                f"| {r['backend']} | {'yes' if r['tls'] else 'no'} | "
                f"{r['clients']} x {r['messages']} | {r.get('lost', '-')} | "
                f"{r.get('corrupted', '-')} | {r.get('run_time_s', '-')} s | "
                f"{r.get('messages_per_s', '-')} | {r.get('mib_per_s_each_way', '-')} | "
                f"{r.get('server_cpu_s', '-')} / {r.get('client_cpu_s', '-')} s | "
                f"{mib(r.get('rss_start'))} | {mib(r.get('rss_connected'))} | "
                f"{kib(r.get('rss_per_connection'))} | {mib(r.get('vm_hwm'))} | "
                f"{kib(r.get('rss_load_per_connection'))} | "
                f"{mib(r.get('rss_end'))} ({mib(r.get('rss_end_trimmed'))}) | "
                f"{_verdict(r)} |")
        lines += ["", "Messages are 1 B-64 KiB (60 % <= 512 B, 30 % <= 8 KiB, 10 % <= 64 KiB), "
                  "half text, half binary, sent as fast as the server takes them (each client "
                  "has a sender and a receiver task); each echo is checked by SHA-256 of type "
                  "and payload, in order. Run time: first message sent to last echo received; "
                  "msg/s counts echoed messages. CPU: seconds the server and all client "
                  "processes used from the start of the exchange to the end of the closing "
                  "handshakes (the clients do the same protocol work plus generating and "
                  "hashing messages, so on 2 cores they rather than the server set the pace). "
                  "RSS/connection: (RSS with every client connected and idle - RSS at start) / "
                  "clients. Peak/connection: (VmHWM - RSS at start) / clients, i.e. under load, "
                  "when each connection may hold up to max_queue received messages, a read "
                  "chunk and the message being written. RSS after: once every client has "
                  "left; in brackets after `gc.collect()` and `malloc_trim(0)` in the server "
                  "(what is still in use rather than kept by the allocator).",
                  ""]
    slow = [r for r in run.results if r["scenario"] == "slow"]
    if slow:
        lines += [
            "## Slow readers",
            "",
            "| backend | TLS | readers | RSS idle | peak while pushing | bound "
            "| growth/conn (bound/conn) | RSS by quarter | growth last half "
            "| max buffered_amount | kernel bytes/conn "
            "| probe p50 before/during | probe p99 / max | released | result |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in slow:
            if "bound" not in r:
                lines.append(f"| {r['backend']} | {'yes' if r['tls'] else 'no'} | "
                             f"{r['slow_clients']} | | | | | | | | | | | | {_verdict(r)} |")
                continue
            lines.append(
                f"| {r['backend']} | {'yes' if r['tls'] else 'no'} | {r['connected']} | "
                f"{mib(r['rss_idle'])} | {mib(r['rss_peak_while_pushing'])} | {mib(r['bound'])} "
                f"| {kib(r['rss_growth_per_connection'])} ({kib(r['per_connection_bound'])}) "
                f"| {' / '.join(mib(v) for v in r['rss_by_quarter'])} | "
                f"{mib(r['rss_growth_last_half'])} | {kib(r['buffered_max'])} | "
                f"{kib(r['kernel_bytes_per_connection'])} | "
                f"{r['probe_baseline_p50_ms']} / {r['probe_p50_ms']} ms | "
                f"{r['probe_p99_ms']} / {r['probe_max_ms']} ms | "
                f"{_released(r['released_in_s'])} | {_verdict(r)} |")
        r0 = slow[0]
        lines += [
            "",
            f"Each reader connects to `/push`, sends one message, and never reads again; the "
            f"server pushes {r0['push_size']}-byte messages with `send_nowait` "
            f"(`--push-mode {r0['push_mode']}`), retrying after `anyio.WouldBlock`, "
            f"for {r0['duration_s']:.0f} s. "
            "Bound = RSS with the readers connected and idle + readers x k x (write_limit + "
            "push size), k = 2 without TLS and 3 with TLS: `send_nowait` refuses once "
            "`buffered_amount` reaches write_limit, so the library holds at most write_limit "
            "+ one message per connection (checked directly: max `buffered_amount` above); "
            "the chunk being written may be held once more by the transport (asyncio keeps "
            "what the kernel did not take), and with TLS its ciphertext once more. What the "
            "kernel holds (socket buffers, the 'kernel bytes/conn' column) is not in the "
            "server's RSS. "
            "The probe is one normal client echoing "
            f"{args.probe_size} bytes every {args.probe_interval * 1000:.0f} ms on the same "
            "server; 'released' is the time the server took to close the readers' "
            "connections after they vanished.",
            "",
        ]
    broadcast = [r for r in run.results if r["scenario"] == "broadcast"]
    if broadcast:
        lines += [
            "## Broadcast",
            "",
            "| backend | TLS | clients | rounds (size: full delivery) | missing | duplicates "
            "| corrupted | RSS/connection | peak RSS | result |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in broadcast:
            rounds = ", ".join(f"{x['size']} B: {x['full_delivery_ms']} ms"
                               for x in r.get("rounds", []))
            lines.append(
                f"| {r['backend']} | {'yes' if r['tls'] else 'no'} | {r.get('connected', '-')} "
                f"| {rounds} | {r.get('missing', '-')} | {r.get('duplicates', '-')} | "
                f"{r.get('corrupted', '-')} | {kib(r.get('rss_per_connection'))} | "
                f"{mib(r.get('vm_hwm'))} | {_verdict(r)} |")
        lines += ["", "One client sends each round's message to `/broadcast`; the server relays "
                  "it to every connected client with `send_nowait` (falling back to "
                  "`await send()` past write_limit). Full delivery: from the send to the "
                  "moment the last client had it.", ""]
    failed = [r for r in run.results if not r.get("ok")]
    lines += ["## Verdict", "", "All scenarios passed." if not failed else
              "FAILED: " + ", ".join(f"{r['scenario']}-{r['backend']}"
                                     f"{'-tls' if r['tls'] else ''}" for r in failed), ""]
    return "\n".join(lines)


def _released(seconds: float | None) -> str:
    return "NO" if seconds is None else f"in {seconds:.1f} s"


def _verdict(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR: {result['error']}"
    return "ok" if result.get("ok") else "FAILED"


# =====================================================================
# Command line
# =====================================================================


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (100 clients x 20 messages, 20 readers...)")
    parser.add_argument("--backends", default="asyncio,trio",
                        help="server backends, comma-separated (default: asyncio,trio)")
    parser.add_argument("--scenarios", default="echo,slow,broadcast",
                        help="comma-separated subset of echo,slow,broadcast")
    parser.add_argument("--tls", default="all",
                        help="backends on which the echo scenario also runs through TLS "
                             "('' for none; 'all' for every backend)")
    parser.add_argument("--tls-only", action="store_true",
                        help="run every scenario through TLS only")
    parser.add_argument("--client-backend", choices=("asyncio", "trio"),
                        help="the clients' backend (default: the server's)")
    parser.add_argument("--clients", type=int, help="echo clients (default 1000)")
    parser.add_argument("--messages", type=int, help="messages per echo client (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--connect-concurrency", type=int, default=64,
                        help="handshakes in flight per client process")
    parser.add_argument("--slow-clients", type=int, help="slow readers (default 200)")
    parser.add_argument("--slow-duration", type=float, help="seconds of pushing (default 30)")
    parser.add_argument("--push-size", type=int, default=16 * KIB)
    parser.add_argument("--push-mode", choices=("nowait", "await"), default="nowait")
    parser.add_argument("--probe-size", type=int, default=1024)
    parser.add_argument("--probe-interval", type=float, default=0.05)
    parser.add_argument("--probe-baseline", type=float, default=2.0,
                        help="seconds the probe runs before the readers stop reading")
    parser.add_argument("--probe-max-ms", type=float, default=2000,
                        help="the slowest probe echo allowed while pushing")
    parser.add_argument("--broadcast-clients", type=int, help="default: --clients")
    parser.add_argument("--broadcast-sizes", default="1024,64,16384,65536,1024",
                        help="one broadcast round per size (bytes)")
    parser.add_argument("--write-limit", type=int, default=65536)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=MAX_MESSAGE + 1024,
                        help="max_length on both sides; the default leaves room for "
                             "permessage-deflate's overhead on incompressible 64 KiB messages "
                             "(max_length also bounds the compressed size on the wire)")
    parser.add_argument("--round-timeout", type=float, default=60,
                        help="seconds a broadcast round may take to reach every client")
    parser.add_argument("--deflate", action="store_true", help="use permessage-deflate")
    parser.add_argument("--receive-timeout", type=float, default=120,
                        help="seconds a client waits for one echo before counting the rest lost")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds the driver waits for a phase of a scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"clients": 100 if quick else 1000, "messages": 20 if quick else 100,
                "slow_clients": 20 if quick else 200, "slow_duration": 6.0 if quick else 30.0}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.broadcast_clients is None:
        args.broadcast_clients = args.clients
    args.backends = [b for b in args.backends.split(",") if b]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario: {', '.join(sorted(unknown))}")
    args.tls = args.backends if args.tls == "all" else [b for b in args.tls.split(",") if b]
    args.broadcast_sizes = [int(s) for s in args.broadcast_sizes.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        run_worker(json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("soak.py reads /proc/<pid>/status: Linux only", file=sys.stderr)
        return 2
    raise_fd_limit()
    run = Run(args)
    env = environment()
    started = time.monotonic()
    plan: list[tuple[str, str, bool]] = []
    for backend in args.backends:
        for scenario in args.scenarios:
            if not args.tls_only:
                plan.append((scenario, backend, False))
            if args.tls_only or (scenario == "echo" and backend in args.tls):
                plan.append((scenario, backend, True))
    for scenario, backend, tls in plan:
        try:
            result = SCENARIOS[scenario](run, backend, tls)
        except Failure as exc:
            print(f"   ERROR: {exc}", flush=True)
            result = {"scenario": scenario, "backend": backend, "tls": tls,
                      "error": str(exc), "ok": False}
        run.results.append(result)
    shutil.rmtree(run.tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    report = markdown(run, env, elapsed)
    run.out.mkdir(parents=True, exist_ok=True)
    base = run.out / f"soak-{run.stamp}"
    base.with_suffix(".md").write_text(report)
    base.with_suffix(".json").write_text(json.dumps(
        {"environment": env, "options": vars(args), "elapsed_s": round(elapsed, 1),
         "results": run.results}, indent=2, default=str))
    print()
    print(report)
    print(f"written: {base}.md, {base}.json (logs in {run.logs})")
    return 0 if all(r.get("ok") for r in run.results) else 1


if __name__ == "__main__":
    sys.exit(main())
