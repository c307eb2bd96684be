"""Fault handling over real loopback sockets, on both anyio backends.

Peers that reset the connection mid-frame, half-close it, fail the TLS
handshake, vanish in the middle of the opening handshake or stop reading;
callers that cancel at each await point of open, send, receive and close.
Each test checks that the one connection ends with the right event, that
the server goes on serving, and that no task, socket, file descriptor or
warning is left behind (:func:`no_leaks`).

The peers are written here with raw sockets and wsproto, so a fault can be
placed exactly: half a frame, a TCP reset (``SO_LINGER`` 0), a FIN with no
Close frame, a peer that never reads.
"""

from __future__ import annotations

import gc
import logging
import socket
import ssl
import struct
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import h11
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, TextMessage
from wsproto.events import Request as WSRequest
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from faye_websocket import (
    ConnectError,
    ConnectionClosedError,
    Event,
    EventSource,
    HandshakeError,
    ReadyState,
    WebSocket,
)
from faye_websocket.http import Request, Response, Server
from faye_websocket.testing import memory_stream_pair

from .helpers import SECOND, kinds, open_fds, read_to_eof, recorded, running
from .wsclient import client_frame, raw_connect

pytestmark = pytest.mark.anyio

#: Bound on every wait of a test.
TIMEOUT = 10 * SECOND
#: A message big enough that a peer which does not read soon blocks the sender.
CHUNK = 64 * 1024
#: Half of a masked client frame announcing 1000 bytes of payload.
HALF_CLIENT_FRAME = client_frame(b"x" * 1000)[:500]
#: Half of an (unmasked) server frame announcing 1000 bytes of payload.
HALF_SERVER_FRAME = b"\x82\x7e" + struct.pack("!H", 1000) + b"x" * 500


# -- leak accounting ---------------------------------------------------------------


@asynccontextmanager
async def no_leaks() -> AsyncIterator[None]:
    """Fail if the block leaves a file descriptor, a task or a warning behind."""
    gc.collect()
    fds, tasks = open_fds(), len(anyio.get_running_tasks())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        with anyio.fail_after(TIMEOUT):
            # asyncio closes a socket one loop iteration after close() and
            # ends tasks a step later: there is no event to wait for.
            while open_fds() > fds or len(anyio.get_running_tasks()) > tasks:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        gc.collect()  # an unclosed socket would warn when collected
    assert open_fds() == fds
    assert len(anyio.get_running_tasks()) == tasks
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


# -- raw sockets -------------------------------------------------------------------


async def tcp(port: int) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port)


