"""The clients under hostile servers, as tests/test_limits.py and
tests/test_properties.py put the server under hostile clients.

Each case is a raw TCP listener on 127.0.0.1 that speaks hand-built bytes,
and each states its bound and measures against it: memory with
``tracemalloc``, time with the clock, attempts by counting them. Every
wait is bounded by ``anyio.fail_after``; every test runs on asyncio and
trio.

WebSocket.Client:

* an endless response head, one whole head over ``max_head_size``, and a
  flood of ``100 Continue`` responses before the ``101``;
* a server that never finishes the handshake (``open_timeout``);
* a deflate bomb: a small compressed frame that inflates past
  ``max_length`` (close 1009, memory bounded);
* masked frames (1002) and close codes that may not be sent (1002);
* a ping flood (every ping answered while the server reads, the client
  stops reading when the server does not, memory bounded).

EventSource.Client:

* endless ``data`` lines and one endless line (``max_event_size``, memory
  bounded in bytes);
* ``retry: 0`` and a server that is gone or hangs up at once (the
  reconnection floor and the backoff);
* a flood of ``100 Continue`` responses and a flood of comment lines.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from faye_websocket import (
    ConnectionClosed,
    EventSource,
    HandshakeError,
    PerMessageDeflate,
    ProtocolError,
    WebSocket,
)
from faye_websocket import _eventsource_client as eventsource_client
from faye_websocket._core.sse import EventStreamParser, EventTooLarge
from faye_websocket._runtime.client import open_stream

from .helpers import SECOND, raw_server
from .test_limits import GONE, EndlessHead, accept_for, read_head
from .wsclient import raw_frame

pytestmark = pytest.mark.anyio

#: Bound on every wait of a test.
TIMEOUT = 20 * SECOND
#: The event size limit these tests set: big enough that the per-line and
#: per-object overheads show, small enough to be quick under tracemalloc.
EVENT_LIMIT = 1 << 18
#: Memory the loopback tests allow for the chunks in flight, both ends being
#: in this process: the server's write buffer, the client's reads, h11's
#: receive buffer.
IO_SLACK = 512 * 1024

Handler = Callable[[anyio.abc.ByteStream], Awaitable[None]]


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Measure the peak of traced memory in the block, above what was
    allocated when it started (in ``result[0]``, once the block is done)."""
    result: list[int] = []
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield result
        result.append(tracemalloc.get_traced_memory()[1] - baseline)
    finally:
        tracemalloc.stop()


async def event_stream_head(stream: anyio.abc.ByteStream, *, close: bool = False) -> None:
    """Read a request and answer it with a ``text/event-stream`` head."""
    await read_head(stream)
    await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      + (b"Connection: close\r\n" if close else b"") + b"\r\n")


def switching(head: bytes, extensions: bytes = b"") -> bytes:
    """A ``101`` that completes the handshake of the request ``head``."""
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_for(head).encode() + b"\r\n"
            + (b"Sec-WebSocket-Extensions: " + extensions + b"\r\n" if extensions else b"")
            + b"\r\n")


