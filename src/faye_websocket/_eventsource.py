"""The public :class:`EventSource`: a server-sent events stream (S-49 to S-55)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import anyio
import anyio.abc
import anyio.lowlevel

from ._core.asgi import is_scope, last_event_id, request_from_scope, scope_url
from ._core.http import Request, coerce_request
from ._core.options import check_count, check_seconds
from ._core.server_handshake import normalize_headers
from ._core.sse import (
    EventSourceState,
    format_event,
    format_retry,
    is_eventsource,
)
from ._core.url import request_url
from ._eventsource_client import EventSourceClient as _Client
from ._runtime.eventsource import AsgiSink, EventStream, Sink, sink_for
from ._runtime.server import Response

if TYPE_CHECKING:
    import h11

__all__ = ["EventSource"]

_RESERVED = frozenset({"content-type", "cache-control", "connection", "content-length",
                       "transfer-encoding"})




class EventSource(anyio.AsyncContextManagerMixin, EventStream):
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
        self.request = request
        self._init_stream(sink, headers=normalize_headers(headers, reserved=_RESERVED),
                          retry=format_retry(retry), ping=ping, write_limit=write_limit)
        self.last_event_id = last_event_id(request)
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

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[EventSource]:
        async with self._running():
            yield self

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
