"""The server-side WebSocket over real loopback sockets and memory streams."""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from wsproto.events import CloseConnection, Ping, Pong

from faye_websocket import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Event,
    HandshakeError,
    PerMessageDeflate,
    ReadyState,
    WebSocket,
)
from faye_websocket.http import Request, Server
from faye_websocket.testing import memory_stream_pair

from .helpers import open_fds, running
from .wsclient import RawClient, client_frame, raw_connect

pytestmark = pytest.mark.anyio

Handler = Callable[[WebSocket], Awaitable[None]]


class Recorder:
    """What the server side saw: its WebSocket and the events it fired."""

    def __init__(self) -> None:
        self.ws: WebSocket | None = None
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.done = anyio.Event()
        #: The caller's scope around ``async with ws``.
        self.scope = anyio.CancelScope()

    def record(self, event: Event) -> None:
        self.events.append(event)

    def of(self, type: str) -> list[Event]:
        return [e for e in self.events if e.type == type]


@asynccontextmanager
async def serving(handler: Handler, *, protocols: list[str] | None = None,
                  **options: Any) -> AsyncIterator[tuple[int, Recorder]]:
    recorder = Recorder()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        ws = WebSocket(request, stream, body, protocols, **options)
        recorder.ws = ws
        for type in ("open", "error", "close"):
            ws.on(type, recorder.record)
        recorder.scope = anyio.CancelScope()  # the latest connection's
        try:
            with recorder.scope:
                async with ws:
                    await handler(ws)
        except BaseException as exc:
            recorder.error = exc
            raise
        finally:
            recorder.done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        yield port, recorder


@asynccontextmanager
async def client(port: int, **kwargs: Any) -> AsyncIterator[RawClient]:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    async with stream:
        yield await raw_connect(stream, **kwargs)


async def answer_close(c: RawClient) -> CloseConnection:
    """Wait for the server's Close and answer it."""
    while True:
        event = await c.next_event()
        if isinstance(event, CloseConnection):
            await c.send_event(event.response())
            return event
        assert event is not None, "connection dropped before the Close"


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


# -- opening -------------------------------------------------------------------


async def test_open_attributes_and_subprotocol() -> None:
    async with serving(echo, protocols=["irc", "xmpp"]) as (port, rec), \
            client(port, path="/chat?room=1", subprotocols=["xmpp", "irc"]) as c:
        assert c.accepted is not None and c.accepted.subprotocol == "xmpp"
        with anyio.fail_after(5):
            await c.send("hi")
            assert await c.receive() == "hi"
        ws = rec.ws
        assert ws is not None
        assert ws.protocol == "xmpp"
        assert ws.version == "hybi-13"
        assert ws.url == "ws://localhost/chat?room=1"
        assert ws.ready_state is ReadyState.OPEN == WebSocket.OPEN
        assert [e.type for e in rec.events] == ["open"]


async def test_failed_handshake_answers_400_and_raises() -> None:
    async with serving(echo) as (port, rec):
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                  b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
                response = b""
                try:
                    while True:
                        response += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
            await rec.done.wait()
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert response.endswith(b"Missing or invalid Sec-WebSocket-Key header")
        assert isinstance(rec.error, HandshakeError) and rec.error.status_code == 400
        assert [(e.type, e.code) for e in rec.events] == [("error", None), ("close", 1002)]


