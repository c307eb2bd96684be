"""Limits with safe defaults (docs/production.md), where the per-object test
files do not already cover them: option checks, the documented defaults,
the clients' response-head and refusal-body caps, the client's closing
timeout, EventSource.Client's first-connection timeout, the EventSource
write high-water mark, ``Server.serve(reuse_port=True)``, and a server
that runs out of file descriptors.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import inspect
import math
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from faye_websocket import EventSource, HandshakeError, ReadyState, WebSocket
from faye_websocket.http import Request, Response, Server
from faye_websocket.testing import memory_stream_pair

from .helpers import GUID, SECOND, open_fds, raw_server, recorded, running

pytestmark = pytest.mark.anyio

#: Bound on each I/O test.
TIMEOUT = 15 * SECOND
#: What a peer that is gone, or going, raises on our side.
GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


def ws_request() -> Request:
    return Request.build("GET", "/", {
        "Host": "test", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})


def sse_request() -> Request:
    return Request.build("GET", "/events", {"Host": "test", "Accept": "text/event-stream"})


# -- option checks -------------------------------------------------------------------------


SERVER_BAD = [
    {"request_timeout": 0}, {"request_timeout": -1}, {"request_timeout": math.nan},
    {"request_timeout": "10"}, {"keep_alive_timeout": -1}, {"keep_alive_timeout": math.nan},
    {"max_head_size": 0}, {"max_head_size": 1024.5}, {"max_body_size": -1},
    {"shutdown_timeout": -1}, {"max_connections": 0}, {"max_connections": True},
]
#: Options every WebSocket (server and client) takes.
CONNECTION_BAD = [
    {"max_length": -1}, {"ping": -1}, {"ping": math.nan}, {"ping_timeout": 0},
    {"ping_timeout": -5}, {"close_timeout": -1}, {"close_timeout": math.nan},
    {"max_queue": 0}, {"max_queue": 2.5}, {"write_limit": -1},
]
CLIENT_BAD = [*CONNECTION_BAD, {"open_timeout": 0}, {"open_timeout": math.nan},
              {"max_head_size": 0}]
EVENTSOURCE_BAD = [{"ping": -1}, {"ping": math.nan}, {"retry": -1}, {"retry": math.inf},
                   {"write_limit": -1}]
EVENTSOURCE_CLIENT_BAD = [{"retry": math.nan}, {"open_timeout": 0}, {"open_timeout": -1},
                          {"max_event_size": 0}, {"max_head_size": 0}]


@pytest.mark.parametrize("options", SERVER_BAD, ids=str)
def test_server_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Server(**options)


@pytest.mark.parametrize("options", [*CONNECTION_BAD, {"allowed_origins": "https://a.example"}],
                         ids=str)
async def test_websocket_options_are_checked(options: dict[str, Any]) -> None:
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        with pytest.raises(ValueError, match=next(iter(options))):
            WebSocket(ws_request(), server_end, **options)


@pytest.mark.parametrize("options", CLIENT_BAD, ids=str)
def test_client_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        WebSocket.Client("ws://127.0.0.1/", **options)


@pytest.mark.parametrize("options", EVENTSOURCE_BAD, ids=str)
async def test_eventsource_options_are_checked(options: dict[str, Any]) -> None:
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        with pytest.raises(ValueError, match=next(iter(options))):
            EventSource(sse_request(), server_end, **options)


@pytest.mark.parametrize("options", EVENTSOURCE_CLIENT_BAD, ids=str)
def test_eventsource_client_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        EventSource.Client("http://127.0.0.1/", **options)


async def test_edge_values_are_accepted() -> None:
    # 0 and infinity mean what they say where they make sense.
    Server(request_timeout=math.inf, keep_alive_timeout=0, max_body_size=0,
           shutdown_timeout=0, max_connections=None)
    WebSocket.Client("ws://127.0.0.1/", max_length=0, ping=0, ping_timeout=math.inf,
                     close_timeout=0, write_limit=0, open_timeout=math.inf)
    EventSource.Client("http://127.0.0.1/", retry=0, open_timeout=math.inf)
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        WebSocket(ws_request(), server_end, ping=None, close_timeout=math.inf, max_queue=1,
                  allowed_origins=[])
        EventSource(sse_request(), server_end, ping=0, retry=0, write_limit=0)


def defaults(function: Callable[..., object]) -> dict[str, object]:
    return {name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def test_defaults_are_the_documented_ones() -> None:
    # The table in docs/production.md.
    server = Server()
    assert (server.request_timeout, server.keep_alive_timeout, server.max_head_size,
            server.max_body_size, server.shutdown_timeout, server.max_connections) == \
        (10, 5, 16384, 1 << 20, 5, None)
    connection = {"max_length": 2**26 - 1, "ping": None, "ping_timeout": None,
                  "close_timeout": 30, "max_queue": 16, "write_limit": 65536}
    assert defaults(WebSocket) | connection == defaults(WebSocket)
    assert defaults(WebSocket)["allowed_origins"] is None
    assert defaults(WebSocket.Client) | connection | {"open_timeout": 10,
                                                      "max_head_size": 16384} == \
        defaults(WebSocket.Client)
    assert {k: defaults(EventSource)[k] for k in ("retry", "ping", "write_limit")} == \
        {"retry": 5, "ping": 10, "write_limit": 65536}
    assert {k: defaults(EventSource.Client)[k]
            for k in ("retry", "open_timeout", "max_event_size", "max_head_size")} == \
        {"retry": 3.0, "open_timeout": 10, "max_event_size": 2**26 - 1, "max_head_size": 16384}


# -- raw peers -----------------------------------------------------------------------------


async def read_head(stream: anyio.abc.ByteStream) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive()
    return head


def accept_for(head: bytes) -> str:
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    return base64.b64encode(hashlib.sha1(key + GUID.encode()).digest()).decode()


class EndlessHead:
    """Answers with ``status`` and then header lines without end, until the
    client hangs up: a hostile server (or proxy)."""

    def __init__(self, status: bytes) -> None:
        self.status = status
        self.sent = 0
        self.hung_up = anyio.Event()

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                await read_head(stream)
                await stream.send(self.status + b"\r\n")
                while True:
                    line = b"X-Filler: " + b"y" * 1000 + b"\r\n"
                    await stream.send(line)
                    self.sent += len(line)
            except GONE:
                self.hung_up.set()


# -- WebSocket.Client: response head, refusal body, closing timeout ------------------------


async def test_client_drops_a_server_sending_an_endless_head() -> None:
    server = EndlessHead(b"HTTP/1.1 101 Switching Protocols")
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
            events = recorded(ws, "error", "close")
            with pytest.raises(HandshakeError, match="response head larger than 16384 bytes"):
                async with ws:
                    pytest.fail("connected")
            await server.hung_up.wait()  # the client stopped reading and closed
    assert [(e.type, e.code) for e in events] == [("error", None), ("close", 1006)]
    assert ws.ready_state is ReadyState.CLOSED


async def test_client_refuses_a_whole_head_over_max_head_size() -> None:
    # The head comes in one piece (h11's buffer bound is not reached), so
    # it is measured once parsed.
    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            head = await read_head(stream)
            await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                              + accept_for(head).encode() + b"\r\n"
                              + b"X-Big: " + b"z" * 2000 + b"\r\n\r\n")
            try:
                await stream.receive()
            except GONE:
                pass

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            with pytest.raises(HandshakeError, match="response head larger than 1024 bytes"):
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/", max_head_size=1024):
                    pytest.fail("connected")
            # The same response is fine under the default cap.
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/") as ws:
                assert ws.status_code == 101


async def test_client_drops_a_proxy_sending_an_endless_head() -> None:
    proxy = EndlessHead(b"HTTP/1.1 200 Connection established")
    with anyio.fail_after(TIMEOUT):
        async with raw_server(proxy.handle) as port:
            ws = WebSocket.Client("ws://example.invalid/", proxy=f"http://127.0.0.1:{port}",
                                  max_head_size=4096)
            with pytest.raises(HandshakeError, match="response head larger than 4096 bytes"):
                async with ws:
                    pytest.fail("connected")
            await proxy.hung_up.wait()
    assert ws.close_code == 1006


async def test_client_stops_reading_a_refusal_body_at_64_kib() -> None:
    # A refusal whose body never ends: the error keeps 64 KiB and the client
    # stops there, long before open_timeout.
    hung_up = anyio.Event()

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                await read_head(stream)
                await stream.send(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n")
                while True:
                    await stream.send(b"400\r\n" + b"n" * 1024 + b"\r\n")
            except GONE:
                hung_up.set()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            with pytest.raises(HandshakeError) as caught:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=3600):
                    pytest.fail("connected")
            await hung_up.wait()
    assert caught.value.status_code == 403
    assert caught.value.body == b"n" * 65536


def accepting_server(*, answer_close: bool) -> tuple[Callable[[anyio.abc.ByteStream],
                                                             Awaitable[None]], anyio.Event]:
    """A server that accepts the handshake, then never answers the client's
    Close (or answers it but never closes TCP); the event is set when the
    client hangs up."""
    hung_up = anyio.Event()

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            head = await read_head(stream)
            await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                              + accept_for(head).encode() + b"\r\n\r\n")
            try:
                await stream.receive()  # the client's Close
                if answer_close:
                    await stream.send(b"\x88\x02\x03\xe8")  # Close 1000, unmasked
                while await stream.receive():
                    pass
            except GONE:
                pass
            hung_up.set()

    return handle, hung_up


@pytest.mark.parametrize(("answer_close", "code"), [(False, 1006), (True, 1000)])
async def test_client_close_timeout(answer_close: bool, code: int) -> None:
    # Without an answer the client aborts with 1006; with an answer but no
    # TCP close from the server, it stops waiting and closes (1000).
    handle, hung_up = accepting_server(answer_close=answer_close)
    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/", close_timeout=0.2)
            events = recorded(ws, "error", "close")
            async with ws:
                pass  # leaving the block closes with 1000
            await hung_up.wait()
    assert [(e.type, e.code) for e in events] == [("close", code)]
    assert ws.close_code == code


# -- EventSource.Client ---------------------------------------------------------------------


async def test_eventsource_client_drops_a_server_sending_an_endless_head() -> None:
    server = EndlessHead(b"HTTP/1.1 200 OK")
    with anyio.fail_after(TIMEOUT):
        async with raw_server(server.handle) as port:
            source = EventSource.Client(f"http://127.0.0.1:{port}/")
            with pytest.raises(HandshakeError, match="response head larger than 16384 bytes"):
                async with source:
                    pytest.fail("connected")
            await server.hung_up.wait()
    assert source.ready_state is EventSource.CLOSED


async def test_eventsource_client_open_timeout_on_the_first_connection() -> None:
    hung_up = anyio.Event()

    async def silent(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                while await stream.receive():
                    pass
            except GONE:
                pass
            hung_up.set()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(silent) as port:
            source = EventSource.Client(f"http://127.0.0.1:{port}/", open_timeout=0.2)
            with pytest.raises(TimeoutError):
                async with source:
                    pytest.fail("connected")
            await hung_up.wait()
    assert source.ready_state is EventSource.CLOSED


# -- EventSource: the write high-water mark ------------------------------------------------


def data_lines(raw: bytes) -> list[bytes]:
    return [line for line in raw.split(b"\r\n") if line.startswith(b"data: ")]


async def test_eventsource_send_nowait_raises_would_block_past_write_limit() -> None:
    client_end, server_end = memory_stream_pair(max_buffer_size=1)
    async with client_end:
        async with EventSource(sse_request(), server_end, ping=None, write_limit=1000) as es:
            head = await client_end.receive()
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert es.send_nowait("a" * 500)
            await anyio.wait_all_tasks_blocked()  # in the stream's one-item buffer
            assert es.send_nowait("b" * 500)
            await anyio.wait_all_tasks_blocked()  # the writer waits with it
            assert 500 < es.buffered_amount < 1000
            assert es.send_nowait("c" * 500)  # under the mark when queued
            assert es.buffered_amount >= 1000
            with pytest.raises(anyio.WouldBlock):
                es.send_nowait("d")
            results: list[bool] = []

            async def send_e() -> None:
                results.append(await es.send("e"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_e)
                await anyio.wait_all_tasks_blocked()
                assert results == []  # ``await send`` waits while the client does not read
                received = b""
                with anyio.fail_after(TIMEOUT):
                    while b"data: e\r\n\r\n" not in received:
                        received += await client_end.receive()
            assert results == [True]
            assert data_lines(received) == [b"data: " + b"a" * 500, b"data: " + b"b" * 500,
                                            b"data: " + b"c" * 500, b"data: e"]
            assert es.buffered_amount == 0
            assert es.send_nowait("after draining")
        assert not es.send_nowait("closed")


async def test_eventsource_send_nowait_needs_an_open_stream() -> None:
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        es = EventSource(sse_request(), server_end, ping=None)
        with pytest.raises(RuntimeError, match="not open yet"):
            es.send_nowait("early")
        async with es:
            with pytest.raises(TypeError):
                es.send_nowait(b"bytes")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="line break"):
                es.send_nowait("x", event="a\nb")
            es.close_nowait()
            with anyio.fail_after(TIMEOUT):
                await es.wait_closed()
            assert not es.send_nowait("after close")


async def test_eventsource_reader_that_stops_reading_is_bounded_and_dropped() -> None:
    # Over TCP: a broadcaster's send_nowait fills the kernel's buffers, then
    # at most write_limit more bytes; then close_nowait drops the client,
    # waking a send() stuck in another task.
    limit = 16384
    chunk = "x" * 1000
    seen: dict[str, Any] = {}
    done = anyio.Event()

    async def on_request(request: Request, response: Response) -> None:
        async with EventSource(request, response, ping=None, write_limit=limit) as es:
            es.on("close", lambda event: seen.setdefault("close", True))
            queued = 0
            while True:
                try:
                    es.send_nowait(chunk)
                except anyio.WouldBlock:
                    break
                queued += 1
                await anyio.lowlevel.checkpoint()  # let the writer run
            seen["queued"], seen["peak"] = queued, es.buffered_amount

            async def stuck_send() -> None:
                seen["send"] = await es.send("stuck")

            async with anyio.create_task_group() as tg:
                tg.start_soon(stuck_send)
                await anyio.wait_all_tasks_blocked()
                assert "send" not in seen
                es.close_nowait()
                await es.wait_closed()
        done.set()

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port:
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(b"GET /events HTTP/1.1\r\nHost: x\r\n"
                                  b"Accept: text/event-stream\r\n\r\n")
                await done.wait()  # never reading a byte
    frame = len(f"data: {chunk}\r\n\r\n")
    assert seen["queued"] * frame > limit  # the kernel took more than the mark
    assert limit <= seen["peak"] < limit + frame
    assert seen["send"] is False
    assert seen["close"] is True


# -- Server.serve(reuse_port=True) ---------------------------------------------------------


async def get(port: int) -> bytes:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    async with stream:
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = b""
        try:
            while True:
                response += await stream.receive()
        except anyio.EndOfStream:
            pass
    return response.partition(b"\r\n\r\n")[2]


def named(name: bytes) -> Server:
    async def on_request(request: Request, response: Response) -> None:
        await response.end(name)

    return Server(on_request=on_request)


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
async def test_reuse_port_lets_two_servers_share_a_port() -> None:
    first, second = named(b"first"), named(b"second")
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            async with anyio.create_task_group() as first_group:
                port = await first_group.start(functools.partial(first.serve, "127.0.0.1", 0,
                                                                 reuse_port=True))
                with pytest.raises(OSError):  # without it the port is taken
                    await named(b"third").serve("127.0.0.1", port)
                await tg.start(functools.partial(second.serve, "127.0.0.1", port,
                                                 reuse_port=True))
                answers = {await get(port) for _ in range(10)}
                assert answers <= {b"first", b"second"} and answers
                await first.shutdown()
            # The first server's serve() has returned and closed its socket;
            # the second one still listens on the port.
            assert {await get(port) for _ in range(5)} == {b"second"}
            await second.shutdown()


# -- max_connections and TLS handshakes -----------------------------------------------------


async def wait_for_fds(at_most: int) -> int:
    """Poll until at most ``at_most`` file descriptors are open (asyncio
    closes a socket one loop iteration late), for up to a second."""
    with anyio.move_on_after(1):
        while open_fds() > at_most:  # noqa: ASYNC110 (no event to wait for)
            await anyio.sleep(0.01)
    return open_fds()


async def hung_up(stream: anyio.abc.SocketStream) -> bool:
    """The server has closed ``stream`` (checked for a moment)."""
    with anyio.move_on_after(0.05):
        try:
            await stream.receive()
        except GONE:
            return True
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/self/fd")
async def test_max_connections_counts_tls_handshakes(server_context: ssl.SSLContext,
                                                     client_context: ssl.SSLContext) -> None:
    # Silent TCP connections to a TLS server (no ClientHello, ever) each held
    # a file descriptor for request_timeout, uncounted. They are counted from
    # accept: over the cap, the server closes them at once (it cannot send a
    # readable 503 before the handshake).
    async def on_request(request: Request, response: Response) -> None:
        await response.end("ok")

    server = Server(on_request=on_request, max_connections=5, request_timeout=60)
    before = open_fds()
    with anyio.fail_after(TIMEOUT):
        async with running(server, ssl_context=server_context) as port:
            baseline = open_fds()
            silent = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(50)]
            try:
                # The clients' 50 sockets, and the server's 5 in handshake.
                assert await wait_for_fds(baseline + 50 + 5) <= baseline + 50 + 5
                assert [await hung_up(stream) for stream in silent].count(True) == 45
                with pytest.raises(GONE):  # the cap is reached: closed too
                    await anyio.connect_tcp("127.0.0.1", port, ssl_context=client_context,
                                            tls_hostname="localhost")
            finally:
                for stream in silent:
                    await stream.aclose()
            # Their handshakes end with the connections: slots free again.
            assert await wait_for_fds(baseline) == baseline
            client = await anyio.connect_tcp("127.0.0.1", port, ssl_context=client_context,
                                             tls_hostname="localhost",
                                             tls_standard_compatible=False)
            async with client:
                await client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                response = b""
                with contextlib.suppress(*GONE):
                    while True:
                        response += await client.receive()
            assert response.startswith(b"HTTP/1.1 200 ")
        assert await wait_for_fds(before) == before


# -- running out of file descriptors -------------------------------------------------------


#: A server that leaves itself 4 spare file descriptors once it listens.
FD_STARVED_SERVER = """
import logging, os, resource, sys
import anyio
from faye_websocket.http import Server

