"""Helpers for the byte streams connections run on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import weakref
from typing import Any

import anyio
import anyio.abc

__all__ = ["TRANSPORT_ERRORS", "DirectTransport", "close_stream"]

#: Streams close_stream() has closed (a WebSocket closes its stream, then the
#: HTTP helper closes the connection it handed over).
_closed: weakref.WeakSet[anyio.abc.AnyByteStream] = weakref.WeakSet()

#: Errors that mean the transport is gone (reset, closed, TLS torn down).
TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream,
                    OSError, ssl.SSLError)


async def close_stream(stream: anyio.abc.AnyByteStream, grace: float = 1) -> None:
    """Close gracefully (TLS close_notify included) within ``grace`` seconds,
    then forcefully; shielded, so it also runs in cancelled code. Closing
    a stream this function closed already costs nothing."""
    if stream in _closed:
        return
    with contextlib.suppress(TypeError):  # a stream that cannot be weakly referenced
        _closed.add(stream)
    if isinstance(stream, anyio.abc.SocketStream):
        # A plain socket closes without waiting for the peer (no timeout
        # scope needed, which is most of the cost of closing).
        with anyio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except TRANSPORT_ERRORS:
                pass
        return
    forcefully = False
    with anyio.move_on_after(grace, shield=True) as scope:
        try:
            await stream.aclose()
        except TRANSPORT_ERRORS:
            pass
        except anyio.BusyResourceError:
            # Another task is blocked writing (the peer stopped reading), so
            # TLS cannot send its close_notify now: drop the connection.
            forcefully = True
    if forcefully or scope.cancelled_caught:
        await anyio.aclose_forcefully(stream)


class DirectTransport:
    """Reads and writes the asyncio transport under one of anyio's asyncio
    socket streams, without the scheduler round trips anyio's ``send()``
    and ``receive()`` make around each call, and without pausing and
    resuming the transport (two system calls) at every read: together they
    cost more than a small message's framing.

    ``transport.write()`` takes whole buffers synchronously, so frames can
    never interleave and a cancellation can never cut one in half; waiting
    happens only while the transport is over its (zero) high-water mark,
    on the event anyio's protocol sets when it drains. Reading takes every
    chunk anyio's protocol holds; the transport keeps reading until
    :meth:`pause_reading` (the runtime calls it when its message queue is
    full, which keeps the backpressure anyio's pausing gives).

    This reads attributes anyio keeps private; :meth:`for_stream` returns
    ``None`` for anything else (TLS, trio, memory streams, another anyio),
    and the runtime then uses the stream's own methods.
    tests/test_streams.py checks that plain TCP on asyncio gets one.
    """

    __slots__ = ("_protocol", "_stream", "_transport")

    def __init__(self, stream: anyio.abc.AnyByteStream, transport: asyncio.Transport,
                 protocol: asyncio.Protocol) -> None:
        self._stream = stream
        self._transport = transport
        self._protocol = protocol

    @classmethod
    def for_stream(cls, stream: anyio.abc.AnyByteStream) -> DirectTransport | None:
        kind = type(stream)
        if kind.__name__ != "SocketStream" or kind.__module__ != "anyio._backends._asyncio":
            return None
        transport = getattr(stream, "_transport", None)
        protocol = getattr(stream, "_protocol", None)
        if not isinstance(transport, asyncio.Transport) or not all(
                isinstance(getattr(protocol, name, None), kind) for name, kind in (
                    ("write_event", asyncio.Event), ("read_event", asyncio.Event),
                    ("read_queue", collections.deque))):
            return None
        assert isinstance(protocol, asyncio.Protocol)
        return cls(stream, transport, protocol)

    @property
    def broken(self) -> bool:
        return self._transport.is_closing() or \
            getattr(self._protocol, "exception", None) is not None

    def write(self, data: bytes) -> bool:
        """Hand ``data`` to the transport; False if it is closed or broken."""
        if self.broken:
            return False
        self._transport.write(data)
        return True

    @property
    def buffered(self) -> int:
        """Bytes the transport holds, not yet taken by the kernel."""
        return self._transport.get_write_buffer_size()

    async def receive(self) -> bytes:
        """Everything received so far, waiting for some if there is none.

        Raises:
            anyio.EndOfStream: the peer closed its end.
            anyio.BrokenResourceError: the connection broke.
            anyio.ClosedResourceError: the stream was closed here.
        """
        protocol: Any = self._protocol
        chunks: collections.deque[bytes] = protocol.read_queue
        if not chunks:
            transport = self._transport
            if not transport.is_closing() and not protocol.is_at_eof:
                protocol.read_event.clear()
                if not transport.is_reading():
                    transport.resume_reading()
                await protocol.read_event.wait()
            if not chunks:
                if getattr(self._stream, "_closed", False):
                    raise anyio.ClosedResourceError
                if protocol.exception is not None:
                    raise anyio.BrokenResourceError from protocol.exception
                raise anyio.EndOfStream
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        protocol.read_event.clear()
        return data

    def pause_reading(self) -> None:
        """Stop reading the socket until the next :meth:`receive`."""
        if self._transport.is_reading():
            self._transport.pause_reading()

    @property
    def writable(self) -> bool:
        """The transport takes more without waiting (under its high-water mark)."""
        event: asyncio.Event = self._protocol.write_event  # type: ignore[attr-defined]
        return event.is_set()

    async def drained(self) -> bool:
        """Wait until the transport has written what it holds; False if it
        broke meanwhile."""
        event: asyncio.Event = self._protocol.write_event  # type: ignore[attr-defined]
        if not event.is_set():
            await event.wait()
        return not self.broken
