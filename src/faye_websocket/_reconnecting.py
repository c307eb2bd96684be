"""``WebSocket.Client.reconnecting``: a client that connects again, with backoff.

An async iterator class, not an async generator: the client it hands out
is entered (its task group opened) by one :meth:`~ReconnectingClient.__anext__`
call and left by the next call, by :meth:`~ReconnectingClient.aclose` or by
``__aexit__``, all in the task that iterates. A generator would have to
``yield`` inside the client's ``async with``, so the task group's cancel
scope would cross the ``yield``, and trio (and anyio) forbid that.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from ._core.options import check_seconds
from .exceptions import HandshakeError

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["ReconnectingClient"]

logger = logging.getLogger("faye_websocket.client")

#: Backoff defaults, in seconds (``backoff_factor`` and ``jitter`` are ratios).
DEFAULT_INITIAL_DELAY = 1.0
DEFAULT_MAX_DELAY = 60.0
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_JITTER = 0.5
DEFAULT_RESET_AFTER = 10.0


class ReconnectingClient:
    """``async for ws in WebSocket.Client.reconnecting(url, protocols, **options)``.

    Each step connects a new :class:`~faye_websocket.Client` and hands it
    out open; the next step closes it (with 1000, if it is still open) and
    connects again, after a backoff. Use it as a block, so that leaving the
    loop early (``break``, an exception, a cancellation) closes the
    connection at once, in the task that opened it::

        async with WebSocket.Client.reconnecting("wss://example.com/feed") as clients:
            async for ws in clients:
                try:
                    async for message in ws:
                        print(message)
                except ConnectionClosed:
                    continue  # lost: connect again

    Build it with :meth:`Client.reconnecting
    <faye_websocket.Client.reconnecting>`, which documents the backoff.
    """

    def __init__(self, factory: Callable[[], Client], *,
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
        # Built now, so that a bad URL or option raises here, not in the loop.
        self._next: Client | None = factory()
        #: The URL (without its userinfo).
        self.url = self._next.url
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._backoff_factor = backoff_factor
        self._jitter = jitter
        self._reset_after = reset_after
        #: The client handed out last, while it is entered.
        self._client: Client | None = None
        self._owner: object = None  # the task that entered it
        self._opened_at = 0.0
        self._closed_at: float | None = None
        #: Failed attempts and short-lived connections in a row.
        self._failures = 0
        self._attempted = False
        self._reason = ""
        self._retry_after: float | None = None
        self._finished = False
        self._busy = False
        self._scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        state = ("closed" if self._finished else "open" if self._client is not None
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
                    # Only the wait is in a scope of ours (aclose() from
                    # another task cancels it): the client's task group,
                    # opened below, must outlive this call.
                    with anyio.CancelScope() as self._scope:
                        await self._wait()
                    self._scope = None
                    if self._finished:
                        break
                self._attempted = True
                client = await self._connect()
                if client is not None:
                    if self._finished:  # aclose() from another task meanwhile
                        await self._leave(None)
                        break
                    return client
            raise StopAsyncIteration
        finally:
            self._scope = None
            self._busy = False

    async def _wait(self) -> None:
        delay = self._delay()
        logger.info("reconnecting to %s in %.3f s (%s)", self.url, delay, self._reason)
        await anyio.sleep(delay)

    async def _connect(self) -> Client | None:
        """One attempt to connect.

        Returns:
            The open client, or ``None`` after a failure that is retried.
        """
        client = self._next if self._next is not None else self._factory()
        self._next = None
        client.on("close", self._on_close)
        try:
            await client.__aenter__()
        except Exception as exc:
            if _fatal(exc):
                self._finished = True
                logger.info("not reconnecting to %s: %s", self.url, exc)
                raise
            self._failures += 1
            self._reason = f"{type(exc).__name__}: {exc}"
            self._retry_after = _retry_after(exc)
            return None
        self._client, self._owner = client, _current_task()
        self._opened_at = anyio.current_time()
        return client

    def _on_close(self, event: object) -> None:
        self._closed_at = anyio.current_time()

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
        """Leave the client handed out last (closing it), and count how
        long it lived."""
        client = self._client
        if client is None:
            return
        self._client = None
        dropped = self._closed_at is not None
        try:
            if exc is None:
                await client.__aexit__(None, None, None)
            else:
                await client.__aexit__(type(exc), exc, exc.__traceback__)
        finally:
            closed = self._closed_at if self._closed_at is not None else anyio.current_time()
            lived = closed - self._opened_at
            self._failures = 0 if lived >= self._reset_after else self._failures + 1
            self._retry_after = None
            self._closed_at = None
            self._reason = (f"closed with {client.close_code} after {lived:.3f} s" if dropped
                            else f"left after {lived:.3f} s")

    async def aclose(self) -> None:
        """Stop: close the current client (with 1000) and end the iteration.

        From the task that iterates, the client is left at once. From
        another task, it is closed, a wait for the next attempt is cut
        short, and the iterating task's next step ends the loop.
        """
        self._finished = True
        if self._scope is not None:
            self._scope.cancel()
        client = self._client
        if client is None:
            return
        if self._owner is _current_task() and not self._busy:
            await self._leave(None)
        else:
            await client.close()

    async def __aenter__(self) -> ReconnectingClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close the current client: with 1000, or as leaving a client's
        block does on an exception (1011, 1001 when cancelled)."""
        self._finished = True
        await self._leave(exc)

    def __del__(self) -> None:
        if getattr(self, "_client", None) is not None:
            warnings.warn(
                f"{self!r} was dropped with a client open (a 'break' or an exception out "
                f"of a bare 'async for'?); use 'async with WebSocket.Client.reconnecting(...) "
                f"as clients: async for ws in clients: ...'", ResourceWarning, stacklevel=1)


def _fatal(exc: Exception) -> bool:
    """Whether an attempt's failure is one that waiting will not heal."""
    if isinstance(exc, HandshakeError):
        # 0: no response (a server restarting); 429 and 5xx: come back
        # later. Any other status (a 4xx, a redirect not followed, a 101
        # that does not complete the handshake) will be the same next time.
        status = exc.status_code
        return not (status in (0, 429) or 500 <= status <= 599)
    if isinstance(exc, OSError):  # ConnectError (refused, unreachable, DNS, TLS), timeouts
        return _certificate_rejected(exc)
    return True  # not a connection failure: a bug or a misuse, raised


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


def _current_task() -> object:
    return anyio.get_current_task().id