# -- messages ------------------------------------------------------------------


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_echo_sizes(deflate: bool) -> None:
    options: dict[str, Any] = {"extensions": [PerMessageDeflate()]} if deflate else {}
    async with serving(echo, **options) as (port, rec), client(port, deflate=deflate) as c:
        assert rec.ws is not None
        assert ("permessage-deflate" in rec.ws.extensions) is deflate
        with anyio.fail_after(20):
            for size in (0, 125, 126, 65535, 65536, 1 << 20):
                payload = os.urandom(size)
                await c.send(payload)
                assert await c.receive() == payload
                text = "é" * (size // 2)
                await c.send(text)
                assert await c.receive() == text


async def test_send_rejects_other_types() -> None:
    async def handler(ws: WebSocket) -> None:
        with pytest.raises(TypeError):
            await ws.send(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ws.send_nowait(["x"])  # type: ignore[arg-type]
        await ws.send(bytearray(b"ba"))
        await ws.send(memoryview(b"mv"))

    async with serving(handler) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            assert await c.receive() == b"ba"
            assert await c.receive() == b"mv"
            await answer_close(c)
            await rec.done.wait()
        assert rec.error is None


async def test_concurrent_senders_never_interleave() -> None:
    async def handler(ws: WebSocket) -> None:
        async def sender(n: int) -> None:
            for i in range(100):
                if i % 2:
                    await ws.send(f"{n}:{i}:" + "x" * (i * 97))
                else:
                    ws.send_nowait(f"{n}:{i}:" + "x" * (i * 97))
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(sender, n)
        await ws.wait_closed()

    async with serving(handler, write_limit=1 << 30) as (port, _rec), client(port) as c:
        seen: dict[int, list[int]] = {n: [] for n in range(10)}
        with anyio.fail_after(20):
            for _ in range(1000):
                message = await c.receive()
                assert isinstance(message, str)
                n, i, body = message.split(":")
                assert body == "x" * (int(i) * 97)
                seen[int(n)].append(int(i))
            await c.close()
        assert all(order == list(range(100)) for order in seen.values())


async def test_message_listeners_take_messages_instead_of_the_queue() -> None:
    got: list[str | bytes] = []

    async def handler(ws: WebSocket) -> None:
        async def on_message(event: Event) -> None:
            assert event.data is not None
            got.append(event.data)
            await ws.send(f"ack {event.data!r}")

        ws.onmessage = on_message
        await ws.wait_closed()

    async with serving(handler) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            await c.send("a")
            await c.send(b"b")
            assert await c.receive() == "ack 'a'"
            assert await c.receive() == "ack b'b'"
            await c.close(1000, "done")
            await rec.done.wait()
        assert got == ["a", b"b"]
        assert [(e.type, e.code, e.reason) for e in rec.of("close")] == [("close", 1000, "done")]


async def test_listener_errors_are_logged_and_do_not_break_the_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    async def handler(ws: WebSocket) -> None:
        def boom(event: Event) -> None:
            raise RuntimeError("listener bug")

        ws.on("message", boom)
        ws.on("message", lambda event: ws.send_nowait(event.data or ""))
        await ws.wait_closed()

    async with serving(handler) as (port, _rec), client(port) as c:
        with anyio.fail_after(5):
            await c.send("still here")
            assert await c.receive() == "still here"
    assert "listener bug" in caplog.text


async def test_max_length_closes_1009() -> None:
    async with serving(echo, max_length=1000) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            await c.send("x" * 1000)
            assert await c.receive() == "x" * 1000
            await c.send("x" * 1001)
            with pytest.raises(anyio.EndOfStream):
                await c.receive()
            assert c.closed is not None and c.closed.code == 1009
            await c.stream.aclose()  # the server half-closed: hang up, as browsers do
            await rec.done.wait()
        assert [e.code for e in rec.of("close")] == [1009]
        assert rec.of("error")[0].message == "message larger than 1000 bytes"


async def test_deflate_bomb_closes_1009() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\0" * (32 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    async with serving(echo, max_length=1 << 20, extensions=[PerMessageDeflate()]) \
            as (port, rec), client(port, deflate=True) as c:
        with anyio.fail_after(10):
            assert len(bomb) < 1 << 20  # small on the wire, 32 MiB inflated
            key = os.urandom(4)
            masked = bytes(b ^ key[i % 4] for i, b in enumerate(bomb))
            length = (b"\xfe" + struct.pack("!H", len(bomb)) if len(bomb) < 65536
                      else b"\xff" + struct.pack("!Q", len(bomb)))
            await c.stream.send(b"\xc2" + length + key + masked)
            with pytest.raises(anyio.EndOfStream):
                await c.receive()
            await c.stream.aclose()
            await rec.done.wait()
        assert c.closed is not None and c.closed.code == 1009
        assert [e.code for e in rec.of("close")] == [1009]


async def test_protocol_error_fires_error_then_close_1002() -> None:
    async with serving(echo) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            await c.stream.send(b"\x83\x80" + os.urandom(4))  # reserved opcode 3
            with pytest.raises(anyio.EndOfStream):
                await c.receive()
            await c.stream.aclose()
            await rec.done.wait()
        assert c.closed is not None and c.closed.code == 1002
        assert [(e.type, e.code) for e in rec.events] == [
            ("open", None), ("error", None), ("close", 1002)]
        assert isinstance(rec.error, ConnectionClosedError) and rec.error.code == 1002


# -- ping / pong ---------------------------------------------------------------


async def test_ping_returns_latency_and_callbacks_fire() -> None:
    calls: list[str] = []

    async def handler(ws: WebSocket) -> None:
        latency = await ws.ping("hello")
        assert latency >= 0 and ws.latency == latency
        done = anyio.Event()

        async def pong_callback() -> None:
            calls.append("async")
            done.set()

        ws.ping_nowait("one", lambda: calls.append("sync"))
        ws.ping_nowait("one", pong_callback)  # same payload: both are kept
        await done.wait()
        await ws.send("pinged")
        await ws.wait_closed()

    async with serving(handler) as (port, _rec), client(port) as c:
        with anyio.fail_after(5):
            assert await c.receive() == "pinged"  # RawClient answers pings
            await c.close()
    assert calls == ["sync", "async"]


async def test_incoming_pings_are_answered() -> None:
    async with serving(echo) as (port, _rec), client(port) as c:
        with anyio.fail_after(5):
            await c.send_event(Ping(payload=b"are you there"))
            event = await c.next_event()
            assert isinstance(event, Pong) and event.payload == b"are you there"


async def test_keepalive_pings_and_measures_latency() -> None:
    async def handler(ws: WebSocket) -> None:
        while ws.latency is None:  # noqa: ASYNC110 (polling an attribute is the point)
            await anyio.sleep(0.01)
        await ws.send("measured")
        await ws.wait_closed()

    async with serving(handler, ping=0.02) as (port, _rec), client(port) as c:
        with anyio.fail_after(5):
            assert await c.receive() == "measured"


async def test_keepalive_timeout_closes_1011() -> None:
    async with serving(echo, ping=0.05, ping_timeout=0.05) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            # Never answer: read raw events without replying to pings.
            while True:
                event = await c.next_event()
                if event is None or isinstance(event, CloseConnection):
                    break
            await rec.done.wait()
        assert isinstance(event, CloseConnection) and event.code == 1011
        assert [e.code for e in rec.of("close")] == [1011]
        assert rec.of("error")[0].message == "keepalive ping timeout"


# -- closing -------------------------------------------------------------------


async def test_server_close_with_code_and_reason() -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.close(4001, "bye")
        assert ws.ready_state is ReadyState.CLOSED
        assert (ws.close_code, ws.close_reason) == (4001, "bye")

    async with serving(handler) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            event = await c.next_event()
            assert isinstance(event, CloseConnection) and (event.code, event.reason) == (4001,
                                                                                        "bye")
            await c.send_event(event.response())
            await rec.done.wait()
        assert rec.error is None
        assert [(e.code, e.reason) for e in rec.of("close")] == [(4001, "bye")]


async def test_client_close_ends_iteration_quietly() -> None:
    async with serving(echo) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            reply = await c.close(1000, "see you")
            await rec.done.wait()
        assert reply is not None and reply.code == 1000
        assert rec.error is None
        assert [(e.code, e.reason) for e in rec.of("close")] == [(1000, "see you")]
        assert rec.ws is not None
        with pytest.raises(ConnectionClosedOK):
            await rec.ws.send("too late")
        with pytest.raises(ConnectionClosedOK):
            await rec.ws.receive()


async def test_client_error_close_raises_from_iteration() -> None:
    async with serving(echo) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            await c.close(4500, "app error")
            await rec.done.wait()
        assert isinstance(rec.error, ConnectionClosedError)
        assert (rec.error.code, rec.error.reason) == (4500, "app error")


@pytest.mark.parametrize("code", [999, 1002, 1004, 1005, 1006, 1015, 2999, 5000])
async def test_invalid_close_codes_are_refused(code: int) -> None:
    async def handler(ws: WebSocket) -> None:
        with pytest.raises(ValueError):
            await ws.close(code)
        with pytest.raises(ValueError):
            await ws.close(1000, "x" * 124)
        await ws.close(1001, "going")

    async with serving(handler) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            assert await c.close() is not None
            await rec.done.wait()
        assert rec.error is None


async def test_peer_vanishing_fires_close_1006() -> None:
    async with serving(echo) as (port, rec):
        with anyio.fail_after(5):
            async with client(port) as c:
                await c.send("hi")
                assert await c.receive() == "hi"
            await rec.done.wait()
        assert [(e.code, e.reason) for e in rec.of("close")] == [(1006, "")]
        assert isinstance(rec.error, ConnectionClosedError) and rec.error.code == 1006


async def test_close_timeout_aborts_with_1006() -> None:
    async def handler(ws: WebSocket) -> None:
        with anyio.fail_after(5):
            await ws.close(1000)

    async with serving(handler, close_timeout=0.1) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            event = await c.next_event()  # the Close, never answered
            assert isinstance(event, CloseConnection)
            await rec.done.wait()
        assert [e.code for e in rec.of("close")] == [1006]


async def test_messages_after_our_close_are_delivered() -> None:
    received: list[str | bytes] = []

    async def handler(ws: WebSocket) -> None:
        ws.close_nowait(1000, "done")
        received.extend([message async for message in ws])  # delivered while closing

    async with serving(handler) as (port, rec), client(port) as c:
        with anyio.fail_after(5):
            event = await c.next_event()
            assert isinstance(event, CloseConnection)
            # The peer sends its last messages, then answers the Close.
            await c.stream.send(client_frame("late 1") + client_frame("late 2"))
            await c.send_event(event.response())
            await rec.done.wait()
        assert received == ["late 1", "late 2"]
        assert rec.error is None


# -- memory streams: backpressure, buffering, cancellation -----------------------


def handshake_request() -> Request:
    return Request.build("GET", "/", {
        "Host": "test", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})


async def memory_client(stream: anyio.abc.AnyByteStream) -> RawClient:
    from wsproto.connection import Connection, ConnectionType

    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive()
    assert head.startswith(b"HTTP/1.1 101")
    rest = head.partition(b"\r\n\r\n")[2]
    conn = Connection(ConnectionType.CLIENT, trailing_data=rest)
    return RawClient(stream, conn)  # type: ignore[arg-type]


async def test_full_queue_stops_reading_the_socket() -> None:
    client_end, server_end = memory_stream_pair(max_buffer_size=1)
    async with client_end, WebSocket(handshake_request(), server_end, max_queue=2) as ws:
        c = await memory_client(client_end)
        sent = 0

        async def flood() -> None:
            nonlocal sent
            for i in range(50):
                await c.send(f"m{i}")
                sent += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            with anyio.fail_after(5):
                await anyio.wait_all_tasks_blocked()
            stalled_at = sent
            assert stalled_at < 10  # queue (2) + one in the reader + stream buffer
            with anyio.fail_after(5):
                for i in range(50):
                    assert await ws.receive() == f"m{i}"
        assert stalled_at < sent == 50
        ws.close_nowait()
        with anyio.fail_after(5):
            event = await c.next_event()
            assert isinstance(event, CloseConnection)
            await c.send_event(event.response())


async def test_send_nowait_raises_would_block_past_the_write_limit() -> None:
    client_end, server_end = memory_stream_pair(max_buffer_size=1)
    async with client_end, WebSocket(handshake_request(), server_end, write_limit=1000,
                                     close_timeout=0.1) as ws:
        await memory_client(client_end)  # reads the 101, then stops reading
        ws.send_nowait("x" * 600)
        ws.send_nowait("x" * 600)  # under the mark when queued
        assert ws.buffered_amount >= 1200
        with pytest.raises(anyio.WouldBlock):
            ws.send_nowait("x")
    assert ws.ready_state is ReadyState.CLOSED


async def test_cancelling_the_caller_closes_the_socket_and_leaks_nothing() -> None:
    started = anyio.Event()
    outcome: list[str] = []

    async def handler(ws: WebSocket) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    before = open_fds()
    async with serving(handler) as (port, rec):
        async with client(port) as c:
            with anyio.fail_after(5):
                await started.wait()
                rec.scope.cancel()  # cancel the code that owns the WebSocket
                event = await c.next_event()
                assert isinstance(event, CloseConnection) and event.code == 1001
                await rec.done.wait()
        assert outcome == ["cancelled"]
        assert rec.ws is not None and rec.ws.ready_state is ReadyState.CLOSED
        assert [e.code for e in rec.of("close")] == [1006]
        with pytest.raises(ConnectionClosedError):
            await rec.ws.send("after")
    with anyio.fail_after(5):
        while open_fds() > before:  # noqa: ASYNC110 (no event for fds)
            await anyio.sleep(0.01)


async def test_tls_connection_has_a_wss_url(server_context: Any, client_context: Any) -> None:
    recorder = Recorder()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body) as ws:
            recorder.ws = ws
            await echo(ws)

    async with running(Server(on_upgrade=on_upgrade), ssl_context=server_context) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port, tls=True,
                                             ssl_context=client_context,
                                             tls_hostname="localhost")
            async with stream:
                c = await raw_connect(stream, host=f"localhost:{port}")
                await c.send("secure")
                assert await c.receive() == "secure"
                assert recorder.ws is not None
                assert recorder.ws.url == f"wss://localhost:{port}/"
                await c.close()