async def reset(stream: anyio.abc.AnyByteStream) -> None:
    """Drop the connection with a TCP RST (``SO_LINGER`` 0) instead of a FIN."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await anyio.aclose_forcefully(stream)


async def vanish(stream: anyio.abc.AnyByteStream, how: str) -> None:
    """Hang up with a FIN (``"fin"``) or a reset (``"rst"``)."""
    if how == "rst":
        await reset(stream)
    else:
        await stream.aclose()


def upgrade_request(path: str = "/") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def handshake_request() -> Request:
    return Request.build("GET", "/", {
        "Host": "test", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})


# -- our server, recording every connection -----------------------------------------


@asynccontextmanager
async def serving(server: Server, *, ssl_context: ssl.SSLContext | None = None
                  ) -> AsyncIterator[int]:
    """Run ``server`` for the block (yields its port). On leaving, every
    connection's tasks must end on their own before the server is stopped:
    stopping it would cancel a stuck one and hide it."""
    async with running(server, ssl_context=ssl_context) as port:
        idle = len(anyio.get_running_tasks())
        yield port
        with anyio.fail_after(TIMEOUT):
            while len(anyio.get_running_tasks()) > idle:  # noqa: ASYNC110 (no event)
                await anyio.sleep(0.01)


@dataclass(eq=False)
class Conn:
    """One server-side WebSocket and what happened to it."""

    ws: WebSocket
    stream: anyio.abc.ByteStream
    events: list[Event] = field(default_factory=list)
    #: The handler's scope around ``async with ws``: cancelled by the tests.
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    #: Set by handlers right before the await point under test.
    at_point: anyio.Event = field(default_factory=anyio.Event)
    #: Set by handlers when the await point returned (it must not, if cancelled).
    after_point: bool = False
    error: BaseException | None = None
    done: anyio.Event = field(default_factory=anyio.Event)

    def closes(self) -> list[int | None]:
        return [e.code for e in self.events if e.type == "close"]


Handler = Callable[[Conn], Awaitable[None]]


class WSServer:
    def __init__(self, handler: Handler, options: dict[str, Any]) -> None:
        self.handler = handler
        self.options = options
        self.conns: list[Conn] = []
        self.upgrades = 0
        self._changed = anyio.Event()
        #: ``on_upgrade`` waits for this before answering the handshake.
        self.gate: anyio.Event | None = None

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        self.upgrades += 1
        self._changed.set()
        if self.gate is not None:
            await self.gate.wait()
        conn = Conn(WebSocket(request, stream, body, **self.options), stream)
        for type in ("open", "error", "close"):
            conn.ws.on(type, conn.events.append)
        self.conns.append(conn)
        self._changed.set()
        # The first connection is the one under test; later ones (the
        # "still serving" checks) get an echo.
        handler = self.handler if len(self.conns) == 1 else echo
        try:
            with conn.scope:
                async with conn.ws:
                    await handler(conn)
        except BaseException as exc:
            conn.error = exc
            raise
        finally:
            conn.done.set()

    async def wait_upgrades(self, count: int) -> None:
        while self.upgrades < count:
            self._changed = anyio.Event()
            await self._changed.wait()

    async def conn(self, index: int) -> Conn:
        """The ``index``-th connection, once it exists."""
        while len(self.conns) <= index:
            self._changed = anyio.Event()
            await self._changed.wait()
        return self.conns[index]


@asynccontextmanager
async def ws_server(handler: Handler, *, ssl_context: ssl.SSLContext | None = None,
                    server_options: dict[str, Any] | None = None,
                    **options: Any) -> AsyncIterator[tuple[int, WSServer]]:
    ws_srv = WSServer(handler, options)
    server = Server(on_upgrade=ws_srv.on_upgrade, **(server_options or {}))
    async with serving(server, ssl_context=ssl_context) as port:
        yield port, ws_srv


async def echo(conn: Conn) -> None:
    async for message in conn.ws:
        await conn.ws.send(message)


async def assert_echo(port: int, *, tls: ssl.SSLContext | None = None) -> None:
    """The server still serves: a new client gets its message echoed."""
    scheme = "wss" if tls is not None else "ws"
    async with WebSocket.Client(f"{scheme}://localhost:{port}/", tls=tls) as ws:
        await ws.send("still serving")
        assert await ws.receive() == "still serving"


# -- a raw peer for the client ----------------------------------------------------------


@dataclass(eq=False)
class Peer:
    """A raw server for the client: answers the handshake with wsproto, then
    runs a test's behaviour, then reads until the client hangs up."""

    port: int = 0
    opened: anyio.Event = field(default_factory=anyio.Event)
    #: Peers that must not read wait for this before draining.
    release: anyio.Event = field(default_factory=anyio.Event)
    #: The client closed (or reset) its socket.
    hung_up: anyio.Event = field(default_factory=anyio.Event)
    #: The frames the client sent, as wsproto events.
    received: list[Any] = field(default_factory=list)
    stream: anyio.abc.SocketStream | None = None

    def closes(self) -> list[int]:
        return [e.code for e in self.received if isinstance(e, CloseConnection)]


PeerBehaviour = Callable[[Peer, anyio.abc.SocketStream, WSConnection], Awaitable[None]]


