"""The EventSource client, ``EventSource.Client`` (the reference has none)."""

from __future__ import annotations

import collections
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.abc
import h11

from ._core.client_handshake import encode_headers
from ._core.http import DEFAULT_MAX_HEAD_SIZE, Headers
from ._core.options import check_count, check_seconds
from ._core.redirects import RedirectRefused, Redirects, location
from ._core.server_handshake import normalize_headers
from ._core.sse import (
    DEFAULT_MAX_EVENT_SIZE,
    REQUEST_RESERVED,
    EventSourceState,
    EventStreamParser,
    EventTooLarge,
    ServerSentEvent,
    check_response,
    origin_of,
    request_headers,
    request_target,
)
from ._core.url import parse_url, public_url, redact_url
from ._runtime.client import (
    NoResponse,
    open_stream,
    read_error_body,
    read_head,
    resolve_proxy,
    tls_context,
)
from ._runtime.streams import TRANSPORT_ERRORS, close_stream
from .exceptions import HandshakeError, ProtocolError, ProxyError

__all__ = ["EventSourceClient"]

#: The reconnection time before the server sends a ``retry`` field, in
#: seconds (WHATWG leaves it to the user agent; browsers use 3 to 5 s).
DEFAULT_RETRY = 3.0
#: The shortest wait before a reconnection, in seconds, whatever ``retry``
#: says (Firefox has the same floor): a server that sends ``retry: 0`` and
#: hangs up cannot make the client reconnect in a loop.
MIN_RETRY = 0.5
#: Each failed attempt in a row doubles the wait, up to this many seconds
#: (or ``retry``, if that is longer).
MAX_BACKOFF = 30.0
#: Failures of an attempt to reach the server, retried once the stream has
#: been open (WHATWG: a network error "reestablishes the connection").
_NETWORK_ERRORS = (*TRANSPORT_ERRORS, TimeoutError)
_T = TypeVar("_T")
# The ready states, as plain integers on the hot path.
_CONNECTING, _OPEN, _CLOSED = (int(EventSourceState.CONNECTING), int(EventSourceState.OPEN),
                               int(EventSourceState.CLOSED))


