"""The public WebSocket client, ``WebSocket.Client``, and its reconnecting
form, ``WebSocket.Client.reconnecting``: a client that connects again, with
backoff.

The reconnecting form is an async iterator class. Each step opens a client
in the iterating task (so that the opening's errors, and its cancellation,
are the caller's), then hands its connection to a task of the iterator's
own (:mod:`._runtime.host`), which runs the connection's task group.
Nothing is left entered in the caller's task between steps, so the caller
may leave the loop however it likes: the bare ``async for ws in
WebSocket.Client.reconnecting(url):`` is the contract. An async generator
could not do this: it would ``yield`` inside the client's ``async with``, so
the task group's cancel scope would cross the ``yield``, which trio (and
anyio) forbid.

The client handed out last is closed by the next step, by
:meth:`~ReconnectingClient.aclose`, by ``__aexit__`` or, when the iterator is
dropped while it is open (CPython drops it as soon as a bare ``async for``
is left), by ``__del__``: its task then runs the closing handshake alone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from ._core.client_handshake import (
    CLIENT_RESERVED,
    ClientHandshake,
    HandshakeFailure,
    check_protocols,
    new_key,
)
from ._core.deflate import PerMessageDeflate
from ._core.http import DEFAULT_MAX_HEAD_SIZE, Headers
from ._core.options import check_count, check_seconds, protocol_list, unique_extensions
from ._core.redirects import RedirectRefused, Redirects, location
from ._core.server_handshake import normalize_headers
from ._core.url import parse_url, public_url
from ._core.websocket import WebSocketProtocol
from ._runtime.client import (
    open_stream,
    resolve_proxy,
    run_handshake,
    tls_context,
)
from ._runtime.connection import DEFAULT_MAX_LENGTH, Connection
from ._runtime.host import spawn_host
from ._runtime.streams import close_stream
from .exceptions import HandshakeError, ProxyError

__all__ = ["Client", "ReconnectingClient"]

logger = logging.getLogger("faye_websocket.client")

#: Backoff defaults, in seconds (``backoff_factor`` and ``jitter`` are ratios).
DEFAULT_INITIAL_DELAY = 1.0
DEFAULT_MAX_DELAY = 60.0
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_JITTER = 0.5
DEFAULT_RESET_AFTER = 10.0


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


class ReconnectingClient:
    """``async for ws in WebSocket.Client.reconnecting(url, protocols, **options)``.

    Each step connects a new :class:`~faye_websocket.Client` and hands it
    out open; the next step closes it (with 1000, if it is still open) and
    connects again, after a backoff::

        async for ws in WebSocket.Client.reconnecting("wss://example.com/feed"):
            try:
                async for message in ws:
                    print(message)
            except ConnectionClosed:
                continue  # lost: connect again

    Leaving the loop (``break``, an exception, a cancellation) closes the
    current client with 1000. In a block (``async with
    WebSocket.Client.reconnecting(...) as clients:``), leaving it closes the
    client at once, with 1011 on an exception and 1001 on a cancellation.

    Build it with :meth:`Client.reconnecting
    <faye_websocket.Client.reconnecting>`, which documents the backoff.
    """

    def __init__(self, factory: Callable[[], Client], url: str, *,
                 initial_delay: float = DEFAULT_INITIAL_DELAY,
                 max_delay: float = DEFAULT_MAX_DELAY,
                 backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
                 jitter: float = DEFAULT_JITTER,
                 reset_after: float = DEFAULT_RESET_AFTER) -> None:
        check_seconds("initial_delay", initial_delay)
        check_seconds("max_delay", max_delay)
        check_seconds("reset_after", reset_after)
        if math.isinf(initial_delay) or math.isinf(max_delay):
            raise ValueError("initial_delay and max_delay must be finite")
        if isinstance(backoff_factor, bool) or not isinstance(backoff_factor, (int, float)) \
                or not 1 <= backoff_factor < math.inf:
            raise ValueError(f"backoff_factor must be a number >= 1, not {backoff_factor!r}")
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) \
                or not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be a number from 0 to 1, not {jitter!r}")
        self._factory = factory
        #: The URL (without its userinfo).
        self.url = url
        self._next: Client | None = None
        if _in_event_loop():
            # Built now, so that a bad option raises here, not in the loop.
            # (A client needs an event loop: without one, the first step
            # builds it.)
            self._next = factory()
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._backoff_factor = backoff_factor
        self._jitter = jitter
        self._reset_after = reset_after
        #: The client handed out last, while it has not been left.
        self._hosted: _Hosted | None = None
        #: Failed attempts and short-lived connections in a row.
        self._failures = 0
        self._attempted = False
        self._reason = ""
        self._retry_after: float | None = None
        self._finished = False
        self._busy = False
        self._scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        state = ("closed" if self._finished else "open" if self._hosted is not None
                 else "connecting")
        return f"<WebSocket.Client.reconnecting {state} {self.url}>"

    # -- the iterator -------------------------------------------------------

    def __aiter__(self) -> ReconnectingClient:
        return self

    async def __anext__(self) -> Client:
        """Close the previous client, wait out the backoff, connect.

        Raises:
            StopAsyncIteration: after :meth:`aclose` (or leaving the block).
            HandshakeError: a refusal that waiting will not change (a 4xx
                other than 429, a redirect not followed, an invalid 101).
            ConnectError: the server's certificate failed verification.
            RuntimeError: another task is iterating over it.
        """
        if self._busy:
            raise RuntimeError("another task is already waiting for the next client")
        self._busy = True
        try:
            await self._leave(None)
            while not self._finished:
                if self._attempted:
                    # In a scope of ours: aclose() from another task cancels it.
                    with anyio.CancelScope() as self._scope:
                        await self._wait()
                    self._scope = None
                    if self._finished:
                        break
                self._attempted = True
                hosted = await self._connect()
                if hosted is not None:
                    if self._finished:  # aclose() from another task meanwhile
                        await self._leave(None)
                        break
                    return hosted.client
            raise StopAsyncIteration
        finally:
            self._scope = None
            self._busy = False

    async def _wait(self) -> None:
        delay = self._delay()
        logger.info("reconnecting to %s in %.3f s (%s)", self.url, delay, self._reason)
        await anyio.sleep(delay)

    async def _connect(self) -> _Hosted | None:
        """One attempt to connect: open here, then run the connection in a
        task of its own.

        Returns:
            The open client and its task, or ``None`` after a failure that
            is retried.
        """
        client = self._next if self._next is not None else self._factory()
        self._next = None
        try:
            stream, core, initial = await client._open()
        except Exception as exc:
            if _fatal(exc):
                self._finished = True
                logger.info("not reconnecting to %s: %s", self.url, exc)
                raise
            self._failures += 1
            self._reason = f"{type(exc).__name__}: {exc}"
            self._retry_after = _retry_after(exc)
            return None
        hosted = _Hosted(client)
        if not await hosted.start(stream, core, initial):
            self._failures += 1
            self._reason = "the event loop is shutting down"
            return None
        try:
            await client._maybe_open()  # ``open`` fires here, as in a client's block
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await hosted.abandon(_leaving_code(exc))
            raise
        self._hosted = hosted
        return hosted

    def _delay(self) -> float:
        """The wait before the next attempt, in seconds.

        The ``n``-th failure in a row (a failed attempt, or a connection
        that lasted less than ``reset_after``) waits ``initial_delay *
        backoff_factor ** (n - 1)``, at most ``max_delay``; after a
        connection that lasted, the wait is ``initial_delay`` again. Jitter
        takes up to ``jitter`` of it off at random, so that clients dropped
        together do not all come back at the same instant. A ``Retry-After``
        (in seconds) on a 429 or 503 is waited for, up to ``max_delay``.
        """
        exponent = max(self._failures - 1, 0)
        try:
            nominal = min(self._initial_delay * self._backoff_factor ** exponent,
                          self._max_delay)
        except OverflowError:
            nominal = self._max_delay
        delay = nominal * (1 - self._jitter * random.random())
        if self._retry_after is not None:
            delay = max(delay, min(self._retry_after, self._max_delay))
        return delay

    # -- leaving --------------------------------------------------------------

    async def _leave(self, exc: BaseException | None) -> None:
        """Close the client handed out last (with 1000; 1011 or 1001 after
        ``exc``), wait for its task to end, and count how long it lived."""
        hosted = self._hosted
        if hosted is None:
            return
        self._hosted = None
        dropped = hosted.closed_at is not None
        try:
            if exc is None:
                await hosted.close()
            else:
                with anyio.CancelScope(shield=True):
                    await hosted.abandon(_leaving_code(exc))
        finally:
            closed = hosted.closed_at if hosted.closed_at is not None else anyio.current_time()
            lived = closed - hosted.opened_at
            self._failures = 0 if lived >= self._reset_after else self._failures + 1
            self._retry_after = None
            code = hosted.client.close_code
            self._reason = (f"closed with {code} after {lived:.3f} s" if dropped
                            else f"left after {lived:.3f} s")

    async def aclose(self) -> None:
        """Stop: close the current client (with 1000) and end the iteration.

        From another task, this also cuts a wait for the next attempt short;
        the iterating task's next step then ends the loop.
        """
        self._finished = True
        if self._scope is not None:
            self._scope.cancel()
        await self._leave(None)

    async def __aenter__(self) -> ReconnectingClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close the current client: with 1000, or as leaving a client's
        block does on an exception (1011, 1001 when cancelled)."""
        self._finished = True
        await self._leave(exc)

    def __del__(self) -> None:
        # Dropped with a client open: a bare ``async for`` was left. Its
        # task closes it (1000) and ends, within close_timeout.
        hosted = getattr(self, "_hosted", None)
        if hosted is not None:
            self._hosted = None
            hosted.close_soon()


