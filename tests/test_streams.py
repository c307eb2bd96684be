"""The transport helpers under the connection runtime."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from faye_websocket._runtime.streams import DirectWriter
from faye_websocket.testing import memory_stream_pair

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
    renames what DirectWriter reads, this fails (and the runtime quietly
    falls back to send(), slower)."""
    with anyio.fail_after(5):
        client, accepted = await tcp_pair()
        async with client, accepted:
            writer = DirectWriter.for_stream(client)
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
        assert DirectWriter.for_stream(a) is None
