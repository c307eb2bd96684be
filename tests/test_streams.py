"""The transport helpers under the connection runtime."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from faye_websocket import WebSocket
from faye_websocket._runtime.transport import (
    AsyncioTransport,
    SocketTransport,
    StreamTransport,
    TransportLost,
    transport_for,
)
from faye_websocket.http import Request, Server
from faye_websocket.testing import memory_stream_pair

from .helpers import running, tcp_pair
from .wsclient import client_frame, raw_connect

pytestmark = pytest.mark.anyio


async def test_direct_writes_on_asyncio_tcp_only(anyio_backend: str) -> None:
    """Plain TCP on asyncio is written without anyio's send(); if anyio
    renames what AsyncioTransport reads, this fails (and the runtime quietly
    falls back to StreamTransport, slower)."""
    with anyio.fail_after(5):
        client, accepted = await tcp_pair()
        async with client, accepted:
            transport = transport_for(client)
            direct = isinstance(transport, AsyncioTransport)
            assert direct == (anyio_backend == "asyncio")
            # Elsewhere (trio), the socket itself.
            assert isinstance(transport, SocketTransport) == (anyio_backend != "asyncio")
            if isinstance(transport, AsyncioTransport):
                transport.write([b"hel", b"lo"])
                assert await transport.drain()
                assert transport.buffered == 0 and not transport.broken
                assert await accepted.receive() == b"hello"
        if isinstance(transport, AsyncioTransport):
            assert transport.broken
            transport.write([b"late"])  # ignored
            assert not await transport.drain()


@pytest.mark.parametrize("kind", ["tcp", "memory"])
async def test_transport_interface(kind: str) -> None:
    """Both transports: ordered writes, drain, receive, EOF and loss."""
    with anyio.fail_after(5):
        if kind == "tcp":
            a, b = await tcp_pair()
        else:
            a, b = memory_stream_pair()  # type: ignore[assignment]
        async with a, b:
            transport, peer = transport_for(a), transport_for(b)
            transport.write([b"one ", b"x" * 20000, b" two"])
            # A stream sends on drain(); asyncio's transport and a socket
            # write at once.
            assert transport.buffered == (
                0 if isinstance(transport, (AsyncioTransport, SocketTransport)) else 20008)
            assert await transport.drain()
            received = b""
            while len(received) < 20008:
                data = await peer.receive()
                assert data is not None
                received += data
            assert received == b"one " + b"x" * 20000 + b" two"
            assert transport.buffered == 0 and transport.writable
            await peer.send_eof()
            if kind == "tcp":
                assert await transport.receive() is None  # the peer's end of stream
            await peer.abort()
            await transport.abort()
            with pytest.raises(TransportLost):
                await transport.receive()
            transport.write([b"late"])
            assert not await transport.drain()


async def test_no_direct_writes_in_memory() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        assert isinstance(transport_for(a), StreamTransport)


async def test_a_full_queue_stops_reading_a_tcp_socket() -> None:
    """On a real socket too (where asyncio reads straight from anyio's
    transport): an application that does not read stops the peer's
    writes, instead of the server buffering whatever the peer sends."""
    received = anyio.Event()
    release = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body, max_queue=2) as ws:
            received.set()
            await release.wait()
            await ws.close()

    frame = client_frame(b"x" * 65536)
    sent = 0
    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await raw_connect(stream)
                await received.wait()
                with anyio.move_on_after(1.5):
                    while True:
                        await stream.send(frame)
                        sent += 1
                release.set()
    # Without backpressure the server takes hundreds of MiB in that time;
    # with it, the queue, the kernel buffers and one read's worth.
    assert sent * len(frame) < 32 * 1024 * 1024
