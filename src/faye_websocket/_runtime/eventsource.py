"""Where an EventSource's bytes go: one interface, one implementation per
kind of response.

:class:`~faye_websocket.EventSource` formats events and paces them; a
:class:`Sink` carries them:

* :class:`ResponseSink`: a :class:`~faye_websocket.http.Response` of our
  HTTP helper (chunked, through h11);
* :class:`StreamSink`: a bare anyio byte stream, the head written raw, as
  the reference does with a socket;
* :class:`AsgiSink`: an ASGI ``http`` response (``http.response.start``
  and ``http.response.body`` messages), watching for ``http.disconnect``.

Each raises one of :data:`~faye_websocket._runtime.streams.TRANSPORT_ERRORS`
from :meth:`Sink.write` and :meth:`Sink.end` once the client is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from .._core.asgi import AsgiMessage, Scope, peer_of_scope
from .._core.handshake import http_response
from .._emitter import peer_of
from .server import Response
from .streams import TRANSPORT_ERRORS, close_stream

__all__ = ["AsgiSink", "ResponseSink", "Sink", "StreamSink", "sink_for"]


class Sink(Protocol):
    """What an EventSource needs of the response it streams on."""

    #: Whether the client reached us over TLS.
    secure: bool

    def start(self, headers: list[tuple[str, str]]) -> None:
        """Set the ``200`` response's headers (sent with the first write)."""

    async def write(self, data: bytes) -> None:
        """Send ``data`` (the head first, the first time)."""

    async def end(self) -> None:
        """Finish the response (nothing is written after)."""

    async def wait_gone(self) -> None:
        """Return once the client has gone away."""

    async def abort(self) -> None:
        """Drop the connection now (also ending a write in progress)."""

    async def release(self) -> None:
        """After the stream ended: close what is the EventSource's to close."""

    def peer(self) -> str:
        """The client's address (``host:port``), ``""`` if unknown."""


def sink_for(response: Response | anyio.abc.AnyByteStream) -> Sink:
    if isinstance(response, Response):
        return ResponseSink(response)
    return StreamSink(response)


class _OnStream:
    """Watching and dropping a connection we hold the stream of."""

    _stream: anyio.abc.AnyByteStream

    def _is_secure(self) -> bool:
        # (A plain socket is never TLS; asking it costs a system call.)
        return not isinstance(self._stream, anyio.abc.SocketStream) and \
            self._stream.extra(TLSAttribute.ssl_object, None) is not None

    async def wait_gone(self) -> None:
        try:
            while await self._stream.receive():
                pass  # a client has nothing to say on an event stream
        except TRANSPORT_ERRORS:
            pass

    async def abort(self) -> None:
        await anyio.aclose_forcefully(self._stream)

    def peer(self) -> str:
        return peer_of(self._stream)


class ResponseSink(_OnStream):
    """The HTTP helper's response (it closes its own connections)."""

    def __init__(self, response: Response) -> None:
        self._response = response
        self._stream = response.stream
        self.secure = self._is_secure()

    def start(self, headers: list[tuple[str, str]]) -> None:
        # Connection: close, as the reference: the stream ends with the
        # connection, so no request can follow it on this one.
        self._response.write_head(200, [*headers, ("Connection", "close")])

    async def write(self, data: bytes) -> None:
        await self._response.write(data)

    async def end(self) -> None:
        if self._response.headers_sent:
            await self._response.end()

    async def release(self) -> None:
        pass


class StreamSink(_OnStream):
    """A bare byte stream: ours to write the head on and to close."""

    def __init__(self, stream: anyio.abc.AnyByteStream) -> None:
        self._stream = stream
        self._head = b""
        self.secure = self._is_secure()

    def start(self, headers: list[tuple[str, str]]) -> None:
        self._head = http_response(200, [*headers, ("Connection", "close")])

    async def write(self, data: bytes) -> None:
        head, self._head = self._head, b""
        await self._stream.send(head + data if head else data)

    async def end(self) -> None:
        pass

    async def release(self) -> None:
        await close_stream(self._stream)


class AsgiSink:
    """An ASGI ``http`` response. Whatever the server's ``send`` raises
    means the client is gone (:class:`anyio.BrokenResourceError` here)."""

    def __init__(self, scope: Scope, receive: Callable[[], Awaitable[AsgiMessage]],
                 send: Callable[[AsgiMessage], Awaitable[None]]) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._start: AsgiMessage | None = None
        self._gone = False
        self._ended = False
        self._send_scope: anyio.CancelScope | None = None
        self.secure = scope.get("scheme") == "https"

    def start(self, headers: list[tuple[str, str]]) -> None:
        # The server decides about the connection (and HTTP/2 has no
        # Connection header).
        self._start = {"type": "http.response.start", "status": 200,
                       "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                   for name, value in headers]}

    async def _message(self, message: AsgiMessage) -> None:
        if self._gone:
            raise anyio.BrokenResourceError("the client has gone away")
        try:
            with anyio.CancelScope() as self._send_scope:
                await self._send(message)
        except Exception as exc:
            self._gone = True
            raise anyio.BrokenResourceError("the client has gone away") from exc
        finally:
            self._send_scope = None
        if self._gone:  # aborted while the server held it
            raise anyio.BrokenResourceError("the client has gone away")

    async def write(self, data: bytes) -> None:
        if self._start is not None:
            start, self._start = self._start, None
            await self._message(start)
        await self._message({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        if self._start is None and not self._ended:
            self._ended = True
            await self._message({"type": "http.response.body", "body": b"",
                                 "more_body": False})

    async def wait_gone(self) -> None:
        while not self._gone:
            try:
                message = await self._receive()
            except Exception:
                return
            if message.get("type") == "http.disconnect":
                return

    async def abort(self) -> None:
        self._gone = True
        if self._send_scope is not None:
            self._send_scope.cancel()

    async def release(self) -> None:
        pass

    def peer(self) -> str:
        return peer_of_scope(self._scope)
