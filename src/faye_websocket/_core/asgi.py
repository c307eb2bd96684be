"""ASGI, sans I/O: reading scopes, and the WebSocket protocol at the level
of ASGI messages.

Inside an ASGI application the server speaks the wire protocol (framing,
masking, compression, pings); the application exchanges whole messages
with it. :class:`AsgiProtocol` is the core for that case: it takes the
server's ``websocket.receive`` / ``websocket.disconnect`` messages and
produces ``websocket.send`` / ``websocket.close`` ones, with the same
events and states as :class:`~faye_websocket._core.websocket.WebSocketProtocol`,
so the connection runtime drives either the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from .http import Headers, Request
from .websocket import (
    CloseReceived,
    Event,
    Failed,
    MessageReceived,
    ReadyState,
    truncate_reason,
)

__all__ = [
    "AsgiMessage",
    "AsgiProtocol",
    "Scope",
    "denial_messages",
    "is_scope",
    "last_event_id",
    "peer_of_scope",
    "request_from_scope",
    "scope_url",
    "spec_version",
]

#: An ASGI scope and message, as the specification types them.
Scope = Mapping[str, Any]
AsgiMessage = MutableMapping[str, Any]

_NO_STATUS = 1005


def is_scope(value: object) -> bool:
    """Whether ``value`` looks like an ASGI scope rather than a request."""
    return isinstance(value, Mapping) and isinstance(value.get("type"), str)


def spec_version(scope: Scope) -> tuple[int, ...]:
    """The ASGI spec version the server implements (``"2.0"`` when unsaid)."""
    raw = str((scope.get("asgi") or {}).get("spec_version", "2.0"))
    try:
        return tuple(int(part) for part in raw.split("."))
    except ValueError:
        return (2, 0)


def request_from_scope(scope: Scope) -> Request:
    """The request head an ASGI scope describes (its target as sent)."""
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes) and raw_path:
        path = raw_path.decode("latin-1")
    else:
        path = str(scope.get("root_path", "")) + str(scope.get("path", "/"))
    query = scope.get("query_string") or b""
    target = f"{path}?{query.decode('latin-1')}" if query else path
    headers = Headers((name.decode("latin-1").lower(), value.decode("latin-1"))
                      for name, value in scope.get("headers") or ())
    method = str(scope.get("method", "GET"))
    return Request(method, target, headers, str(scope.get("http_version", "1.1")))


def scope_url(scope: Scope, request: Request) -> str:
    """``ws(s)://`` (``http(s)://`` for ``http`` scopes) + Host + target."""
    scheme = str(scope.get("scheme") or ("ws" if scope.get("type") == "websocket" else "http"))
    host = request.header("host")
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else ""
    return f"{scheme}://{host}{request.target}"


