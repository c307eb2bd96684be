"""The fixed load generator: ``python -m bench.loadgen SCENARIO --port P --pid PID``.

It runs in its own process and stays cheap so that it is never the
bottleneck:

* it does the opening handshake itself, always with the same key;
* every client frame is masked once, up front; sending is one ``send`` of
  prebuilt bytes (for pipelined echo, ``frame * k`` is prebuilt too);
* it does not parse what comes back beyond what the scenario needs: echo
  replies have a known size, so counting bytes counts messages (with a check
  that each reply starts where expected);
* one connection is driven by a blocking socket (no event loop at all);
  many connections by one ``selectors`` loop over non-blocking sockets.

It reads the server's CPU time and memory from /proc around the measured
window, and reports its own CPU use, so a run where the generator was busy
can be spotted. The result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import time
from typing import Any

from . import _proc
from ._wire import (
    CLOSE_1000,
    DEFLATE_OFFER,
    OP_BINARY,
    OP_TEXT,
    check_upgrade_response,
    client_frame,
    server_frame,
    server_frame_size,
    upgrade_request,
)

HOST = "127.0.0.1"
SMALL = b"0123456789abcdef0123456789abcdef"  # the 32-byte text message
LARGE_SIZE = 1 << 20
HEAD_END = b"\r\n\r\n"

Result = dict[str, Any]


class _Meter:
    """Server CPU and our own CPU over a window."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.perf_counter()
        self.server0 = _proc.cpu_seconds(pid)
        self.self0 = time.process_time()

    def stop(self) -> tuple[float, float, float]:
        """Elapsed wall time, server CPU seconds and our CPU seconds."""
        elapsed = time.perf_counter() - self.t0
        server = _proc.cpu_seconds(self.pid) - self.server0
        mine = time.process_time() - self.self0
        return elapsed, server, mine


def _window(meter: _Meter) -> Result:
    elapsed, server, mine = meter.stop()
    return {
        "elapsed_s": elapsed,
        "server_cpu_s": server,
        "server_cpu_pct": 100 * server / elapsed,
        "loadgen_cpu_pct": 100 * mine / elapsed,
    }


# --- one connection, blocking ------------------------------------------------------------


def _recv_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the blank line; return the head and what came after it."""
    buf = b""
    while HEAD_END not in buf:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError(f"connection closed during the handshake: {buf!r}")
        buf += data
        if len(buf) > 65536:
            raise RuntimeError("response head too large")
    head, _, rest = buf.partition(HEAD_END)
    return head, rest


def connect_ws(port: int, path: str = "/", timeout: float = 10.0) -> socket.socket:
    """A blocking socket with the opening handshake done."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(upgrade_request(port, path))
    head, rest = _recv_head(sock)
    check_upgrade_response(head)
    if rest:
        raise RuntimeError(f"unexpected bytes after the handshake: {rest[:40]!r}")
    return sock


def _close_ws(sock: socket.socket, limit: float = 2.0) -> None:
    """Send Close, drain whatever is still coming (bounded), then close."""
    try:
        sock.settimeout(limit)
        sock.sendall(CLOSE_1000)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and sock.recv(1 << 20):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def small_echo(port: int, pid: int, duration: float, warmup: float,
               inflight: int = 64, refill: int = 1) -> Result:
    """32-byte text messages, ``inflight`` of them pipelined on one connection.

    Each echo received is replaced at once (``refill=1``), all those of one
    read in one ``send``. With ``refill=k``, replacements wait until ``k`` are
    due (between ``inflight - k + 1`` and ``inflight`` in flight), which
    saves sends against servers that write each echo on its own.
    """
    sock = connect_ws(port)
    frame = client_frame(OP_TEXT, SMALL)
    batches = [frame * k for k in range(inflight + 1)]
    reply = server_frame_size(len(SMALL))
    first_byte = 0x80 | OP_TEXT
    received = done = owed = 0
    meter: _Meter | None = None
    start_done = 0
    warm_end = time.perf_counter() + warmup
    end = warm_end + duration
    recv = sock.recv
    send = sock.sendall
    perf = time.perf_counter
    send(batches[inflight])
    try:
        while True:
            data = recv(1 << 18)
            if not data:
                raise RuntimeError("server closed the connection")
            if received % reply == 0 and data[0] != first_byte:
                raise RuntimeError(f"unexpected frame: {data[:8]!r}")
            received += len(data)
            k = received // reply - done
            if k:
                done += k
                owed += k
                if owed >= refill:
                    send(batches[owed])
                    owed = 0
            now = perf()
            if meter is None:
                if now >= warm_end:
                    meter, start_done = _Meter(pid), done
            elif now >= end:
                break
        result = _window(meter)
    finally:
        _close_ws(sock)
    messages = done - start_done
    result.update(
        messages=messages,
        msgs_per_s=messages / result["elapsed_s"],
        cpu_us_per_msg=1e6 * result["server_cpu_s"] / messages,
    )
    return result


