"""SocketTransport: the raw socket under anyio's TCP and UNIX streams on
trio (asyncio keeps AsyncioTransport), with real loopback sockets.

What it must do better than StreamTransport, which it replaces there: a
drain cancelled while it waits leaves the frames queued, whole, and the
transport usable; and what it must do as well: a peer that resets, or a
close from another task, ends every waiter.
"""

from __future__ import annotations

import random
import socket
import ssl
from pathlib import Path

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from anyio.streams.tls import TLSStream

from faye_websocket import ConnectionClosedError, WebSocket
from faye_websocket._runtime.transport import (
    AsyncioTransport,
    SocketTransport,
    StreamTransport,
    Transport,
    TransportLost,
    transport_for,
)
from faye_websocket.http import Request, Server

from .fault_helpers import Conn, no_leaks, reset, tcp, ws_server
from .helpers import SECOND, running, tcp_pair
from .wsclient import raw_connect

pytestmark = pytest.mark.anyio

#: Bound on every wait of a test.
TIMEOUT = 20 * SECOND
#: A message larger than what loopback's socket buffers take in one call.
BIG = 8 * 2**20


def pattern(size: int, seed: int) -> bytes:
    """``size`` bytes that differ from any other seed's (a frame cut,
    dropped or swapped shows)."""
    return random.Random(seed).randbytes(size)


async def quiet_pair() -> tuple[anyio.abc.SocketStream, socket.socket]:
    """A loopback connection whose far end is a plain non-blocking socket,
    which reads nothing until asked (an anyio stream on asyncio would read
    ahead), with the kernel's buffers fixed small (no autotuning)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = await anyio.connect_tcp("127.0.0.1", listener.getsockname()[1])
        peer, _ = listener.accept()  # connected already: this does not block
    peer.setblocking(False)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    return client, peer


async def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``, or fewer if it ends first."""
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            await anyio.wait_readable(sock)
            continue
        if not chunk:
            break
        data += chunk
    return bytes(data)


def fill(transport: Transport[bytes]) -> bytes:
    """Write until a MiB waits beyond what the kernel takes (several chunks
    per write, one ending mid-way in the kernel's buffer); returns what was
    written."""
    written = bytearray()
    seed = 0
    while transport.buffered < 2**20:
        seed += 1
        chunk = pattern(200_000, seed)
        transport.write([chunk[:1000], chunk[1000:150_000], chunk[150_000:]])
        written += chunk
    return bytes(written)


async def test_transport_for_each_stream(anyio_backend: str, tmp_path: Path,
                                         server_context: ssl.SSLContext,
                                         client_context: ssl.SSLContext) -> None:
    """Plain TCP and UNIX sockets get SocketTransport on trio, AsyncioTransport
    (TCP) on asyncio; TLS keeps StreamTransport everywhere."""
    trio = anyio_backend == "trio"
    with anyio.fail_after(TIMEOUT):
        client, accepted = await tcp_pair()
        async with client, accepted:
            assert type(transport_for(client)) is (SocketTransport if trio
                                                   else AsyncioTransport)
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: TLSStream.wrap(accepted, server_side=True,
                                                     ssl_context=server_context))
                tls = await TLSStream.wrap(client, hostname="localhost",
                                           ssl_context=client_context)
            assert type(transport_for(tls)) is StreamTransport

        path = str(tmp_path / "sock")
        async with await anyio.create_unix_listener(path) as listener:
            async with await anyio.connect_unix(path) as unix, await listener.accept():
                assert type(transport_for(unix)) is (SocketTransport if trio
                                                     else StreamTransport)


async def test_large_messages_both_ways(anyio_backend: str) -> None:
    """8 MiB each way, while the client's application lets its messages
    wait: the kernel takes part of each write, the rest waits in the
    transport's queue, and everything arrives intact."""
    servers: list[WebSocket] = []

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body, max_length=BIG) as ws:
            servers.append(ws)
            async for message in ws:
                await ws.send(message)

    most = {"client": 0, "server": 0}

    async def sample(ws: WebSocket.Client) -> None:
        """Note the most each side's transport held, at every scheduler pass."""
        while True:
            sides: list[tuple[str, WebSocket | WebSocket.Client]] = [("client", ws)]
            sides += [("server", server) for server in servers]
            for side, each in sides:
                transport = each._transport
                if transport is not None:
                    most[side] = max(most[side], transport.buffered)
            await anyio.lowlevel.checkpoint()

    one, two = pattern(BIG, 1), pattern(BIG, 2)
    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/", max_length=BIG) as ws, \
                    anyio.create_task_group() as tg:
                expected = SocketTransport if anyio_backend == "trio" else AsyncioTransport
                assert type(ws._transport) is expected
                tg.start_soon(sample, ws)
                await ws.send(one)
                await ws.send(two)
                # The first echo fills our queue; the second waits for us.
                await anyio.sleep(0.2 * SECOND)
                assert await ws.receive() == one
                assert await ws.receive() == two
                assert type(servers[0]._transport) is expected
                tg.cancel_scope.cancel()
    assert most["client"] > 0 and most["server"] > 0