async def test_tls_peer_leaving_while_a_write_is_blocked_closes_1006(
        server_context: Any, client_context: Any) -> None:
    # The peer reads nothing, so the server's write blocks inside the TLS
    # transport; then the peer resets the connection. The reader sees the
    # reset first, and a graceful TLS close would need the transport the
    # blocked write holds (for its close_notify): the connection must be
    # dropped instead, with close 1006, and nothing else raised.
    recorder = Recorder()
    writing = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ws = WebSocket(request, stream, body)
        ws.on("close", recorder.record)
        try:
            async with ws:
                recorder.ws = ws
                writing.set()
                await ws.send(b"x" * 2**20)  # more than the socket buffers hold
        except BaseException as exc:
            recorder.error = exc
        finally:
            recorder.done.set()

    async with running(Server(on_upgrade=on_upgrade), ssl_context=server_context) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port, ssl_context=client_context,
                                             tls_hostname="localhost",
                                             tls_standard_compatible=False)
            async with stream:
                raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                await raw_connect(stream, host=f"localhost:{port}")
                await writing.wait()
                assert recorder.ws is not None
                while recorder.ws.buffered_amount == 0:  # noqa: ASYNC110 (no event for it)
                    await anyio.sleep(0.01)
                await anyio.wait_all_tasks_blocked()
                assert recorder.ws.buffered_amount > 0  # the write is stuck
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                await anyio.aclose_forcefully(stream)  # RST
                await recorder.done.wait()
    assert isinstance(recorder.error, ConnectionClosedError), repr(recorder.error)
    assert [e.code for e in recorder.of("close")] == [1006]


