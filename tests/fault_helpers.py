"""Peers and checks shared by the fault tests (``test_faults*.py``).

Leak accounting (:func:`no_leaks`), raw sockets, our server recording every
connection (:func:`ws_server`), and a raw peer for the client
(:func:`ws_peer`). The peers are written with raw sockets and wsproto, so a
fault can be placed exactly: half a frame, a TCP reset (``SO_LINGER`` 0), a
FIN with no Close frame, a peer that never reads.
"""

from __future__ import annotations

import gc
import logging
import socket
import ssl
import struct
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection
from wsproto.events import Request as WSRequest
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from faye_websocket import Event, WebSocket
from faye_websocket.http import Request, Server

from .helpers import SECOND, open_fds, running

#: Bound on every wait of a test.
TIMEOUT = 10 * SECOND
#: A message big enough that a peer which does not read soon blocks the sender.
CHUNK = 64 * 1024


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