async def drain(peer: Peer, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
    """Read (never answering) until the client hangs up."""
    try:
        while True:
            data = await stream.receive()
            try:
                ws.receive_data(data)
                peer.received.extend(ws.events())
            except (LocalProtocolError, RemoteProtocolError):
                pass
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


@asynccontextmanager
async def ws_peer(behaviour: PeerBehaviour) -> AsyncIterator[Peer]:
    peer = Peer()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        peer.stream = stream
        async with stream:
            ws = WSConnection(ConnectionType.SERVER)
            while True:
                ws.receive_data(await stream.receive())
                events = list(ws.events())
                if any(isinstance(e, WSRequest) for e in events):
                    break
            await stream.send(ws.send(AcceptConnection()))
            peer.opened.set()
            await behaviour(peer, stream, ws)
            await drain(peer, stream, ws)
            peer.hung_up.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    peer.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        yield peer
        tg.cancel_scope.cancel()


@asynccontextmanager
async def raw_server(handle: Callable[[anyio.abc.SocketStream], Awaitable[None]]
                     ) -> AsyncIterator[int]:
    """A TCP server running ``handle`` for each connection; yields its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


async def just_read(peer: Peer, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
    """Read everything and answer nothing (not even a Close)."""


async def read_nothing(peer: Peer, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
    """Read nothing until the test releases the peer."""
    await peer.release.wait()


async def cancel_entering(ws: WebSocket | WebSocket.Client) -> None:
    """Enter ``async with ws`` and cancel once everything is blocked; check
    that the cancellation reached the caller's scope and nothing more ran."""
    entered = False
    scope = anyio.CancelScope()

    async def enter() -> None:
        nonlocal entered
        with scope:
            async with ws:
                entered = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(enter)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
    assert scope.cancelled_caught
    assert not entered


# -- a peer resetting the connection mid-frame ------------------------------------------


async def test_server_peer_reset_mid_frame(caplog: pytest.LogCaptureFixture) -> None:
    async with no_leaks(), ws_server(echo) as (port, server):
        with anyio.fail_after(TIMEOUT):
            stream = await tcp(port)
            c = await raw_connect(stream)
            assert c.accepted is not None
            await c.send("hello")
            assert await c.receive() == "hello"
            await stream.send(HALF_CLIENT_FRAME)
            await anyio.wait_all_tasks_blocked()  # the server has read the half frame
            await reset(stream)
            conn = await server.conn(0)
            await conn.done.wait()
            assert conn.closes() == [1006]
            assert conn.ws.ready_state is ReadyState.CLOSED
            # The handler's ``async for`` ended with the loss.
            assert isinstance(conn.error, ConnectionClosedError) and conn.error.code == 1006
            await assert_echo(port)
    no_errors_logged(caplog)


async def test_client_peer_reset_mid_frame() -> None:
    async def half_frame_then_reset(peer: Peer, stream: anyio.abc.SocketStream,
                                    ws: WSConnection) -> None:
        await stream.receive()  # the client's "go"
        await stream.send(HALF_SERVER_FRAME)
        await peer.release.wait()
        await reset(stream)

    async with no_leaks(), ws_peer(half_frame_then_reset) as peer:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{peer.port}/") as ws:
                events = recorded(ws)
                await ws.send("go")
                await anyio.wait_all_tasks_blocked()  # the client has the half frame
                peer.release.set()
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.receive()
                assert caught.value.code == 1006
                await ws.wait_closed()
                assert kinds(events) == [("close", 1006)]
                assert ws.ready_state is ReadyState.CLOSED
                with pytest.raises(ConnectionClosedError):
                    await ws.send("after")
            await peer.hung_up.wait()


# -- a peer half-closing TCP without a Close frame ----------------------------------------


async def test_server_peer_half_close() -> None:
    async with no_leaks(), ws_server(echo) as (port, server):
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                c = await raw_connect(stream)
                assert c.accepted is not None
                await c.send("hello")
                assert await c.receive() == "hello"
                await stream.send_eof()  # FIN, no Close frame; still reading
                # Our side closes the socket: this peer reads to its end.
                assert await read_to_eof(stream) == b""
            conn = await server.conn(0)
            await conn.done.wait()
            assert conn.closes() == [1006]
            assert conn.ws.ready_state is ReadyState.CLOSED
            await assert_echo(port)


async def test_client_peer_half_close() -> None:
    async def half_close(peer: Peer, stream: anyio.abc.SocketStream,
                         ws: WSConnection) -> None:
        await stream.receive()  # the client's "go"
        await stream.send_eof()

    async with no_leaks(), ws_peer(half_close) as peer:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{peer.port}/") as ws:
                events = recorded(ws)
                await ws.send("go")
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.receive()
                assert caught.value.code == 1006
                await peer.hung_up.wait()  # the client closed its socket
                await ws.wait_closed()
                assert kinds(events) == [("close", 1006)]
            assert peer.closes() == []  # 1006 is never sent


async def test_eventsource_reader_half_close() -> None:
    closed = anyio.Event()
    results: list[bool] = []

    async def on_request(request: Request, response: Response) -> None:
        async with EventSource(request, response, ping=None) as es:
            es.on("close", lambda event: closed.set())
            await es.send("hello")
            await es.wait_closed()
            results.append(await es.send("after"))

    async with no_leaks(), serving(Server(on_request=on_request)) as port:
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                  b"Accept: text/event-stream\r\n\r\n")
                buffer = bytearray()
                while b"data: hello" not in buffer:
                    buffer += await stream.receive()
                await stream.send_eof()
                await closed.wait()
                await read_to_eof(stream)  # the server closes its end
    assert results == [False]


# -- TLS handshake failures ------------------------------------------------------------------


async def plain_http_to_tls(port: int) -> None:
    async with await tcp(port) as stream:
        await stream.send(upgrade_request())
        await read_to_eof(stream)