async def test_forwarded_proto_makes_the_url_wss() -> None:
    request = Request.build("GET", "/x", {**dict(handshake_request().headers),
                                          "X-Forwarded-Proto": "https"})
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        assert WebSocket(request, server_end).url == "wss://test/x"


async def test_user_headers_cannot_override_the_protocol() -> None:
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        with pytest.raises(ValueError):
            WebSocket(handshake_request(), server_end, headers={"Upgrade": "nope"})
        with pytest.raises(ValueError):
            WebSocket(handshake_request(), server_end, headers={"X-Evil": "a\r\nSet-Cookie: x"})


def test_is_websocket() -> None:
    assert WebSocket.is_websocket(handshake_request())
    assert not WebSocket.is_websocket(Request.build("GET", "/", {"Host": "x"}))


async def test_closed_error_carries_code() -> None:
    exc = ConnectionClosedError(1006, "")
    assert isinstance(exc, ConnectionClosed) and isinstance(exc, anyio.BrokenResourceError)
    assert (exc.code, exc.reason) == (1006, "")


# -- limits ------------------------------------------------------------------------


async def test_allowed_origins_refuses_other_origins_with_403() -> None:
    async with serving(echo, allowed_origins=["https://good.example"]) as (port, rec):
        with anyio.fail_after(5):
            async with client(port, extra_headers=[(b"Origin", b"https://good.example")]) as c:
                assert c.accepted is not None
                await c.close()
            async with client(port, extra_headers=[(b"Origin", b"https://evil.example")]) as c:
                assert c.rejected is not None and c.rejected.status_code == 403
                assert c.reject_body == b"Origin not allowed"
            async with client(port) as c:  # no Origin at all
                assert c.rejected is not None and c.rejected.status_code == 403


