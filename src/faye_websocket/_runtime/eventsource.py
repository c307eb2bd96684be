"""EventSource's runtime: where its bytes go, and the tasks that write them.

:class:`EventStream`, the base of :class:`~faye_websocket.EventSource`,
runs the stream: the writes, the writer task, the keep-alive timer, the
watcher that notices the client leaving, and the ending. The public class
formats the events. A :class:`Sink` carries the bytes, one implementation
per kind of response:

* :class:`ResponseSink`: a :class:`~faye_websocket.http.Response` of our
  HTTP helper (chunked, through h11);
* :class:`StreamSink`: a bare anyio byte stream, the head written raw, as
  the reference does with a socket;
* :class:`AsgiSink`: an ASGI ``http`` response (``http.response.start``
  and ``http.response.body`` messages), watching for ``http.disconnect``.

Each raises one of :data:`~faye_websocket._runtime.streams.TRANSPORT_ERRORS`
from :meth:`Sink.write` and :meth:`Sink.end` once the client is gone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSAttribute

from .._core.asgi import AsgiMessage, Scope, peer_of_scope
from .._core.http import http_response
from .._core.sse import PING, EventSourceState, response_headers
from .._emitter import Event, EventEmitter, logger, peer_of
from .registry import track
from .server import Response
from .streams import TRANSPORT_ERRORS, close_stream

__all__ = ["AsgiSink", "EventStream", "ResponseSink", "Sink", "StreamSink", "sink_for"]


class Sink(Protocol):
    """What an EventSource needs of the response it streams on."""

    #: Whether the client reached us over TLS.
    secure: bool

    def start(self, headers: list[tuple[str, str]]) -> None:
        """Set the ``200`` response's headers (sent with the first write)."""

    async def write(self, data: bytes) -> None:
        """Send ``data`` (the head first, the first time)."""

    async def end(self) -> None:
        """Finish the response (nothing is written after)."""

    async def wait_gone(self) -> None:
        """Return once the client has gone away."""

    async def abort(self) -> None:
        """Drop the connection now (also ending a write in progress)."""

    async def release(self) -> None:
        """After the stream ended: close what is the EventSource's to close."""

    def peer(self) -> str:
        """The client's address (``host:port``), ``""`` if unknown."""


def sink_for(response: Response | anyio.abc.AnyByteStream) -> Sink:
    if isinstance(response, Response):
        return ResponseSink(response)
    return StreamSink(response)


class _OnStream:
    """Watching and dropping a connection we hold the stream of."""

    _stream: anyio.abc.AnyByteStream

    def _is_secure(self) -> bool:
        # (A plain socket is never TLS; asking it costs a system call.)
        return not isinstance(self._stream, anyio.abc.SocketStream) and \
            self._stream.extra(TLSAttribute.ssl_object, None) is not None

    async def wait_gone(self) -> None:
        try:
            while await self._stream.receive():
                pass  # a client has nothing to say on an event stream
        except TRANSPORT_ERRORS:
            pass

    async def abort(self) -> None:
        await anyio.aclose_forcefully(self._stream)

    def peer(self) -> str:
        return peer_of(self._stream)


class ResponseSink(_OnStream):
    """The HTTP helper's response (it closes its own connections)."""

    def __init__(self, response: Response) -> None:
        self._response = response
        self._stream = response.stream
        self.secure = self._is_secure()

    def start(self, headers: list[tuple[str, str]]) -> None:
        # Connection: close, as the reference: the stream ends with the
        # connection, so no request can follow it on this one.
        self._response.write_head(200, [*headers, ("Connection", "close")])

    async def write(self, data: bytes) -> None:
        await self._response.write(data)

    async def end(self) -> None:
        if self._response.headers_sent:
            await self._response.end()

    async def release(self) -> None:
        pass


class StreamSink(_OnStream):
    """A bare byte stream: ours to write the head on and to close."""

    def __init__(self, stream: anyio.abc.AnyByteStream) -> None:
        self._stream = stream
        self._head = b""
        self.secure = self._is_secure()

    def start(self, headers: list[tuple[str, str]]) -> None:
        self._head = http_response(200, [*headers, ("Connection", "close")])

    async def write(self, data: bytes) -> None:
        head, self._head = self._head, b""
        await self._stream.send(head + data if head else data)

    async def end(self) -> None:
        pass

    async def release(self) -> None:
        await close_stream(self._stream)


