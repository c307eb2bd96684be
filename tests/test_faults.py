"""Peers that break the connection, over real loopback sockets, on both
anyio backends.

Peers that reset the connection mid-frame, half-close it, fail the TLS
handshake or vanish in the middle of the opening handshake. Each test
checks that the one connection ends with the right event, that the server
goes on serving, and that no task, socket, file descriptor or warning is
left behind (:func:`~tests.fault_helpers.no_leaks`). Readers that stop
reading are in ``test_faults_stalled.py``, cancellation at each await point
in ``test_faults_cancellation.py``.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from wsproto import WSConnection

from faye_websocket import (
    ConnectError,
    ConnectionClosedError,
    EventSource,
    HandshakeError,
    ReadyState,
    WebSocket,
)
from faye_websocket.http import Request, Response, Server
from faye_websocket.testing import memory_stream_pair

from .fault_helpers import (
    TIMEOUT,
    Peer,
    assert_echo,
    cancel_entering,
    echo,
    handshake_request,
    no_errors_logged,
    no_leaks,
    reset,
    serving,
    tcp,
    upgrade_request,
    vanish,
    ws_peer,
    ws_server,
)
from .helpers import kinds, raw_server, read_to_eof, recorded
from .wsclient import client_frame, raw_connect

pytestmark = pytest.mark.anyio

#: Half of a masked client frame announcing 1000 bytes of payload.
HALF_CLIENT_FRAME = client_frame(b"x" * 1000)[:500]
#: Half of an (unmasked) server frame announcing 1000 bytes of payload.
HALF_SERVER_FRAME = b"\x82\x7e" + struct.pack("!H", 1000) + b"x" * 500


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
