"""WebSocket and EventSource inside an ASGI application.

The public objects are the same as on our own server; what differs is how
the opening is answered and what the connection runs on: ASGI messages
through the server's ``receive`` and ``send`` (a message-level transport,
:class:`~faye_websocket._runtime.transport.AsgiTransport`) instead of bytes
on a stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import anyio

from ._core.asgi import (
    AsgiMessage,
    AsgiProtocol,
    Scope,
    choose_protocol,
    denial_messages,
    peer_of_scope,
    request_from_scope,
    scope_url,
    spec_version,
)
from ._core.handshake import Rejected, refusal_head
from ._runtime.connection import Core
from ._runtime.transport import AsgiTransport, TransportLost
from ._websocket import WebSocket

__all__ = ["AsgiWebSocket"]

Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]


class AsgiWebSocket(WebSocket):
    """:meth:`WebSocket.from_asgi`'s object (a :class:`WebSocket` in every
    way a user sees)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send,
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
