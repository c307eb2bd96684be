"""The public :class:`EventSource`: a server-sent events stream (S-49 to S-55)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import anyio
import anyio.abc
import anyio.lowlevel

from ._core.asgi import is_scope, last_event_id, request_from_scope, scope_url
from ._core.eventsource import (
    PING,
    EventSourceState,
    format_event,
    format_retry,
    is_eventsource,
    response_headers,
)
from ._core.handshake import normalize_headers, request_url
from ._core.http import Request, coerce_request
from ._core.options import check_count, check_seconds
from ._emitter import Event, EventEmitter, logger
from ._eventsource_client import EventSourceClient as _Client
from ._runtime.eventsource import AsgiSink, Sink, sink_for
from ._runtime.registry import track
from ._runtime.server import Response
from ._runtime.streams import TRANSPORT_ERRORS

if TYPE_CHECKING:
    import h11

__all__ = ["EventSource"]

_RESERVED = frozenset({"content-type", "cache-control", "connection", "content-length",
                       "transfer-encoding"})




class EventSource(anyio.AsyncContextManagerMixin, EventEmitter):
    """A server-sent events stream to one client.

    Mirrors faye's ``new EventSource(request, response, options)``::

        if EventSource.is_eventsource(request):
            async with EventSource(request, response, ping=15, retry=10) as es:
                await es.send("Breaking News!", event="notification", id="99")

    Entering the block writes the response head (``200``,
    ``text/event-stream``) and the ``retry`` delay; leaving it ends the
    stream. While it is open, the connection is watched, so a client that
    goes away is noticed at once and ``close`` fires.

    Args:
        request: the request (:class:`faye_websocket.http.Request` or
            :class:`h11.Request`).
        response: the :class:`faye_websocket.http.Response` of the HTTP
            helper, or a bare anyio byte stream (the response is then written
            raw, as the reference does).
        headers: extra response headers (e.g. CORS).
        retry: seconds the client should wait before reconnecting.
        ping: seconds between keep-alive comments (``None`` or 0: off).
        write_limit: bytes :meth:`send_nowait` may queue for a client that
            is not reading before it raises :class:`anyio.WouldBlock`.

    Raises:
        ValueError: a protocol header or a bad value in ``headers``, or an
            option out of range (a negative or NaN number of seconds or
            bytes).
    """

    CONNECTING: ClassVar[EventSourceState] = EventSourceState.CONNECTING
    OPEN: ClassVar[EventSourceState] = EventSourceState.OPEN
    CLOSED: ClassVar[EventSourceState] = EventSourceState.CLOSED
    EVENT_TYPES = ("open", "close")
    #: The client: ``async with EventSource.Client(url, **options)``.
    Client: TypeAlias = _Client  # an alias, so ``EventSource.Client`` works as a type
    #: Where the client asks the stream to resume, from the ``Last-Event-ID``
    #: header, else a ``last_event_id`` query parameter (a browser cannot set
    #: headers on its first connection); ``""`` when absent.
    last_event_id: str  # set in _configure; declared here for the reference

    def __init__(
        self,
        request: Request | h11.Request,
        response: Response | anyio.abc.AnyByteStream,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        retry: float = 5,
        ping: float | None = 10,
        write_limit: int = 65536,
    ) -> None:
        self._configure(coerce_request(request), sink_for(response), headers=headers,
                        retry=retry, ping=ping, write_limit=write_limit)
        #: ``http(s)://`` + Host + path, by the same rules as WebSocket.url.
        self.url = request_url(self.request, secure=self._sink.secure, websocket=False)

    def _configure(self, request: Request, sink: Sink, *,
                   headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                   retry: float, ping: float | None, write_limit: int) -> None:
        check_seconds("ping", ping, optional=True)
        check_count("write_limit", write_limit)
        EventEmitter.__init__(self)
        self.request = request
        self._sink = sink
        self._headers = normalize_headers(headers, reserved=_RESERVED)
        self._retry = format_retry(retry)
        self._ping_interval = ping or None
        self._write_limit = write_limit
        self.last_event_id = last_event_id(request)
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
        self._quiet_sends = 0

    @classmethod
    def from_asgi(
        cls,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        retry: float = 5,
        ping: float | None = 10,
        write_limit: int = 65536,
    ) -> EventSource:
        """An event stream answering an ASGI ``http`` request (Starlette,
        FastAPI, any ASGI 3 framework, under any ASGI server)::

            async def app(scope, receive, send):
                if EventSource.is_eventsource(scope):
                    async with EventSource.from_asgi(scope, receive, send, ping=15) as es:
                        await es.send("Breaking News!", id="99")

        In Starlette or FastAPI, pass the request's ``scope`` and
        ``receive`` and the ``send`` of the ASGI call (a raw ASGI route, or
        an endpoint class's ``__call__``). Entering sends the response
        head; ``http.disconnect`` is watched, so ``close`` fires as soon as
        the client leaves. The options are those of :class:`EventSource`.

        Raises:
            ValueError: ``scope`` is not an ``http`` scope, or a bad option.
        """
        if scope.get("type") != "http":
            raise ValueError(f"not an http scope (type {scope.get('type')!r})")
        self = cls.__new__(cls)
        request = request_from_scope(scope)
        self._configure(request, AsgiSink(scope, receive, send), headers=headers,
                        retry=retry, ping=ping, write_limit=write_limit)
        self.url = scope_url(scope, request)
        return self

    @staticmethod
    def is_eventsource(request: Request | h11.Request | Mapping[str, Any]) -> bool:
        """Whether ``request`` (or an ASGI ``http`` scope) is a ``GET``
        accepting ``text/event-stream``."""
        if is_scope(request):
            assert isinstance(request, Mapping)
            return request["type"] == "http" and is_eventsource(request_from_scope(request))
        assert not isinstance(request, Mapping)
        return is_eventsource(coerce_request(request))

    @property
    def ready_state(self) -> EventSourceState:
        return self._state

    def __repr__(self) -> str:
        peer = self._sink.peer()
        return (f"<EventSource {self._state.name} {self.url}"
                + (f" peer={peer}" if peer else "") + ">")

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for the client and not yet written to the transport."""
        return self._pending_size + self._in_flight

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[EventSource]:
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
                        yield self
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.close()
                    tg.cancel_scope.cancel()
        finally:
            await self._sink.release()

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

    async def send(self, data: str, *, event: str | None = None,
                   id: str | None = None) -> bool:
        """Send one event.

        Events sent in one turn of the event loop go out in one write (the
        writer task's). While more than ``write_limit`` bytes are queued,
        this writes them itself and waits until the client takes them
        (backpressure).

        Returns:
            ``True`` once queued; ``False`` when the stream is closed (as
            the reference), so ``while await es.send(...)`` ends by itself.

        Raises:
            ValueError: ``event`` or ``id`` contains a line break.
            TypeError: ``data`` is not a ``str``.
        """
        if not isinstance(data, str):
            raise TypeError(f"event data is a str, not {type(data).__name__}")
        frame = format_event(data, event=event, id=id)
        # A checkpoint once every 16 sends that do not wait (as WebSocket's
        # send): a full one per event costs more than the event on asyncio.
        self._quiet_sends += 1
        if self._quiet_sends >= 16:
            self._quiet_sends = 0
            await anyio.lowlevel.checkpoint()
        if self._state is EventSourceState.CLOSED or self._closing:
            return False
        if self._tg is None:
            return await self._write(frame)
        self._queue(frame)
        if self.buffered_amount > self._write_limit:
            await self._flush()
        else:
            self._wakeup.set()
        return not self._is_closed()

    def send_nowait(self, data: str, *, event: str | None = None,
                    id: str | None = None) -> bool:
        """Queue one event for the stream's writer task, without waiting.

        For code that must not wait on any one client, such as a loop
        broadcasting to many: a client that stops reading makes this raise
        instead of piling events up in memory.

        Returns:
            ``True`` once queued; ``False`` when the stream is closed.

        Raises:
            anyio.WouldBlock: ``write_limit`` bytes or more are already
                queued (see :attr:`buffered_amount`).
            RuntimeError: the stream is not open yet (use it inside
                ``async with``).
            ValueError: ``event`` or ``id`` contains a line break.
            TypeError: ``data`` is not a ``str``.
        """
        if not isinstance(data, str):
            raise TypeError(f"event data is a str, not {type(data).__name__}")
        return self._send_frame_nowait(format_event(data, event=event, id=id))

    def _send_frame_nowait(self, frame: bytes) -> bool:
        """:meth:`send_nowait` for an event already formatted (the fan-out
        hub formats each message once for every stream)."""
        if self._state is EventSourceState.CLOSED or self._closing:
            return False
        if self._tg is None:
            raise RuntimeError("the EventSource is not open yet; use it inside 'async with'")
        if self.buffered_amount >= self._write_limit:
            raise anyio.WouldBlock
        self._queue(frame)
        self._wakeup.set()
        return True

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
