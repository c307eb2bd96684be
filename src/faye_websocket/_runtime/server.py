"""The HTTP/1.1 helper: a small h11 server with an ``upgrade`` hook.

Python has no ``http.createServer()`` with an ``upgrade`` event, so this
plays that role (S-2): plain requests go to ``on_request(request,
response)``, upgrade requests to ``on_upgrade(request, stream, body)``,
where ``body`` holds the bytes the client sent past the request head.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.streams.stapled
import h11
from anyio.streams.tls import TLSStream

from .._core.deflate import PerMessageDeflate
from .._core.http import (
    DEFAULT_MAX_HEAD_SIZE,
    Request,
    error_response,
    header_tokens,
    parse_upgrade_head,
    status_phrase,
    validate_header,
)
from .._core.options import check_count, check_seconds
from .._core.server_handshake import is_websocket
from ..exceptions import ConnectionClosedError, HandshakeError
from .registry import Registry, current
from .streams import STREAM_ERRORS, TRANSPORT_ERRORS, close_stream

if TYPE_CHECKING:
    from .asgi_host import AppHost, ASGIApp, LifespanMode

__all__ = ["Response", "Server"]

logger = logging.getLogger("faye_websocket.http")

#: ``accept()`` errors that concern one connection only (trio's SocketListener
#: skips the same ones): try the next one at once.
_ACCEPT_SKIP = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
#: ``accept()`` errors that mean a resource ran out (file descriptors,
#: memory): pause, as trio's ``serve_listeners`` does, and go on once
#: connections have ended, instead of letting the server die.
_ACCEPT_PAUSE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_PAUSE_SECONDS = 0.1

RequestHandler = Callable[[Request, "Response"], Awaitable[None]]
UpgradeHandler = Callable[[Request, anyio.abc.ByteStream, bytes], Awaitable[None]]


class Response:
    """The response to a plain request, written through h11.

    Like Node's ``http.ServerResponse``: :meth:`write_head` records the
    status and headers, the first :meth:`write` (or :meth:`end`) sends them.
    Without a ``Content-Length``, HTTP/1.1 bodies are chunked.
    """

    def __init__(self, conn: h11.Connection, stream: anyio.abc.ByteStream,
                 request: Request) -> None:
        self._conn = conn
        #: The underlying connection (an EventSource watches it for EOF).
        self.stream = stream
        self._request = request
        self.status_code = 200
        self._headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.finished = False

    def write_head(self, status: int,
                   headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        """Set the status and headers (sent with the first write).

        Values are trimmed of spaces and tabs and sent as UTF-8.

        Raises:
            ValueError: a name that is not a token, or a value with a control
                character (the message names the header, never its value).
        """
        if self.headers_sent:
            raise RuntimeError("headers already sent")
        items = headers.items() if isinstance(headers, Mapping) else (headers or ())
        self._headers = []
        for name, value in items:
            text = str(value).strip(" \t")
            validate_header(name, text)
            self._headers.append((name, text))
        self.status_code = status

    async def _send(self, event: h11._events.Event) -> None:
        data = self._conn.send(event)
        if data:
            try:
                await self.stream.send(data)
            except TRANSPORT_ERRORS as exc:
                raise ConnectionClosedError(1006, "connection lost") from exc

    async def _send_head(self, length: int | None) -> None:
        if self.headers_sent:
            return
        headers = self._headers
        names = {name.lower() for name, _ in headers}
        if length is not None and not names & {"content-length", "transfer-encoding"}:
            headers = [*headers, ("Content-Length", str(length))]
        self.headers_sent = True
        await self._send(h11.Response(status_code=self.status_code,
                                      headers=[(name.encode("ascii"), value.encode())
                                               for name, value in headers],
                                      reason=status_phrase(self.status_code).encode("ascii")))

    async def write(self, data: bytes | str) -> None:
        """Send part of the body."""
        if self.finished:
            raise RuntimeError("response already ended")
        await self._send_head(None)
        if data and self._request.method != "HEAD":
            await self._send(h11.Data(data=data.encode() if isinstance(data, str) else data))

    async def end(self, data: bytes | str = b"") -> None:
        """Send the rest of the body and finish the response."""
        if self.finished:
            return
        raw = data.encode() if isinstance(data, str) else data
        await self._send_head(len(raw))
        if raw and self._request.method != "HEAD":
            await self._send(h11.Data(data=raw))
        self.finished = True
        await self._send(h11.EndOfMessage())


class _PatientListener(anyio.abc.Listener[anyio.abc.SocketStream]):
    """Socket listeners whose accept loops survive running out of file
    descriptors: anyio's ``serve()`` raises out of the loop on any
    ``accept()`` error, which would stop the whole server."""

    def __init__(self, listeners: Sequence[anyio.abc.SocketListener]) -> None:
        self.listeners = list(listeners)

    async def serve(self, handler: Callable[[anyio.abc.SocketStream], object],
                    task_group: anyio.abc.TaskGroup | None = None) -> None:
        async with anyio.create_task_group() as accepting:
            for listener in self.listeners:
                accepting.start_soon(self._accept_loop, listener, handler,
                                     task_group or accepting)

    @staticmethod
    async def _accept_loop(listener: anyio.abc.SocketListener,
                           handler: Callable[[anyio.abc.SocketStream], object],
                           task_group: anyio.abc.TaskGroup) -> None:
        exhausted = False
        while True:
            try:
                stream = await listener.accept()
            except (OSError, anyio.BrokenResourceError) as exc:
                # asyncio raises the OSError, trio a BrokenResourceError from it.
                error = exc if isinstance(exc, OSError) else exc.__cause__
                code = error.errno if isinstance(error, OSError) else None
                if code in _ACCEPT_SKIP:
                    continue
                if code not in _ACCEPT_PAUSE:
                    raise
                if not exhausted:
                    logger.warning("cannot accept connections (%s); retrying until some close "
                                   "(raise the file descriptor limit, ulimit -n, or set "
                                   "max_connections)", error)
                    exhausted = True
                await anyio.sleep(_ACCEPT_PAUSE_SECONDS)
                continue
            if exhausted:
                logger.warning("accepting connections again")
                exhausted = False
            task_group.start_soon(handler, stream)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        for listener in self.listeners:
            await listener.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        attributes: dict[Any, Callable[[], Any]] = {}
        for listener in self.listeners:
            attributes.update(listener.extra_attributes)
        return attributes


def _patient(listener: anyio.abc.Listener[Any]) -> anyio.abc.Listener[Any]:
    """Wrap plain socket listeners in :class:`_PatientListener`."""
    if isinstance(listener, anyio.abc.SocketListener):
        return _PatientListener([listener])
    if isinstance(listener, anyio.streams.stapled.MultiListener):
        sockets = [child for child in listener.listeners
                   if isinstance(child, anyio.abc.SocketListener)]
        if len(sockets) == len(listener.listeners):
            return _PatientListener(sockets)
    return listener


class _ConnectionSlot:
    __slots__ = ("first", "idle", "scope")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.idle = True
        self.first = True


class Server:
    """An HTTP/1.1 server that hands WebSocket upgrades to your code.

    Args:
        on_request: ``async (request, response)`` for plain requests
            (default: 404).
        on_upgrade: ``async (request, stream, body)`` for requests with an
            ``Upgrade`` header (default: treated as plain requests).
        request_timeout: seconds a new connection has to finish its TLS
            handshake and, separately, to send its first request whole
            (head and body); each later request has as long from its first
            byte. A client that is slower is dropped (slowloris). Also
            bounds writing an error response.
        keep_alive_timeout: seconds an idle keep-alive connection waits for
            the first byte of its next request (0: closed after each
            response).
        max_head_size: largest request head, in bytes (larger: 431).
        max_body_size: largest plain request body, in bytes (larger: 413).
        shutdown_timeout: seconds :meth:`shutdown` waits for open
            connections to finish before cancelling them.
        max_connections: connections served at once, counted from accept
            (TLS handshakes in progress included; ``None``: no cap). One
            more gets 503 and is closed; over TLS it is closed at once, as
            no response can be sent before a handshake.
        app: an ASGI 3 application to serve instead of ``on_request`` and
            ``on_upgrade`` (``http``, ``websocket`` and ``lifespan``; see
            ``docs/asgi-serving.md``). The limits and timeouts above apply
            to it; a request body is read as the application asks for it.
        root_path: with ``app``: the path it is mounted at behind a proxy.
        lifespan: with ``app``: ``"auto"`` (run the lifespan protocol if
            the application supports it), ``"on"`` (it must) or ``"off"``.
        ws_max_length: with ``app``: largest WebSocket message, in bytes.
        ws_ping: with ``app``: seconds between WebSocket keep-alive pings
            (``None``: off).
        ws_ping_timeout: with ``app``: seconds to wait for a pong before
            closing with 1011.
        ws_extensions: with ``app``: WebSocket extensions (default:
            ``[PerMessageDeflate()]``; ``[]``: none).

    Raises:
        ValueError: a negative or NaN timeout, a zero ``request_timeout``,
            ``max_head_size`` or ``max_connections`` under 1, or a negative
            ``max_body_size``; ``app`` with ``on_request`` or ``on_upgrade``.
    """

    def __init__(
        self,
        on_request: RequestHandler | None = None,
        on_upgrade: UpgradeHandler | None = None,
        *,
        request_timeout: float = 10,
        keep_alive_timeout: float = 5,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_body_size: int = 1 << 20,
        shutdown_timeout: float = 5,
        max_connections: int | None = None,
        app: ASGIApp | None = None,
        root_path: str = "",
        lifespan: LifespanMode = "auto",
        ws_max_length: int = 2**26 - 1,
        ws_ping: float | None = 20,
        ws_ping_timeout: float | None = 20,
        ws_extensions: Sequence[PerMessageDeflate] | None = None,
    ) -> None:
        check_seconds("request_timeout", request_timeout, positive=True)
        check_seconds("keep_alive_timeout", keep_alive_timeout)
        check_count("max_head_size", max_head_size, minimum=1)
        check_count("max_body_size", max_body_size)
        check_seconds("shutdown_timeout", shutdown_timeout)
        check_count("max_connections", max_connections, minimum=1, optional=True)
        self.on_request = on_request
        self.on_upgrade = on_upgrade
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.max_head_size = max_head_size
        self.max_body_size = max_body_size
        self.shutdown_timeout = shutdown_timeout
        self.max_connections = max_connections
        self._registry = Registry()
        self._slots: set[_ConnectionSlot] = set()
        self._accept_scope: anyio.CancelScope | None = None
        self._address = ""
        self._all_done = anyio.Event()
        self._shutting_down = False
        self._app_host: AppHost | None = None
        if app is not None:
            if on_request is not None or on_upgrade is not None:
                raise ValueError("give either app or on_request/on_upgrade, not both")
            # Imported here: the host uses the WebSocket, which uses this module.
            from .asgi_host import AppHost

            self._app_host = AppHost(self, app, root_path=root_path, lifespan=lifespan,
                                     ws_max_length=ws_max_length, ws_ping=ws_ping,
                                     ws_ping_timeout=ws_ping_timeout,
                                     ws_extensions=ws_extensions)
            self.on_upgrade = self._app_host.websocket

    def __repr__(self) -> str:
        if self._shutting_down:
            state = "shutting down"
        elif self._accept_scope is not None:
            state = f"listening on {self._address}" if self._address else "serving"
        else:
            state = "not serving"
        return f"<Server {state}, {len(self._slots)} connections>"

    async def serve(self, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None, *, reuse_port: bool = False,
                    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``host:port`` until :meth:`shutdown` or cancellation.

        With ``await task_group.start(server.serve, ...)`` the call returns
        the bound port once the server is listening.

        Args:
            host: the address to listen on.
            port: the port (0: any free one).
            ssl_context: serve TLS with this context.
            reuse_port: set ``SO_REUSEPORT``, so several processes (each
                with its own server) can listen on the same port and the
                kernel spreads new connections between them. Every one of
                them must set it. Not available on Windows.
        """
        tcp = await anyio.create_tcp_listener(local_host=host, local_port=port,
                                              reuse_port=reuse_port)
        bound = tcp.extra(anyio.abc.SocketAttribute.local_port)
        scheme = "https" if ssl_context is not None else "http"
        self._address = f"{scheme}://{host}:{bound}" if ":" not in host \
            else f"{scheme}://[{host}]:{bound}"
        logger.info("listening on %s", self._address)
        # The TLS handshake runs in the connection's own task, once it holds
        # a slot: counted by max_connections and cancelled by shutdown().
        handler = self.handle_connection if ssl_context is None else \
            functools.partial(self._handle_connection, ssl_context=ssl_context)
        await self._serve(tcp, handler, task_status=task_status, port=bound)

    async def serve_listener(self, listener: anyio.abc.Listener[anyio.abc.ByteStream], *,
                             task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
                             port: int = 0) -> None:
        """Serve connections from any anyio listener.

        A socket listener (or a multi-listener of them, as
        ``anyio.create_tcp_listener`` returns) keeps accepting after
        running out of file descriptors: it logs a warning and retries
        until connections have closed.
        """
        await self._serve(listener, self.handle_connection, task_status=task_status, port=port)

    async def _serve(self, listener: anyio.abc.Listener[Any],
                     handler: Callable[[anyio.abc.ByteStream], Awaitable[None]], *,
                     task_status: anyio.abc.TaskStatus[int], port: int) -> None:
        listener = _patient(listener)
        # An application's lifespan startup runs before the first accept,
        # its shutdown once every connection has ended.
        lifespan = self._app_host.lifespan() if self._app_host is not None else \
            contextlib.nullcontext()
        async with listener, lifespan, anyio.create_task_group() as tg:
            with anyio.CancelScope() as self._accept_scope:
                task_status.started(port)
                await listener.serve(handler, task_group=tg)

    async def shutdown(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop accepting, close open WebSockets with ``code``, and wait (at most
        ``shutdown_timeout`` seconds) for connections to finish."""
        logger.info("shutting down%s: %d connections open", f" {self._address}"
                    if self._address else "", len(self._slots))
        self._shutting_down = True
        self._registry.shutdown_code = (code, reason)
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for connection in list(self._registry.sockets):
            connection._shutdown_nowait(code, reason)
        for slot in list(self._slots):
            if slot.idle:
                slot.scope.cancel()
        if self._slots:
            with anyio.move_on_after(self.shutdown_timeout):
                await self._all_done.wait()
        for slot in list(self._slots):
            slot.scope.cancel()

    async def handle_connection(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one accepted connection (requests, then maybe an upgrade)."""
        await self._handle_connection(stream)

    async def _handle_connection(self, stream: anyio.abc.ByteStream, *,
                                 ssl_context: ssl.SSLContext | None = None) -> None:
        """Serve one connection, after a TLS handshake with ``ssl_context``."""
        current.set(self._registry)
        if self._shutting_down:
            await close_stream(stream)
            return
        if self.max_connections is not None and len(self._slots) >= self.max_connections:
            if ssl_context is None:
                await self._bad_request(stream, 503, "too many connections")
            # Over TLS, a 503 could only follow a handshake, which is what
            # costs time and memory: the connection is just closed.
            await close_stream(stream)
            return
        with anyio.CancelScope() as scope:
            slot = _ConnectionSlot(scope)  # idle: shutdown() cancels a handshake at once
            self._slots.add(slot)
            try:
                if ssl_context is not None:
                    tls = await self._tls_handshake(stream, ssl_context)
                    if tls is None:
                        return
                    stream = tls
                upgrade = await self._serve_http(stream, slot)
                if upgrade is not None:
                    # Called here, once the HTTP parser's state is gone: a
                    # WebSocket may stay open for days.
                    assert self.on_upgrade is not None
                    await self.on_upgrade(*upgrade)
            except STREAM_ERRORS as exc:
                logger.debug("connection lost: %r", exc)
            except HandshakeError as exc:
                logger.debug("%s", exc)
            except Exception:
                logger.exception("error while serving a connection")
            finally:
                self._slots.discard(slot)
                if self._shutting_down and not self._slots:
                    self._all_done.set()
                await close_stream(stream)

    async def _serve_http(self, stream: anyio.abc.ByteStream, slot: _ConnectionSlot,
                          ) -> tuple[Request, anyio.abc.ByteStream, bytes] | None:
        """Serve requests until the connection ends, or until an upgrade
        request, which is returned (with the bytes after its head) for
        ``on_upgrade``."""
        first_deadline: float | None = None
        data = b""
        if self.on_upgrade is not None and not self._shutting_down:
            # Most connections a WebSocket server sees open with one upgrade
            # request, whole in the first read: parsed without h11.
            first = await self._first_read(stream, slot)
            if first is None:
                return None
            data, first_deadline = first
            quick = parse_upgrade_head(data, self.max_head_size)
            if quick is not None and (self._app_host is None or is_websocket(quick[0])):
                return quick[0], stream, quick[1]
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_size)
        if data:  # (b"" would tell h11 the connection ended)
            conn.receive_data(data)
        while not self._shutting_down:
            slot.idle = first_deadline is None  # not when the first bytes are in h11 already
            try:
                head = await self._next_request(conn, stream, slot, first_deadline)
                first_deadline = None
            except h11.RemoteProtocolError as exc:
                await self._bad_request(stream, exc.error_status_hint, str(exc))
                return None
            if head is None:
                return None
            slot.idle = False
            event, deadline = head
            request = Request.from_h11(event)
            if _head_size(event) > self.max_head_size:
                # h11 bounds only heads still incomplete; a head that arrived
                # whole in one read is measured here.
                await self._bad_request(stream, 431, "request header fields too large")
                return None
            upgrade = self.on_upgrade is not None and _is_upgrade(request) and \
                (self._app_host is None or is_websocket(request))
            refusal = _framing_refusal(event, upgrade=upgrade)
            if refusal is not None:
                await self._bad_request(stream, 400, refusal)
                return None
            if self._app_host is not None and not upgrade:
                # The application reads the body as it goes (and answers).
                if not await self._app_host.http(conn, stream, event, deadline):
                    return None
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return None
                conn.start_next_cycle()
                continue
            # The head and the body share the request's deadline: a body
            # trickled a byte at a time cannot hold the connection longer.
            body: bytes | None = None
            error: tuple[int, str] | None = None
            with anyio.CancelScope(deadline=deadline) as within:
                try:
                    if upgrade:
                        body = await self._upgrade_body(conn, stream)
                    else:
                        body = await self._read_body(conn, stream)
                except h11.RemoteProtocolError as exc:
                    error = (exc.error_status_hint, str(exc))
                except TRANSPORT_ERRORS:
                    return None  # the client left
            if within.cancelled_caught:
                return None  # dropped without an answer, like a slow head
            if error is not None:
                await self._bad_request(stream, *error)
                return None
            if upgrade:
                return None if body is None else (request, stream, body)
            if body is None:
                await self._bad_request(stream, 413, "request body too large")
                return None
            request = Request.from_h11(event, body)
            response = Response(conn, stream, request)
            try:
                if self.on_request is None:
                    response.write_head(404, {"Content-Type": "text/plain"})
                    await response.end("Not found\n")
                else:
                    await self.on_request(request, response)
            except STREAM_ERRORS as exc:
                # The connection went away under the handler (what anyio's
                # streams and our objects raise then); an OSError of the
                # application's own is its error, below.
                logger.debug("connection lost while serving a request: %r", exc)
                return None
            except Exception:
                logger.exception("on_request handler raised")
                if response.headers_sent:
                    return None
                response = Response(conn, stream, request)
                response.write_head(500, {"Content-Type": "text/plain", "Connection": "close"})
                await response.end("Internal Server Error\n")
                return None
            if not response.finished:
                await response.end()
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return None
            conn.start_next_cycle()
        return None

    async def _first_read(self, stream: anyio.abc.ByteStream, slot: _ConnectionSlot,
                          ) -> tuple[bytes, float] | None:
        """The first bytes of a connection and the deadline of its first
        request (``request_timeout`` from now), or None if it ended or timed
        out first. The connection's own scope carries the deadline: one
        cancel scope fewer per connection."""
        deadline = anyio.current_time() + self.request_timeout
        slot.scope.deadline = deadline
        try:
            data = await stream.receive()
        except TRANSPORT_ERRORS:
            return None
        finally:
            slot.scope.deadline = math.inf
        slot.idle = False
        return data, deadline

    async def _next_request(self, conn: h11.Connection, stream: anyio.abc.ByteStream,
                            slot: _ConnectionSlot, deadline: float | None = None,
                            ) -> tuple[h11.Request, float] | None:
        """The next request head and the deadline for the whole request
        (head and body): ``request_timeout`` after the connection was
        established for the first request (``deadline``, when its first
        bytes were read already), after its first byte for the next ones.
        Before that byte, a kept-alive connection may idle for
        ``keep_alive_timeout``. None if the connection ended or timed out
        (a slowloris client is dropped)."""
        now = anyio.current_time()
        started = slot.first or bool(conn.trailing_data[0])  # pipelined bytes
        slot.first = False
        if deadline is None:
            deadline = now + (self.request_timeout if started else self.keep_alive_timeout)
        with anyio.CancelScope(deadline=deadline) as scope:
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Request):
                    return event, scope.deadline
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.receive()
                    except TRANSPORT_ERRORS:
                        return None
                    conn.receive_data(data)
                    slot.idle = False
                    if not started:
                        started = True
                        scope.deadline = anyio.current_time() + self.request_timeout
                    continue
                return None  # ConnectionClosed or PAUSED
        return None

    async def _read_body(self, conn: h11.Connection, stream: anyio.abc.ByteStream) -> bytes | None:
        """The request body, or None once it is over ``max_body_size``
        (bounded in time by the caller's deadline)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_body_size:
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise h11.RemoteProtocolError("unexpected end of request")

    @staticmethod
    async def _upgrade_body(conn: h11.Connection, stream: anyio.abc.ByteStream) -> bytes | None:
        """The bytes after an upgrade request's head (None if the client
        left): h11 would consume a body first (there is none: one announced
        was refused), then pauses, and every byte after that is the new
        protocol's."""
        while (event := conn.next_event()) is not h11.PAUSED:
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
            elif isinstance(event, h11.ConnectionClosed):
                return None
        body, _closed = conn.trailing_data
        return bytes(body)

    async def _tls_handshake(self, stream: anyio.abc.ByteStream, ssl_context: ssl.SSLContext,
                             ) -> TLSStream | None:
        """The TLS stream over ``stream``, or None if the handshake failed or
        did not finish within ``request_timeout``.

        Failures are logged at DEBUG level only: on the open internet they
        are routine (scanners, plain HTTP sent to the TLS port, clients that
        do not trust the certificate).
        """
        with anyio.move_on_after(self.request_timeout):
            try:
                # standard_compatible: closing sends close_notify (RFC 8446 6.1).
                return await TLSStream.wrap(stream, server_side=True, ssl_context=ssl_context,
                                            standard_compatible=True)
            except TRANSPORT_ERRORS as exc:
                logger.debug("TLS handshake failed: %r", exc)
                return None
        logger.debug("TLS handshake timed out")
        return None

    async def _bad_request(self, stream: anyio.abc.ByteStream, status: int, reason: str) -> None:
        with anyio.move_on_after(self.request_timeout):
            try:
                await stream.send(error_response(status, reason))
            except TRANSPORT_ERRORS:
                pass


def _framing_refusal(request: h11.Request, *, upgrade: bool) -> str | None:
    """Why a request's body framing is refused with 400, if it is."""
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names and b"content-length" in names:
        # RFC 9112 section 6.1: such a request may be a smuggling attempt (a
        # front end framing it by Content-Length sees other requests than
        # we do), and the server must close the connection after answering
        # it. Refusing it outright is the simpler safe choice.
        return "both Content-Length and Transfer-Encoding"
    if upgrade and (b"transfer-encoding" in names or any(
            name == b"content-length" and value.lstrip(b"0") for name, value in request.headers)):
        # A WebSocket handshake is a GET without a body (RFC 6455 section
        # 4.1), and the bytes after an upgrade request belong to the new
        # protocol: a body would only be read and thrown away.
        return "upgrade request with a body"
    return None


def _head_size(request: h11.Request) -> int:
    size = len(request.method) + len(request.target) + 12  # request line
    return size + sum(len(name) + len(value) + 4 for name, value in request.headers)


def _is_upgrade(request: Request) -> bool:
    return "upgrade" in header_tokens(request.header("connection")) and \
        bool(request.header("upgrade"))