def rtt(port: int, pid: int, count: int, warmup_count: int, limit: float) -> Result:
    """One 32-byte message in flight: round-trip times."""
    sock = connect_ws(port)
    frame = client_frame(OP_TEXT, SMALL)
    reply = server_frame_size(len(SMALL))
    samples: list[int] = []
    perf_ns = time.perf_counter_ns
    recv = sock.recv
    send = sock.sendall
    deadline = time.monotonic() + limit
    try:
        for i in range(warmup_count + count):
            t0 = perf_ns()
            send(frame)
            got = 0
            while got < reply:
                data = recv(65536)
                if not data:
                    raise RuntimeError("server closed the connection")
                got += len(data)
            t1 = perf_ns()
            if got != reply:
                raise RuntimeError(f"expected one {reply}-byte reply, got {got} bytes")
            if i >= warmup_count:
                samples.append(t1 - t0)
            if time.monotonic() > deadline:
                break
    finally:
        _close_ws(sock)
    if not samples:
        raise RuntimeError("no sample within the time limit")
    samples.sort()
    n = len(samples)
    return {
        "samples": n,
        "p50_us": samples[n // 2] / 1e3,
        "p99_us": samples[min(n - 1, (n * 99) // 100)] / 1e3,
        "mean_us": sum(samples) / n / 1e3,
    }


def large_echo(port: int, pid: int, duration: float, warmup: float) -> Result:
    """1 MiB binary messages, one in flight; the first echo is checked byte for byte."""
    payload = os.urandom(LARGE_SIZE)
    frame = client_frame(OP_BINARY, payload)
    expected = server_frame(OP_BINARY, payload)
    sock = connect_ws(port)
    buf = bytearray(len(expected))
    view = memoryview(buf)
    total = len(expected)
    count = start = 0
    meter: _Meter | None = None
    warm_end = time.perf_counter() + warmup
    end = warm_end + duration
    try:
        while True:
            sock.sendall(frame)
            got = 0
            while got < total:
                n = sock.recv_into(view[got:])
                if not n:
                    raise RuntimeError("server closed the connection")
                got += n
            if count == 0 and buf != expected:
                raise RuntimeError("the 1 MiB echo differs from what was sent")
            count += 1
            now = time.perf_counter()
            if meter is None:
                if now >= warm_end:
                    meter, start = _Meter(pid), count
            elif now >= end:
                break
        result = _window(meter)
    finally:
        view.release()
        _close_ws(sock)
    messages = count - start
    result.update(messages=messages, mib_per_s=messages / result["elapsed_s"],
                  cpu_ms_per_mib=1e3 * result["server_cpu_s"] / messages)
    return result


def events(port: int, pid: int, n: int, repeat: int) -> Result:
    """``GET /events?n=N``: time from the request until the stream ends."""
    request = (
        f"GET /events?n={n} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    ).encode()
    token = b"data: "
    rates: list[float] = []
    server_cpu = 0.0
    for _ in range(repeat):
        sock = socket.create_connection((HOST, port), timeout=30)
        try:
            meter = _Meter(pid)
            sock.sendall(request)
            head, rest = _recv_head(sock)
            status = head.partition(b"\r\n")[0]
            if b" 200 " not in status + b" ":
                raise RuntimeError(f"events: {status!r}")
            seen = rest.count(token)
            tail = rest[-(len(token) - 1) :]
            while True:
                data = sock.recv(1 << 18)
                if not data:
                    break
                buf = tail + data
                seen += buf.count(token)
                tail = buf[-(len(token) - 1) :]
            window = _window(meter)
        finally:
            sock.close()
        if seen != n:
            raise RuntimeError(f"events: expected {n} events, counted {seen}")
        rates.append(n / window["elapsed_s"])
        server_cpu += window["server_cpu_s"]
    rates.sort()
    # CPU over all the streams: /proc counts in 10 ms ticks.
    return {"events": n, "repeat": repeat, "events_per_s": rates[len(rates) // 2],
            "cpu_us_per_event": 1e6 * server_cpu / (n * repeat)}


# --- many connections, one selector loop -------------------------------------------------


class _Pending:
    """A connection on its way through the opening handshake."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""


def open_many(port: int, path: str, n: int, concurrency: int,
              limit: float, extensions: str | None = None,
              rcvbuf: int | None = None) -> list[socket.socket]:
    """Open ``n`` WebSocket connections, ``concurrency`` handshakes at a time;
    return the open (non-blocking) sockets. With ``extensions``, each offers
    them and the server must accept (a ``Sec-WebSocket-Extensions`` header
    in each response)."""
    request = upgrade_request(port, path, extensions)
    sel = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    started = 0
    active = 0
    deadline = time.monotonic() + limit
    try:
        while len(opened) < n:
            while active < concurrency and started < n:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if rcvbuf is not None:  # before connecting: it sets the window
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.connect_ex((HOST, port))
                sel.register(sock, selectors.EVENT_WRITE, _Pending(sock))
                started += 1
                active += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"opened {len(opened)} of {n} connections in {limit} s")
            for key, events_ in sel.select(timeout=1.0):
                pending: _Pending = key.data
                sock = pending.sock
                if events_ & selectors.EVENT_WRITE:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    sock.send(request)  # a few hundred bytes: fits the empty buffer
                    sel.modify(sock, selectors.EVENT_READ, pending)
                    continue
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError("connection closed during the handshake")
                pending.buf += data
                if HEAD_END in pending.buf:
                    head, _, rest = pending.buf.partition(HEAD_END)
                    check_upgrade_response(head)
                    if extensions and b"sec-websocket-extensions" not in head.lower():
                        raise RuntimeError("the server did not accept the extension offered")
                    sel.unregister(sock)
                    active -= 1
                    if rest:
                        raise RuntimeError("unexpected bytes after the handshake")
                    opened.append(sock)
    except BaseException:
        for key in list(sel.get_map().values()):
            key.data.sock.close()
        for sock in opened:
            sock.close()
        raise
    finally:
        sel.close()
    return opened


def handshakes(port: int, pid: int, duration: float, warmup: float,
               concurrency: int = 32, close_limit: float = 1.0) -> Result:
    """Open and close connections, ``concurrency`` at a time.

    One cycle is: connect, handshake, send Close, read the server's Close and
    its end of the TCP connection, close. A server that has not closed TCP
    within ``close_limit`` after the closing handshake is counted in
    ``close_timeouts`` (and we close ourselves); one that closes TCP without
    sending its Close frame, in ``missing_close``.
    """
    request = upgrade_request(port, "/")
    sel = selectors.DefaultSelector()
    # per socket: [state, buffer, close deadline]; states 0 connect, 1 head, 2 close
    conns: dict[socket.socket, list[Any]] = {}
    done = start_done = timeouts = missing_close = 0
    meter: _Meter | None = None
    warm_end = time.perf_counter() + warmup
    end = warm_end + duration
    hard_deadline = time.monotonic() + warmup + duration + 30

    def start_one() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect_ex((HOST, port))
        sel.register(sock, selectors.EVENT_WRITE, sock)
        conns[sock] = [0, b"", 0.0]

    def finish(sock: socket.socket) -> None:
        nonlocal done
        sel.unregister(sock)
        del conns[sock]
        sock.close()
        done += 1

    try:
        for _ in range(concurrency):
            start_one()
        stopping = False
        while conns:
            if time.monotonic() > hard_deadline:
                raise RuntimeError("handshakes: connections did not finish")
            for key, _ev in sel.select(timeout=0.2):
                sock = key.data
                state = conns[sock]
                if state[0] == 0:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    sock.send(request)
                    sel.modify(sock, selectors.EVENT_READ, sock)
                    state[0] = 1
                    continue
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if state[0] == 1:
                    if not data:
                        raise RuntimeError("connection closed during the handshake")
                    state[1] += data
                    if HEAD_END in state[1]:
                        head, _, rest = state[1].partition(HEAD_END)
                        check_upgrade_response(head)
                        sock.send(CLOSE_1000)
                        state[0], state[1] = 2, rest
                        state[2] = time.monotonic() + close_limit
                    continue
                if data:
                    state[1] += data
                    continue
                if not state[1]:
                    missing_close += 1  # the server ended TCP without its Close frame
                elif not state[1].startswith(b"\x88"):
                    raise RuntimeError(f"expected the server's Close, got {state[1][:8]!r}")
                finish(sock)
                if not stopping:
                    start_one()
            now_m = time.monotonic()
            for sock, state in list(conns.items()):
                if state[0] == 2 and now_m > state[2]:
                    timeouts += 1
                    finish(sock)
                    if not stopping:
                        start_one()
            now = time.perf_counter()
            if meter is None:
                if now >= warm_end:
                    meter, start_done = _Meter(pid), done
            elif not stopping and now >= end:
                result = _window(meter)
                count = done - start_done
                stopping = True
    finally:
        for sock in list(conns):
            sock.close()
        sel.close()
    result.update(
        handshakes=count,
        per_s=count / result["elapsed_s"],
        cpu_us_per_handshake=1e6 * result["server_cpu_s"] / max(count, 1),
        close_timeouts=timeouts,
        missing_close=missing_close,
    )
    return result


def idle_memory(port: int, pid: int, n: int, settle: float = 1.0) -> Result:
    """Server RSS growth per idle connection (handshake done, nothing sent)."""
    warm = open_many(port, "/", 16, 16, 30)
    socks: list[socket.socket] = []
    try:
        time.sleep(settle / 2)
        before = _proc.rss_bytes(pid)
        socks = open_many(port, "/", n, 64, 120)
        time.sleep(settle)
        after = _proc.rss_bytes(pid)
    finally:
        for sock in warm + socks:
            sock.close()
    return {
        "connections": n,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_conn": (after - before) / n / 1024,
    }


def broadcast(port: int, pid: int, clients: int, repeat: int) -> Result:
    """Time from one client's message to ``/broadcast`` until all clients have it."""
    socks = open_many(port, "/broadcast", clients, 64, 120)
    sel = selectors.DefaultSelector()
    size = server_frame_size(len(SMALL))
    frame = client_frame(OP_TEXT, SMALL)
    times: list[float] = []
    try:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ, sock)
        time.sleep(0.2)  # let the server register every connection
        total = _Meter(pid)
        for _ in range(repeat):
            got = dict.fromkeys(socks, 0)
            remaining = len(socks)
            t0 = time.perf_counter()
            deadline = time.monotonic() + 30
            socks[0].send(frame)
            while remaining:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"broadcast: {remaining} clients still waiting")
                for key, _ev in sel.select(timeout=1.0):
                    sock = key.data
                    data = sock.recv(65536)
                    if not data:
                        raise RuntimeError("broadcast: a client was disconnected")
                    before = got[sock]
                    got[sock] = before + len(data)
                    if before < size <= before + len(data):
                        remaining -= 1
            times.append((time.perf_counter() - t0) * 1e3)
            if any(v != size for v in got.values()):
                raise RuntimeError("broadcast: a client got more or less than one message")
            time.sleep(0.02)
        window = _window(total)
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    times.sort()
    # CPU over all the repeats (the pauses between them are idle): /proc
    # counts in 10 ms ticks, too coarse for one broadcast.
    return {"clients": clients, "repeat": repeat, "ms": times[len(times) // 2],
            "min_ms": times[0], "server_cpu_ms": 1e3 * window["server_cpu_s"] / repeat,
            "loadgen_cpu_ms": 1e3 * window["loadgen_cpu_pct"] * window["elapsed_s"] / 100
            / repeat}


def _frame_size(data: bytes) -> int:
    """The size on the wire of the unmasked frame ``data`` starts with."""
    length = data[1] & 0x7F
    if length == 126:
        return 4 + int.from_bytes(data[2:4], "big")
    if length == 127:
        return 10 + int.from_bytes(data[2:10], "big")
    return 2 + length


def _drain(sel: selectors.BaseSelector, got: dict[socket.socket, int], want: int,
           limit: float) -> None:
    """Read every socket until it has ``want`` bytes."""
    remaining = sum(1 for v in got.values() if v < want)
    deadline = time.monotonic() + limit
    while remaining:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fanout: {remaining} clients still waiting")
        for key, _ev in sel.select(timeout=1.0):
            sock = key.data
            data = sock.recv(1 << 18)
            if not data:
                raise RuntimeError("fanout: a client was disconnected")
            before = got[sock]
            got[sock] = before + len(data)
            if before < want <= before + len(data):
                remaining -= 1


def fanout(port: int, pid: int, clients: int, messages: int, repeat: int, size: int,
           deflate: bool) -> Result:
    """Deliveries per second to ``clients`` subscribers of ``/fanout``.

    One client asks for a burst (``burst M N SIZE``: M messages of SIZE
    bytes, published once N are subscribed); the time runs from that request
    until every client has every byte of the burst. Every message of a burst
    is the same text, so every frame has the same size (with deflate too:
    the offer asks for no server context takeover); a first burst of one
    message tells it (and warms up). Server memory per subscriber is its
    RSS growth from before the connections to after the first burst.
    """
    rss0 = _proc.rss_bytes(pid)
    socks = open_many(port, "/fanout", clients, 64, 300,
                      extensions=DEFLATE_OFFER if deflate else None)
    sel = selectors.DefaultSelector()
    trigger = socks[0]
    rates: list[float] = []
    server_cpu = 0.0
    mine = 0.0
    try:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ, sock)
        # The first burst: one message, once everyone is subscribed; the
        # trigger's own copy tells the frame size.
        trigger.send(client_frame(OP_TEXT, f"burst 1 {clients} {size}".encode()))
        trigger.setblocking(True)
        trigger.settimeout(120)
        data = trigger.recv(1 << 18)
        trigger.setblocking(False)
        if not data:
            raise RuntimeError("fanout: the server closed the connection")
        frame = _frame_size(data)
        got = dict.fromkeys(socks, 0)
        got[trigger] = len(data)
        _drain(sel, got, frame, 120)
        if any(v != frame for v in got.values()):
            raise RuntimeError("fanout: a client got more or less than the first burst")
        rss1 = _proc.rss_bytes(pid)
        request = client_frame(OP_TEXT, f"burst {messages} {clients} {size}".encode())
        for _ in range(repeat):
            got = dict.fromkeys(socks, 0)
            meter = _Meter(pid)
            trigger.send(request)
            _drain(sel, got, messages * frame, 120)
            window = _window(meter)
            if any(v != messages * frame for v in got.values()):
                raise RuntimeError("fanout: a client got more or less than the burst")
            rates.append(clients * messages / window["elapsed_s"])
            server_cpu += window["server_cpu_s"]
            mine += window["loadgen_cpu_pct"] * window["elapsed_s"] / 100
            time.sleep(0.1)
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    rates.sort()
    deliveries = clients * messages * repeat
    return {"clients": clients, "messages": messages, "repeat": repeat, "frame_bytes": frame,
            "deliveries_per_s": rates[len(rates) // 2], "min_per_s": rates[0],
            "cpu_us_per_delivery": 1e6 * server_cpu / deliveries,
            "server_cpu_pct_of_wall": 100 * server_cpu / (deliveries / rates[len(rates) // 2]),
            "loadgen_cpu_us_per_delivery": 1e6 * mine / deliveries,
            "kib_per_subscriber": (rss1 - rss0) / clients / 1024}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("scenario", choices=["small_echo", "rtt", "large_echo", "handshakes",
                                        "idle_memory", "broadcast", "events", "fanout"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="the server's process id")
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--count", type=int, default=2000,
                   help="rtt samples / idle connections / broadcast clients / events")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--messages", type=int, default=100, help="fanout: messages per burst")
    p.add_argument("--size", type=int, default=32, help="fanout: bytes per message")
    p.add_argument("--deflate", action="store_true",
                   help="fanout: offer permessage-deflate (no server context takeover)")
    p.add_argument("--refill", type=int, default=1,
                   help="small_echo: messages re-sent in one batch")
    a = p.parse_args(argv)
    _proc.raise_nofile()
    if a.scenario == "small_echo":
        result = small_echo(a.port, a.pid, a.duration, a.warmup, refill=a.refill)
    elif a.scenario == "rtt":
        result = rtt(a.port, a.pid, a.count, max(100, a.count // 10), a.duration * 5 + 10)
    elif a.scenario == "large_echo":
        result = large_echo(a.port, a.pid, a.duration, a.warmup)
    elif a.scenario == "handshakes":
        result = handshakes(a.port, a.pid, a.duration, a.warmup)
    elif a.scenario == "idle_memory":
        result = idle_memory(a.port, a.pid, a.count)
    elif a.scenario == "broadcast":
        result = broadcast(a.port, a.pid, a.count, a.repeat)
    elif a.scenario == "fanout":
        result = fanout(a.port, a.pid, a.count, a.messages, a.repeat, a.size, a.deflate)
    else:
        result = events(a.port, a.pid, a.count, a.repeat)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