async def test_a_cancelled_drain_leaves_the_frames_whole(anyio_backend: str) -> None:
    """A drain cancelled while the peer reads nothing keeps what is queued,
    whole: the transport takes more, and once the peer reads, it gets every
    byte in order. (StreamTransport breaks: its send may be cut mid-frame.)"""
    with anyio.fail_after(TIMEOUT):
        client, peer = await quiet_pair()
        async with client:
            with peer:
                transport = transport_for(client)
                written = fill(transport)
                with anyio.move_on_after(0.1 * SECOND) as scope:
                    await transport.drain()
                assert scope.cancelled_caught
                assert transport.buffered > 0 and not transport.writable
                tail = pattern(5000, 0)
                transport.write([tail])
                written += tail
                async with anyio.create_task_group() as tg:
                    tg.start_soon(recv_and_check, peer, written)
                    assert await transport.drain()
                assert transport.buffered == 0 and transport.writable
                await transport.send_eof()
                assert await recv_exactly(peer, 1) == b""  # the end of the stream


async def recv_and_check(sock: socket.socket, expected: bytes) -> None:
    assert await recv_exactly(sock, len(expected)) == expected


async def test_a_cancelled_send_leaves_the_connection_usable(anyio_backend: str) -> None:
    """On plain TCP, a send() cancelled while the peer does not read leaves
    the WebSocket open; the peer later gets that message whole, then the next."""
    big = pattern(BIG, 3)

    async def handler(conn: Conn) -> None:
        with anyio.move_on_after(0.2 * SECOND) as scope:
            await conn.ws.send(big)
        assert scope.cancelled_caught
        assert conn.ws.ready_state is WebSocket.OPEN
        conn.at_point.set()
        await conn.ws.send("after")
        await conn.ws.close()

    async with no_leaks(), ws_server(handler, max_length=BIG) as (port, srv):
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                client = await raw_connect(stream)
                conn = await srv.conn(0)
                await conn.at_point.wait()  # the send was cancelled
                assert await client.receive() == big
                assert await client.receive() == "after"
                assert await client.close() is not None
            await conn.done.wait()
    assert conn.error is None
    assert conn.closes() == [1000]


@pytest.mark.parametrize("busy", ["idle", "writing"])
async def test_a_reset_peer_gives_1006_and_no_leak(anyio_backend: str, busy: str) -> None:
    """A peer that resets the connection (SO_LINGER 0), while the server
    waits for it or for its socket to take a write: close 1006."""

    async def handler(conn: Conn) -> None:
        conn.at_point.set()
        if busy == "idle":
            await conn.ws.receive()
        else:
            while True:
                await conn.ws.send(b"x" * 2**20)

    async with no_leaks(), ws_server(handler) as (port, srv):
        with anyio.fail_after(TIMEOUT):
            stream = await tcp(port)
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await raw_connect(stream)
            conn = await srv.conn(0)
            await conn.at_point.wait()
            if busy == "writing":
                while conn.ws.buffered_amount == 0:  # noqa: ASYNC110 (no event for it)
                    await anyio.sleep(0.01)
            await anyio.wait_all_tasks_blocked()
            await reset(stream)
            await conn.done.wait()
    assert isinstance(conn.error, ConnectionClosedError), repr(conn.error)
    assert conn.closes() == [1006]


@pytest.mark.parametrize("how", ["aclose", "abort"])
async def test_closing_ends_a_waiting_receive_and_drain(anyio_backend: str, how: str) -> None:
    """Another task closes the transport while one waits to read and one
    waits to write: both end (TransportLost, False), nothing hangs."""
    ended: dict[str, object] = {}

    async def receive(transport: Transport[bytes]) -> None:
        try:
            ended["receive"] = await transport.receive()
        except TransportLost:
            ended["receive"] = TransportLost

    async def drain(transport: Transport[bytes]) -> None:
        ended["drain"] = await transport.drain()

    with anyio.fail_after(TIMEOUT):
        client, peer = await quiet_pair()
        async with client:
            with peer:
                transport = transport_for(client)
                fill(transport)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(receive, transport)
                    tg.start_soon(drain, transport)
                    await anyio.wait_all_tasks_blocked()
                    assert ended == {}
                    await getattr(transport, how)()
                assert ended == {"receive": TransportLost, "drain": False}
                transport.write([b"late"])  # ignored
                assert not await transport.drain()
                with pytest.raises(TransportLost):
                    await transport.receive()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_receive_checkpoints_before_it_reads(anyio_backend: str) -> None:
    """With data always there, receive() still yields every other call (for
    fairness, and to be cancellable), and does so before reading: a
    cancelled receive has taken nothing."""
    size = 100_000
    with anyio.fail_after(TIMEOUT):
        client, accepted = await tcp_pair()
        async with client, accepted:
            await accepted.send(pattern(size, 4))
            await accepted.send_eof()
            transport = transport_for(client)
            assert isinstance(transport, SocketTransport)
            await anyio.sleep(0.05 * SECOND)  # all of it in the kernel's buffer
            received = bytearray()
            calls = 0
            with anyio.CancelScope() as scope:
                scope.cancel()
                while True:
                    calls += 1
                    data = await transport.receive()
                    assert data is not None
                    received += data
            assert scope.cancelled_caught and calls <= 2
            while (data := await transport.receive()) is not None:
                received += data
            assert received == pattern(size, 4)
