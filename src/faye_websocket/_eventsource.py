"""The public :class:`EventSource`: a server-sent events stream (S-49 to S-55)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, ClassVar, TypeAlias

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSAttribute

from ._core.eventsource import PING, format_event, format_retry, is_eventsource, response_headers
from ._core.handshake import http_response, normalize_headers, request_url
from ._core.http import Request, coerce_request
from ._emitter import Event, EventEmitter
from ._eventsource_client import EventSourceClient as _Client
from ._runtime.server import Response
from ._runtime.streams import TRANSPORT_ERRORS, close_stream

if TYPE_CHECKING:
    import h11

__all__ = ["EventSource"]

_RESERVED = frozenset({"content-type", "cache-control", "connection", "content-length",
                       "transfer-encoding"})


class EventSourceState(enum.IntEnum):
    """The browser API's ``EventSource.readyState`` values."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2


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
    """

    CONNECTING: ClassVar[EventSourceState] = EventSourceState.CONNECTING
    OPEN: ClassVar[EventSourceState] = EventSourceState.OPEN
    CLOSED: ClassVar[EventSourceState] = EventSourceState.CLOSED
    EVENT_TYPES = ("open", "close")
    #: The client: ``async with EventSource.Client(url, **options)``.
    Client: TypeAlias = _Client  # an alias, so ``EventSource.Client`` works as a type

    def __init__(
        self,
        request: Request | h11.Request,
        response: Response | anyio.abc.AnyByteStream,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        retry: float = 5,
        ping: float | None = 10,
    ) -> None:
        super().__init__()
        self.request = coerce_request(request)
        self._response = response if isinstance(response, Response) else None
        self._stream: anyio.abc.AnyByteStream = (
            response.stream if isinstance(response, Response) else response)
        self._headers = normalize_headers(headers, reserved=_RESERVED)
        self._retry = format_retry(retry)
        if ping is not None and ping < 0:
            raise ValueError("ping must be a number of seconds >= 0, or None")
        self._ping_interval = ping or None
        secure = self._stream.extra(TLSAttribute.ssl_object, None) is not None
        #: ``http(s)://`` + Host + path, by the same rules as WebSocket.url.
        self.url = request_url(self.request, secure=secure, websocket=False)
        #: The ``Last-Event-ID`` request header, ``""`` when absent.
        # Header values are kept as latin-1 text; clients send the id as UTF-8.
        raw_id = self.request.header("last-event-id") or ""
        self.last_event_id = raw_id.encode("latin-1", "replace").decode("utf-8", "replace")
        self._state = EventSourceState.CONNECTING
        self._lock = anyio.Lock()
        self._closed = anyio.Event()
        self._watch_scope = anyio.CancelScope()
        #: A write was cancelled part-way: the stream cannot be ended cleanly.
        self._broken = False

    @staticmethod
    def is_eventsource(request: Request | h11.Request) -> bool:
        """Whether ``request`` is a ``GET`` accepting ``text/event-stream``."""
        return is_eventsource(coerce_request(request))

    @property
    def ready_state(self) -> EventSourceState:
        return self._state

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[EventSource]:
        try:
            async with anyio.create_task_group() as tg:
                try:
                    # Inside the try: a head cut short by a cancellation
                    # closes the stream (CLOSED, ``close`` fires) too.
                    await self._open()
                    tg.start_soon(self._watch)
                    if self._ping_interval:
                        tg.start_soon(self._keepalive, self._ping_interval)
                    yield self
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.close()
                    tg.cancel_scope.cancel()
        finally:
            if self._response is None:
                # A bare stream is ours to close; the HTTP helper closes its
                # own connections (after the response's last chunk).
                await close_stream(self._stream)

    async def _open(self) -> None:
        headers = response_headers(self._headers)
        if self._response is not None:
            # Connection: close, as the reference: the stream ends with the
            # connection, so no request can follow it on this one.
            self._response.write_head(200, [*headers, ("Connection", "close")])
            sent = await self._write(self._retry)
        else:
            head = http_response(200, [*headers, ("Connection", "close")])
            sent = await self._write(head + self._retry)
        if sent:
            self._state = EventSourceState.OPEN
            await self._emit(Event("open", self))

    async def send(self, data: str, *, event: str | None = None,
                   id: str | None = None) -> bool:
        """Send one event.

        Returns:
            ``True`` once written; ``False`` when the stream is closed (as
            the reference), so ``while await es.send(...)`` ends by itself.

        Raises:
            ValueError: ``event`` or ``id`` contains a line break.
            TypeError: ``data`` is not a ``str``.
        """
        if not isinstance(data, str):
            raise TypeError(f"event data is a str, not {type(data).__name__}")
        frame = format_event(data, event=event, id=id)
        return await self._write(frame)

    async def ping(self) -> bool:
        """Write a comment line (clients ignore it)."""
        return await self._write(PING)

    async def _write(self, data: bytes) -> bool:
        """Write ``data``, waiting while the client does not read (TCP
        backpressure: nothing piles up in memory). ``False`` once closed,
        also for a write that was waiting when the client went away."""
        if self._state is EventSourceState.CLOSED:
            return False
        async with self._lock:
            if self._is_closed():  # closed while we waited for the lock
                return False
            # A cancellation already pending is not one that cuts the write.
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                if self._response is not None:
                    await self._response.write(data)
                else:
                    await self._stream.send(data)
            except TRANSPORT_ERRORS:
                await self._drop()
                return False
            except BaseException:
                # Cancelled mid-write: the client may hold part of an event,
                # and whatever we wrote next (the end of the body included)
                # would be read as its rest. The stream cannot go on (h11's
                # send_failed rule); close() drops it.
                self._broken = True
                raise
        return True

    def _is_closed(self) -> bool:
        return self._state is EventSourceState.CLOSED

    async def close(self) -> None:
        """End the stream (the ping timer stops, ``close`` fires once)."""
        if self._state is EventSourceState.CLOSED:
            return
        if self._broken:
            await self._drop()
            return
        if self._response is not None and self._response.headers_sent:
            with anyio.move_on_after(1):
                try:
                    async with self._lock:
                        await self._response.end()
                except TRANSPORT_ERRORS:
                    pass
        await self._finish()

    async def wait_closed(self) -> None:
        """Wait until the stream is closed (by either side)."""
        await self._closed.wait()

    async def _finish(self) -> None:
        if self._state is EventSourceState.CLOSED:
            return
        self._state = EventSourceState.CLOSED
        self._watch_scope.cancel()
        try:
            await self._emit(Event("close", self))
        finally:
            self._closed.set()

    async def _drop(self) -> None:
        """Abort the connection and finish: the client left (EOF, reset, a
        failed write), or a write was cut short.

        Nothing more can usefully reach the client, and a client that
        half-closed but reads nothing must not hold a blocked write (ours or
        the HTTP helper's final chunk) for ever; the abort ends such a write
        at once.
        """
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self._stream)
            await self._finish()

    async def _watch(self) -> None:
        """Read the connection while streaming: EOF means the client left."""
        with self._watch_scope:
            try:
                while await self._stream.receive():
                    pass  # a client has nothing to say on an event stream
            except TRANSPORT_ERRORS:
                pass
            await self._drop()

    async def _keepalive(self, interval: float) -> None:
        while self._state is not EventSourceState.CLOSED:
            await anyio.sleep(interval)
            await self.ping()
