"""The public server-side :class:`WebSocket`, and :class:`AsgiWebSocket`,
what :meth:`WebSocket.from_asgi` returns.

Inside an ASGI application the public object is the same as on our own
server; what differs is how the opening is answered and what the
connection runs on: ASGI messages through the server's ``receive`` and
``send`` (a message-level transport,
:class:`~faye_websocket._runtime.transport.AsgiTransport`) instead of bytes
on a stream.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from ._core.asgi import (
    AsgiMessage,
    AsgiProtocol,
    Scope,
    choose_protocol,
    denial_messages,
    is_scope,
    peer_of_scope,
    request_from_scope,
    scope_url,
    spec_version,
)
from ._core.deflate import PerMessageDeflate
from ._core.hixie import HixieProtocol
from ._core.http import Request, coerce_request, http_response, refusal_head
from ._core.options import check_seconds, protocol_list, unique_extensions
from ._core.server_handshake import (
    Accepted,
    Rejected,
    is_websocket,
    normalize_headers,
    server_handshake,
)
from ._core.url import request_url
from ._core.websocket import WebSocketProtocol
from ._emitter import peer_of
from ._runtime.connection import DEFAULT_MAX_LENGTH, Connection, Core
from ._runtime.registry import track
from ._runtime.streams import TRANSPORT_ERRORS
from ._runtime.transport import AsgiTransport, TransportLost, transport_for
from ._websocket_client import Client as _Client
from .exceptions import ConnectionClosedError, HandshakeError

if TYPE_CHECKING:
    import h11

__all__ = ["AsgiWebSocket", "WebSocket"]


class WebSocket(anyio.AsyncContextManagerMixin, Connection):  # type: ignore[misc]
    """A server-side WebSocket taking over a connection an HTTP server handed off.

    Mirrors faye's ``new WebSocket(request, socket, body, protocols, options)``::

        async with WebSocket(request, stream, body, ["irc", "xmpp"]) as ws:
            async for message in ws:
                await ws.send(message)

    Entering the block answers the opening handshake and starts the
    connection's tasks; leaving it runs the closing handshake. A failed
    handshake is answered with HTTP 400 (426 for an unsupported version),
    fires ``error`` and ``close`` (1002), and raises
    :class:`~faye_websocket.exceptions.HandshakeError`.

    Args:
        request: the upgrade request (:class:`faye_websocket.http.Request`
            or :class:`h11.Request`).
        stream: the connection, an anyio byte stream.
        body: bytes the HTTP server read past the request head.
        protocols: subprotocols this server speaks; the first one in the
            client's list that is also here is chosen.
        extensions: e.g. ``[PerMessageDeflate()]``.
        headers: extra headers for the handshake response.
        max_length: largest message accepted, in bytes, on the wire and after
            decompression; a larger one closes the connection with 1009.
        ping: seconds between keep-alive pings (``None`` or 0: off).
        ping_timeout: seconds to wait for a keep-alive pong before closing
            with 1011 (default: the ping interval; ``math.inf``: never).
        close_timeout: seconds the closing handshake may take before the
            transport is aborted and ``close`` fires with 1006.
        max_queue: received messages held for :meth:`receive`; while the
            queue is full the socket is not read (backpressure).
        write_limit: bytes queued by :meth:`send_nowait` before it raises
            :class:`anyio.WouldBlock`.
        allowed_origins: if given, a request whose ``Origin`` header is not
            one of these (e.g. ``"https://example.com"``) gets HTTP 403.
        drafts: also speak the pre-standard drafts hixie-75 and hixie-76, as
            the reference does (off by default: no browser has used them
            since 2012, they have no masking, ping or close codes, and any
            client gets one by leaving out ``Sec-WebSocket-Key``). When off,
            a draft request gets HTTP 426 naming version 13.
        open_timeout: seconds a hixie-76 client has to send the 8 challenge
            bytes that open its connection; past it, ``close`` fires with
            1006.

    Raises:
        ValueError: a bad header, or an option out of range (a negative or
            NaN number of seconds or bytes, a zero ``ping_timeout``,
            ``max_queue`` under 1), or ``allowed_origins`` given as one
            string.
    """

    #: The client: ``async with WebSocket.Client(url, protocols, **options)``.
    Client: TypeAlias = _Client  # an alias, so ``WebSocket.Client`` works as a type
    __slots__ = ("_allowed_origins", "_body", "_drafts", "_entered", "_extension_configs",
                 "_extra_headers", "_protocols", "_socket", "request")

    def __init__(
        self,
        request: Request | h11.Request,
        stream: anyio.abc.AnyByteStream,
        body: bytes = b"",
        protocols: Sequence[str] | str | None = None,
        *,
        extensions: Sequence[PerMessageDeflate] = (),
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        ping: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float = 30,
        max_queue: int = 16,
        write_limit: int = 65536,
        allowed_origins: Iterable[str] | None = None,
        drafts: bool = False,
        open_timeout: float = 10,
    ) -> None:
        check_seconds("open_timeout", open_timeout, positive=True)
        self._configure(coerce_request(request), protocols, headers=headers,
                        max_length=max_length, ping=ping, ping_timeout=ping_timeout,
                        close_timeout=close_timeout, max_queue=max_queue,
                        write_limit=write_limit, allowed_origins=allowed_origins)
        self._handshake_timeout = open_timeout
        self._drafts = drafts
        self._socket = stream
        self._body = bytes(body)
        self._extension_configs = unique_extensions(extensions)
        # (A plain socket is never TLS; asking it costs a system call.)
        secure = not isinstance(stream, anyio.abc.SocketStream) and \
            stream.extra(TLSAttribute.ssl_object, None) is not None
        self.url = request_url(self.request, secure=secure)

    def _configure(self, request: Request, protocols: Sequence[str] | str | None, *,
                   headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                   max_length: int, ping: float | None, ping_timeout: float | None,
                   close_timeout: float, max_queue: int, write_limit: int,
                   allowed_origins: Iterable[str] | None) -> None:
        """What every server-side WebSocket is given, however it was reached."""
        if isinstance(allowed_origins, str):
            # A lone string would be taken as a set of one-character origins.
            raise ValueError("allowed_origins is a list of origins, not one string")
        Connection.__init__(self, ping=ping, ping_timeout=ping_timeout,
                            close_timeout=close_timeout, max_queue=max_queue,
                            write_limit=write_limit, max_length=max_length)
        self._entered = False
        self.request = request
        self._protocols = protocol_list(protocols)
        self._extra_headers = normalize_headers(headers)
        self._allowed_origins = frozenset(allowed_origins) if allowed_origins is not None \
            else None

    @classmethod
    def from_asgi(
        cls,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        protocols: Sequence[str] | str | None = None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        close_timeout: float = 30,
        max_queue: int = 16,
        write_limit: int = 65536,
        allowed_origins: Iterable[str] | None = None,
        extensions: Sequence[PerMessageDeflate] = (),
        ping: float | None = None,
        ping_timeout: float | None = None,
    ) -> WebSocket:
        """A WebSocket inside an ASGI application (Starlette, FastAPI, any
        ASGI 3 framework, under uvicorn, hypercorn or our own server)::

            async def app(scope, receive, send):
                if WebSocket.is_websocket(scope):
                    async with WebSocket.from_asgi(scope, receive, send, ["chat"]) as ws:
                        async for message in ws:
                            await ws.send(message)

        In Starlette or FastAPI, pass ``websocket.scope, websocket.receive,
        websocket.send`` of the route's ``WebSocket``. Entering accepts the
        connection (with the first of the client's subprotocols that is in
        ``protocols``); :meth:`reject` refuses it instead. The object is the
        same as everywhere else: events, ``send``/``receive``,
        ``close(code, reason)``, ``ready_state``.

        The wire is the ASGI server's: compression, keep-alive pings and
        the frame size limit are its options (uvicorn's ``--ws-*``,
        hypercorn's ``websocket_*``), so ``extensions``, ``ping`` and
        ``ping_timeout`` are refused here, and :meth:`ping` raises
        :class:`NotImplementedError`. ``max_length`` still applies to the
        messages delivered (a longer one closes with 1009). Close reasons
        reach the client where the server implements ASGI 2.3 or later.

        Raises:
            ValueError: ``scope`` is not a ``websocket`` scope, an option
                that belongs to the server was given, or an option is out
                of range.
        """
        if scope.get("type") != "websocket":
            raise ValueError(f"not a websocket scope (type {scope.get('type')!r})")
        for name, value in (("extensions", extensions), ("ping", ping),
                            ("ping_timeout", ping_timeout)):
            if value:
                raise ValueError(
                    f"{name}= is the ASGI server's option, not the application's: the "
                    "server speaks the wire protocol (set it on uvicorn or hypercorn)")
        return AsgiWebSocket(scope, receive, send, protocols, headers=headers,
                             max_length=max_length, close_timeout=close_timeout,
                             max_queue=max_queue, write_limit=write_limit,
                             allowed_origins=allowed_origins)

    def _peer(self) -> str:
        return peer_of(self._socket)

    def _shutdown_nowait(self, code: int, reason: str) -> None:
        self.close_nowait(code, reason)

    @staticmethod
    def is_websocket(request: Request | h11.Request | Mapping[str, Any]) -> bool:
        """Whether ``request`` asks to upgrade to WebSocket (any version);
        an ASGI scope does when its type is ``websocket``."""
        if is_scope(request):
            assert isinstance(request, Mapping)
            return bool(request["type"] == "websocket")
        assert not isinstance(request, Mapping)
        return is_websocket(coerce_request(request))

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[WebSocket]:
        if self._entered:
            raise RuntimeError("a WebSocket is entered once (and not after reject())")
        self._entered = True
        core, initial = await self._accept()
        with track(self):
            async with self._running(None, core, initial):
                yield self

    async def _accept(self) -> tuple[Core, bytes]:
        """Answer the opening handshake and set the transport; return the
        core and the bytes that came with the request.

        Raises:
            HandshakeError: the handshake failed (the client was answered).
            ConnectionClosedError: the client left before it was answered.
        """
        result = server_handshake(self.request, protocols=self._protocols,
                                  extensions=self._extension_configs,
                                  headers=self._extra_headers, max_length=self.max_length,
                                  url=self.url, allowed_origins=self._allowed_origins,
                                  drafts=self._drafts)
        if isinstance(result, Rejected):
            await self._refuse_handshake(result)
        assert isinstance(result, Accepted)
        self.protocol = result.protocol
        self.extensions = result.extensions
        transport = self._transport = transport_for(self._socket)
        transport.write([result.response])
        await self._opening(transport.drain())
        self.version = result.version
        if result.version == "hybi-13":
            return WebSocketProtocol(client=False, extensions=result.sessions,
                                     max_length=self.max_length), self._body
        core = HixieProtocol(result.version, max_length=self.max_length, keys=result.keys)
        # hixie-76's challenge bytes usually come with the request: use them
        # now, so the connection is open when the block starts.
        core.receive_data(self._body)
        return core, b""

    async def _opening(self, answer: Awaitable[bool]) -> None:
        """Await the handshake's ``answer`` (``False``: the client left).

        Raises:
            ConnectionClosedError: the client left first (``close`` fired
                with 1006, as it would have once open).
        """
        try:
            answered = await answer
        except BaseException:
            # The caller cancelled before the answer was written.
            with anyio.CancelScope(shield=True):
                if self._transport is not None:
                    await self._transport.abort()
                await self._end(1006)
            raise
        if not answered:
            await self._lost_before_open()

    async def _lost_before_open(self) -> NoReturn:
        """The client left before the opening was answered: ``close`` fires
        with 1006, as it would have once open, and this raises.

        Raises:
            ConnectionClosedError: always.
        """
        with anyio.CancelScope(shield=True):
            await self._end(1006)
        raise ConnectionClosedError(1006, "connection lost")

    async def _refuse_handshake(self, result: Rejected) -> NoReturn:
        """Answer a failed handshake, end with 1002 and raise."""
        await self._refuse(result.status, result.headers, result.body)
        message = f"Error during WebSocket handshake: {result.reason}"
        await self._end(1002, message, error=message)
        raise HandshakeError(message, status_code=result.status)

    async def reject(self, status: int,
                     headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                     body: bytes | str = b"") -> None:
        """Refuse the upgrade with an HTTP response, instead of entering.

        ``close`` fires with 1006 (``open`` never does), and the object is
        closed. The client sees the status, headers and body (a
        :class:`~faye_websocket.exceptions.HandshakeError` for ``WebSocket.Client``)::

            ws = WebSocket(request, stream, body)
            if not authorised(ws.request):
                await ws.reject(401, {"WWW-Authenticate": "Bearer"}, b"log in first")
                return
            async with ws: ...

        Inside an ASGI application the response goes through the server's
        ``websocket.http.response`` extension (uvicorn and hypercorn have
        it); a server without it is sent a close, which it answers with 403.

        Args:
            status: 300 to 599.
            headers: extra response headers (``Content-Type`` defaults to
                ``text/plain; charset=utf-8``).
            body: the response body (``str`` is sent as UTF-8).

        Raises:
            ValueError: a status out of range, or a bad header.
            RuntimeError: the WebSocket was already entered or rejected.
        """
        if not isinstance(status, int) or not 300 <= status <= 599:
            raise ValueError(f"a refusal's status is 300 to 599, not {status!r}")
        if self._entered or self._finished:
            raise RuntimeError("reject() is for a WebSocket that has not been entered")
        extra = normalize_headers(headers)
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self._entered = True
        await self._refuse(status, extra, raw)
        await self._end(1006, f"upgrade refused with HTTP {status}")

    async def _refuse(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Answer the upgrade request with an HTTP response (within
        ``close_timeout``) and close the connection."""
        response = http_response(status, refusal_head(headers, body), body)
        with anyio.move_on_after(self._close_timeout, shield=True):
            try:
                await self._socket.send(response)
            except TRANSPORT_ERRORS:
                pass
        await anyio.aclose_forcefully(self._socket)


_Receive = Callable[[], Awaitable[AsgiMessage]]
_Send = Callable[[AsgiMessage], Awaitable[None]]


class AsgiWebSocket(WebSocket):
    """:meth:`WebSocket.from_asgi`'s object (a :class:`WebSocket` in every
    way a user sees)."""

    def __init__(self, scope: Scope, receive: _Receive, send: _Send,
                 protocols: Sequence[str] | str | None, *,
                 headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                 max_length: int, close_timeout: float, max_queue: int, write_limit: int,
                 allowed_origins: Iterable[str] | None) -> None:
        self._configure(request_from_scope(scope), protocols, headers=headers,
                        max_length=max_length, ping=None, ping_timeout=None,
                        close_timeout=close_timeout, max_queue=max_queue,
                        write_limit=write_limit, allowed_origins=allowed_origins)
        self.scope = scope
        self._receive, self._send = receive, send
        self.url = scope_url(scope, self.request)

    def _peer(self) -> str:
        return peer_of_scope(self.scope)

    async def _accept(self) -> tuple[Core, bytes]:
        transport = AsgiTransport(self.scope, self._receive, self._send)
        try:
            message = await transport.receive()
        except TransportLost:
            message = None
        if message is not None and message.get("type") == "websocket.receive":
            raise RuntimeError("the ASGI connection was accepted already: from_asgi() "
                               "accepts it when entered (do not call accept() first)")
        if message is None or message.get("type") != "websocket.connect":
            # The client left first (websocket.disconnect), or the server
            # broke the protocol: nothing can be answered.
            await self._lost_before_open()
        allowed = self._allowed_origins
        if allowed is not None and (self.request.header("origin") or "") not in allowed:
            await self._refuse_handshake(Rejected(403, "Origin not allowed"))
        offered = [str(p) for p in self.scope.get("subprotocols") or ()]
        self.protocol = choose_protocol(offered, self._protocols)
        accept: AsgiMessage = {"type": "websocket.accept",
                               "subprotocol": self.protocol or None}
        if self._extra_headers:
            accept["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                 for name, value in self._extra_headers]
        self._transport = transport
        transport.write([accept])
        await self._opening(transport.drain())
        core = AsgiProtocol(max_length=self.max_length,
                            reasons=spec_version(self.scope) >= (2, 3))
        return core, b""

    async def _refuse(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Through the denial-response extension where the server has it;
        else a close before accepting, which the server answers with 403."""
        extensions = self.scope.get("extensions") or {}
        if "websocket.http.response" in extensions:
            messages = denial_messages(status, refusal_head(headers, body), body)
        else:
            messages = [{"type": "websocket.close", "code": 1000}]
        transport = AsgiTransport(self.scope, self._receive, self._send)
        transport.write(messages)
        with anyio.move_on_after(self._close_timeout, shield=True):
            await transport.drain()