async def main():
    async def on_request(request, response):
        await response.end("ok")

    server = Server(on_request=on_request)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        used = len(os.listdir("/proc/self/fd"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 4, hard))
        print(port, flush=True)

logging.basicConfig(level=logging.WARNING, format="%(message)s")
anyio.run(main, backend=sys.argv[1])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/self/fd")
async def test_server_survives_running_out_of_file_descriptors(anyio_backend: str) -> None:
    # accept() failing with EMFILE used to end serve(), and so the server;
    # now it waits for connections to close and goes on.
    with anyio.fail_after(TIMEOUT):
        process = await anyio.open_process([sys.executable, "-c", FD_STARVED_SERVER,
                                            anyio_backend])
        async with process:
            try:
                assert process.stdout is not None and process.stderr is not None
                stdout = BufferedByteReceiveStream(process.stdout)
                stderr = BufferedByteReceiveStream(process.stderr)
                port = int(await stdout.receive_until(b"\n", 100))
                clients = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(10)]
                while b"cannot accept connections" not in \
                        await stderr.receive_until(b"\n", 10000):
                    pass
                for client in clients:
                    await client.aclose()
                assert await get(port) == b"ok"
                assert await stderr.receive_until(b"\n", 10000) == b"accepting connections again"
            finally:
                process.kill()