async def garbage_hello(port: int) -> None:
    async with await tcp(port) as stream:
        await stream.send(b"\x16\x03\x01\x00\x10" + b"\xff" * 16)  # a record, not a hello
        await read_to_eof(stream)


async def silent_tcp(port: int) -> None:
    async with await tcp(port) as stream:
        await read_to_eof(stream)  # the handshake timeout drops it


async def half_hello_then_reset(port: int) -> None:
    stream = await tcp(port)
    await stream.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    await anyio.wait_all_tasks_blocked()
    await reset(stream)


async def untrusted_client(port: int) -> None:
    ws = WebSocket.Client(f"wss://localhost:{port}/")  # the system CAs only
    events = recorded(ws)
    with pytest.raises(ConnectError):  # documented in docs/client.md
        async with ws:
            pytest.fail("connected")
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert ws.ready_state is ReadyState.CLOSED


TLS_FAULTS: dict[str, Callable[[int], Awaitable[None]]] = {
    "plain-http": plain_http_to_tls,
    "garbage-hello": garbage_hello,
    "silent": silent_tcp,
    "half-hello-reset": half_hello_then_reset,
    "untrusted-ca": untrusted_client,
}


@pytest.mark.parametrize("fault", list(TLS_FAULTS))
async def test_tls_handshake_failure_drops_one_connection(
        fault: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture) -> None:
    async with no_leaks():
        async with ws_server(echo, ssl_context=server_context,
                             server_options={"request_timeout": 0.5}) as (port, server):
            with anyio.fail_after(TIMEOUT):
                await TLS_FAULTS[fault](port)
                await assert_echo(port, tls=client_context)
        assert server.upgrades == 1  # only the good client got that far
    no_errors_logged(caplog)


async def test_client_tls_to_a_plain_server_fails_cleanly() -> None:
    async with no_leaks(), ws_server(echo) as (port, server):
        ws = WebSocket.Client(f"wss://127.0.0.1:{port}/")
        events = recorded(ws)
        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
            async with ws:
                pytest.fail("connected")
        assert isinstance(info.value.__cause__, ssl.SSLError)
        assert kinds(events) == [("error", None), ("close", 1006)]
        assert ws.ready_state is ReadyState.CLOSED
        with anyio.fail_after(TIMEOUT):
            await assert_echo(port)


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_client_tls_server_hanging_up_in_the_tls_handshake(
        how: str, client_context: ssl.SSLContext) -> None:
    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()  # the ClientHello
        await vanish(stream, how)

    async with no_leaks(), raw_server(hang_up) as port:
        ws = WebSocket.Client(f"wss://localhost:{port}/", tls=client_context)
        events = recorded(ws)
        # As when a plain server hangs up before answering (docs/client.md).
        with anyio.fail_after(TIMEOUT), pytest.raises(HandshakeError) as caught:
            async with ws:
                pytest.fail("connected")
    assert caught.value.status_code == 0
    assert kinds(events) == [("error", None), ("close", 1006)]


# -- a peer disappearing mid-handshake ------------------------------------------------------


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_server_client_gone_in_the_middle_of_its_request_head(
        how: str, caplog: pytest.LogCaptureFixture) -> None:
    async with no_leaks(), ws_server(echo) as (port, server):
        with anyio.fail_after(TIMEOUT):
            stream = await tcp(port)
            await stream.send(upgrade_request()[:40])
            await anyio.wait_all_tasks_blocked()  # the server has the partial head
            await vanish(stream, how)
            await assert_echo(port)
        assert server.upgrades == 1  # only the good client's
    no_errors_logged(caplog)


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_server_client_gone_before_reading_the_101(
        how: str, caplog: pytest.LogCaptureFixture) -> None:
    async with no_leaks(), ws_server(echo) as (port, server):
        server.gate = anyio.Event()  # hold the 101 until the client is gone
        with anyio.fail_after(TIMEOUT):
            stream = await tcp(port)
            await stream.send(upgrade_request())
            await server.wait_upgrades(1)
            await vanish(stream, how)
            await anyio.wait_all_tasks_blocked()  # the FIN or RST has arrived
            server.gate.set()
            conn = await server.conn(0)
            await conn.done.wait()
            # Whether or not writing the 101 failed, the connection ends once.
            assert conn.closes() == [1006]
            assert conn.ws.ready_state is ReadyState.CLOSED
            # Both raise the same error: the 101 could not be written (a
            # reset seen in time), or the loss came after it.
            assert isinstance(conn.error, ConnectionClosedError) and conn.error.code == 1006
            await assert_echo(port)
    no_errors_logged(caplog)