def peer_of_scope(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def last_event_id(request: Request) -> str:
    """``Last-Event-ID``: the header, else a ``last_event_id`` query
    parameter (a browser cannot set headers on its first connection)."""
    raw = request.header("last-event-id")
    if raw is not None:
        # Header values are kept as latin-1 text; clients send the id as UTF-8.
        return raw.encode("latin-1", "replace").decode("utf-8", "replace")
    query = request.target.partition("?")[2]
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "last_event_id":
            return value
    return ""


def denial_messages(status: int, headers: Iterable[tuple[str, str]],
                    body: bytes) -> list[AsgiMessage]:
    """The ``websocket.http.response`` messages refusing an upgrade."""
    return [
        {"type": "websocket.http.response.start", "status": status,
         "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                     for name, value in headers]},
        {"type": "websocket.http.response.body", "body": body, "more_body": False},
    ]


class AsgiProtocol:
    """An accepted WebSocket, seen from inside an ASGI application.

    Input is the server's messages (:meth:`receive_data`), output the
    application's (:meth:`chunks_to_send`). What belongs to the wire is the
    server's: pings, compression, frame limits. Messages longer than
    ``max_length`` are refused here too (1009), as they would be on our own
    server. The server answers a peer's Close itself, so ``websocket.disconnect``
    ends the connection at once.

    Args:
        max_length: largest message delivered, in bytes (UTF-8 for text).
        reasons: the server takes a close reason (ASGI spec 2.3 and later).
    """

    client = False

    def __init__(self, *, max_length: int, reasons: bool = True) -> None:
        self.max_length = max_length
        self.state = ReadyState.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self._reasons = reasons
        self._events: list[Event] = []
        self._out: list[AsgiMessage] = []
        self._pending = 0
        self._failed = False
        self._input_closed = False
        self._close_sent = False

    # -- input -----------------------------------------------------------

    def receive_data(self, message: Mapping[str, Any] | bytes) -> None:
        """Take one message of the server's (bytes: nothing, for the
        runtime's "what came with the handshake")."""
        if not isinstance(message, Mapping) or self.state is ReadyState.CLOSED:
            return
        kind = message.get("type")
        if kind == "websocket.receive":
            if self._input_closed:
                return
            text, data = message.get("text"), message.get("bytes")
            item: str | bytes | None = text if text is not None else data
            if item is None:
                self._events.append(Failed(1003, "a websocket.receive with neither "
                                                 "text nor bytes"))
                self._failed_input()
                return
            size = len(item) if isinstance(item, bytes) or item.isascii() \
                else len(item.encode("utf-8"))
            if size > self.max_length:
                self._events.append(Failed(1009, f"message of {size} bytes exceeds "
                                                 f"max_length ({self.max_length})"))
                self._failed_input()
                return
            self._events.append(MessageReceived(item))
        elif kind == "websocket.disconnect":
            code = int(message.get("code") or _NO_STATUS)
            reason = str(message.get("reason") or "")
            if code == _NO_STATUS:
                # "No status": a Close frame without a code, reported as 1000
                # (S-36), when the server passes the frame's (empty) reason;
                # else the connection dropped (uvicorn says 1005 then too).
                code = 1000 if "reason" in message else 1006
            if not self._failed:
                # Whoever started the handshake, the code reported is the peer's.
                self.close_code, self.close_reason = code, reason
            self._events.append(CloseReceived(code, reason))
            self.state = ReadyState.CLOSED
        # Anything else (a repeated websocket.connect, a future message
        # type) carries nothing for us.

    def _failed_input(self) -> None:
        self._input_closed = True  # the runtime then calls fail()

    def receive_eof(self) -> None:
        """The server will send nothing more (or failed)."""
        if self.state is not ReadyState.CLOSED:
            self.state = ReadyState.CLOSED
            if not self._failed:
                self.close_code, self.close_reason = 1006, ""

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- output ----------------------------------------------------------

    def send_message(self, data: str | bytes | bytearray | memoryview, *,
                     compress: bool = True) -> None:
        """Queue a ``websocket.send`` (``compress`` is the server's to decide)."""
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot send in state {self.state.name}")
        if isinstance(data, str):
            self._queue({"type": "websocket.send", "text": data}, len(data))
        else:
            payload = bytes(data)
            self._queue({"type": "websocket.send", "bytes": payload}, len(payload))

    def send_ping(self, payload: bytes = b"") -> None:
        raise NotImplementedError(
            "ASGI offers no way to ping: pings are the ASGI server's (e.g. uvicorn's "
            "--ws-ping-interval, hypercorn's websocket_ping_interval)")

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake (no-op once a Close was sent)."""
        if self.state is ReadyState.OPEN:
            self._queue_close(code, reason)
            self.state = ReadyState.CLOSING

    def fail(self, code: int, reason: str) -> None:
        """Close with ``code`` and ignore all further input."""
        if self.state is ReadyState.CLOSED or self._failed:
            return
        self._failed = self._input_closed = True
        self._queue_close(code, reason)
        self.state = ReadyState.CLOSING
        self.close_code, self.close_reason = code, reason

    def _queue_close(self, code: int | None, reason: str) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        message: AsgiMessage = {"type": "websocket.close", "code": code or 1000}
        if self._reasons and reason:
            message["reason"] = truncate_reason(reason)
        self._queue(message, 2)

    def _queue(self, message: AsgiMessage, size: int) -> None:
        self._out.append(message)
        self._pending += size

    def chunks_to_send(self) -> list[AsgiMessage]:
        """Messages for the server's ``send``, in order (each returned once)."""
        out, self._out = self._out, []
        self._pending = 0
        return out

    @property
    def can_send(self) -> bool:
        return self.state is ReadyState.OPEN

    @property
    def pending(self) -> int:
        """Payload bytes queued and not yet collected."""
        return self._pending

    @property
    def failed(self) -> bool:
        return self._failed

    def close_expected(self) -> bool:
        return self._failed or self.state is ReadyState.CLOSED


def choose_protocol(offered: Sequence[str], protocols: Sequence[str]) -> str:
    """The first of the client's subprotocols that is also ours (S-11)."""
    return next((p for p in offered if p and p in protocols), "")