async def test_max_connections_answers_503_and_keeps_serving() -> None:
    release = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body) as ws:
            await release.wait()
            await ws.send("served")

    async with running(Server(on_upgrade=on_upgrade, max_connections=1)) as port:
        with anyio.fail_after(5):
            async with client(port) as first:
                assert first.accepted is not None
                extra = await anyio.connect_tcp("127.0.0.1", port)
                async with extra:
                    await extra.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    response = b""
                    try:
                        while True:
                            response += await extra.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        pass
                assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
                release.set()
                assert await first.receive() == "served"


# -- memory bounds against hostile peers (issue 14) -------------------------------


@pytest.mark.parametrize(("text", "queued"), [
    ("a" * 999, 4),  # ASCII: as many as max_queue
    # 999 bytes of UTF-8, ~4 KB as a str: queued as its UTF-8 (1,032 bytes
    # with the object's header), decoded when taken, so 3 fit in 4,000.
    ("\U0001f600" + "a" * 995, 3),
])
async def test_queued_text_is_bounded_by_the_memory_it_takes(text: str, queued: int) -> None:
    # One astral character makes CPython store a str at 4 bytes per
    # character: max_queue=4 messages of 1000 UTF-8 bytes used to hold ~16 KB.
    # The queue counts what messages take in memory, and holds text that is
    # not ASCII as the UTF-8 it came in.
    started = anyio.Event()
    proceed = anyio.Event()
    at_once: list[int] = []
    taken: list[str | bytes] = []
    all_taken = anyio.Event()

    async def slow_reader(ws: WebSocket) -> None:
        started.set()
        await proceed.wait()
        while True:
            try:
                taken.append(ws.receive_nowait())  # only what is queued now
            except anyio.WouldBlock:
                break
        at_once.append(len(taken))
        taken.extend([message async for message in ws])
        all_taken.set()

    async with serving(slow_reader, max_queue=4, max_length=1000) as (port, rec), \
            client(port) as c:
        with anyio.fail_after(10):
            await started.wait()
            for _ in range(8):
                await c.send(text)
            await anyio.sleep(0.3)  # room for the reader to fill the queue
            proceed.set()
            await c.close()
            await all_taken.wait()
    assert taken == [text] * 8
    assert at_once == [queued]
    assert sys.getsizeof(text) > 4 * 1000 or text.isascii()