class _Hosted:
    """A client handed out, and the task that runs its connection.

    It holds no reference to the iterator, which must stay collectable
    while the connection runs.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.opened_at = anyio.current_time()
        #: When ``close`` fired, if it has.
        self.closed_at: float | None = None
        self._ready = anyio.Event()  # the connection's tasks run
        self._done = anyio.Event()  # the task has ended
        self._left = anyio.Event()  # close_soon() was called
        self._call_soon: Callable[[Callable[[], object]], None] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        client.on("close", self._on_close)

    def _on_close(self, event: object) -> None:
        self.closed_at = anyio.current_time()

    async def start(self, stream: anyio.abc.ByteStream, core: WebSocketProtocol,
                    initial: bytes) -> bool:
        """Start the task, and the connection's tasks in its task group.

        The connection's tasks are started from here, in the caller's task,
        as when a client's block is entered (``Connection._running``): the
        client is handed out before its reader has run, still open.

        Returns:
            ``False`` if the task ended before the connection could run in
            it (the event loop is shutting down); the stream is closed.
        """
        self._call_soon = spawn_host(self._host,
                                     name=f"faye_websocket.reconnecting {self.client.url}")
        try:
            await self._ready.wait()
        except BaseException:
            await self._drop(stream)
            raise
        if self._tg is None or self._done.is_set():
            await self._drop(stream)
            return False
        self.client._attach(self._tg, stream, core, initial)
        return True

    async def _drop(self, stream: anyio.abc.ByteStream) -> None:
        """The connection never ran: close its stream, and fire ``close``
        with 1006 (as for an opening cancelled); the task then ends."""
        with anyio.CancelScope(shield=True):
            await close_stream(stream, grace=0)
            await self.client._end(1006)
            with anyio.move_on_after(max(self.client._close_timeout, 1)):
                await self._done.wait()

    async def _host(self) -> None:
        """The task: a task group for the connection's tasks, until the
        connection is closed (as ``Connection._run_in`` for
        ``connect(task_group, ...)``). Never raises, except the cancellation
        of an event loop shutting down.
        """
        client = self.client
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._close_when_left)
                self._tg = tg
                self._ready.set()
                await client.wait_closed()
                tg.cancel_scope.cancel()
        except Exception:  # a bug: the connection's tasks never raise
            logger.exception("the task of %s failed", client.url)
        finally:
            self._tg = None
            self._ready.set()
            self._done.set()

    async def _close_when_left(self) -> None:
        await self._left.wait()
        self.client._queue.discard()  # nobody reads it any more
        await self.client.close()  # within close_timeout

    def close_soon(self) -> None:
        """Have the task close the client with 1000 (from ``__del__``: any
        thread, any time, no waiting)."""
        if self._call_soon is None:
            return
        try:
            self._call_soon(self._left.set)
        except RuntimeError:  # the event loop has ended, and the connection with it
            pass

    async def close(self) -> None:
        """Close with 1000 and wait for the task to end; cancelled meanwhile,
        abandon the connection instead (1001)."""
        try:
            # As leaving a client's block: nobody reads the queue any more,
            # so the reader drops what arrives while the handshake runs.
            self.client._queue.discard()
            await self.client.close()
            await self._done.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.abandon(1001)
            raise

    async def abandon(self, code: int) -> None:
        """Send Close ``code`` without waiting for the answer, drop the
        transport and wait for the task to end (call it shielded)."""
        with anyio.move_on_after(max(self.client._close_timeout, 1)):
            await self._ready.wait()
            await self.client._abandon(code)
            await self._done.wait()


def _in_event_loop() -> bool:
    try:
        anyio.get_current_task()
    except RuntimeError:  # no event loop (anyio's NoEventLoopError, or sniffio's error)
        return False
    return True


def _leaving_code(exc: BaseException) -> int:
    return 1001 if isinstance(exc, anyio.get_cancelled_exc_class()) else 1011


def _fatal(exc: Exception) -> bool:
    """Whether an attempt's failure is one that waiting will not heal."""
    if isinstance(exc, ProxyError) and not exc.status_code:
        return _socks_refusal_is_final(exc.__cause__)
    if isinstance(exc, HandshakeError):
        # 0: no response (a server restarting); 429 and 5xx: come back
        # later. Any other status (a 4xx, a redirect not followed, a 101
        # that does not complete the handshake) will be the same next time.
        status = exc.status_code
        return not (status in (0, 429) or 500 <= status <= 599)
    if isinstance(exc, OSError):  # ConnectError (refused, unreachable, DNS, TLS), timeouts
        return _certificate_rejected(exc)
    return True  # not a connection failure: a bug or a misuse, raised