async def test_server_cancelled_while_the_101_is_blocked() -> None:
    # A memory stream without a buffer: the 101 waits for a reader that never comes.
    async with no_leaks():
        client_end, server_end = memory_stream_pair(max_buffer_size=0)
        ws = WebSocket(handshake_request(), server_end)
        events = recorded(ws)
        async with client_end:
            with anyio.fail_after(TIMEOUT):
                await cancel_entering(ws)
            assert ws.ready_state is ReadyState.CLOSED
            assert kinds(events) == [("close", 1006)]
            await ws.wait_closed()
            with pytest.raises(ConnectionClosedError):
                await ws.send("never")
            with pytest.raises(anyio.EndOfStream):  # the stream was closed
                await client_end.receive()


CLIENT_HANDSHAKE_FAULTS = ["partial-head-fin", "partial-head-rst", "no-answer-rst"]


@pytest.mark.parametrize("fault", CLIENT_HANDSHAKE_FAULTS)
async def test_client_server_gone_mid_handshake(fault: str) -> None:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()  # the request
        if fault.startswith("partial-head"):
            await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs")
            await anyio.wait_all_tasks_blocked()  # the client has the partial head
        await vanish(stream, fault.rpartition("-")[2])

    async with no_leaks(), raw_server(handle) as port:
        ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
        events = recorded(ws)
        with anyio.fail_after(TIMEOUT), pytest.raises(HandshakeError) as caught:
            async with ws:
                pytest.fail("connected")
    assert caught.value.status_code == 0
    assert "connection closed before a response" in str(caught.value)
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert ws.ready_state is ReadyState.CLOSED


# -- readers that stop reading --------------------------------------------------------------

#: What a stalled sender may have pushed into the kernel: the server's send
#: buffer (set to 64 KiB, which Linux doubles) plus the reader's receive
#: buffer (at most 256 KiB here) plus the one message being written, with room.
STALL_BOUND = 1 << 20


def small_send_buffer(stream: anyio.abc.AnyByteStream) -> None:
    """Pin the server socket's send buffer (no autotuning), so the bytes a
    stalled sender got rid of are bounded by a known figure."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)


async def slow_reader(port: int, head: bytes) -> tuple[anyio.abc.SocketStream, bytes]:
    """Connect, send ``head``, read the response head, then stop reading.

    Returns:
        The stream and the response head.
    """
    stream = await tcp(port)
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
    await stream.send(head)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive(1)
    return stream, buffer


class Sender:
    """A loop sending CHUNK-sized messages until a send fails."""

    def __init__(self) -> None:
        self.sent = 0
        self.in_send = False
        self.result: object = None
        self.done = anyio.Event()

    async def stalled(self) -> None:
        """Wait until the loop is blocked inside a send (backpressure)."""
        while True:
            await anyio.wait_all_tasks_blocked()
            if self.in_send and self.sent:
                return
            await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("leave", ["close", "half-close"])
async def test_eventsource_reader_that_stops_reading(leave: str) -> None:
    sender = Sender()
    sources: list[EventSource] = []
    closes: list[str] = []
    data = "x" * CHUNK

    async def on_request(request: Request, response: Response) -> None:
        small_send_buffer(response.stream)
        async with EventSource(request, response, ping=None) as es:
            sources.append(es)
            es.on("close", lambda event: closes.append("close"))
            while True:
                sender.in_send = True
                ok = await es.send(data)
                sender.in_send = False
                if not ok:
                    sender.result = ok
                    break
                sender.sent += 1
        sender.done.set()

    async with no_leaks(), serving(Server(on_request=on_request)) as port:
        with anyio.fail_after(TIMEOUT):
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                reader, head = await slow_reader(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                                 b"Accept: text/event-stream\r\n\r\n")
                await sender.stalled()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            # ``await es.send`` blocks: the server pushed what the socket
            # buffers hold and no more, and kept nothing of it in memory.
            assert sender.sent * CHUNK <= STALL_BOUND
            assert peak < 32 * CHUNK
            assert closes == []
            if leave == "close":
                await reader.aclose()  # unread data: the kernel sends a reset
            else:
                fds = open_fds()
                await reader.send_eof()  # gone, as far as it cares, but never reads
            await sender.done.wait()
            assert sender.result is False  # the documented result once closed
            assert closes == ["close"]
            assert sources[0].ready_state is EventSource.CLOSED
            assert sender.sent * CHUNK <= STALL_BOUND  # over the whole stall
            if leave == "half-close":
                # The server closed its socket, although this reader still
                # reads nothing (a blocked final chunk would hold it).
                while open_fds() >= fds:  # noqa: ASYNC110 (no event for fds)
                    await anyio.sleep(0.01)
                await reader.aclose()


def autotuned_send_bound() -> int:
    """What a stalled sender whose send buffer autotunes may have pushed: the
    kernel's largest send buffer, the reader's receive buffer, one message."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2])
    return wmem_max + STALL_BOUND