async def test_keepalive_with_an_infinite_timeout_keeps_one_unanswered_ping() -> None:
    # A peer that never answers used to leave one entry per interval for ever.
    unanswered: list[int] = []
    looked = anyio.Event()

    async def idle(ws: WebSocket) -> None:
        await anyio.sleep(0.6)  # ~12 pings the client never answers
        unanswered.append(len(ws._pings))
        looked.set()

    async with serving(idle, ping=0.05, ping_timeout=float("inf")) as (port, rec):
        async with client(port):
            with anyio.fail_after(10):
                await looked.wait()
        with anyio.fail_after(10):
            await rec.done.wait()
    assert unanswered == [1]


async def test_ping_nowait_refuses_past_64_unanswered_pings() -> None:
    async def pinger(ws: WebSocket) -> None:
        for i in range(64):
            ws.ping_nowait(str(i))
        with pytest.raises(anyio.WouldBlock):
            ws.ping_nowait("one too many")
        await ws.ping("last")  # awaited pings are bounded by their tasks
        ws.ping_nowait("room again")  # the pong answered every earlier ping
        finished.set()

    finished = anyio.Event()
    async with serving(pinger) as (port, rec), client(port) as c:
        with anyio.fail_after(10):
            while True:
                event = await c.next_event()
                assert isinstance(event, Ping)
                if event.payload == b"last":
                    await c.send_event(event.response())
                    break
            await finished.wait()
            await answer_close(c)
            await rec.done.wait()
    assert rec.error is None


