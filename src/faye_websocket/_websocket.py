"""The public server-side :class:`WebSocket`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from ._client import Client as _Client
from ._core.deflate import PerMessageDeflate
from ._core.handshake import (
    Rejected,
    http_response,
    is_websocket,
    normalize_headers,
    request_url,
    server_handshake,
)
from ._core.hixie import HixieProtocol
from ._core.http import Request, coerce_request
from ._core.options import check_seconds, protocol_list, unique_extensions
from ._core.websocket import WebSocketProtocol
from ._emitter import peer_of
from ._runtime import server as _server
from ._runtime.connection import DEFAULT_MAX_LENGTH, Connection, Core
from ._runtime.streams import TRANSPORT_ERRORS
from ._runtime.transport import transport_for
from .exceptions import ConnectionClosedError, HandshakeError

if TYPE_CHECKING:
    import h11

__all__ = ["WebSocket"]


class WebSocket(anyio.AsyncContextManagerMixin, Connection):  # type: ignore[misc]
    """A server-side WebSocket taking over a connection an HTTP server handed off.

    Mirrors faye's ``new WebSocket(request, socket, body, protocols, options)``::

        async with WebSocket(request, stream, body, ["irc", "xmpp"]) as ws:
            async for message in ws:
                await ws.send(message)

    Entering the block answers the opening handshake and starts the
    connection's tasks; leaving it runs the closing handshake. A failed
    handshake is answered with HTTP 400 (426 for an unsupported version),
    fires ``error`` and ``close`` (1002), and raises :class:`HandshakeError`.

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
        if isinstance(allowed_origins, str):
            # A lone string would be taken as a set of one-character origins.
            raise ValueError("allowed_origins is a list of origins, not one string")
        super().__init__(ping=ping, ping_timeout=ping_timeout, close_timeout=close_timeout,
                         max_queue=max_queue, write_limit=write_limit, max_length=max_length)
        self._handshake_timeout = open_timeout
        self._drafts = drafts
        self._entered = False
        self.request = coerce_request(request)
        self._socket = stream
        self._body = bytes(body)
        self._protocols = protocol_list(protocols)
        self._extension_configs = unique_extensions(extensions)
        self._extra_headers = normalize_headers(headers)
        # (A plain socket is never TLS; asking it costs a system call.)
        secure = not isinstance(stream, anyio.abc.SocketStream) and \
            stream.extra(TLSAttribute.ssl_object, None) is not None
        self.url = request_url(self.request, secure=secure)
        self._allowed_origins = frozenset(allowed_origins) if allowed_origins is not None \
            else None

    def _peer(self) -> str:
        return peer_of(self._socket)

    def _shutdown_nowait(self, code: int, reason: str) -> None:
        self.close_nowait(code, reason)

    @staticmethod
    def is_websocket(request: Request | h11.Request) -> bool:
        """Whether ``request`` asks to upgrade to WebSocket (any version)."""
        return is_websocket(coerce_request(request))

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[WebSocket]:
        if self._entered:
            raise RuntimeError("a WebSocket is entered once (and not after reject())")
        self._entered = True
        result = server_handshake(self.request, protocols=self._protocols,
                                  extensions=self._extension_configs,
                                  headers=self._extra_headers, max_length=self.max_length,
                                  url=self.url, allowed_origins=self._allowed_origins,
                                  drafts=self._drafts)
        if isinstance(result, Rejected):
            await self._reject(result)
            raise HandshakeError(f"Error during WebSocket handshake: {result.reason}",
                                 status_code=result.status)
        self.protocol = result.protocol
        self.extensions = result.extensions
        transport = self._transport = transport_for(self._socket)
        try:
            transport.write([result.response])
            written = await transport.drain()
        except BaseException:
            # The caller cancelled before the 101 was written.
            with anyio.CancelScope(shield=True):
                await transport.abort()
                await self._lost_before_open()
            raise
        if not written:
            # The client left before the 101 was written: the connection
            # ends here, as it would have once open.
            with anyio.CancelScope(shield=True):
                await self._lost_before_open()
            raise ConnectionClosedError(1006, "connection lost")
        self.version = result.version
        core: Core
        if result.version == "hybi-13":
            core = WebSocketProtocol(client=False, extensions=result.sessions,
                                     max_length=self.max_length)
        else:
            core = HixieProtocol(result.version, max_length=self.max_length, keys=result.keys)
            # hixie-76's challenge bytes usually come with the request: use
            # them now, so the connection is open when the block starts.
            core.receive_data(self._body)
            self._body = b""
        with _server.track(self):
            async with self._running(self._socket, core, self._body):
                yield self

    async def _lost_before_open(self) -> None:
        """CLOSED, ``close`` with 1006 and waiters woken; no ``open`` fired."""
        await self._end(1006)

    async def _reject(self, result: Rejected) -> None:
        await self._answer_and_close(result.response)
        message = f"Error during WebSocket handshake: {result.reason}"
        await self._end(1002, message, error=message)

    async def reject(self, status: int,
                     headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                     body: bytes | str = b"") -> None:
        """Refuse the upgrade with an HTTP response, instead of entering.

        ``close`` fires with 1006 (``open`` never does), and the object is
        closed. The client sees the status, headers and body (a
        :class:`~faye_websocket.HandshakeError` for ``WebSocket.Client``)::

            ws = WebSocket(request, stream, body)
            if not authorised(ws.request):
                await ws.reject(401, {"WWW-Authenticate": "Bearer"}, b"log in first")
                return
            async with ws: ...

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
        head = [("Content-Length", str(len(raw))), ("Connection", "close"), *extra]
        if not any(name.lower() == "content-type" for name, _ in extra):
            head.insert(0, ("Content-Type", "text/plain; charset=utf-8"))
        self._entered = True
        await self._answer_and_close(http_response(status, head, raw))
        await self._end(1006, f"upgrade refused with HTTP {status}")

    async def _answer_and_close(self, response: bytes) -> None:
        """Write a response to the upgrade request (within ``close_timeout``)
        and close the connection."""
        with anyio.move_on_after(self._close_timeout, shield=True):
            try:
                await self._socket.send(response)
            except TRANSPORT_ERRORS:
                pass
        await anyio.aclose_forcefully(self._socket)