class AsgiSink:
    """An ASGI ``http`` response. Whatever the server's ``send`` raises
    means the client is gone (:class:`anyio.BrokenResourceError` here)."""

    def __init__(self, scope: Scope, receive: Callable[[], Awaitable[AsgiMessage]],
                 send: Callable[[AsgiMessage], Awaitable[None]]) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._start: AsgiMessage | None = None
        self._gone = False
        self._ended = False
        self._send_scope: anyio.CancelScope | None = None
        self.secure = scope.get("scheme") == "https"

    def start(self, headers: list[tuple[str, str]]) -> None:
        # The server decides about the connection (and HTTP/2 has no
        # Connection header).
        self._start = {"type": "http.response.start", "status": 200,
                       "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                   for name, value in headers]}

    async def _message(self, message: AsgiMessage) -> None:
        if self._gone:
            raise anyio.BrokenResourceError("the client has gone away")
        try:
            with anyio.CancelScope() as self._send_scope:
                await self._send(message)
        except Exception as exc:
            self._gone = True
            raise anyio.BrokenResourceError("the client has gone away") from exc
        finally:
            self._send_scope = None
        if self._gone:  # aborted while the server held it
            raise anyio.BrokenResourceError("the client has gone away")

    async def write(self, data: bytes) -> None:
        if self._start is not None:
            start, self._start = self._start, None
            await self._message(start)
        await self._message({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        if self._start is None and not self._ended:
            self._ended = True
            await self._message({"type": "http.response.body", "body": b"",
                                 "more_body": False})

    async def wait_gone(self) -> None:
        while not self._gone:
            try:
                message = await self._receive()
            except Exception:
                return
            if message.get("type") == "http.disconnect":
                return

    async def abort(self) -> None:
        self._gone = True
        if self._send_scope is not None:
            self._send_scope.cancel()

    async def release(self) -> None:
        pass

    def peer(self) -> str:
        return peer_of_scope(self._scope)


class EventStream(EventEmitter):
    """The runtime of an :class:`~faye_websocket.EventSource` (its base
    class), as :class:`~faye_websocket._runtime.connection.Connection` is
    WebSocket's: the writes through the :class:`Sink`, the stream's task
    group and its tasks (the writer, the keep-alive timer and the watcher,
    which notices the client leaving), and the ending.
    """

    #: Set by the public class.
    url: str
    last_event_id: str

    def _init_stream(self, sink: Sink, *, headers: list[tuple[str, str]], retry: bytes,
                     ping: float | None, write_limit: int) -> None:
        EventEmitter.__init__(self)
        self._sink = sink
        self._headers = headers
        self._retry = retry
        self._ping_interval = ping or None
        self._write_limit = write_limit
        self._state = EventSourceState.CONNECTING
        self._opened_at: float | None = None
        self._peer_name = ""
        self._closing = False
        # Frames waiting for the writer (send_nowait) or for the lock (send).
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._in_flight = 0
        self._wakeup = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        self._closed = anyio.Event()
        self._watch_scope = anyio.CancelScope()
        #: A write was cancelled part-way: the stream cannot be ended cleanly.
        self._broken = False

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """Open the stream, run its tasks while the caller's block runs,
        then close it."""
        try:
            async with anyio.create_task_group() as tg:
                try:
                    # Inside the try: a head cut short by a cancellation
                    # closes the stream (CLOSED, ``close`` fires) too.
                    await self._open()
                    self._tg = tg
                    tg.start_soon(self._watch)
                    tg.start_soon(self._write_loop)
                    if self._ping_interval:
                        tg.start_soon(self._keepalive, self._ping_interval)
                    with track(self):  # shutdown() ends the stream at once
                        yield
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.close()
                    tg.cancel_scope.cancel()
        finally:
            await self._sink.release()

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for the client and not yet written to the transport."""
        return self._pending_size + self._in_flight

    async def _open(self) -> None:
        self._sink.start(response_headers(self._headers))
        if await self._write(self._retry):
            self._state = EventSourceState.OPEN
            self._opened_at = anyio.current_time()
            if logger.isEnabledFor(logging.DEBUG):
                self._peer_name = self._sink.peer()  # gone once the socket closes
                logger.debug("open %s peer=%s last_event_id=%r", self.url,
                             self._peer_name or "?", self.last_event_id)
            await self._emit(Event("open", self))

    async def ping(self) -> bool:
        """Write a comment line (clients ignore it)."""
        return await self._write(PING)

    def _queue(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)

    async def _write(self, data: bytes) -> bool:
        """Queue ``data`` behind what is queued already, and write it all;
        waits while the client is not reading (TCP backpressure). ``False``
        once closed, also for a write that was waiting when the client went
        away."""
        if self._state is EventSourceState.CLOSED or self._closing:
            return False
        self._queue(data)
        await self._flush()
        return not self._is_closed()

    async def _flush(self) -> None:
        """Write what is queued; a transport error ends the stream."""
        async with self._lock:
            if self._is_closed():  # closed while we waited for the lock
                return
            # A cancellation already pending is not one that cuts the write.
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                await self._write_pending()
            except TRANSPORT_ERRORS:
                await self._drop()

    async def _write_pending(self) -> None:
        """Write the queued frames (the caller holds the lock)."""
        while self._pending and self._state is not EventSourceState.CLOSED:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._in_flight = len(data)
            try:
                await self._sink.write(data)
            except TRANSPORT_ERRORS:
                raise
            except BaseException:
                # Cancelled mid-write: the client may hold part of an event,
                # and whatever we wrote next (the end of the body included)
                # would be read as its rest. The stream cannot go on (h11's
                # send_failed rule); close() drops it.
                self._broken = True
                raise
            finally:
                self._in_flight = 0

    def _is_closed(self) -> bool:
        # A method, so that mypy does not narrow ``_state`` across awaits.
        return self._state is EventSourceState.CLOSED

    async def _write_loop(self) -> None:
        while self._state is not EventSourceState.CLOSED:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            await self._flush()

    async def close(self) -> None:
        """End the stream (the ping timer stops, ``close`` fires once).

        Events still queued by :meth:`send_nowait` are written first. If
        that cannot finish within a second (the client is not reading), the
        connection is dropped instead, which also wakes a :meth:`send`
        waiting in another task.
        """
        if self._state is EventSourceState.CLOSED:
            return
        if self._closing:
            await self.wait_closed()
            return
        self._closing = True
        if self._broken:
            await self._drop()
            return
        with anyio.move_on_after(1) as scope:
            try:
                async with self._lock:
                    await self._write_pending()
                    await self._sink.end()
            except TRANSPORT_ERRORS:
                pass
        if scope.cancelled_caught:
            await self._sink.abort()
        await self._finish()

    def _shutdown_nowait(self, code: int, reason: str) -> None:
        self.close_nowait()

    def close_nowait(self) -> None:
        """Start :meth:`close` without waiting for it (from plain callbacks,
        e.g. after :meth:`send_nowait` raised ``WouldBlock``)."""
        if self._state is not EventSourceState.OPEN or self._closing or self._tg is None:
            return
        self._tg.start_soon(self.close)

    async def wait_closed(self) -> None:
        """Wait until the stream is closed (by either side)."""
        await self._closed.wait()

    async def _finish(self) -> None:
        if self._state is EventSourceState.CLOSED:
            return
        self._state = EventSourceState.CLOSED
        self._watch_scope.cancel()
        if self._opened_at is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug("close %s peer=%s after %.3f s", self.url, self._peer_name or "?",
                         anyio.current_time() - self._opened_at)
        try:
            await self._emit(Event("close", self))
        finally:
            self._closed.set()

    async def _watch(self) -> None:
        """Read the connection while streaming: EOF means the client left."""
        with self._watch_scope:
            await self._sink.wait_gone()
            await self._drop()

    async def _drop(self) -> None:
        """Abort the connection and finish: the client left (EOF, reset, a
        failed write), or a write was cut short.

        Nothing more can usefully reach the client, and a client that
        half-closed but reads nothing must not hold a blocked write (ours or
        the HTTP helper's final chunk) for ever; the abort ends such a write
        at once.
        """
        with anyio.CancelScope(shield=True):
            await self._sink.abort()
            await self._finish()

    async def _keepalive(self, interval: float) -> None:
        while self._state is not EventSourceState.CLOSED:
            await anyio.sleep(interval)
            await self.ping()
