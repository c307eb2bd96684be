"""The public WebSocket client, ``WebSocket.Client``."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from ._core.client import (
    CLIENT_RESERVED,
    ClientHandshake,
    HandshakeFailure,
    check_protocols,
    new_key,
    parse_url,
    public_url,
)
from ._core.deflate import PerMessageDeflate
from ._core.handshake import normalize_headers
from ._core.http import Headers
from ._core.options import check_count, check_seconds, protocol_list, unique_extensions
from ._core.redirects import RedirectRefused, Redirects, location
from ._core.websocket import WebSocketProtocol
from ._reconnecting import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_INITIAL_DELAY,
    DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
    DEFAULT_RESET_AFTER,
    ReconnectingClient,
)
from ._runtime.client import (
    DEFAULT_MAX_HEAD_SIZE,
    open_stream,
    resolve_proxy,
    run_handshake,
    tls_context,
)
from ._runtime.connection import DEFAULT_MAX_LENGTH, Connection
from ._runtime.streams import close_stream
from .exceptions import HandshakeError, ProxyError

__all__ = ["Client"]



class Client(anyio.AsyncContextManagerMixin, Connection):  # type: ignore[misc]
    """A WebSocket client: ``WebSocket.Client(url, protocols, **options)``.

    ::

        async with WebSocket.Client("wss://example.com/chat", ["irc"]) as ws:
            await ws.send("hello")
            print(await ws.receive())

    Entering the block connects and runs the opening handshake; leaving it
    runs the closing handshake. Or let the connection's tasks live in a task
    group of yours with :meth:`connect`.

    Args:
        url: a ``ws://`` or ``wss://`` URL; userinfo in it is sent as
            ``Authorization: Basic``.
        protocols: subprotocols to offer, in order of preference.
        extensions: e.g. ``[PerMessageDeflate()]``.
        headers: extra request headers (``Origin``, ``User-Agent``...).
        max_length: largest message accepted, on the wire and inflated; a
            larger one closes the connection with 1009.
        ping: seconds between keep-alive pings (``None`` or 0: off).
        ping_timeout: seconds to wait for a keep-alive pong before closing
            with 1011 (default: the ping interval; ``math.inf``: never).
        close_timeout: seconds the closing handshake (and then waiting for
            the server to close TCP) may take before the transport is
            aborted and ``close`` fires with 1006.
        max_queue: received messages held for :meth:`receive`; while the
            queue is full the socket is not read (backpressure).
        write_limit: bytes queued by :meth:`send_nowait` before it raises
            :class:`anyio.WouldBlock`.
        tls: the ``ssl.SSLContext`` for ``wss://`` (default: the system's
            trusted CAs, with host names checked).
        ca: path to a PEM CA bundle; shorthand for a verifying context.
        proxy: ``{"origin": "http://user:pass@host:port", "headers": {...},
            "tls": ctx}``, an origin URL, or ``"env"`` to use
            ``https_proxy``/``http_proxy``/``all_proxy`` and ``no_proxy``.
        open_timeout: seconds for connecting, the proxy ``CONNECT`` and the
            opening handshake; past it, :class:`TimeoutError` (``close``
            1006).
        max_head_size: largest response head (status line and headers) read
            from the server or the proxy, in bytes; a larger one is a
            :class:`~faye_websocket.exceptions.HandshakeError`.
        max_redirects: redirects (301, 302, 303, 307, 308) followed while
            opening; one more, or a loop, is a
            :class:`~faye_websocket.exceptions.HandshakeError` (0: none are
            followed).
        allow_insecure_redirects: follow a redirect from ``wss://`` to
            ``ws://`` (refused by default: a
            :class:`~faye_websocket.exceptions.HandshakeError`).

    Raises:
        ValueError: not a ``ws:``/``wss:`` URL, a bad header, or an option
            out of range (a negative or NaN number of seconds or bytes, a
            zero ``open_timeout`` or ``ping_timeout``, ``max_queue`` or
            ``max_head_size`` under 1, a negative ``max_redirects``).
    """

    _kind = "WebSocket.Client"

    def __init__(
        self,
        url: str,
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
        tls: ssl.SSLContext | None = None,
        ca: str | None = None,
        proxy: Mapping[str, Any] | str | None = None,
        open_timeout: float = 10,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_redirects: int = 10,
        allow_insecure_redirects: bool = False,
    ) -> None:
        check_seconds("open_timeout", open_timeout, positive=True)
        check_count("max_head_size", max_head_size, minimum=1)
        check_count("max_redirects", max_redirects)
        super().__init__(ping=ping, ping_timeout=ping_timeout, close_timeout=close_timeout,
                         max_queue=max_queue, write_limit=write_limit, max_length=max_length)
        self._url = url
        self._target = parse_url(url)
        #: The URL, without its userinfo; after redirects, the last one asked for.
        self.url = public_url(url)
        self._handshake = ClientHandshake(
            self._target, check_protocols(protocol_list(protocols)), unique_extensions(extensions),
            normalize_headers(headers, reserved=CLIENT_RESERVED), max_length)
        self._tls = tls_context(tls, ca)
        self._proxy_option = proxy
        self._proxy = resolve_proxy(proxy, self._target)
        self._open_timeout = open_timeout
        self._max_head_size = max_head_size
        self._max_redirects = max_redirects
        self._allow_insecure_redirects = allow_insecure_redirects
        #: Status and headers of the handshake response (also after a
        #: refused handshake, as in faye).
        self.status_code: int | None = None
        #: A :class:`~faye_websocket.http.Headers`: pairs, looked up in any case.
        self.headers = Headers()
        self._entered = False

    @classmethod
    async def connect(cls, task_group: anyio.abc.TaskGroup, url: str,
                      protocols: Sequence[str] | str | None = None, **options: Any) -> Client:
        """Open a connection whose tasks run in ``task_group``.

        Returns once the connection is open. Close it with :meth:`close`; the
        task group then has nothing left of it::

            async with anyio.create_task_group() as tg:
                ws = await WebSocket.Client.connect(tg, "ws://127.0.0.1:7000/")
                await ws.send("hi")
                await ws.close()
        """
        ws = cls(url, protocols, **options)
        stream, core, initial = await ws._open()
        await task_group.start(ws._run_in, stream, core, initial)
        await ws._maybe_open()
        return ws

    @classmethod
    def reconnecting(cls, url: str, protocols: Sequence[str] | str | None = None, *,
                     initial_delay: float = DEFAULT_INITIAL_DELAY,
                     max_delay: float = DEFAULT_MAX_DELAY,
                     backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
                     jitter: float = DEFAULT_JITTER,
                     reset_after: float = DEFAULT_RESET_AFTER,
                     **options: Any) -> ReconnectingClient:
        """Connect again and again: an async iterator of open clients.

        ::

            async for ws in WebSocket.Client.reconnecting("wss://example.com/feed"):
                try:
                    async for message in ws:
                        print(message)
                except ConnectionClosed:
                    continue  # lost: connect again

        Each step hands out a new client, open. When the loop comes back
        for the next one, the previous one is closed (with 1000, if it is
        still open) and a new one connects after a wait: the ``n``-th
        failure in a row waits ``initial_delay * backoff_factor ** (n - 1)``
        seconds, at most ``max_delay``, less up to ``jitter`` of it at
        random. A failed attempt counts as a failure, and so does a
        connection that closed within ``reset_after`` seconds; after one
        that lasted longer the wait is ``initial_delay`` again. A
        ``Retry-After`` (seconds) on a 429 or 503 is honoured, up to
        ``max_delay``. The first attempt does not wait.

        Retried: no connection (refused, unreachable, a name that does not
        resolve, ``open_timeout``, TLS failures other than the certificate
        check), no response, 429 and 5xx, a SOCKS proxy that cannot reach
        the server. Raised from the loop: any other refusal (4xx, a
        redirect not followed, an invalid handshake, a SOCKS proxy refusing
        the credentials) and a certificate that fails verification.

        Each client's connection runs in a task of the iterator's, not in
        the caller's, so the loop may be left at any point: leaving a bare
        ``async for`` (``break``, an exception, a cancellation) closes the
        current client with 1000. In a block (``async with
        WebSocket.Client.reconnecting(...) as clients: async for ws in
        clients:``), leaving it closes the client before the block ends:
        1000, or 1011 on an exception and 1001 on a cancellation.

        Args:
            url: as for the constructor.
            protocols: as for the constructor.
            initial_delay: seconds before the first reconnection.
            max_delay: the longest wait, in seconds.
            backoff_factor: how much longer each failure in a row waits.
            jitter: the part of each wait (0 to 1) taken off at random.
            reset_after: seconds a connection must stay open for the
                backoff to start over.
            options: the constructor's keyword options, for every client.

        It may be built before the event loop runs (then its first step
        checks the options).

        Raises:
            ValueError: a bad URL or option (at once, not in the loop).
        """
        parse_url(url)  # a bad URL raises now, even before the event loop runs
        return ReconnectingClient(
            lambda: cls(url, protocols, **options), public_url(url),
            initial_delay=initial_delay,
            max_delay=max_delay, backoff_factor=backoff_factor, jitter=jitter,
            reset_after=reset_after)

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Client]:
        stream, core, initial = await self._open()
        async with self._running(stream, core, initial):
            yield self

    async def _open(self) -> tuple[anyio.abc.ByteStream, WebSocketProtocol, bytes]:
        """Connect and run the opening handshake; on failure fire ``error``
        and ``close`` (1002 for a bad response, 1006 without a connection)
        and raise."""
        if self._entered:
            raise RuntimeError("a WebSocket.Client connects once; make a new one "
                               "to connect again")
        self._entered = True
        handshake = self._handshake
        stream: anyio.abc.ByteStream | None = None
        redirects = Redirects(self._url, max_redirects=self._max_redirects,
                              allow_insecure=self._allow_insecure_redirects)
        proxy = self._proxy
        try:
            with anyio.fail_after(self._open_timeout):
                while True:
                    stream = await open_stream(redirects.target, tls=self._tls, proxy=proxy,
                                               max_head_size=self._max_head_size)
                    try:
                        status, headers, initial = await run_handshake(stream, handshake,
                                                                       self._max_head_size)
                        break
                    except HandshakeError as exc:
                        if exc.status_code:  # 0: no response at all
                            self.status_code = exc.status_code
                            self.headers = Headers(exc.headers)
                        where = location(exc.status_code, exc.headers)
                        if where is None or not self._max_redirects:
                            raise
                        try:
                            url, target = redirects.follow(exc.status_code, where)
                        except RedirectRefused as refused:
                            raise HandshakeError(
                                f"{_HANDSHAKE} with {self.url}: {refused}",
                                status_code=exc.status_code, headers=exc.headers,
                                body=exc.body) from None
                    # Follow it: a new request (and key) on a new connection.
                    await close_stream(stream, grace=0)
                    stream = None
                    self.url = public_url(url)
                    self.status_code, self.headers = None, Headers()
                    proxy = resolve_proxy(self._proxy_option, target)
                    handshake = dataclasses.replace(
                        self._handshake, target=target, key=new_key(),
                        headers=redirects.headers(self._handshake.headers))
                self.status_code, self.headers = status, Headers(headers)
                protocol, extensions, sessions = handshake.check_response(status, headers)
        except HandshakeFailure as exc:
            message = f"{_HANDSHAKE} with {self.url}: {exc}"
            await self._fail_open(stream, 1002, message)
            raise HandshakeError(message, status_code=self.status_code or 0,
                                 headers=self.headers) from None
        except ProxyError as exc:
            await self._fail_open(stream, 1006, str(exc))
            raise
        except HandshakeError as exc:
            # 1002 for a response that is not a valid handshake; 1006 when
            # the server hung up without answering (as the reference).
            _name_url(exc, self.url)
            await self._fail_open(stream, 1002 if exc.status_code else 1006, str(exc))
            raise
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            # The server hung up or reset the connection during the TLS
            # handshake or before its response: the documented error for a
            # server that hangs up without answering, not anyio's.
            message = f"{_HANDSHAKE} with {self.url}: connection closed before a response"
            await self._fail_open(stream, 1006, message)
            raise HandshakeError(message) from exc
        except TimeoutError as exc:
            message = (f"Can't establish a connection to the server at {self.url}: "
                       f"no answer within open_timeout ({self._open_timeout:g} s)")
            await self._fail_open(stream, 1006, message)
            raise TimeoutError(message) from exc
        except OSError as exc:
            await self._fail_open(stream, 1006, _describe(exc, self.url))
            raise
        except BaseException:
            # Cancelled (or interrupted): the attempt is over, as when an open
            # connection is cancelled: CLOSED, ``close`` with 1006, waiters woken.
            with anyio.CancelScope(shield=True):
                if stream is not None:
                    await close_stream(stream, grace=0)
                await self._end(1006)
            raise
        self.protocol, self.extensions = protocol, extensions
        core = WebSocketProtocol(client=True, extensions=sessions,
                                 max_length=handshake.max_length)
        return stream, core, initial

    async def _fail_open(self, stream: anyio.abc.ByteStream | None, code: int,
                         message: str) -> None:
        if stream is not None:
            await close_stream(stream, grace=0)
        await self._end(code, message, error=message)


_HANDSHAKE = "Error during WebSocket handshake"


def _name_url(exc: HandshakeError, url: str) -> None:
    """Put ``url`` (credentials already redacted) in ``exc``'s message."""
    message = str(exc)
    prefix = _HANDSHAKE + ": "
    if message.startswith(prefix):
        exc.args = (f"{_HANDSHAKE} with {url}: {message[len(prefix):]}",)
    elif url not in message:
        exc.args = (f"{message} ({url})",)


def _describe(exc: BaseException, url: str) -> str:
    return f"Can't establish a connection to the server at {url}: {exc}"