def endless(unit: bytes) -> Handler:
    """A server whose event stream is ``unit`` repeated until the client hangs up."""
    chunk = unit * max(1, 65536 // len(unit))

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                await event_stream_head(stream)
                while True:
                    await stream.send(chunk)
            except GONE:
                pass

    return handle


# -- EventSource.Client: max_event_size is bytes held, not list entries ------------------


#: What a server sends to grow one event: its description and a feeder that
#: gives the parser that stream until it refuses it.
EVENT_GROWERS = {
    "empty data lines": (b"data\n", 65536),
    "1-byte data lines": (b"data:x\n", 65536),
    "one data line, 1 byte a read": (b"x", 1),
    "one unknown field, 1 byte a read": (b"y", 1),
}


def feed_until_refused(parser: EventStreamParser, chunk: bytes) -> int:
    """Feed ``chunk`` again and again; how many bytes went in (it raises)."""
    fed = 0
    while fed < 8 * EVENT_LIMIT:
        parser.receive_data(chunk)
        fed += len(chunk)
    return fed


@pytest.mark.parametrize("grower", list(EVENT_GROWERS))
def test_parser_memory_stays_near_max_event_size(grower: str) -> None:
    # Before: each 1-byte unit cost an 8-byte list entry, about 8 times
    # max_event_size in all (513 MiB at the default).
    unit, size = EVENT_GROWERS[grower]
    parser = EventStreamParser(max_size=EVENT_LIMIT)
    if size == 1:  # one line, a byte at a time
        parser.receive_data(b"data: " if unit == b"x" else b"y: ")
    with peak_memory() as peak, pytest.raises(EventTooLarge, match=f"longer than {EVENT_LIMIT}"):
        feed_until_refused(parser, unit * (size // len(unit)))
    assert peak[0] < 1.5 * EVENT_LIMIT, grower


def test_parser_memory_when_an_event_at_the_limit_is_dispatched() -> None:
    # The held bytes and the str handed over exist together for a moment.
    parser = EventStreamParser(max_size=EVENT_LIMIT)
    line = b"data:" + b"x" * 1000 + b"\n"
    lines = line * (EVENT_LIMIT // len(line) - 1)
    with peak_memory() as peak:
        parser.receive_data(lines)
        (event,) = parser.receive_data(b"\n")
    assert len(event.data) > EVENT_LIMIT - 3 * len(line)
    assert peak[0] < 2.5 * EVENT_LIMIT


@pytest.mark.parametrize("unit", [b"data:x\n", b"data: " + b"x" * 40000], ids=["lines", "line"])
async def test_eventsource_client_memory_with_an_endless_event(unit: bytes) -> None:
    # Endless data lines, or one data line without end: ProtocolError 1009
    # once the event holds max_event_size bytes, with memory near that.
    with anyio.fail_after(TIMEOUT):
        async with raw_server(endless(unit)) as port:
            source = EventSource.Client(f"http://127.0.0.1:{port}/", max_event_size=EVENT_LIMIT)
            async with source:
                with peak_memory() as peak, pytest.raises(ProtocolError) as caught:
                    await source.receive()
    assert caught.value.close_code == 1009
    assert f"longer than {EVENT_LIMIT}" in str(caught.value)
    assert source.ready_state is EventSource.CLOSED
    # The event, and the chunks in flight in the server and the client.
    assert peak[0] < 1.5 * EVENT_LIMIT + IO_SLACK


# -- EventSource.Client: reconnection floor and backoff -----------------------------------


class Counting:
    """A server that counts requests and answers each with ``answer``,
    then hangs up."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.times: list[float] = []

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                await read_head(stream)
                self.times.append(anyio.current_time())
                await stream.send(self.answer)
            except GONE:
                pass


def stream_answer(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            + body)


async def drain_for(source: EventSource.Client, seconds: float) -> int:
    """Take events for ``seconds``; how many came."""
    count = 0
    with anyio.move_on_after(seconds):
        while True:
            await source.receive()
            count += 1
    return count


@pytest.mark.parametrize(("body", "most"), [
    # A stream that ends before any event counts as a failed attempt: the
    # waits double (0.5, 1, 2... s, each up to half as long again).
    (b"retry: 0\n\n", 3),
    # One that delivers an event reconnects after the floor, 0.5-0.75 s.
    (b"retry: 0\ndata: hi\n\n", 5),
], ids=["hangs-up-at-once", "one-event-then-hangs-up"])
async def test_retry_0_from_a_server_that_hangs_up_is_no_reconnection_storm(
        body: bytes, most: int) -> None:
    # Before: about 1,700-2,100 reconnections a second.
    server = Counting(stream_answer(body))
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            async with EventSource.Client(f"http://127.0.0.1:{port}/") as source:
                await drain_for(source, 2.0)
                assert source.retry == 0  # the server's value; the floor applies to the wait
    assert 2 <= len(server.times) <= most, server.times
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert min(gaps) >= eventsource_client.MIN_RETRY - 0.01, gaps


async def test_retry_0_with_the_server_gone_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server sends retry: 0 and an event, then is gone: every attempt is
    # refused. Before: about 1,400-1,500 attempts a second.
    attempts: list[float] = []

    async def counted(*args: Any, **kwargs: Any) -> anyio.abc.ByteStream:
        attempts.append(anyio.current_time())
        return await open_stream(*args, **kwargs)

    monkeypatch.setattr("faye_websocket._eventsource_client.open_stream", counted)
    server = Counting(stream_answer(b"retry: 0\ndata: hi\n\n"))
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            source = EventSource.Client(f"http://127.0.0.1:{port}/")
            await source.__aenter__()
            assert (await source.receive()).data == "hi"
        try:
            del attempts[:]
            assert await drain_for(source, 2.5) == 0
        finally:
            await source.aclose()
    # Waits of 0.5-0.75 s, then 1-1.5 s, then 2-3 s: two or three attempts.
    assert 1 <= len(attempts) <= 3, attempts


async def test_backoff_doubles_per_failure_and_resets_after_an_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventsource_client, "MIN_RETRY", 0.1)
    times: list[float] = []
    answers = [stream_answer(b"retry: 0\ndata: 1\n\n"), b"", b"",
               stream_answer(b"data: 2\n\n"), stream_answer(b"data: 3\n\n")]

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                await read_head(stream)
                times.append(anyio.current_time())
                await stream.send(answers[min(len(times), len(answers)) - 1])
            except GONE:
                pass

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            async with EventSource.Client(f"http://127.0.0.1:{port}/") as source:
                assert [(await source.receive()).data for _ in range(3)] == ["1", "2", "3"]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # After an event: 0.1-0.15 s. Two failures (no response): 0.2-0.3 s,
    # then 0.4-0.6 s. After the next event, 0.1-0.15 s again.
    assert 0.09 <= gaps[0] and 0.19 <= gaps[1] and 0.39 <= gaps[2], gaps
    assert gaps[3] < 0.39, gaps


@contextmanager
def cpu_seconds() -> Iterator[list[float]]:
    result: list[float] = []
    start = time.process_time()
    yield result
    result.append(time.process_time() - start)


# -- informational responses and comment floods --------------------------------------------


async def hundred_continue_forever(stream: anyio.abc.ByteStream) -> None:
    async with stream:
        try:
            await read_head(stream)
            while True:
                await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n" * 64)
        except GONE:
            pass


@pytest.mark.parametrize("via", ["server", "proxy"])
async def test_websocket_client_endless_100_continue(via: str) -> None:
    # Before: the client parsed 100 Continue until open_timeout, at full CPU
    # (about 95,000 responses a second); now the 11th one fails the handshake.
    with anyio.fail_after(TIMEOUT):
        async with raw_server(hundred_continue_forever) as port:
            if via == "server":
                ws = WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=5)
            else:
                ws = WebSocket.Client("ws://example.invalid/", open_timeout=5,
                                      proxy=f"http://127.0.0.1:{port}")
            started = anyio.current_time()
            with pytest.raises(HandshakeError, match="more than 10 informational"):
                async with ws:
                    pytest.fail("connected")
            elapsed = anyio.current_time() - started
    assert elapsed < 1.0
    assert ws.close_code == 1002


async def test_websocket_client_takes_a_few_informational_responses() -> None:
    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            head = await read_head(stream)
            await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n"
                              + b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" * 9
                              + switching(head))
            with contextlib.suppress(*GONE):
                await stream.receive()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/", close_timeout=0) as ws:
                assert ws.status_code == 101


async def test_eventsource_client_endless_100_continue() -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_server(hundred_continue_forever) as port:
            started = anyio.current_time()
            with pytest.raises(HandshakeError, match="more than 10 informational"):
                async with EventSource.Client(f"http://127.0.0.1:{port}/", open_timeout=5):
                    pytest.fail("connected")
            elapsed = anyio.current_time() - started
    assert elapsed < 1.0


@pytest.mark.parametrize("unit", [b":\n", b":\r\n\r\n", b": keep-alive\n"])
def test_a_comment_flood_costs_little_cpu(unit: bytes) -> None:
    # A run of comment and blank lines is skipped with one regex search.
    # Before: about 6 MiB of ":\n" a CPU second; now about 80.
    parser = EventStreamParser()
    chunk = unit * (65536 // len(unit))
    with cpu_seconds() as spent:
        for _ in range((8 << 20) // len(chunk)):
            assert parser.receive_data(chunk) == []
    assert spent[0] < 0.5, f"{spent[0]:.2f} s of CPU for 8 MiB of comments"
    assert parser.receive_data(b"data: then an event\n\n")[0].data == "then an event"


async def test_eventsource_client_stays_responsive_under_a_comment_flood() -> None:
    # Comments never end receive(), as in browsers: a read timeout of the
    # caller's (here move_on_after) still ends the wait on time, and other
    # tasks keep running, as each read is a checkpoint.
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    with anyio.fail_after(TIMEOUT):
        async with raw_server(endless(b":\n")) as port, anyio.create_task_group() as tg:
            async with EventSource.Client(f"http://127.0.0.1:{port}/") as source:
                tg.start_soon(tick)
                started = anyio.current_time()
                with anyio.move_on_after(1.0):
                    await source.receive()
                    pytest.fail("an event")
                elapsed = anyio.current_time() - started
            tg.cancel_scope.cancel()
    assert elapsed < 1.5
    assert ticks >= 20


# -- WebSocket.Client: the opening handshake ---------------------------------------------


async def test_websocket_client_endless_101_head() -> None:
    # h11 holds at most max_head_size of a head still arriving; the client
    # hangs up as soon as that is passed (also in tests/test_limits.py).
    server = EndlessHead(b"HTTP/1.1 101 Switching Protocols")
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            started = anyio.current_time()
            with peak_memory() as peak, \
                    pytest.raises(HandshakeError, match="larger than 16384 bytes"):
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=5):
                    pytest.fail("connected")
            elapsed = anyio.current_time() - started
            await server.hung_up.wait()
    assert elapsed < 1.0
    assert server.sent < 1 << 20
    assert peak[0] < IO_SLACK


async def test_websocket_client_huge_101_head_in_one_piece() -> None:
    huge = b"X-Filler: " + b"z" * (4 << 20) + b"\r\n"

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            with contextlib.suppress(*GONE):
                head = await read_head(stream)
                await stream.send(switching(head)[:-2] + huge + b"\r\n")

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            started = anyio.current_time()
            with pytest.raises(HandshakeError, match="larger than 16384 bytes"):
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=5):
                    pytest.fail("connected")
            elapsed = anyio.current_time() - started
    assert elapsed < 1.0


async def test_websocket_client_server_never_finishes_the_handshake() -> None:
    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            with contextlib.suppress(*GONE):
                await read_head(stream)
                await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
                await stream.receive()  # and nothing more, until the client hangs up

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=0.5)
            started = anyio.current_time()
            with pytest.raises(TimeoutError):
                async with ws:
                    pytest.fail("connected")
            elapsed = anyio.current_time() - started
    assert 0.5 <= elapsed < 1.5
    assert ws.close_code == 1006


# -- WebSocket.Client: frames from a hostile server ---------------------------------------


async def read_close_code(stream: anyio.abc.ByteStream) -> int | None:
    """Read the client's (masked) frames until its Close; the code in it."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except GONE:
            return None
        while len(data) >= 6:
            opcode, size = data[0] & 0x0F, data[1] & 0x7F
            offset = 2 + {126: 2, 127: 8}.get(size, 0)
            if size >= 126:
                size = int.from_bytes(data[2:offset], "big")
            if len(data) < offset + 4 + size:
                break
            key, payload = data[offset:offset + 4], data[offset + 4:offset + 4 + size]
            data = data[offset + 4 + size:]
            if opcode == 0x8:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
                return int.from_bytes(payload[:2], "big") if payload else 1005


class FrameServer:
    """Completes the handshake (with ``extensions`` in the ``101``), sends
    ``frames`` and reads the client's Close code."""

    def __init__(self, frames: bytes, extensions: bytes = b"") -> None:
        self.frames = frames
        self.extensions = extensions
        self.close_code: int | None = None
        self.done = anyio.Event()

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                head = await read_head(stream)
                await stream.send(switching(head, self.extensions) + self.frames)
                self.close_code = await read_close_code(stream)
            except GONE:
                pass
            self.done.set()


async def run_against(server: FrameServer, **options: Any) -> tuple[WebSocket.Client, float]:
    """Connect, wait for the connection to end; the client and the time it took."""
    async with raw_server(server.handle) as port:
        started = anyio.current_time()
        async with WebSocket.Client(f"ws://127.0.0.1:{port}/", close_timeout=1,
                                    **options) as ws:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass
        elapsed = anyio.current_time() - started
        await server.done.wait()
    return ws, elapsed


async def test_websocket_client_deflate_bomb() -> None:
    # 64 MiB of zeros in about 64 KiB: inflating stops past max_length, so
    # the client closes with 1009 having held about max_length, not 64 MiB.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692 section 7.2.1
    assert len(bomb) < 128 * 1024
    server = FrameServer(raw_frame(0x2, bomb, rsv=4, mask=False), b"permessage-deflate")
    limit = 1 << 20
    with anyio.fail_after(TIMEOUT), peak_memory() as peak:
        ws, elapsed = await run_against(server, extensions=[PerMessageDeflate()],
                                        max_length=limit)
    assert ws.extensions == "permessage-deflate"
    assert ws.close_code == 1009 and server.close_code == 1009
    assert elapsed < 2.0
    assert peak[0] < 4 * limit, f"{peak[0] / limit:.1f} x max_length"


async def test_websocket_client_masked_frame() -> None:
    server = FrameServer(raw_frame(0x1, b"masked", mask=True))
    with anyio.fail_after(TIMEOUT):
        ws, elapsed = await run_against(server)
    assert ws.close_code == 1002 and server.close_code == 1002
    assert elapsed < 2.0


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000,
                                  65535])
async def test_websocket_client_close_code_that_may_not_be_sent(code: int) -> None:
    # RFC 6455 section 7.4: 1005, 1006 and 1015 are never sent, 0-999 are
    # unused, 1016-2999 are reserved and 5000 is past the range.
    server = FrameServer(raw_frame(0x8, struct.pack("!H", code) + b"bye", mask=False))
    with anyio.fail_after(TIMEOUT):
        ws, elapsed = await run_against(server)
    assert ws.close_code == 1002 and server.close_code == 1002
    assert elapsed < 2.0


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999])
async def test_websocket_client_close_code_that_may_be_sent(code: int) -> None:
    server = FrameServer(raw_frame(0x8, struct.pack("!H", code), mask=False))
    with anyio.fail_after(TIMEOUT):
        ws, _ = await run_against(server)
    assert ws.close_code == code and server.close_code == code