async def test_an_application_os_error_closes_1011_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    # An OSError raised by the handler (here, opening a missing file) is the
    # application's error: Close 1011 and an ERROR log line, not a quiet
    # "connection lost".
    async def handler(ws: WebSocket) -> None:
        await ws.receive()
        open("/nonexistent/faye-websocket-test")  # noqa: ASYNC230

    async with serving(handler) as (port, rec), client(port) as c:
        with anyio.fail_after(10):
            await c.send("go")
            closed = await answer_close(c)
            await rec.done.wait()
    assert closed.code == 1011
    assert isinstance(rec.error, FileNotFoundError)
    assert any(r.levelno == logging.ERROR and r.exc_info is not None
               and isinstance(r.exc_info[1], FileNotFoundError) for r in caplog.records)


# -- refusing an upgrade ----------------------------------------------------------


@pytest.mark.parametrize(("status", "headers", "body"), [
    (401, {"WWW-Authenticate": 'Bearer realm="chat"'}, b"log in first"),
    (403, None, "forbidden: caf\u00e9"),
    (404, [("Content-Type", "application/json")], b'{"error": "no such room"}'),
    (429, {"Retry-After": "30"}, b""),
])
async def test_reject_refuses_the_upgrade_with_any_status(
        status: int, headers: Any, body: bytes | str) -> None:
    events: list[Event] = []
    done = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, raw: bytes) -> None:
        ws = WebSocket(request, stream, raw)
        for type in ("open", "error", "close"):
            ws.on(type, events.append)
        await ws.reject(status, headers, body)
        assert ws.ready_state is ReadyState.CLOSED
        with pytest.raises(RuntimeError, match="entered once"):
            async with ws:
                pass
        done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            with pytest.raises(HandshakeError) as info:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/"):
                    pytest.fail("connected")
            await done.wait()
    error = info.value
    raw = body.encode() if isinstance(body, str) else body
    assert (error.status_code, error.body) == (status, raw)
    sent = {name.lower(): value for name, value in error.headers}
    for name, value in (headers.items() if isinstance(headers, dict) else headers or []):
        assert sent[name.lower()] == value
    assert sent["content-type"] == ("application/json" if status == 404
                                    else "text/plain; charset=utf-8")
    assert [(e.type, e.code) for e in events] == [("close", 1006)]
    assert events[0].reason == f"upgrade refused with HTTP {status}"


async def test_reject_checks_its_arguments_and_state() -> None:
    client_end, server_end = memory_stream_pair()
    async with client_end:
        ws = WebSocket(handshake_request(), server_end)
        with pytest.raises(ValueError, match="300 to 599"):
            await ws.reject(200)
        with pytest.raises(ValueError, match="invalid value for header"):
            await ws.reject(400, {"X-Bad": "a\r\nb"})
        with anyio.fail_after(5):
            await ws.reject(400, body=b"no")
            response = await client_end.receive()
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert response.endswith(b"\r\n\r\nno")
        with pytest.raises(RuntimeError, match="not been entered"):
            await ws.reject(403)
