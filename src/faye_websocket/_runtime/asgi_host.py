"""Serving ASGI 3 applications: what ``Server(app=...)`` runs.

The HTTP helper (:mod:`._runtime.server`) still parses every request with
h11; with an application it hands each one here instead of to
``on_request``/``on_upgrade``:

* ``http``: :class:`_HTTPCycle` turns the request into ``http.request``
  messages as the application asks for them (the socket is read only then:
  backpressure), and its ``http.response.*`` messages into h11 events,
  each written before ``send()`` returns.
* ``websocket``: :class:`_WebSocketSession` answers the handshake with our
  own :class:`~faye_websocket.WebSocket` once the application sends
  ``websocket.accept`` (or refuses it with ``reject()``), then maps
  messages to the object's ``receive``/``send``/``close``.
* ``lifespan``: :class:`_Lifespan` runs around the accept loop.

The application runs in one task, the connection's (HTTP) or a task next
to the one that holds the WebSocket open (so the WebSocket's task group is
never entered inside the application's own cancel scopes).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol
from urllib.parse import unquote_to_bytes

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

import anyio
import anyio.abc
import h11
from anyio.streams.tls import TLSAttribute

from .._core.deflate import PerMessageDeflate
from .._core.http import Request, error_response, status_phrase
from .._core.options import check_count, check_seconds
from .._core.server_handshake import RESERVED_HEADERS, Rejected, server_handshake
from .._websocket import WebSocket
from ..exceptions import ClientDisconnected, HandshakeError, LifespanError
from .connection import DEFAULT_MAX_LENGTH
from .registry import track
from .streams import STREAM_ERRORS, TRANSPORT_ERRORS

__all__ = ["ASGIApp", "AppHost", "LifespanMode"]

logger = logging.getLogger("faye_websocket.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application: ``async app(scope, receive, send)``.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
LifespanMode = Literal["auto", "on", "off"]

_ASGI = {"version": "3.0", "spec_version": "2.4"}
#: Request body bytes handed to the application in one ``http.request``
#: message at most (what h11 has buffered is coalesced up to this).
_BODY_CHUNK = 65536
_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
#: Close codes an application may send (RFC 6455 section 7.4.1: the
#: registered ones an endpoint may put in a Close frame, and 3000-4999).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                             1013, 1014})
#: Response headers the refusal helper sets itself.
_DENIAL_DROPPED = RESERVED_HEADERS | {"content-length", "connection", "transfer-encoding"}


class ServerLimits(Protocol):
    """What the host reads of its :class:`~faye_websocket.http.Server` (named
    here, so this module does not import the one that imports it)."""

    max_head_size: int
    max_body_size: int
    request_timeout: float
    shutdown_timeout: float


class _AppFailed(Exception):
    """The application raised after accepting a WebSocket (already logged):
    raised inside the WebSocket's block so it closes with 1011."""


def _address(stream: anyio.abc.AnyByteStream, attribute: Any) -> tuple[str, int] | None:
    address = stream.extra(attribute, None)
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