# -- WebSocket.Client: ping floods ---------------------------------------------------------


#: An empty, unmasked ping: the cheapest frame a server can send.
PING = raw_frame(0x9, b"", mask=False)


async def count_pongs(stream: anyio.abc.ByteStream, counted: list[int]) -> None:
    """Count the client's pongs (empty, masked: 6 bytes each) in ``counted[0]``
    until its Close, which is answered."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except GONE:
            return
        while len(data) >= 6:
            size = data[1] & 0x7F
            if len(data) < 6 + size:
                break
            opcode = data[0] & 0x0F
            data = data[6 + size:]
            counted[0] += opcode == 0xA
            if opcode == 0x8:
                await stream.send(raw_frame(0x8, struct.pack("!H", 1000), mask=False))
                return


async def test_websocket_client_answers_a_ping_flood_from_a_reading_server() -> None:
    # Every ping is answered while the server reads, and a message sent after
    # the flood still arrives. Memory: the pongs and events of one read.
    pings = 50_000
    pongs = [0]

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            with contextlib.suppress(*GONE):
                head = await read_head(stream)
                await stream.send(switching(head))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(count_pongs, stream, pongs)
                    for _ in range(pings // 10_000):
                        await stream.send(PING * 10_000)
                    await stream.send(raw_frame(0x1, b"after the flood", mask=False))

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            with peak_memory() as peak:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/") as ws:
                    assert await ws.receive() == "after the flood"
                    while pongs[0] < pings:  # noqa: ASYNC110 (the server's count)
                        await anyio.sleep(0.01)
    assert pongs[0] == pings
    assert ws.close_code == 1000
    assert peak[0] < 16 << 20, f"{peak[0] / 2**20:.1f} MiB"


def small_buffers(stream: anyio.abc.ByteStream) -> None:
    """Pin the server socket's buffers, so that a flood stalls soon."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)


