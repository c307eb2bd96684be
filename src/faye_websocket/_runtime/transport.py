"""The transports a connection runs on: one interface, one implementation per kind.

:class:`~faye_websocket._runtime.connection.Connection` moves data between
its sans-IO core and a :class:`Transport`, and touches the transport only
through this interface:

* read side: :meth:`~Transport.receive` returns what arrived (``None`` at
  the end of the stream); :meth:`~Transport.pause_reading` says the reader
  is about to wait for the application, so a transport that reads ahead
  stops (backpressure);
* write side: :meth:`~Transport.write` takes the core's output and never
  waits; :attr:`~Transport.buffered` is what it holds; :meth:`~Transport.drain`
  waits until the peer has taken it; :meth:`~Transport.send_eof`,
  :meth:`~Transport.aclose` (graceful, bounded) and
  :meth:`~Transport.abort` (at once) end it.

Errors are mapped here, once: whatever the stream under a transport raises
when the connection breaks becomes :class:`TransportLost` from
:meth:`~Transport.receive`, or ``False`` from :meth:`~Transport.drain`, so
the runtime above never mistakes an application's ``OSError`` for a lost
connection.

Four implementations: :class:`AsyncioTransport` writes to and reads from
the asyncio transport under anyio's asyncio TCP stream, without a scheduler
round trip per call; :class:`SocketTransport` writes to and reads from the
non-blocking socket under anyio's TCP and UNIX streams on the other
backends (trio), holding nothing the kernel has taken or handed over;
:class:`StreamTransport` serves every other anyio byte stream (TLS,
proxied connections, memory streams); :class:`AsgiTransport` is
message-level: inside an ASGI application the
server speaks the wire protocol, and the transport exchanges whole ASGI
messages with a core that produces and takes them
(:class:`~faye_websocket._core.asgi.AsgiProtocol`). The interface is
generic in what it carries: bytes, or messages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from itertools import islice
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from .._core.asgi import AsgiMessage, Scope, peer_of_scope
from .._core.frames import coalesce
from .._emitter import peer_of
from .streams import TRANSPORT_ERRORS, close_stream

__all__ = ["AsgiTransport", "AsyncioTransport", "SocketTransport", "StreamTransport",
           "Transport", "TransportLost", "transport_for"]

#: Bytes asked of a stream per read: enough for a burst of small frames to
#: be parsed in one go and a large message in few reads; no more, as every
#: connection may hold one read's worth while its application is busy.
READ_SIZE = 1 << 16
#: An asyncio transport reads on its own, between the reader's turns: once
#: the reader takes this much at once, the transport stops until the
#: reader asks again, so a busy server holds at most one more read
#: (READ_SIZE) per connection, not everything its peer sent meanwhile.
READ_AHEAD = 1 << 16
#: Buffers handed to one ``sendmsg()`` at most: the system's IOV_MAX (1024
#: on Linux and the BSDs; POSIX promises 16), no more than 1024.
try:
    _IOV_MAX = max(16, min(os.sysconf("SC_IOV_MAX"), 1024))
except (AttributeError, OSError, ValueError):  # no sysconf (Windows), or no limit
    _IOV_MAX = 16
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")


class TransportLost(Exception):
    """The connection broke (reset, torn down, or closed here)."""


Data = TypeVar("Data")


class Transport(Protocol[Data]):
    """What the connection runtime needs of the connection under it; it
    carries ``Data`` (bytes, or ASGI messages)."""

    async def receive(self) -> Data | None:
        """What has arrived, waiting for something; ``None`` once the peer
        has closed its end.

        Raises:
            TransportLost: the connection broke.
        """

    def pause_reading(self) -> None:
        """The reader is about to wait for the application: stop reading
        ahead until the next :meth:`receive`."""

    def write(self, chunks: list[Data]) -> None:
        """Take ``chunks`` to send, in order, without waiting (ignored once
        the transport has broken: :meth:`drain` then says so)."""

    @property
    def buffered(self) -> int:
        """Bytes taken by :meth:`write` that the peer has not yet taken."""

    @property
    def writable(self) -> bool:
        """Whether :meth:`drain` would return without waiting."""

    async def drain(self) -> bool:
        """Wait until everything written is sent (or held under the
        transport's high-water mark); ``False`` if the transport broke."""

    async def send_eof(self) -> None:
        """Half-close: send the end of the stream, keep reading."""

    async def aclose(self) -> None:
        """Close gracefully within a second, then forcefully; shielded."""

    async def abort(self) -> None:
        """Drop the connection now."""

    def peer(self) -> str:
        """The peer's address (``host:port``), ``""`` if unknown."""

    #: Whether writes go out best one by one from the caller's task (a
    #: message-level transport), rather than gathered for a writer task.
    direct: bool


def transport_for(stream: anyio.abc.AnyByteStream) -> Transport[bytes]:
    """The fastest transport for ``stream``."""
    return (AsyncioTransport.for_stream(stream) or SocketTransport.for_stream(stream)
            or StreamTransport(stream))


class _StreamEnd:
    """The ending methods shared by the transports over an anyio stream."""

    __slots__ = ()
    _stream: anyio.abc.AnyByteStream
    #: Frames written in one turn of the event loop go out in one write,
    #: gathered by the connection's writer task.
    direct = False

    async def send_eof(self) -> None:
        try:
            await self._stream.send_eof()
        except (NotImplementedError, *TRANSPORT_ERRORS):
            pass

    async def aclose(self) -> None:
        await close_stream(self._stream)

    async def abort(self) -> None:
        await anyio.aclose_forcefully(self._stream)

    def peer(self) -> str:
        return peer_of(self._stream)


class StreamTransport(_StreamEnd):
    """Any anyio byte stream. Writes are held until :meth:`drain`, which
    one task at a time sends (small chunks joined, so the frames queued in
    one turn of the event loop go out in one call). A drain cancelled in the
    middle of a send breaks the transport: the peer may hold part of a frame
    (h11's ``send_failed`` rule)."""

    __slots__ = ("_broken", "_in_flight", "_lock", "_out", "_out_size", "_receive",
                 "_stream")

    def __init__(self, stream: anyio.abc.AnyByteStream) -> None:
        self._stream = stream
        self._receive: Any = stream.receive
        if isinstance(stream, anyio.abc.ByteReceiveStream):
            self._receive = partial(stream.receive, READ_SIZE)
        self._out: list[bytes] = []
        self._out_size = 0
        self._in_flight = 0
        self._broken = False
        self._lock: anyio.Lock | None = None

    async def receive(self) -> bytes | None:
        try:
            data: bytes = await self._receive()
        except anyio.EndOfStream:
            return None
        except TRANSPORT_ERRORS as exc:
            raise TransportLost from exc
        return data

    def pause_reading(self) -> None:
        pass  # the stream is read only when asked

    def write(self, chunks: list[bytes]) -> None:
        if chunks and not self._broken:
            self._out += chunks
            self._out_size += sum(map(len, chunks))

    @property
    def buffered(self) -> int:
        return self._out_size + self._in_flight

    @property
    def writable(self) -> bool:
        return not self._out and not self._in_flight

    async def drain(self) -> bool:
        if self._broken or not (self._out or self._in_flight):
            return not self._broken
        if self._lock is None:
            # fast_acquire: an uncontended acquire does not yield.
            self._lock = anyio.Lock(fast_acquire=True)
        async with self._lock:
            while self._out and not self._broken:
                # What is queued now goes as one batch, which counts whole
                # in ``buffered`` until all of it is sent.
                batch, self._out = self._out, []
                self._in_flight, self._out_size = self._out_size, 0
                try:
                    if len(batch) == 1:
                        await self._stream.send(batch[0])
                    else:
                        for data in coalesce(batch):
                            await self._stream.send(data)
                except TRANSPORT_ERRORS:
                    await self._break()
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await self._break()
                    raise
                finally:
                    self._in_flight = 0
        return not self._broken

    async def _break(self) -> None:
        self._broken = True
        self._out = []
        self._out_size = 0
        await anyio.aclose_forcefully(self._stream)


class AsyncioTransport(_StreamEnd):
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
    :meth:`pause_reading`.

    This reads attributes anyio keeps private; :meth:`for_stream` returns
    ``None`` for anything else (TLS, trio, memory streams, another anyio),
    which then gets a :class:`StreamTransport`.
    tests/test_streams.py checks that plain TCP on asyncio gets one.
    """

    __slots__ = ("_protocol", "_stream", "_transport", "_unconfirmed")

    def __init__(self, stream: anyio.abc.AnyByteStream, transport: asyncio.Transport,
                 protocol: asyncio.Protocol) -> None:
        self._stream = stream
        self._transport = transport
        self._protocol: Any = protocol
        # Bytes written since the transport was last seen drained: while it
        # is congested they count whole, though the kernel took some.
        self._unconfirmed = 0

    @classmethod
    def for_stream(cls, stream: anyio.abc.AnyByteStream) -> AsyncioTransport | None:
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
        # asyncio reads 256 KiB at a time (``max_size``) whenever the socket
        # is readable; a busy server then holds that much per connection
        # before its reader can run. Ask for READ_SIZE, as StreamTransport
        # does (another event loop's transport may not have the attribute).
        if isinstance(getattr(transport, "max_size", None), int):
            with contextlib.suppress(AttributeError):
                transport.max_size = READ_SIZE  # type: ignore[attr-defined]
        return cls(stream, transport, protocol)

    @property
    def broken(self) -> bool:
        return self._transport.is_closing() or self._protocol.exception is not None

    def write(self, chunks: list[bytes]) -> None:
        if self.broken:
            return
        if self._protocol.write_event.is_set():
            self._unconfirmed = 0
        write = self._transport.write
        for chunk in chunks:
            write(chunk)
            self._unconfirmed += len(chunk)

    @property
    def buffered(self) -> int:
        size = self._transport.get_write_buffer_size()
        return size if self._protocol.write_event.is_set() else max(size, self._unconfirmed)

    @property
    def writable(self) -> bool:
        event: asyncio.Event = self._protocol.write_event
        return event.is_set()

    async def drain(self) -> bool:
        event: asyncio.Event = self._protocol.write_event
        if not event.is_set():
            await event.wait()
        return not self.broken

    async def receive(self) -> bytes | None:
        protocol = self._protocol
        chunks: collections.deque[bytes] = protocol.read_queue
        if not chunks:
            transport = self._transport
            if not transport.is_closing() and not protocol.is_at_eof:
                protocol.read_event.clear()
                if not transport.is_reading():
                    transport.resume_reading()
                await protocol.read_event.wait()
            if not chunks:
                if getattr(self._stream, "_closed", False) or protocol.exception is not None:
                    raise TransportLost from protocol.exception
                return None
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        protocol.read_event.clear()
        if len(data) >= READ_AHEAD:
            self.pause_reading()
        return data

    def pause_reading(self) -> None:
        if self._transport.is_reading():
            self._transport.pause_reading()


class SocketTransport(_StreamEnd):
    """The non-blocking socket under one of anyio's TCP or UNIX socket
    streams on a backend other than asyncio (trio), read and written
    directly, as :class:`AsyncioTransport` does on asyncio: anyio's
    ``send()`` and ``receive()`` each add a scheduler pass after the system
    call, across which the writer task would hold the batch it sends and
    the reader the chunk it read (about 20 KiB per connection of a busy
    server on trio, where asyncio holds nothing).

    :meth:`write` sends at once what the kernel takes (one ``send``, or
    one ``sendmsg`` for several chunks) and queues the rest, as views of
    the chunks (no copy), behind which later writes wait; :meth:`drain`
    waits until the socket is writable and sends more, one task at a time
    (trio lets one task wait for a socket's writability). Frames are taken
    off the queue only by the kernel, so a drain cancelled while it waits
    leaves them whole and queued, and the transport usable (unlike
    :class:`StreamTransport`). While anything waits, :attr:`buffered`
    counts every byte written since the queue was last empty, as the other
    transports count a blocked write whole: the kernel took some of it, the
    peer has not. :meth:`receive` reads at most
    :data:`READ_SIZE` and waits only when nothing is there; it holds no data
    across a scheduler pass: when the previous receive did not wait, this
    one's checkpoint comes before its read.

    The stream is only ended through anyio (:meth:`send_eof`,
    :meth:`aclose`, :meth:`abort`), which closes the socket; the socket
    is not used after that (a closed socket's calls fail with ``EBADF``:
    the transport is broken). :meth:`for_stream` returns ``None`` for
    anything else (TLS, proxied connections, memory streams, asyncio),
    which then gets another transport.
    """

    __slots__ = ("_broken", "_lock", "_out", "_sock", "_stream", "_waited", "_written")

    def __init__(self, stream: anyio.abc.AnyByteStream, sock: socket.socket) -> None:
        self._stream = stream
        self._sock = sock
        # What the kernel has not taken yet, in order: whole chunks, and the
        # rest of the first as a view.
        self._out: collections.deque[bytes | memoryview] = collections.deque()
        # Bytes written since the queue was last empty: while anything
        # waits, they count whole in ``buffered``, though the kernel took
        # some (the peer has not), as AsyncioTransport counts them.
        self._written = 0
        self._broken = False
        # Whether the last receive waited for the socket (so it yielded).
        self._waited = True
        self._lock: anyio.Lock | None = None

    @classmethod
    def for_stream(cls, stream: anyio.abc.AnyByteStream) -> SocketTransport | None:
        if not isinstance(stream, anyio.abc.SocketStream):
            return None
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if not isinstance(sock, socket.socket) or sock.gettimeout() != 0.0:
            return None  # not a socket, or a blocking one
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return cls(stream, sock)  # not on asyncio
        # On asyncio, the event loop's own transport reads the socket (and
        # AsyncioTransport writes through it).
        return None

    async def receive(self) -> bytes | None:
        sock = self._sock
        if not self._waited:
            # The last receive returned without waiting: this one is the
            # checkpoint, before the read, so nothing read is held across it.
            await anyio.lowlevel.checkpoint()
        self._waited = False
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:  # reset, or closed here (EBADF)
                raise TransportLost from exc
            else:
                return data or None
            try:
                await anyio.wait_readable(sock)  # (recv would have seen it closed)
            except (anyio.ClosedResourceError, OSError) as exc:
                # Closed by another task: trio wakes the waiters.
                raise TransportLost from exc
            self._waited = True

    def pause_reading(self) -> None:
        pass  # nothing is read ahead

    def write(self, chunks: list[bytes]) -> None:
        if not chunks or self._broken:
            return
        out = self._out
        size = sum(map(len, chunks))
        if out:
            out.extend(chunks)
            self._written += size
        else:
            out.extend(chunks)
            self._written = size
            self._send()

    @property
    def buffered(self) -> int:
        return self._written if self._out else 0

    @property
    def writable(self) -> bool:
        return not self._out

    async def drain(self) -> bool:
        if not self._out:
            return not self._broken
        if self._lock is None:
            # fast_acquire: an uncontended acquire does not yield.
            self._lock = anyio.Lock(fast_acquire=True)
        async with self._lock:
            while self._out:  # emptied by a send, or when the transport breaks
                if self._sock.fileno() < 0:
                    self._break()  # closed while this task waited for the lock
                    break
                try:
                    await anyio.wait_writable(self._sock)
                except (anyio.ClosedResourceError, OSError):
                    self._break()  # closed by another task
                else:
                    self._send()
        return not self._broken

    def _send(self) -> None:
        """Send what is queued until the kernel stops taking it."""
        out, sock = self._out, self._sock
        try:
            while out:
                if len(out) == 1:
                    offered = len(out[0])
                    sent = sock.send(out[0])
                else:
                    buffers = list(islice(out, _IOV_MAX))
                    offered = sum(map(len, buffers))
                    sent = _sendmsg(sock, buffers)
                self._sent(sent)
                if sent < offered:
                    return  # the kernel's buffer is full
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # reset, or closed here (EBADF)
            self._break()

    def _sent(self, size: int) -> None:
        """Take ``size`` bytes the kernel took off the front of the queue
        (and any empty chunk there)."""
        out = self._out
        while out:
            head = out[0]
            if size < len(head):
                if size:
                    out[0] = memoryview(head)[size:]
                return
            size -= len(head)
            out.popleft()

    def _break(self) -> None:
        self._broken = True
        self._out.clear()

    async def send_eof(self) -> None:
        # What is queued goes before the end of the stream.
        if await self.drain():
            await super().send_eof()

    async def aclose(self) -> None:
        await super().aclose()
        self._break()

    async def abort(self) -> None:
        await super().abort()
        self._break()


def _sendmsg(sock: socket.socket, buffers: list[bytes | memoryview]) -> int:
    """Send ``buffers`` in one system call where there is ``sendmsg``
    (POSIX); elsewhere one by one, until the kernel takes less than one.

    Raises:
        BlockingIOError: the kernel took nothing.
        OSError: the connection is gone.
    """
    if _HAS_SENDMSG:
        return sock.sendmsg(buffers)
    sent = 0
    for buffer in buffers:
        try:
            size = sock.send(buffer)
        except (BlockingIOError, InterruptedError):
            if sent:
                return sent
            raise
        sent += size
        if size < len(buffer):
            break
    return sent


class AsgiTransport:
    """The messages of an ASGI ``websocket`` connection, through the
    server's ``receive`` and ``send`` callables.

    ``receive`` is called only when the runtime asks (so a full queue stops
    reading: backpressure); ``websocket.disconnect`` is the end of the
    stream, after which it is not called again. Messages written are sent
    by :meth:`drain`, one task at a time, in order; each goes to the server
    at once (the server frames and writes it), so the runtime sends from
    the caller's task rather than gathering writes for a writer task
    (:attr:`direct`). Whatever the server's ``send`` or ``receive`` raises
    means the connection is gone (uvicorn raises an ``OSError`` subclass,
    other servers their own), as does a send cut short by a cancellation
    (the server may have sent part of it).
    """

    __slots__ = ("_broken", "_done", "_idle", "_in_flight", "_out", "_out_size", "_receive",
                 "_scope", "_send", "_sending")

    #: Messages are handed to the server one by one: nothing is gained by
    #: gathering them in a writer task.
    direct = True

    def __init__(self, scope: Scope, receive: Callable[[], Awaitable[AsgiMessage]],
                 send: Callable[[AsgiMessage], Awaitable[None]]) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._out: collections.deque[AsgiMessage] = collections.deque()
        self._out_size = 0
        self._in_flight = 0
        self._broken = False
        self._done = False
        self._sending = False
        self._idle: anyio.Event | None = None

    async def receive(self) -> AsgiMessage | None:
        if self._done:
            return None
        try:
            message = await self._receive()
        except Exception as exc:
            self._done = True
            raise TransportLost from exc
        if message.get("type") == "websocket.disconnect":
            self._done = True
        return message

    def pause_reading(self) -> None:
        pass  # the server is asked for a message only when one is wanted

    def write(self, chunks: list[AsgiMessage]) -> None:
        if chunks and not self._broken:
            self._out += chunks
            self._out_size += sum(map(_size, chunks))

    @property
    def buffered(self) -> int:
        return self._out_size + self._in_flight

    @property
    def writable(self) -> bool:
        return not self._out and not self._sending

    async def drain(self) -> bool:
        if self._sending:
            # Another task is sending: it sends what is queued, ours too.
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()
            return not self._broken
        out = self._out
        if not out or self._broken:
            return not self._broken
        self._sending = True
        try:
            while out and not self._broken:
                message = out.popleft()
                size = _size(message)
                self._out_size -= size
                self._in_flight = size
                await self._send(message)
        except Exception:
            self._break()
        except BaseException:
            self._break()  # cancelled while the server held a message
            raise
        finally:
            self._in_flight = 0
            self._sending = False
            if self._idle is not None:
                self._idle.set()
                self._idle = None
        return not self._broken

    def _break(self) -> None:
        self._broken = True
        self._out.clear()
        self._out_size = 0

    async def send_eof(self) -> None:
        pass  # the server closes the connection once the application is done

    async def aclose(self) -> None:
        self._done = True

    async def abort(self) -> None:
        """Give up on the connection: send nothing more, ask nothing more of
        ``receive`` (a send the server holds ends when its connection does)."""
        self._done = True
        self._break()

    def peer(self) -> str:
        return peer_of_scope(self._scope)


def _size(message: AsgiMessage) -> int:
    payload = message.get("bytes") or message.get("text") or message.get("body") or b""
    return len(payload) or 2