def _is_tls(stream: anyio.abc.AnyByteStream) -> bool:
    # (A plain socket is never TLS; asking it costs a system call.)
    return not isinstance(stream, anyio.abc.SocketStream) and \
        stream.extra(TLSAttribute.ssl_object, None) is not None


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(raw_path, query_string)`` of a request target in origin form
    (``/a?b``), absolute form (``http://host/a?b``, RFC 9112 section 3.2.2)
    or asterisk form (``*``)."""
    if not target.startswith(b"/") and b"://" in target:
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        query = rest.find(b"?")
        if slash == -1 or (query != -1 and query < slash):
            target = b"/" + (rest[query:] if query != -1 else b"")
        else:
            target = rest[slash:]
    path, _, query_string = target.partition(b"?")
    return path, query_string


def _message_type(message: Message) -> str:
    try:
        return str(message["type"])
    except (KeyError, TypeError):
        raise RuntimeError(f"an ASGI message is a mapping with a 'type', not {message!r}") \
            from None


class AppHost:
    """Runs one ASGI application for a :class:`~faye_websocket.http.Server`.

    Args:
        server: the server (its limits and timeouts apply).
        app: the ASGI 3 application.
        root_path: the path the application is mounted at behind a proxy
            (``scope["root_path"]``, and a prefix of ``path``).
        lifespan: ``"auto"`` (run the lifespan protocol; an application
            that raises on it does not support it), ``"on"`` (it must
            support it), ``"off"``.
        ws_max_length: largest WebSocket message, on the wire and inflated.
        ws_ping: seconds between keep-alive pings (``None``: none).
        ws_ping_timeout: seconds to wait for a pong before closing with 1011.
        ws_extensions: WebSocket extensions (default: permessage-deflate).
    """

    def __init__(self, server: ServerLimits, app: ASGIApp, *, root_path: str = "",
                 lifespan: LifespanMode = "auto", ws_max_length: int = DEFAULT_MAX_LENGTH,
                 ws_ping: float | None = 20, ws_ping_timeout: float | None = 20,
                 ws_extensions: Sequence[PerMessageDeflate] | None = None) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan is 'auto', 'on' or 'off', not {lifespan!r}")
        if root_path.endswith("/"):
            root_path = root_path.rstrip("/")
        self.server = server
        self.app = app
        self.root_path = root_path
        self.lifespan_mode = lifespan
        self.ws_max_length = ws_max_length
        self.ws_ping = ws_ping
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_extensions: list[PerMessageDeflate] = \
            [PerMessageDeflate()] if ws_extensions is None else list(ws_extensions)
        #: The lifespan state; each request's scope gets a shallow copy.
        self.state: dict[str, Any] = {}
        # Checked now, so a bad option fails at construction, not per connection.
        check_count("ws_max_length", ws_max_length)
        check_seconds("ws_ping", ws_ping, optional=True)
        check_seconds("ws_ping_timeout", ws_ping_timeout, positive=True, optional=True)

    # -- scopes -----------------------------------------------------------

    def _scope(self, kind: str, stream: anyio.abc.AnyByteStream, method: str,
               http_version: str, target: bytes, headers: list[tuple[bytes, bytes]],
               ) -> Scope:
        raw_path, query_string = _split_target(target)
        root = self.root_path
        path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
        secure = _is_tls(stream)
        scheme = ("wss" if secure else "ws") if kind == "websocket" else \
            ("https" if secure else "http")
        return {
            "type": kind,
            "asgi": dict(_ASGI),
            "http_version": http_version,
            "method": method,
            "scheme": scheme,
            "path": root + path,
            "raw_path": root.encode("utf-8") + raw_path,
            "query_string": query_string,
            "root_path": root,
            "headers": headers,
            "client": _address(stream, anyio.abc.SocketAttribute.remote_address),
            "server": _address(stream, anyio.abc.SocketAttribute.local_address),
            "state": dict(self.state),
        }

    # -- http -------------------------------------------------------------

    async def http(self, conn: h11.Connection, stream: anyio.abc.ByteStream,
                   event: h11.Request, deadline: float) -> bool:
        """Serve one plain request; True if the connection may serve another.

        ``deadline``: when the request (head and body) must have arrived;
        the time the client takes to send the body counts against it, the
        time the application takes between ``receive()`` calls does not.
        """
        server = self.server
        length = _content_length(event)
        if length is not None and length > server.max_body_size:
            # Refused before the application runs (it would not get the body).
            await _write_error(stream, 413, "request body too large", server.request_timeout)
            return False
        headers = list(event.headers)  # h11 lower-cases the names
        scope = self._scope("http", stream, event.method.decode("ascii"),
                            event.http_version.decode("ascii"), event.target, headers)
        cycle = _HTTPCycle(self, conn, stream, event, deadline)
        with track(cycle):
            try:
                await self.app(scope, cycle.receive, cycle.send)
            except Exception as exc:
                if cycle.disconnected:
                    logger.debug("ASGI application raised after its client left: %r", exc)
                    return False
                logger.exception("Exception in ASGI application (%s %s)",
                                 scope["method"], scope["path"])
                await cycle.fail()
                return False
        if cycle.receiving:
            # A task of the application still reads the socket: the
            # connection cannot go on to the next request.
            return False
        if not cycle.complete:
            if cycle.disconnected:
                return False
            logger.error("ASGI application returned without %s the response (%s %s)",
                         "completing" if cycle.head_sent else "sending",
                         scope["method"], scope["path"])
            await cycle.fail()
            return False
        return await cycle.finish_body()

    # -- websocket --------------------------------------------------------

    async def websocket(self, request: Request, stream: anyio.abc.ByteStream,
                        body: bytes) -> None:
        """Serve one WebSocket upgrade request (the server's ``on_upgrade``)."""
        # A request our WebSocket would refuse never reaches the application.
        checked = server_handshake(request)
        if isinstance(checked, Rejected):
            await _write_raw(stream, checked.response, self.server.request_timeout)
            return
        target = request.target.encode("latin-1")
        headers = [(name.encode("latin-1"), value.encode("latin-1"))
                   for name, value in request.headers]
        scope = self._scope("websocket", stream, "GET", request.http_version, target, headers)
        del scope["method"]
        offered = request.header("sec-websocket-protocol") or ""
        scope["subprotocols"] = [name.strip() for name in offered.split(",") if name.strip()]
        scope["extensions"] = {"websocket.http.response": {}}
        await _WebSocketSession(self, request, stream, body, scope).run()

    # -- lifespan ---------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the application's startup around the block and its shutdown
        (within the server's ``shutdown_timeout``) after it, also when the
        block is cancelled.

        Raises:
            LifespanError: the application reported ``lifespan.startup.failed``.
        """
        if self.lifespan_mode == "off":
            yield
            return
        lifespan = _Lifespan(self)
        raised: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(lifespan.run)
                try:
                    await lifespan.started.wait()
                    if lifespan.failure is None:
                        try:
                            yield
                        except BaseException as exc:
                            raised = exc
                            raise
                        finally:
                            if lifespan.supported:
                                with anyio.CancelScope(shield=True):
                                    with anyio.move_on_after(self.server.shutdown_timeout):
                                        await lifespan.shutdown()
                finally:
                    lifespan.cancel()
        except BaseExceptionGroup as group:
            # The lifespan task never raises: what the group holds is the
            # block's own exception, raised as it was.
            if raised is not None and len(group.exceptions) == 1 and \
                    group.exceptions[0] is raised:
                raise raised from None
            raise
        if lifespan.failure is not None:
            raise LifespanError(lifespan.failure)


def _content_length(event: h11.Request) -> int | None:
    for name, value in event.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _write_raw(stream: anyio.abc.AnyByteStream, data: bytes, seconds: float) -> None:
    """Write ``data``, giving up after ``seconds`` or if the client left."""
    with anyio.move_on_after(seconds):
        try:
            await stream.send(data)
        except TRANSPORT_ERRORS:
            pass


async def _write_error(stream: anyio.abc.AnyByteStream, status: int, text: str,
                       seconds: float, *, head_only: bool = False) -> None:
    """A plain-text error response, ``Connection: close``."""
    await _write_raw(stream, error_response(status, text, head_only=head_only), seconds)


class _HTTPCycle:
    """One request and its response, as ASGI ``receive`` and ``send``."""

    def __init__(self, host: AppHost, conn: h11.Connection, stream: anyio.abc.ByteStream,
                 event: h11.Request, deadline: float) -> None:
        self._host = host
        self._conn = conn
        self._stream = stream
        #: Seconds the client still has to send the rest of the request.
        self._budget = max(0.0, deadline - anyio.current_time())
        self._head_request = event.method == b"HEAD"
        # A client waiting for 100 Continue that never got it sends no body.
        self._awaiting_continue = conn.they_are_waiting_for_100_continue
        self._no_body = self._head_request
        self._body_size = 0
        self._body_done = False
        self._response: h11.Response | None = None
        self.head_sent = False
        self.complete = False
        #: The client has gone (or was dropped): receive() says so, send() raises.
        self.disconnected = False
        self._shutting_down = False
        self._waiting: anyio.CancelScope | None = None
        self._receiving = False
        self._receive_done: anyio.Event | None = None

    @property
    def receiving(self) -> bool:
        return self._receiving

    def _shutdown_nowait(self, code: int, reason: str) -> None:
        """The server shuts down: a ``receive()`` waiting for the client to
        leave returns ``http.disconnect`` now (streams end)."""
        self._shutting_down = True
        if self._waiting is not None:
            self._waiting.cancel()

    # -- receive ----------------------------------------------------------

    async def receive(self) -> Message:
        # One caller reads the socket at a time; others wait their turn.
        while self._receiving:
            if self._receive_done is None:
                self._receive_done = anyio.Event()
            await self._receive_done.wait()
        self._receiving = True
        try:
            if self.disconnected:
                return dict(_DISCONNECT)
            if not self._body_done:
                return await self._next_body()
            if not (self.complete or self._shutting_down):
                await self._wait_for_disconnect()
            return dict(_DISCONNECT)
        finally:
            self._receiving = False
            if self._receive_done is not None:
                self._receive_done.set()
                self._receive_done = None

    async def _next_body(self) -> Message:
        conn = self._conn
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # A malformed body (bad chunk framing).
                self.disconnected = True
                if not self.head_sent:
                    self.head_sent = True
                    await self._error(exc.error_status_hint, str(exc))
                return dict(_DISCONNECT)
            if event is h11.NEED_DATA:
                if chunks:
                    break
                if conn.they_are_waiting_for_100_continue and not self.head_sent:
                    # RFC 9110 section 10.1.1: the application wants the body.
                    self._awaiting_continue = False
                    await self._write(conn.send(
                        h11.InformationalResponse(status_code=100, headers=[])) or b"")
                received = await self._read_body_bytes()
                if received is None:
                    self.disconnected = True
                    return dict(_DISCONNECT)
                conn.receive_data(received)
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size > self._host.server.max_body_size:
                    self.disconnected = True
                    if not self.head_sent:
                        self.head_sent = True
                        await self._error(413, "request body too large")
                    return dict(_DISCONNECT)
                chunks.append(bytes(event.data))
                size += len(event.data)
                if size >= _BODY_CHUNK:
                    break
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            else:  # pragma: no cover - h11 gives nothing else while the body is read
                self.disconnected = True
                return dict(_DISCONNECT)
        return {"type": "http.request", "body": b"".join(chunks), "more_body": True}

    async def _read_body_bytes(self) -> bytes | None:
        """Bytes from the client, within what is left of the request's time;
        None if it left or ran out of time (dropped, as a slow head is)."""
        if self._budget <= 0:
            return None
        started = anyio.current_time()
        try:
            with anyio.move_on_after(self._budget):
                return await self._stream.receive()
            return None
        except TRANSPORT_ERRORS:
            return None
        finally:
            self._budget -= anyio.current_time() - started

    async def _wait_for_disconnect(self) -> None:
        """Read until the client leaves, or until the response is complete
        or the server shuts down. Bytes of a pipelined next request are
        kept (by h11) for the next cycle."""
        try:
            with anyio.CancelScope() as self._waiting:
                while True:
                    if len(self._conn.trailing_data[0]) > self._host.server.max_head_size:
                        await anyio.sleep_forever()  # enough buffered: stop reading
                    try:
                        data = await self._stream.receive()
                    except TRANSPORT_ERRORS:
                        self.disconnected = True
                        return
                    self._conn.receive_data(data)
        finally:
            self._waiting = None

    # -- send -------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = _message_type(message)
        if kind == "http.response.start":
            if self._response is not None:
                raise RuntimeError("unexpected ASGI message 'http.response.start': "
                                   "the response has already started")
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise RuntimeError(f"invalid ASGI response status {status!r}")
            # h11 validates the header names and values (LocalProtocolError).
            self._response = h11.Response(status_code=status,
                                          headers=list(message.get("headers", ())),
                                          reason=status_phrase(status).encode("ascii"))
            self._no_body = self._head_request or status in (204, 304)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")
        response = self._response
        if response is None:
            raise RuntimeError("unexpected ASGI message 'http.response.body' before "
                               "'http.response.start'")
        if self.complete:
            raise RuntimeError("unexpected ASGI message 'http.response.body': "
                               "the response is complete")
        if self.disconnected:
            raise ClientDisconnected("the client has gone")
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        conn = self._conn
        out: list[bytes] = []
        if not self.head_sent:
            if not more and not self._no_body and not any(
                    name.lower() in (b"content-length", b"transfer-encoding")
                    for name, _ in response.headers):
                # The whole body in one message: say its length (no chunking).
                response = h11.Response(
                    status_code=response.status_code, reason=response.reason,
                    headers=[*response.headers, (b"content-length", str(len(body)).encode())])
            out.append(conn.send(response) or b"")
            self.head_sent = True
        if body and not self._no_body:
            out.append(conn.send(h11.Data(data=body)) or b"")
        if not more:
            out.append(conn.send(h11.EndOfMessage()) or b"")
            self.complete = True
            if self._waiting is not None:
                self._waiting.cancel()
        await self._write(b"".join(out))

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self._stream.send(data)
        except TRANSPORT_ERRORS as exc:
            self.disconnected = True
            self._conn.send_failed()
            raise ClientDisconnected("the client has gone") from exc

    async def _error(self, status: int, text: str) -> None:
        await _write_error(self._stream, status, text, self._host.server.request_timeout,
                           head_only=self._head_request)

    # -- ending -----------------------------------------------------------

    async def fail(self) -> None:
        """The application failed: 500 if nothing was sent yet; the caller
        closes the connection."""
        if not self.head_sent and not self.disconnected:
            self.head_sent = True
            await self._error(500, "Internal Server Error")

    async def finish_body(self) -> bool:
        """Read what the application left of the request body (within the
        request's limits), so the connection can serve the next request."""
        conn = self._conn
        if not self._body_done and self._awaiting_continue:
            return False  # the body was never asked for: it will not come
        while not self._body_done and not self.disconnected:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA:
                data = await self._read_body_bytes()
                if data is None:
                    return False
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size > self._host.server.max_body_size:
                    return False
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            else:  # pragma: no cover
                return False
        return not self.disconnected


class _WebSocketSession:
    """One WebSocket request: the application's messages against our WebSocket.

    States: ``handshake`` (the application has not decided), ``accepting``
    (``websocket.accept`` sent, the 101 not written yet), ``open``,
    ``response`` (a denial response under way) and ``closed`` (refused, or
    the client left before the connection opened).
    """

    def __init__(self, host: AppHost, request: Request, stream: anyio.abc.ByteStream,
                 body: bytes, scope: Scope) -> None:
        self._host = host
        self._request = request
        self._stream = stream
        self._body = body
        self.scope = scope
        self._state = "handshake"
        self._connect_sent = False
        self._decided = anyio.Event()
        self._opened = anyio.Event()
        self._app_done = anyio.Event()
        self._app_failed = False
        #: We told the application its client has gone.
        self._disconnected = False
        self._app_closed = False
        self._accept: Message | None = None
        self._ws: WebSocket | None = None
        self._denial_status = 0
        self._denial_headers: list[tuple[str, str]] = []
        self._denial_body: list[bytes] = []

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_app)
            await self._decided.wait()
            if self._state == "accepting":
                await self._serve_open()
            await self._app_done.wait()

    def _describe(self) -> str:
        return f"WebSocket {self.scope['path']}"

    async def _run_app(self) -> None:
        try:
            await self._host.app(self.scope, self.receive, self.send)
        except Exception as exc:
            self._app_failed = True
            if self._disconnected:
                logger.debug("ASGI application raised after its client left: %r", exc)
            else:
                logger.exception("Exception in ASGI application (%s)", self._describe())
            if self._state == "handshake":
                await self._refuse(500, b"Internal Server Error\n")
        else:
            if self._state == "handshake":
                logger.error("ASGI application returned without accepting or refusing "
                             "the WebSocket (%s)", self._describe())
                await self._refuse(500, b"Internal Server Error\n")
        finally:
            if self._state == "response":
                logger.error("ASGI application left its WebSocket denial response "
                             "unfinished (%s)", self._describe())
                self._state = "closed"
                await anyio.aclose_forcefully(self._stream)
            self._app_done.set()
            self._decided.set()
            self._opened.set()

    async def _serve_open(self) -> None:
        accept = self._accept
        assert accept is not None
        subprotocol = accept.get("subprotocol")
        try:
            headers = [(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                       for name, value in accept.get("headers") or ()]
            # Headers the handshake sets itself are the server's to send.
            headers = [(name, value) for name, value in headers
                       if name.lower() not in RESERVED_HEADERS]
            host = self._host
            ws = WebSocket(self._request, self._stream, self._body,
                           [subprotocol] if subprotocol else None,
                           extensions=host.ws_extensions, headers=headers,
                           max_length=host.ws_max_length, ping=host.ws_ping,
                           ping_timeout=host.ws_ping_timeout)
        except (TypeError, ValueError) as exc:
            logger.error("ASGI application sent an invalid websocket.accept (%s): %s",
                         self._describe(), exc)
            await self._refuse(500, b"Internal Server Error\n")
            self._opened.set()
            return
        self._ws = ws
        try:
            async with ws:
                self._state = "open"
                self._opened.set()
                await self._app_done.wait()
                if self._app_failed and not self._disconnected:
                    raise _AppFailed
        except _AppFailed:
            pass  # closed with 1011; the application's error is logged
        except HandshakeError as exc:
            logger.debug("%s", exc)
        except STREAM_ERRORS as exc:
            logger.debug("WebSocket client left during the handshake: %r", exc)
        finally:
            if self._state == "accepting":
                self._state = "closed"
            self._opened.set()

    async def _refuse(self, status: int, body: bytes = b"",
                      headers: Sequence[tuple[str, str]] = ()) -> None:
        self._state = "closed"
        ws = WebSocket(self._request, self._stream, self._body)
        await ws.reject(status, headers, body)

    # -- the application's receive and send ---------------------------------

    def _disconnect(self, code: int, reason: str = "") -> Message:
        self._disconnected = True
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def receive(self) -> Message:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        if self._state in ("handshake", "accepting"):
            await self._opened.wait()
        ws = self._ws
        if ws is None or self._state != "open":
            return self._disconnect(1006)
        try:
            message = await ws.receive()
        except STREAM_ERRORS as exc:
            code = getattr(exc, "code", None) or ws.close_code or 1006
            return self._disconnect(code, getattr(exc, "reason", "") or "")
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(self, message: Message) -> None:
        kind = _message_type(message)
        state = self._state
        if state == "handshake":
            if kind == "websocket.accept":
                self._accept = message
                self._state = "accepting"
                self._decided.set()
                await self._opened.wait()
                if self._state != "open":
                    self._disconnected = True
                    raise ClientDisconnected("the client left during the WebSocket handshake")
                return
            if kind == "websocket.close":
                # Closing before accepting refuses the upgrade (ASGI: 403).
                await self._refuse(403)
                self._decided.set()
                return
            if kind == "websocket.http.response.start":
                status = message["status"]
                if not isinstance(status, int) or not 300 <= status <= 599:
                    raise RuntimeError(f"a WebSocket denial response's status is 300 to 599, "
                                       f"not {status!r}")
                self._denial_status = status
                self._denial_headers = [
                    (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                    for name, value in message.get("headers") or ()
                    if bytes(name).decode("latin-1").lower() not in _DENIAL_DROPPED]
                self._state = "response"
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} before the WebSocket "
                               "was accepted")
        if state == "response":
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"unexpected ASGI message {kind!r} in a WebSocket "
                                   "denial response")
            self._denial_body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                await self._refuse(self._denial_status, b"".join(self._denial_body),
                                   self._denial_headers)
                self._decided.set()
            return
        if state == "open":
            ws = self._ws
            assert ws is not None
            if kind == "websocket.send":
                text = message.get("text")
                data = text if text is not None else message.get("bytes")
                if data is None:
                    raise RuntimeError("a websocket.send message has 'text' or 'bytes'")
                if self._app_closed:
                    raise ClientDisconnected("the WebSocket is closing")
                try:
                    await ws.send(data)
                except STREAM_ERRORS as exc:
                    self._disconnected = True
                    raise ClientDisconnected(str(exc)) from exc
                return
            if kind == "websocket.close":
                code = message.get("code", 1000)
                code = 1000 if code is None else code
                reason = message.get("reason") or ""
                _close(ws, code, reason)
                self._app_closed = True
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        if kind in ("websocket.send", "websocket.close"):
            self._disconnected = True
            raise ClientDisconnected("the WebSocket is closed")
        raise RuntimeError(f"unexpected ASGI message {kind!r} on a closed WebSocket")


def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Start the closing handshake with the application's code.

    ``close_nowait`` takes the codes an application may send in a browser
    (1000, 1001, 3000-4999); an ASGI application speaks for the server,
    which may also send the other registered codes (1008 for a policy
    violation, 1011 for an error...).
    """
    if not isinstance(code, int) or (code not in _SENDABLE_CODES and not 3000 <= code <= 4999):
        raise RuntimeError(f"invalid WebSocket close code {code!r}")
    ws._begin_close(code, str(reason))  # the core cuts the reason to fit the frame


class _Lifespan:
    """The lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, host: AppHost) -> None:
        self._host = host
        self.started = anyio.Event()
        self._stopped = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._scope = anyio.CancelScope(shield=True)
        #: The message of lifespan.startup.failed.
        self.failure: str | None = None
        self.supported = False
        self._received = 0

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        host = self._host
        scope: Scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": host.state}
        # Shielded: a cancelled server still runs the application's shutdown;
        # cancel() ends it.
        with self._scope:
            task_status.started()
            try:
                await host.app(scope, self._receive, self._send)
            except Exception as exc:
                if self.started.is_set():
                    if self.supported:
                        logger.exception("Exception in ASGI lifespan")
                elif host.lifespan_mode == "on":
                    logger.exception("Exception in ASGI lifespan startup")
                    self.failure = f"lifespan startup raised {exc!r}"
                else:
                    logger.debug("ASGI lifespan protocol not supported (%r)", exc)
            else:
                if not self.started.is_set() and host.lifespan_mode == "on":
                    self.failure = "the application returned during lifespan startup"
            finally:
                self.started.set()
                self._stopped.set()

    async def _receive(self) -> Message:
        self._received += 1
        if self._received == 1:
            return {"type": "lifespan.startup"}
        if self._received == 2:
            await self._shutdown_requested.wait()
            return {"type": "lifespan.shutdown"}
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def _send(self, message: Message) -> None:
        kind = _message_type(message)
        if kind == "lifespan.startup.complete":
            self.supported = True
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failure = str(message.get("message", "")) or "application startup failed"
            logger.debug("ASGI application startup failed: %s", self.failure)
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self._stopped.set()
        elif kind == "lifespan.shutdown.failed":
            logger.error("ASGI application shutdown failed: %s", message.get("message", ""))
            self._stopped.set()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for lifespan")

    async def shutdown(self) -> None:
        self._shutdown_requested.set()
        await self._stopped.wait()

    def cancel(self) -> None:
        self._scope.cancel()

