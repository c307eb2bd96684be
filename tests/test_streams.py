"""The transport helpers under the connection runtime."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from faye_websocket import WebSocket
from faye_websocket._runtime.streams import DirectTransport
from faye_websocket.http import Request, Server
from faye_websocket.testing import memory_stream_pair

from .conftest import running
from .wsclient import client_frame, raw_connect

pytestmark = pytest.mark.anyio


async def tcp_pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    """A connected loopback pair: (client, accepted)."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    listener = multi.listeners[0]
    assert isinstance(listener, anyio.abc.SocketListener)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        return client, await listener.accept()


async def test_direct_writes_on_asyncio_tcp_only(anyio_backend: str) -> None:
    """Plain TCP on asyncio is written without anyio's send(); if anyio
    renames what DirectTransport reads, this fails (and the runtime quietly
    falls back to send(), slower)."""
    with anyio.fail_after(5):
        client, accepted = await tcp_pair()
        async with client, accepted:
            writer = DirectTransport.for_stream(client)
            assert (writer is not None) == (anyio_backend == "asyncio")
            if writer is not None:
                assert writer.write(b"hello") and await writer.drained()
                assert writer.buffered == 0 and not writer.broken
                assert await accepted.receive() == b"hello"
        if writer is not None:
            assert writer.broken and not writer.write(b"late")


async def test_no_direct_writes_in_memory() -> None:
    a, b = memory_stream_pair()
    async with a, b:
        assert DirectTransport.for_stream(a) is None


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
