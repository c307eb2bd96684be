"""Exceptions raised by faye_websocket.

::

    FayeWebSocketError
    ├── ClientDisconnected      (also OSError) to an ASGI app: its client has gone
    ├── ConnectError            host, port (also OSError, with its errno)
    ├── HandshakeError          status_code, headers, body
    │   └── ProxyError          (a refused HTTP CONNECT)
    ├── HubUnavailableError     (also OSError: the hub's Redis is unreachable)
    ├── LifespanError           an ASGI app's startup failed
    ├── ProtocolError           close_code
    └── ConnectionClosed        code, reason
        ├── ConnectionClosedOK      (also anyio.EndOfStream)
        └── ConnectionClosedError   (also anyio.BrokenResourceError)

``ConnectError`` is raised when a client cannot reach its server or proxy
(refused, unreachable, DNS, TLS); as an :class:`OSError` it keeps the
``errno`` of the failure (``errno.ECONNREFUSED``...), and the cause is
chained.

``ClientDisconnected`` is what an ASGI application served by
``faye_websocket.http.Server(app=...)`` gets from ``send()`` once its client
has gone: an :class:`OSError`, as the ASGI specification asks, so Starlette
turns it into its own disconnect exceptions. ``LifespanError`` is raised by
``Server.serve`` when the application reports ``lifespan.startup.failed``.

``ConnectionClosedOK`` is raised when the connection closed with 1000 or
1001; as an :class:`anyio.EndOfStream` it ends ``async for`` loops quietly.
``ConnectionClosedError`` covers every other ending (1006 when the peer
vanished, 1002/1007/1009 when a side broke the protocol); as an
:class:`anyio.BrokenResourceError` it follows anyio's stream contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

__all__ = [
    "ClientDisconnected",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "FayeWebSocketError",
    "HandshakeError",
    "HubUnavailableError",
    "LifespanError",
    "ProtocolError",
    "ProxyError",
]


class FayeWebSocketError(Exception):
    """Root of every exception this package raises."""


class ClientDisconnected(FayeWebSocketError, OSError):
    """The client of an ASGI request or WebSocket has gone (raised to the
    application by ``send()``)."""


class LifespanError(FayeWebSocketError):
    """An ASGI application reported ``lifespan.startup.failed`` (the message
    is the application's), or, with ``lifespan="on"``, does not support the
    lifespan protocol."""


class ConnectError(FayeWebSocketError, OSError):
    """A connection could not be made: refused, unreachable, a name that does
    not resolve, a TLS handshake that failed.

    Attributes:
        errno: the failure's error number, when the system gave one.
        host: the host that could not be reached (the proxy's, for a proxy).
        port: its port.
    """

    def __init__(self, message: str, *, host: str, port: int,
                 errno: int | None = None) -> None:
        super().__init__(errno, message)
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_connect_error, (str(self), self.host, self.port, self.errno))


def _rebuild_connect_error(message: str, host: str, port: int,
                           errno: int | None) -> ConnectError:
    return ConnectError(message, host=host, port=port, errno=errno)


class HandshakeError(FayeWebSocketError):
    """The opening handshake failed.

    Attributes:
        status_code: the HTTP status of the response involved (0 if none).
        headers: its headers, as ``(name, value)`` pairs.
        body: its body, if any was read.
    """

    def __init__(self, message: str, *, status_code: int = 0,
                 headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = list(headers)
        self.body = body


class ProxyError(HandshakeError):
    """An HTTP proxy refused the CONNECT request."""


class ProtocolError(FayeWebSocketError):
    """A peer broke the WebSocket protocol.

    Attributes:
        close_code: the close code sent because of it (1002, 1007, 1009...).
    """

    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


class ConnectionClosed(FayeWebSocketError):
    """The connection is closed (or closing) and cannot carry this call.

    Attributes:
        code: the close code (1006 when no Close frame was received).
        reason: the close reason.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed, anyio.EndOfStream):
    """The connection closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed, anyio.BrokenResourceError):
    """The connection closed abnormally or with an error code."""


def connection_closed(code: int, reason: str = "") -> ConnectionClosed:
    """The right subclass for a close code."""
    if code in (1000, 1001):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


class HubUnavailableError(FayeWebSocketError, OSError):
    """The hub's backend (Redis) stayed unreachable for ``redis_timeout``
    seconds; the cause is chained."""