async def until_stalled(server: PingFlooder) -> None:
    """Wait until the server is stuck in a send and every task is idle."""
    while True:
        await anyio.wait_all_tasks_blocked()
        if server.in_send and server.sent:
            return
        await anyio.sleep(0.05)


class PingFlooder:
    """Sends empty pings in chunks of ``chunk`` pings (``rounds`` of them,
    or without end), never reading."""

    def __init__(self, chunk: int, rounds: int | None = None) -> None:
        self.chunk, self.rounds = chunk, rounds
        self.sent = 0
        self.in_send = False

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        small_buffers(stream)
        async with stream:
            with contextlib.suppress(*GONE):
                head = await read_head(stream)
                await stream.send(switching(head))
                chunk = PING * self.chunk
                rounds = 0
                while self.rounds is None or rounds < self.rounds:
                    self.in_send = True
                    await stream.send(chunk)
                    self.in_send = False
                    self.sent += len(chunk)
                    rounds += 1
                self.in_send = True
                await anyio.sleep(TIMEOUT)


async def test_websocket_client_stops_reading_a_ping_flood_when_the_server_does_not_read(
        ) -> None:
    # The pongs wait for the server, and while they wait the client reads
    # nothing: the flood stalls in TCP, after the kernel buffers.
    server = PingFlooder(32768)
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/", close_timeout=0.2) as ws:
                await until_stalled(server)
    assert server.sent < 16 << 20, f"{server.sent / 2**20:.1f} MiB of pings before the stall"
    assert ws.close_code == 1006  # its Close could not be written either


async def test_websocket_client_memory_for_one_read_of_pings() -> None:
    # What a read full of pings costs while their pongs wait: 131,072 pings
    # in 256 KiB make as many pongs and events, about 18 MiB. Bounded by the
    # read size, as the client reads no more until the pongs are written.
    server = PingFlooder(131072, rounds=1)
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            with peak_memory() as peak:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/", close_timeout=0.2):
                    await until_stalled(server)
    assert peak[0] < 32 << 20, f"{peak[0] / 2**20:.1f} MiB"