@pytest.mark.parametrize("leave", ["reset", "half-close"])
async def test_server_websocket_reader_that_stops_reading(leave: str) -> None:
    sender = Sender()

    async def handler(conn: Conn) -> None:
        small_send_buffer(conn.stream)
        while True:
            sender.in_send = True
            await conn.ws.send(b"x" * CHUNK)
            sender.in_send = False
            sender.sent += 1

    async with no_leaks(), ws_server(handler) as (port, server):
        with anyio.fail_after(TIMEOUT):
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                reader, head = await slow_reader(port, upgrade_request())
                await sender.stalled()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            conn = await server.conn(0)
            ws = conn.ws
            assert sender.sent * CHUNK <= STALL_BOUND
            assert peak < 32 * CHUNK
            # The blocked message counts as buffered: past write_limit
            # (64 KiB), send_nowait refuses rather than queueing.
            assert ws.buffered_amount > CHUNK
            with pytest.raises(anyio.WouldBlock):
                ws.send_nowait(b"one more")
            assert ws.close_code is None  # a stalled peer is not a lost one
            if leave == "reset":
                await reset(reader)
            else:
                await reader.send_eof()
            await conn.done.wait()
            # The waiting send ended with the connection.
            assert isinstance(conn.error, ConnectionClosedError) and conn.error.code == 1006
            assert sender.in_send
            assert conn.closes() == [1006]
            assert ws.ready_state is ReadyState.CLOSED
            if leave == "half-close":
                await read_to_eof(reader)  # the server closed its end
                await reader.aclose()
            await assert_echo(port)