class EventSourceClient(anyio.abc.ObjectReceiveStream[ServerSentEvent]):
    """A server-sent events client: ``EventSource.Client(url, **options)``.

    ::

        async with EventSource.Client("https://example.com/updates") as source:
            async for event in source:
                print(event.type, event.data, event.id)

    Entering the block opens the stream; a failure to connect, or a refusal,
    raises there. Then events are read from the connection as you ask for
    them. When the connection drops or the response ends, the client waits
    :attr:`retry` seconds (at least 0.5 s, doubled after each failed
    attempt in a row up to 30 s, plus up to half as long again at random)
    and reconnects with ``Last-Event-ID``. A ``204``
    ends the iteration; any other refusal raises :exc:`HandshakeError`.
    Leaving the block (or :meth:`aclose`) stops it all.

    Args:
        url: an ``http://`` or ``https://`` URL; userinfo in it is sent as
            ``Authorization: Basic``.
        headers: extra request headers.
        last_event_id: the ``Last-Event-ID`` of the first request.
        retry: seconds to wait before reconnecting, until the server sends
            a ``retry`` field (either way, at least :data:`MIN_RETRY`).
        tls: the ``ssl.SSLContext`` for ``https://`` (default: the system's
            trusted CAs, with host names checked).
        ca: path to a PEM CA bundle; shorthand for a verifying context.
        proxy: as for ``WebSocket.Client``: ``{"origin": ..., "headers":
            ..., "tls": ...}``, an origin URL, or ``"env"``.
        open_timeout: seconds for each attempt to connect and read the
            response head.
        max_event_size: bytes held for the event being received: its data
            (each line plus a LF), its type and the line being read; a
            larger one raises :exc:`ProtocolError`. Comments hold nothing.
        max_head_size: largest response head (status line and headers) read
            from the server or the proxy, in bytes; a larger one is a
            :exc:`HandshakeError` on the first connection and is retried
            on a reconnection.
        max_redirects: redirects (301, 302, 303, 307, 308) followed by each
            attempt; one more, or a loop, is a :exc:`HandshakeError` (0:
            none are followed).
        allow_insecure_redirects: follow a redirect from ``https://`` to
            ``http://`` (refused by default: a :exc:`HandshakeError`).

    Raises:
        ValueError: not an ``http:``/``https:`` URL, a bad header, or an
            option out of range (a negative or NaN ``retry``, a zero or
            negative ``open_timeout``, ``max_event_size`` or
            ``max_head_size`` under 1, a negative ``max_redirects``).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        last_event_id: str = "",
        retry: float = DEFAULT_RETRY,
        tls: ssl.SSLContext | None = None,
        ca: str | None = None,
        proxy: Mapping[str, Any] | str | None = None,
        open_timeout: float = 10,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_redirects: int = 10,
        allow_insecure_redirects: bool = False,
    ) -> None:
        try:
            self._target = parse_url(url, schemes=("http", "https"))
        except ValueError:
            raise ValueError(f"{redact_url(url)} is not a valid EventSource URL") from None
        #: The URL, without its userinfo.
        self.url = public_url(url)
        self._headers = normalize_headers(headers, reserved=REQUEST_RESERVED)
        check_seconds("retry", retry)
        check_seconds("open_timeout", open_timeout, positive=True)
        check_count("max_event_size", max_event_size, minimum=1)
        check_count("max_head_size", max_head_size, minimum=1)
        check_count("max_redirects", max_redirects)
        self._url = url
        self._max_redirects = max_redirects
        self._allow_insecure_redirects = allow_insecure_redirects
        self._default_retry = retry
        self._tls = tls_context(tls, ca)
        self._proxy_option = proxy
        self._proxy = resolve_proxy(proxy, self._target)
        self._open_timeout = open_timeout
        self._max_head_size = max_head_size
        #: ``scheme://host[:port]``: the ``origin`` of every event (after
        #: redirects, the origin of the URL that answered).
        self.origin = origin_of(self._target)
        self._parser = EventStreamParser(origin=self.origin, last_event_id=last_event_id,
                                         max_size=max_event_size)
        #: Status and headers of the latest response (``None``/``[]`` before one).
        self.status_code: int | None = None
        #: A :class:`~faye_websocket.http.Headers`: pairs, looked up in any case.
        self.headers = Headers()
        self._state = _CONNECTING
        self._opened_once = False
        self._stream: anyio.abc.ByteStream | None = None
        self._conn: h11.Connection | None = None
        # Events of the last chunk read, not yet asked for. A chunk is at
        # most 64 KiB, so this stays small: nothing is read ahead of the
        # consumer.
        self._pending: collections.deque[ServerSentEvent] = collections.deque()
        #: Raised once the events before it have been taken.
        self._error: ProtocolError | None = None
        self._reconnect_at: float | None = None
        # Attempts in a row that failed, or opened a stream that ended
        # before an event and before MAX_BACKOFF seconds.
        self._failures = 0
        self._opened_at = 0.0
        self._delivered = False
        self._lock = anyio.Lock()
        self._scope: anyio.CancelScope | None = None

    # -- attributes ---------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<EventSource.Client {self.ready_state.name} {self.url}>"

    @property
    def ready_state(self) -> EventSourceState:
        """``CONNECTING`` (also while waiting to reconnect), ``OPEN`` or ``CLOSED``."""
        return EventSourceState(self._state)

    @property
    def last_event_id(self) -> str:
        """The last event ID: sent as ``Last-Event-ID`` when reconnecting."""
        return self._parser.last_event_id

    @property
    def retry(self) -> float:
        """The reconnection time in seconds: the server's ``retry`` field,
        else the ``retry`` option. The client waits at least this long
        (and at least :data:`MIN_RETRY`), more after failed attempts."""
        if self._parser.retry is None:
            return self._default_retry
        return self._parser.retry / 1000

    def _schedule_reconnect(self, *, failed: bool) -> None:
        """Set when the next attempt may start.

        The wait is the reconnection time (at least ``MIN_RETRY``), doubled
        for each failure in a row up to ``MAX_BACKOFF``, and then up to half
        as long again at random, so that clients dropped together do not
        all come back at the same instant (WHATWG lets a user agent "wait
        some more", with exponential backoff after a failed attempt).
        """
        self._failures = self._failures + 1 if failed else 0
        base = max(self.retry, MIN_RETRY)
        delay = min(base * 2.0 ** min(self._failures, 64), max(base, MAX_BACKOFF))
        self._reconnect_at = anyio.current_time() + delay * (1 + random.random() / 2)

    # -- the stream API -----------------------------------------------------------

    async def __aenter__(self) -> EventSourceClient:
        try:
            await self._run(self._ensure_open)
        except anyio.EndOfStream:
            pass  # closed meanwhile: iteration ends at once
        return self

    async def receive(self) -> ServerSentEvent:
        """The next event, reading (and reconnecting) as needed.

        Raises:
            anyio.EndOfStream: the stream is closed: by :meth:`aclose`, or by
                the server with a ``204`` (``async for`` then just ends).
            HandshakeError: the server refused a reconnection.
            ProtocolError: an event outgrew ``max_event_size``.
            OSError: the first connection failed (later ones are retried).
        """
        return await self._run(self._next_event)

    async def aclose(self) -> None:
        """Stop: close the connection, cancel a waiting :meth:`receive` (it
        raises ``EndOfStream``) and never reconnect."""
        if self._scope is not None:
            self._scope.cancel()
        await self._shutdown()

    async def close(self) -> None:
        """The browser API's name for :meth:`aclose`."""
        await self.aclose()

    # -- machinery ---------------------------------------------------------------

    async def _run(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``step`` as the one reader, in a scope :meth:`aclose` cancels."""
        async with self._lock:
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    return await step()
                finally:
                    self._scope = None
            raise anyio.EndOfStream  # cancelled by aclose()

    async def _ensure_open(self) -> None:
        if self._state != _CLOSED and self._conn is None:
            await self._connect()

    async def _next_event(self) -> ServerSentEvent:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._state == _CLOSED:
                raise anyio.EndOfStream
            if self._conn is None:
                await self._connect()
            else:
                await self._read()

    async def _connect(self) -> None:
        """Open the stream; once it has been open, retry network failures."""
        while True:
            if self._reconnect_at is not None:
                await anyio.sleep_until(self._reconnect_at)
            try:
                await self._open()
                return
            except (*_NETWORK_ERRORS, NoResponse, ProxyError) as exc:
                if not self._opened_once:
                    await self._shutdown()
                    if isinstance(exc, NoResponse):
                        raise HandshakeError(f"Error connecting to EventSource at {self.url}: "
                                             f"{exc}") from None
                    raise
                self._schedule_reconnect(failed=True)
            except HandshakeError:
                await self._shutdown()
                raise

    async def _open(self) -> None:
        """One attempt: connect, send the request (following redirects),
        check the response head."""
        self._state = _CONNECTING
        stream: anyio.abc.ByteStream | None = None
        redirects = Redirects(self._url, schemes=("http", "https"),
                              max_redirects=self._max_redirects,
                              allow_insecure=self._allow_insecure_redirects)
        proxy = self._proxy
        try:
            with anyio.fail_after(self._open_timeout):
                while True:
                    target = redirects.target
                    stream = await open_stream(target, tls=self._tls, proxy=proxy,
                                               max_head_size=self._max_head_size)
                    conn = h11.Connection(h11.CLIENT,
                                          max_incomplete_event_size=self._max_head_size)
                    headers = request_headers(target, last_event_id=self.last_event_id,
                                              headers=redirects.headers(self._headers))
                    request = h11.Request(method="GET", target=request_target(target),
                                          headers=encode_headers(headers))
                    await stream.send((conn.send(request) or b"")
                                      + (conn.send(h11.EndOfMessage()) or b""))
                    response = await read_head(conn, stream, self._max_head_size)
                    decoded = [(k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in response.headers]
                    where = location(response.status_code, decoded)
                    if where is None or not self._max_redirects:
                        break
                    try:
                        _, target = redirects.follow(response.status_code, where)
                    except RedirectRefused as exc:
                        self.status_code, self.headers = response.status_code, Headers(decoded)
                        raise HandshakeError(
                            f"Error connecting to EventSource at {self.url}: {exc}",
                            status_code=response.status_code, headers=decoded) from None
                    # Follow it: the same request on a new connection.
                    await close_stream(stream, grace=0)
                    stream = None
                    proxy = resolve_proxy(self._proxy_option, target)
            # Events carry the origin of the URL that answered (WHATWG 9.2.3).
            self.origin = self._parser.origin = origin_of(target)
            self.status_code = response.status_code
            self.headers = Headers((k.decode("latin-1"), v.decode("latin-1"))
                                   for k, v in response.headers)
            verdict = check_response(self.status_code, self.headers)
            if verdict == "stop":
                self._state = _CLOSED
            elif verdict != "open":
                body = bytearray()
                with anyio.move_on_after(self._open_timeout):  # best effort
                    await _read_body(conn, stream, body)
                raise HandshakeError(f"Error connecting to EventSource at {self.url}: "
                                     f"{verdict}", status_code=self.status_code,
                                     headers=self.headers, body=bytes(body))
        except BaseException:
            if stream is not None:
                await close_stream(stream, grace=0)
            raise
        if self._state == _CLOSED:  # a 204, or aclose() while the head came in
            await close_stream(stream, grace=0)
            return
        self._stream, self._conn = stream, conn
        self._state = _OPEN
        self._opened_once = True
        self._reconnect_at = None
        self._opened_at = anyio.current_time()
        self._delivered = False

    async def _read(self) -> None:
        """Process one h11 event of the body (reading once if h11 needs data)."""
        # Locals: aclose() in another task may clear the attributes while
        # this one is about to resume from receive().
        conn, stream = self._conn, self._stream
        assert conn is not None and stream is not None
        try:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    data = b""
                conn.receive_data(data)
                return
        except (*TRANSPORT_ERRORS, h11.RemoteProtocolError):
            await self._dropped()
            return
        if isinstance(event, h11.Data):
            try:
                events = self._parser.receive_data(bytes(event.data))
            except EventTooLarge as exc:
                await self._shutdown()
                # The events before the offending line come first.
                self._pending.extend(exc.events)
                self._error = ProtocolError(f"EventSource at {self.url}: {exc}", 1009)
            else:
                if events:
                    self._pending.extend(events)
                    self._delivered = True
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.PAUSED:
            await self._dropped()  # the response ended: reconnect too

    async def _dropped(self) -> None:
        """The connection is gone: reconnect after the reconnection time.

        A stream that ended before its first event, and sooner than
        ``MAX_BACKOFF``, counts as a failed attempt: a server that answers
        and hangs up at once gets the backoff, not a reconnection loop.
        """
        self._parser.receive_eof()
        short = anyio.current_time() - self._opened_at < MAX_BACKOFF
        self._schedule_reconnect(failed=short and not self._delivered)
        if self._state != _CLOSED:
            self._state = _CONNECTING
        await self._disconnect()

    async def _shutdown(self) -> None:
        self._state = _CLOSED
        self._pending.clear()
        await self._disconnect()

    async def _disconnect(self) -> None:
        stream, self._stream, self._conn = self._stream, None, None
        if stream is not None:
            await close_stream(stream, grace=0)


async def _read_body(conn: h11.Connection, stream: anyio.abc.ByteStream,
                     body: bytearray) -> None:
    """Read up to 64 KiB of a refusal's body into ``body``, for the error."""
    try:
        await read_error_body(conn, stream, body)
    except (*TRANSPORT_ERRORS, h11.RemoteProtocolError):
        pass


# Its public name: ``faye_websocket.EventSource.Client``.
EventSourceClient.__module__ = "faye_websocket"
EventSourceClient.__qualname__ = "EventSource.Client"