#: SOCKS replies to CONNECT that may change: general failure, network or
#: host unreachable, connection refused, TTL expired (SOCKS5, RFC 1928
#: section 6), and "rejected or failed" (SOCKS4, which reports an
#: unreachable target so). Not retried: a ruleset that does not allow the
#: target, an unsupported command or address type, and the identd checks.
_SOCKS_TRANSIENT = frozenset({1, 3, 4, 5, 6, 0x5B})


def _socks_refusal_is_final(cause: BaseException | None) -> bool:
    """Whether a SOCKS proxy's refusal (python-socks' error, the cause of
    our :class:`ProxyError`) is final: its credentials or method were
    refused (no reply code), or a CONNECT reply that waiting will not
    change. A proxy that hung up during the negotiation is retried."""
    if cause is None or not hasattr(cause, "error_code"):
        return False  # it closed the connection: a proxy restarting
    code = cause.error_code
    return code is None or int(code) not in _SOCKS_TRANSIENT


def _certificate_rejected(exc: BaseException) -> bool:
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _retry_after(exc: Exception) -> float | None:
    """A ``Retry-After`` in seconds on a 429 or 503 refusal (an HTTP date
    is ignored)."""
    if not isinstance(exc, HandshakeError) or exc.status_code not in (429, 503):
        return None
    values = [v.strip() for k, v in exc.headers if k.lower() == "retry-after"]
    if values and values[-1].isdigit():
        return float(values[-1])
    return None