@pytest.mark.parametrize("leave", ["reset", "half-close"])
async def test_client_websocket_peer_that_stops_reading(leave: str) -> None:
    sender = Sender()

    async def stall(peer: Peer, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
        await peer.release.wait()
        if leave == "reset":
            await reset(stream)
        else:
            await stream.send_eof()

    async with no_leaks(), ws_peer(stall) as peer:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{peer.port}/") as ws:
                events = recorded(ws)

                async def send_forever() -> None:
                    try:
                        while True:
                            sender.in_send = True
                            await ws.send(b"x" * CHUNK)
                            sender.in_send = False
                            sender.sent += 1
                    except ConnectionClosedError as exc:
                        sender.result = exc
                    sender.done.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(send_forever)
                    await sender.stalled()
                    assert sender.sent * CHUNK <= autotuned_send_bound()
                    assert ws.buffered_amount > CHUNK
                    with pytest.raises(anyio.WouldBlock):
                        ws.send_nowait("one more")
                    peer.release.set()
                await sender.done.wait()
                # The waiting send ended with the connection.
                assert isinstance(sender.result, ConnectionClosedError)
                assert sender.result.code == 1006 and sender.in_send
                await ws.wait_closed()
                assert kinds(events) == [("close", 1006)]
                assert ws.ready_state is ReadyState.CLOSED
            await peer.hung_up.wait()


# -- cancellation at each await point ------------------------------------------------------


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose listener has a full backlog: a new connect waits for ever
    (Linux drops its SYNs), so the client stays in TCP connect."""
    listener = socket.socket()
    filler = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.settimeout(TIMEOUT)
        filler.connect(listener.getsockname())  # takes the one backlog slot
        yield listener.getsockname()[1]
    finally:
        filler.close()
        listener.close()


async def test_client_cancelled_while_connecting() -> None:
    async with no_leaks():
        with unanswered_port() as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
            events = recorded(ws)
            with anyio.fail_after(TIMEOUT):
                await cancel_entering(ws)
            assert ws.ready_state is ReadyState.CLOSED
            assert kinds(events) == [("close", 1006)]  # documented: no ``error``
            await ws.wait_closed()
            with pytest.raises(ConnectionClosedError):
                await ws.send("never")


async def test_client_open_timeout_while_connecting() -> None:
    async with no_leaks():
        with unanswered_port() as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
            events = recorded(ws)
            with anyio.fail_after(TIMEOUT), pytest.raises(TimeoutError):
                async with ws:
                    pytest.fail("connected")
            assert kinds(events) == [("error", None), ("close", 1006)]


#: Where the caller is when it is cancelled; and the Close codes the peer
#: then sees (none after a send cut in the middle of a frame).
CANCEL_POINTS = {"send": [], "receive": [1001], "close": [1000], "exit": [1000]}


async def at_point(ws: WebSocket | WebSocket.Client, point: str, reached: anyio.Event,
                   stream: anyio.abc.AnyByteStream | None = None) -> None:
    """Block at ``point``: a send the peer does not read, a receive with
    nothing coming, a close the peer does not answer, or the implicit close
    when the block ends (the caller's ``async with`` runs that one)."""
    reached.set()
    if point == "send":
        while True:
            await ws.send(b"x" * CHUNK)
    elif point == "receive":
        await ws.receive()
    elif point == "close":
        await ws.close()


@pytest.mark.parametrize("point", list(CANCEL_POINTS))
async def test_client_cancelled_at(point: str) -> None:
    async with no_leaks(), ws_peer(read_nothing if point == "send" else just_read) as peer:
        ws = WebSocket.Client(f"ws://127.0.0.1:{peer.port}/")
        events = recorded(ws)
        scope = anyio.CancelScope()
        reached = anyio.Event()
        after: list[str] = []

        async def run() -> None:
            with scope:
                async with ws:
                    await at_point(ws, point, reached)
                after.append(point)  # must not run: the cancel reaches our scope

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await reached.wait()
                await anyio.wait_all_tasks_blocked()
                assert ws.close_code is None
                scope.cancel()
            assert scope.cancelled_caught and after == []
            assert ws.ready_state is ReadyState.CLOSED
            assert kinds(events) == [("open", None), ("close", 1006)]
            with pytest.raises(ConnectionClosedError):
                await ws.send("after")
            peer.release.set()
            await peer.hung_up.wait()  # the client's socket is closed
        assert peer.closes() == CANCEL_POINTS[point]


@pytest.mark.parametrize("point", list(CANCEL_POINTS))
async def test_server_cancelled_at(point: str) -> None:
    async def handler(conn: Conn) -> None:
        if point == "send":
            small_send_buffer(conn.stream)
        await at_point(conn.ws, point, conn.at_point)
        if point != "exit":
            conn.after_point = True

    async with no_leaks(), ws_server(handler) as (port, server):
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                c = await raw_connect(stream)
                assert c.accepted is not None
                conn = await server.conn(0)
                await conn.at_point.wait()
                await anyio.wait_all_tasks_blocked()
                assert conn.ws.close_code is None
                conn.scope.cancel()
                await conn.done.wait()
                if point == "send":
                    await read_to_eof(stream)  # frames cut short, then the end
                else:
                    event = await c.next_event()
                    assert isinstance(event, CloseConnection)
                    assert event.code == CANCEL_POINTS[point][0]
                    assert await read_to_eof(stream) == b""  # then the server hangs up
            assert conn.scope.cancelled_caught and not conn.after_point
            assert conn.error is None  # nothing but the cancellation, caught by its scope
            assert conn.closes() == [1006]
            assert conn.ws.ready_state is ReadyState.CLOSED
            await assert_echo(port)


async def test_client_cancelled_receive_loses_nothing() -> None:
    async def late_message(peer: Peer, stream: anyio.abc.SocketStream,
                           ws: WSConnection) -> None:
        await peer.release.wait()
        await stream.send(ws.send(TextMessage("late")))
        while not peer.closes():  # answer the client's Close
            ws.receive_data(await stream.receive())
            peer.received.extend(ws.events())
        await stream.send(ws.send(CloseConnection(1000)))
        await stream.aclose()  # the server closes TCP first (RFC 6455 section 7.1.1)

    async with no_leaks(), ws_peer(late_message) as peer:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{peer.port}/") as ws:
                events = recorded(ws)
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(ws.receive)
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()
                assert scope.cancelled_caught
                assert ws.ready_state is ReadyState.OPEN  # only the receive was cancelled
                peer.release.set()
                assert await ws.receive() == "late"
            assert kinds(events) == [("close", 1000)]
            await peer.hung_up.wait()


async def test_server_cancelled_receive_loses_nothing() -> None:
    receive_scope = anyio.CancelScope()

    async def handler(conn: Conn) -> None:
        with receive_scope:
            conn.at_point.set()
            await conn.ws.receive()
        conn.after_point = True
        await echo(conn)

    async with no_leaks(), ws_server(handler) as (port, server):
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                c = await raw_connect(stream)
                conn = await server.conn(0)
                await conn.at_point.wait()
                await anyio.wait_all_tasks_blocked()
                receive_scope.cancel()
                await c.send("after the cancel")
                assert await c.receive() == "after the cancel"
                assert conn.ws.ready_state is ReadyState.OPEN
                closed = await c.close()
                assert closed is not None and closed.code == 1000
            await conn.done.wait()
        assert receive_scope.cancelled_caught and conn.after_point
        assert conn.closes() == [1000]


def sse_events(raw: bytes) -> tuple[list[str], bool]:
    """The complete blocks (events, the retry field) of a raw chunked
    event-stream response, and whether the body ended properly."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "localhost")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    body = bytearray()
    ended = False
    try:
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                ended = True
                break
    except h11.RemoteProtocolError:
        pass  # the body was cut short
    blocks = bytes(body).split(b"\r\n\r\n")[:-1]  # complete events only
    return [b.decode() for b in blocks], ended


@pytest.mark.parametrize("reader_then", ["stalls", "reads"])
async def test_eventsource_cancelled_while_send_is_blocked(reader_then: str) -> None:
    sender = Sender()
    closes: list[str] = []
    scope = anyio.CancelScope()
    data = "x" * CHUNK

    async def on_request(request: Request, response: Response) -> None:
        small_send_buffer(response.stream)
        with scope:
            async with EventSource(request, response, ping=None, retry=1) as es:
                es.on("close", lambda event: closes.append("close"))
                while True:
                    sender.in_send = True
                    await es.send(data)
                    sender.in_send = False
                    sender.sent += 1
        sender.done.set()

    async with no_leaks(), serving(Server(on_request=on_request)) as port:
        with anyio.fail_after(TIMEOUT):
            reader, head = await slow_reader(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                             b"Accept: text/event-stream\r\n\r\n")
            async with reader:
                await sender.stalled()
                fds = open_fds()
                scope.cancel()
                if reader_then == "reads":
                    raw = head + await read_to_eof(reader)
                await sender.done.wait()
                assert scope.cancelled_caught and sender.in_send
                assert closes == ["close"]
                # The server's socket is closed, even while this reader
                # still reads nothing.
                while open_fds() >= fds:  # noqa: ASYNC110 (no event for fds)
                    await anyio.sleep(0.01)
                if reader_then == "stalls":
                    raw = head + await read_to_eof(reader)
    # What arrived is whole events: the event cut by the cancellation is
    # not completed by the end of the body.
    events, _ = sse_events(raw)
    assert events[0] == "retry: 1000"
    assert events[1:] == [f"data: {data}"] * len(events[1:])


async def test_eventsource_cancelled_while_the_head_is_blocked() -> None:
    # A raw stream without a buffer: the head waits for a reader that never comes.
    async with no_leaks():
        client_end, server_end = memory_stream_pair(max_buffer_size=0)
        request = Request.build("GET", "/", {"Host": "test", "Accept": "text/event-stream"})
        es = EventSource(request, server_end, ping=None)
        events: list[str] = []
        es.on("open", lambda event: events.append("open"))
        es.on("close", lambda event: events.append("close"))
        async with client_end:
            with anyio.fail_after(TIMEOUT):
                entered = False
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:

                        async def enter() -> None:
                            nonlocal entered
                            async with es:
                                entered = True

                        tg.start_soon(enter)
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()
                assert scope.cancelled_caught and not entered
                assert es.ready_state is EventSource.CLOSED
                assert events == ["close"]
                await es.wait_closed()
                assert not await es.send("never")
                with pytest.raises(anyio.EndOfStream):  # the stream was closed
                    await client_end.receive()


async def test_client_connect_form_cancelled_while_waiting_for_the_101() -> None:
    # (``async with`` while waiting for the 101 is in test_client.py.)
    hung_up = anyio.Event()
    requested = anyio.Event()

    async def never_answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # the request
            requested.set()
            await read_to_eof(stream)
            hung_up.set()

    async with no_leaks(), raw_server(never_answer) as port:
        after: list[str] = []
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:

                    async def cancel_when_waiting() -> None:
                        await requested.wait()
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()

                    tg.start_soon(cancel_when_waiting)
                    await WebSocket.Client.connect(tg, f"ws://127.0.0.1:{port}/")
                    after.append("connected")
            assert scope.cancelled_caught and after == []
            await hung_up.wait()  # the client closed its socket
