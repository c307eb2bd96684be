"""The connection runtime shared by the server-side WebSocket and the client.

One anyio task group per connection, entered by the public object's
``async with`` (or a task group the caller passes in), holds:

* the reader task, which feeds the core, delivers messages and answers
  pings; it is the only task that ends a connection, so the ``close`` event
  fires exactly once and always after the last message;
* the writer task, which flushes frames queued by the ``*_nowait`` methods;
* the keep-alive task (``ping=``) and the closing-handshake timer.

Background tasks never raise: the reader records how the connection ended
and user calls raise :class:`~faye_websocket.exceptions.ConnectionClosed`
from it.
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel

from .._core.asgi import AsgiProtocol
from .._core.hixie import HixieProtocol
from .._core.options import check_count, check_seconds
from .._core.websocket import (
    BATCH,
    CloseReceived,
    Failed,
    MessageReceived,
    PongReceived,
    ReadyState,
    Utf8Text,
    WebSocketProtocol,
)
from .._emitter import Event, EventEmitter, logger
from ..exceptions import ConnectionClosed, ConnectionClosedError, connection_closed
from .queue import MessageQueue
from .transport import Transport, TransportLost, transport_for

#: The sans-IO core driving a connection: hybi-13, one of the drafts, or
#: ASGI messages (inside an ASGI application).
Core = WebSocketProtocol | HixieProtocol | AsgiProtocol

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from .._core.websocket import Event as CoreEvent

__all__ = ["Connection", "Message"]

Message = str | bytes
#: See Connection._sometimes_checkpoint.
_CHECKPOINT_EVERY = 16
_MAX_CONTROL_PAYLOAD = 125
#: Unanswered pings from ping_nowait() kept at most (each holds an entry
#: until its pong, which a peer may never send).
MAX_UNANSWERED_PINGS = 64
DEFAULT_MAX_LENGTH = 2**26 - 1
#: Bytes of received messages queued for the application (counted as
#: CPython stores them) at which the reader stops reading the socket, as
#: ``write_limit`` bounds what is queued for the peer: beyond this, more
#: read-ahead only costs memory (a thousand connections each holding 16
#: decoded 64 KiB messages is a gigabyte).
READ_LIMIT = 65536


@dataclass(eq=False, slots=True)
class _PendingPing:
    payload: bytes
    sent_at: float
    callback: Callable[[], object] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    answered: bool = False


def validate_close(code: int, reason: str) -> None:
    """The codes a user may send: 1000, 1001 and 3000-4999, as browsers allow
    (plus 1001, which servers need to shut down cleanly).

    Raises:
        ValueError: another code, or a reason over 123 UTF-8 bytes.
    """
    if code not in (1000, 1001) and not 3000 <= code <= 4999:
        raise ValueError(f"invalid close code {code!r}: use 1000, 1001 or 3000-4999")
    if len(reason.encode("utf-8")) > 123:
        raise ValueError("close reason is longer than 123 bytes of UTF-8")


class Connection(EventEmitter, anyio.abc.ObjectStream[Message]):
    """Runtime and public API common to server and client WebSockets."""

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED
    #: The public name, for repr() and logs.
    _kind = "WebSocket"
    __slots__ = ("_broken", "_close_timeout", "_close_timer_started", "_closed_event",
                 "_closed_flag", "_closer", "_core", "_final_code", "_final_reason",
                 "_finished", "_handshake_timeout", "_idle_since", "_initial", "_opened",
                 "_opened_at", "_opened_event", "_peer_name", "_ping_interval",
                 "_ping_timeout", "_pings", "_queue", "_quiet_calls", "_read_scope", "_tg",
                 "_transport", "_wakeup", "_wakeup_pending", "_watch_idle", "_write_limit",
                 "extensions", "latency", "max_length", "protocol", "url", "version")

    def __init__(
        self,
        *,
        ping: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float = 30,
        max_queue: int = 16,
        write_limit: int = 65536,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        EventEmitter.__init__(self)
        check_count("max_length", max_length)
        check_seconds("ping", ping, optional=True)
        check_seconds("ping_timeout", ping_timeout, positive=True, optional=True)
        check_seconds("close_timeout", close_timeout)
        check_count("max_queue", max_queue, minimum=1)
        check_count("write_limit", write_limit)
        self._ping_interval = ping or None
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._write_limit = write_limit
        self.max_length = max_length
        # Received messages are bounded by their count and by the memory
        # they take: no more than max_queue ASCII messages of max_length,
        # nor READ_LIMIT bytes (but always one message, however large).
        self._queue: MessageQueue[Message] = MessageQueue(
            max_queue, min(max_queue * max_length, READ_LIMIT))
        #: Seconds a connection may stay CONNECTING once its tasks run
        #: (hixie-76 waiting for its challenge bytes); set by the server side.
        self._handshake_timeout = math.inf
        # When the reader started waiting for the peer (None while it is
        # busy): the drafts' idle timeout, their only liveness check.
        self._idle_since: float | None = None
        self._watch_idle = False
        self._opened_event: anyio.Event | None = None
        #: Handshake results, set by subclasses before ``_running()``.
        self.url = ""
        self.protocol = ""
        self.extensions = ""
        self.version = "hybi-13"
        #: Round-trip time of the last answered ping, in seconds.
        self.latency: float | None = None
        # Bytes for our own cores; ASGI messages for AsgiProtocol.
        self._transport: Transport[Any] | None = None
        self._core: Core | None = None
        self._initial = b""
        self._tg: anyio.abc.TaskGroup | None = None
        # The writer task starts with the first deferred write (idle
        # connections never need it); it waits on ``_wakeup``.
        self._writer_started = False
        self._wakeup: anyio.Event | None = None
        self._wakeup_pending = False
        # Created when first needed: an idle connection holds as few objects
        # as it can (an anyio event costs about a kilobyte on asyncio).
        self._closed_event: anyio.Event | None = None
        self._closed_flag = False
        self._finished = False
        self._opened = False
        self._broken = False
        self._close_timer_started = False
        self._read_scope = anyio.CancelScope()
        self._quiet_calls = 0
        self._pings: list[_PendingPing] = []
        self._final_code = 1006
        self._final_reason = ""
        # Who started the ending ("us", "the peer"); for the close log line.
        self._closer: str | None = None
        self._opened_at: float | None = None
        self._peer_name = ""

    # -- attributes -------------------------------------------------------

    def __repr__(self) -> str:
        peer = self._peer_address()
        return (f"<{self._kind} {self.ready_state.name} {self.url or '(no URL)'}"
                + (f" peer={peer}" if peer else "") + ">")

    def _peer(self) -> str:
        """The peer's address, for repr() and logs (``""`` if unknown)."""
        return self._transport.peer() if self._transport is not None else ""

    def _peer_address(self) -> str:
        """:meth:`_peer`, remembered once known (a closed socket has none)."""
        if not self._peer_name:
            self._peer_name = self._peer()
        return self._peer_name

    @property
    def ready_state(self) -> ReadyState:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3)."""
        if self._finished:
            return ReadyState.CLOSED
        if self._core is None:
            return ReadyState.CONNECTING
        if self._core.state is ReadyState.CLOSED:
            return ReadyState.CLOSING  # until the transport is closed and ``close`` fired
        return self._core.state

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for the peer and not yet taken by the peer's end."""
        pending = self._core.pending if self._core is not None else 0
        return pending + self._transport.buffered if self._transport is not None else pending

    @property
    def close_code(self) -> int | None:
        """The close code once the ``close`` event has fired."""
        return self._final_code if self._finished else None

    @property
    def close_reason(self) -> str | None:
        return self._final_reason if self._finished else None

    # -- lifecycle --------------------------------------------------------

    @asynccontextmanager
    async def _running(self, stream: anyio.abc.AnyByteStream | None, core: Core,
                       initial: bytes = b"") -> AsyncIterator[None]:
        """Run the connection's tasks around the caller's block (on
        ``stream``, or on the transport already set when it is ``None``).

        Background tasks never raise, so anything the task group raises comes
        from the caller's block; it is unwrapped from the exception group, so
        ``async with ws:`` raises what its body raised.
        """
        raised: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._attach(tg, stream, core, initial)
                await self._maybe_open()
                try:
                    yield
                except BaseException as exc:
                    raised = exc
                    with anyio.CancelScope(shield=True):
                        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
                        await self._abandon(1001 if cancelled else 1011)
                    raise
                else:
                    # Leaving the block: nobody reads the queue any more, so
                    # the reader drops what arrives while the handshake runs.
                    self._queue.discard()
                    await self.close()
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if raised is not None and len(group.exceptions) == 1 and \
                    group.exceptions[0] is raised:
                raise raised from None
            raise

    async def _run_in(self, stream: anyio.abc.AnyByteStream, core: Core,
                      initial: bytes, *,
                      task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                      ) -> None:
        """The connection's tasks as one task of a caller's task group (the
        ``connect(task_group, ...)`` form); returns once the connection is
        closed, cancelling its timers."""
        async with anyio.create_task_group() as tg:
            self._attach(tg, stream, core, initial)
            task_status.started()
            await self.wait_closed()
            tg.cancel_scope.cancel()

    def _attach(self, tg: anyio.abc.TaskGroup, stream: anyio.abc.AnyByteStream | None,
                core: Core, initial: bytes) -> None:
        """Start the background tasks in ``tg``."""
        self._tg, self._core, self._initial = tg, core, initial
        if self._transport is None:
            assert stream is not None
            self._transport = transport_for(stream)
        if isinstance(core, WebSocketProtocol):
            core.defer_close_reply = True  # answered in _handle
            core.batch_size = BATCH  # the rest waits while the queue is full
            core.compact_text = True  # decoded by _delivered()
        tg.start_soon(self._read_loop)
        if core.state is ReadyState.CONNECTING and not math.isinf(self._handshake_timeout):
            tg.start_soon(self._handshake_timer)
        if self._ping_interval:
            if self.version == "hybi-13":
                tg.start_soon(self._keepalive, self._ping_interval)
            elif (idle := self._draft_idle_timeout(self._ping_interval)) is not None:
                self._watch_idle = True  # before the reader's first step
                tg.start_soon(self._idle_watch, idle)

    async def _abandon(self, code: int) -> None:
        """The caller's block failed or was cancelled: say goodbye, quickly."""
        if self._finished or self._core is None:
            return
        self._queue.discard()
        await self._say_goodbye(code)
        await self._abort()
        await self._finish()

    async def _say_goodbye(self, code: int) -> None:
        """Send Close without waiting for the answer (at most 1 s to write it)."""
        core = self._core
        if core is None or self._broken:
            return
        if core.state is ReadyState.OPEN:
            if self._closer is None:
                self._closer = "us"
            core.send_close(code, "going away" if code == 1001 else "internal error")
        # Flush even if another task queued the Close: this waits for its
        # write to finish before the caller drops the transport.
        with anyio.move_on_after(min(1.0, self._close_timeout)):
            await self._flush()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed and the ``close`` event has fired."""
        await self._wait_closed()

    def _mark_closed(self) -> None:
        """Wake :meth:`wait_closed` (the ``close`` event has fired)."""
        self._closed_flag = True
        if self._closed_event is not None:
            self._closed_event.set()

    async def _wait_closed(self) -> None:
        if not self._closed_flag:
            if self._closed_event is None:
                self._closed_event = anyio.Event()
            await self._closed_event.wait()

    # -- sending ----------------------------------------------------------

    def _check_open(self) -> Core:
        if self._finished:  # also a handshake that failed or was cancelled
            raise self._closed_error()
        if self._core is None:
            raise RuntimeError("the WebSocket is not open yet; use it inside 'async with'")
        if self._broken or not self._core.can_send:
            raise self._closed_error()
        return self._core

    def _closed_error(self) -> ConnectionClosed:
        if self._finished:
            return connection_closed(self._final_code, self._final_reason)
        if self._broken:
            return ConnectionClosedError(1006, "connection lost")
        core = self._core
        code = core.close_code if core and core.close_code is not None else 1000
        return connection_closed(code, core.close_reason if core else "")

    async def send(self, item: Message | bytearray | memoryview, *,
                   compress: bool = True) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        The message joins the frames queued in this turn of the event loop,
        which go out in one write. While more than ``write_limit`` bytes are
        queued, it writes them itself and waits until the peer takes them
        (backpressure). It is a checkpoint when it waits, and once every
        16 calls otherwise.

        Args:
            item: the message.
            compress: ``False`` sends this message uncompressed even when
                permessage-deflate is active.

        Raises:
            TypeError: ``item`` is neither ``str`` nor bytes-like.
            ConnectionClosed: the connection is closing or closed.
        """
        _check_message(item)
        await self._sometimes_checkpoint()
        core = self._check_open()
        core.send_message(item, compress=compress)
        transport = self._transport
        assert transport is not None
        if transport.direct or core.pending + transport.buffered > self._write_limit:
            # Over the high-water mark (or on a transport that takes
            # messages one by one): write now, waiting for the peer.
            if core.state is ReadyState.CONNECTING:
                # hixie-76 holds messages until the client's challenge
                # bytes arrive: wait for them rather than hold more.
                await self._wait_opened()
            await self._flush()
            if self._broken:
                raise self._closed_error()
        else:
            # Under it: the writer task sends this with whatever else is
            # queued in this turn of the event loop, in one write.
            self._wake_writer()

    def send_nowait(self, item: Message | bytearray | memoryview, *,
                    compress: bool = True) -> None:
        """Queue a message for the writer task without waiting.

        Raises:
            TypeError: ``item`` is neither ``str`` nor bytes-like.
            anyio.WouldBlock: more than ``write_limit`` bytes are already queued.
            ConnectionClosed: the connection is closing or closed.
        """
        _check_message(item)
        core = self._check_open()
        if self.buffered_amount >= self._write_limit:
            raise anyio.WouldBlock
        core.send_message(item, compress=compress)
        transport = self._transport
        assert transport is not None
        # The transport takes it now (as a write by the writer task would,
        # minus the task switch); the writer task sends what it holds.
        transport.write(core.chunks_to_send())
        if not transport.writable:
            self._wake_writer()

    @property
    def _frame_key(self) -> str | None:
        """See WebSocketProtocol.frame_key; ``None`` for the drafts, ASGI and
        before opening (for the hub's frames built once per message)."""
        core = self._core
        if not isinstance(core, WebSocketProtocol) or self._finished:
            return None
        return core.frame_key

    def _build_frame(self, data: str | bytes) -> bytes:
        """A message's whole frame for :attr:`_frame_key`, which any
        connection with the same key can :meth:`_queue_frame_nowait` (see
        WebSocketProtocol.build_frame)."""
        core = self._core
        assert isinstance(core, WebSocketProtocol)
        return core.build_frame(data)

    # The hub's batched path (issue 13): the hub queues a message's shared
    # frame in the core of every subscriber, and once several publishes
    # have gone by (or the loop goes idle) hands each subscriber's queue to
    # its transport at once: one write, and one system call, for several
    # messages, with no task woken per subscriber. The core's queue keeps
    # the order with whatever else the connection sends, and counts in
    # ``buffered_amount`` (so in ``write_limit``) while it waits.

    def _queue_frame_nowait(self, frame: bytes) -> None:
        """Queue a whole frame built for :attr:`_frame_key` in the core,
        without writing it: :meth:`_write_queued` will.

        Raises:
            anyio.WouldBlock: more than ``write_limit`` bytes are already queued.
            ConnectionClosed: the connection is closing or closed.
        """
        # (_check_open and buffered_amount, inlined: this runs once per
        # message and subscriber.)
        core, transport = self._core, self._transport
        if self._finished or self._broken or core is None or transport is None \
                or not core.can_send:
            self._check_open()
            raise self._closed_error()
        if core.pending + transport.buffered >= self._write_limit:
            raise anyio.WouldBlock
        assert isinstance(core, WebSocketProtocol)
        core.send_frame(frame)

    def _write_queued(self) -> None:
        """Hand what the core has queued to the transport (as
        :meth:`send_nowait` does); the writer task is woken only if the
        transport cannot take it all now."""
        core, transport = self._core, self._transport
        if core is None or transport is None or not core.pending or self._broken:
            return
        transport.write(core.chunks_to_send())
        if not transport.writable:
            self._wake_writer()

    async def _sometimes_checkpoint(self) -> None:
        """A checkpoint (cancellation and scheduling point) for every
        ``_CHECKPOINT_EVERY`` calls of :meth:`send` and :meth:`receive` that
        do not wait: a full one per call costs more than the rest of a
        small message's handling on asyncio. Calls that wait are checkpoints
        anyway, and a loop of calls that never wait is bounded by
        ``max_queue`` and ``write_limit``."""
        self._quiet_calls += 1
        if self._quiet_calls >= _CHECKPOINT_EVERY:
            self._quiet_calls = 0
            await anyio.lowlevel.checkpoint()

    async def ping(self, payload: str | bytes = b"") -> float:
        """Ping the peer and wait for the matching pong.

        Returns:
            The round-trip time in seconds (also stored as :attr:`latency`).

        Raises:
            ConnectionClosed: the connection closed before the pong arrived.
        """
        pending = self._queue_ping(payload, None)
        await self._flush()
        await pending.done.wait()
        if not pending.answered:
            raise self._closed_error()
        assert self.latency is not None
        return self.latency

    def ping_nowait(self, payload: str | bytes = b"",
                    callback: Callable[[], object] | None = None) -> None:
        """Queue a ping; ``callback`` (sync or async) runs when its pong arrives.

        Raises:
            anyio.WouldBlock: 64 pings are unanswered (the peer is not
                answering; each waits for its pong, which may never come).
            ConnectionClosed: the connection is closing or closed.
        """
        if len(self._pings) >= MAX_UNANSWERED_PINGS:
            self._check_open()
            raise anyio.WouldBlock
        self._queue_ping(payload, callback)
        self._wake_writer()

    def _queue_ping(self, payload: str | bytes,
                    callback: Callable[[], object] | None) -> _PendingPing:
        raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        if len(raw) > _MAX_CONTROL_PAYLOAD:
            raise ValueError("ping payload is longer than 125 bytes")
        core = self._check_open()
        core.send_ping(raw)
        pending = _PendingPing(raw, anyio.current_time(), callback)
        self._pings.append(pending)
        return pending

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake and wait until the connection is closed.

        If the peer does not answer within ``close_timeout`` seconds, the
        transport is aborted and ``close`` fires with 1006.

        Raises:
            ValueError: ``code`` is not 1000, 1001 or 3000-4999, or ``reason``
                is over 123 bytes.
        """
        self.close_nowait(code, reason)
        if self._core is not None and not self._closed_flag:
            await self.wait_closed()

    def close_nowait(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake without waiting for it to finish."""
        validate_close(code, reason)
        self._begin_close(code, reason)

    def _begin_close(self, code: int, reason: str) -> None:
        """:meth:`close_nowait` with a code already checked (the ASGI host
        sends the registered codes a server may use, e.g. 1008; the hub
        closes a slow subscriber with 1013)."""
        core = self._core
        if core is None or self._finished:
            return
        if self._closer is None and core.state is ReadyState.OPEN:
            self._closer = "us"
        core.send_close(code, reason)
        self._start_close_timer()
        self._wake_writer()
        if core.close_expected() and self._tg is not None:
            # The drafts close at once: no answer to wait for.
            self._tg.start_soon(self._drop_after_flush)

    async def _drop_after_flush(self) -> None:
        await self._flush()
        self._read_scope.cancel()

    async def aclose(self) -> None:
        """Close with 1000 (the anyio ``AsyncResource`` contract)."""
        await self.close()

    async def send_eof(self) -> None:
        """Start the closing handshake; messages still arriving are delivered."""
        self.close_nowait()

    async def receive(self) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary.

        A message already queued is returned at once; the call is a
        checkpoint when it waits, and once every 16 calls otherwise.

        Raises:
            ConnectionClosedOK: the connection closed normally (an
                ``anyio.EndOfStream``, so ``async for`` just stops).
            ConnectionClosedError: it closed with an error or was lost.
            RuntimeError: the WebSocket has not been opened (entered).
        """
        queue = self._queue
        if len(queue):
            await self._sometimes_checkpoint()
            return _delivered(queue.get_nowait())
        core = self._core
        if core is None and not self._finished:
            raise RuntimeError("the WebSocket is not open yet; use it inside 'async with'")
        if core is not None and core.pending:
            if self._transport is not None and self._transport.writable:
                # About to wait for the peer: first send what this task
                # queued (its replies), rather than leaving it to the writer.
                await self._flush()
            else:
                self._wake_writer()  # not behind another task's blocked write
        try:
            return _delivered(await queue.get())
        except anyio.EndOfStream:
            if not self._closed_flag:
                await self._wait_closed()
            raise self._closed_error() from None

    def receive_nowait(self) -> Message:
        """The next queued message, or ``anyio.WouldBlock`` if none is queued."""
        try:
            return _delivered(self._queue.get_nowait())
        except anyio.EndOfStream:
            raise self._closed_error() from None

    # -- background tasks -------------------------------------------------

    async def _read_loop(self) -> None:
        transport, core = self._transport, self._core
        assert transport is not None and core is not None
        try:
            with self._read_scope:
                try:
                    # Bytes that came with the handshake, and anything the
                    # core produced before the reader started.
                    initial, self._initial = self._initial, b""
                    core.receive_data(initial)
                    del initial
                    await self._process(core)
                    receive: Callable[[], Awaitable[Any]] = transport.receive
                    if self._watch_idle:
                        receive = self._timed(receive)
                    while not (core.state is ReadyState.CLOSED or core.failed):
                        data = await receive()
                        if data is None:
                            break  # the peer closed its end: core.receive_eof() below
                        core.receive_data(data)
                        # The core keeps what it has not parsed: the read
                        # itself (up to READ_SIZE) is not held while _process
                        # waits for the application.
                        data = None
                        await self._process(core)
                except TransportLost:
                    pass
            if core.failed:
                await self._linger(transport, core)
            elif core.state is ReadyState.CLOSED and core.client:
                await self._await_eof(transport)
        except anyio.get_cancelled_exc_class():
            # The task group is cancelled (the owner was): say goodbye.
            with anyio.CancelScope(shield=True):
                await self._say_goodbye(1001)
            raise
        finally:
            # Also when the task group around us is cancelled: the transport
            # is closed and ``close`` fires, whatever happened.
            with anyio.CancelScope(shield=True):
                core.receive_eof()  # no-op unless the transport dropped first
                await transport.aclose()
                await self._finish()

    def _timed(self, receive: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """``receive``, noting when the reader waits for the peer."""
        async def timed() -> Any:
            self._idle_since = anyio.current_time()
            try:
                return await receive()
            finally:
                self._idle_since = None
        return timed

    async def _maybe_open(self) -> None:
        """Fire ``open`` once the core is open (hixie-76 opens only when the
        client's challenge bytes have arrived)."""
        if not self._opened and self._core is not None and \
                self._core.state is not ReadyState.CONNECTING:
            self._opened = True
            if self._opened_event is not None:
                self._opened_event.set()
            self._opened_at = anyio.current_time()
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("open %s peer=%s version=%s protocol=%r extensions=%r",
                             self.url, self._peer_address() or "?", self.version, self.protocol,
                             self.extensions)
            await self._emit(Event("open", self))

    async def _wait_opened(self) -> None:
        """Wait until the core has opened, or the connection has ended."""
        if not self._opened and not self._finished:
            if self._opened_event is None:
                self._opened_event = anyio.Event()
            await self._opened_event.wait()

    async def _handshake_timer(self) -> None:
        await anyio.sleep(self._handshake_timeout)
        core = self._core
        if core is not None and core.state is ReadyState.CONNECTING and not self._finished:
            await self._fail(1006, "the opening handshake did not finish within "
                                   f"{self._handshake_timeout:g} s")

    async def _process(self, core: Core) -> None:
        """Act on the events of the data just fed to the core (the reader task).

        Whenever this has to wait (a full queue, a listener, a peer not
        reading our pongs), the transport stops reading ahead first, so
        that waiting means backpressure, not buffering.
        """
        if not self._opened:
            self._pause_reading()
            await self._maybe_open()
        while True:
            events = core.events_received()
            if events:
                queue = self._queue if not self.listener_count("message") else None
                for event in events:
                    if queue is not None and type(event) is MessageReceived and \
                            queue.put_nowait(event.data):
                        continue
                    self._pause_reading()
                    if queue is not None and type(event) is MessageReceived:
                        await queue.put(event.data)
                    else:
                        await self._handle(event)
            # The core parses a batch of messages at a time (batch_size):
            # the rest stays as it came (compressed) while the queue is full.
            if type(core) is not WebSocketProtocol or not core.more:
                break
            core.receive_data(b"")
        if core.pending:
            await self._flush(reader=True)

    def _pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    async def _handle(self, event: CoreEvent) -> None:
        if isinstance(event, MessageReceived):
            if self.listener_count("message"):
                await self._emit(Event("message", self, data=_delivered(event.data)))
            else:
                await self._queue.put(event.data)
        elif isinstance(event, PongReceived):
            await self._on_pong(event.payload)
        elif isinstance(event, Failed):
            await self._emit(Event("error", self, message=event.reason))
            await self._let_application_answer()
            assert self._core is not None
            self._core.fail(event.code, event.reason)
        elif isinstance(event, CloseReceived) and self._core:
            if self._closer is None:
                self._closer = "the peer"
            core = self._core
            if isinstance(core, WebSocketProtocol) and core.close_answer_pending:
                # The peer started closing: as when it failed, let the
                # application answer the messages that came first.
                await self._let_application_answer()
                core.answer_close()
            # Once answered, the server closes TCP at once and the client
            # waits for it at most close_timeout (_await_eof): no timer.
            if core.state is not ReadyState.CLOSED and not self._close_timer_started:
                self._start_close_timer()  # bound the rest of the handshake too

    async def _let_application_answer(self) -> None:
        """Before failing or answering the peer's Close, let the application
        take the messages that came before the bad frame or the Close, so
        replies it sends at once go out before our Close (what a peer
        handling one frame at a time would produce)."""
        if self._queue.consumer_waiting:
            return  # it has taken everything and waits for more: nothing to answer
        with anyio.move_on_after(min(1.0, self._close_timeout)):
            await self._queue.drained()
        for _ in range(3):
            await anyio.lowlevel.checkpoint()

    async def _on_pong(self, payload: bytes) -> None:
        # A pong answers the ping with the same payload and, as in RFC 6455
        # section 5.5.3, every ping sent before it.
        index = next((i for i, p in enumerate(self._pings) if p.payload == payload), None)
        if index is None:
            return  # unsolicited pong
        answered, self._pings = self._pings[: index + 1], self._pings[index + 1 :]
        self.latency = anyio.current_time() - answered[-1].sent_at
        for pending in answered:
            pending.answered = True
            pending.done.set()
            if pending.callback is not None:
                await self._emit_callback(pending.callback)

    async def _emit_callback(self, callback: Callable[[], object]) -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("ping callback %r raised", callback)

    def _wake_writer(self) -> None:
        """Have the writer task flush the core's output soon (once per turn
        of the event loop, however many frames are queued meanwhile)."""
        if self._wakeup_pending:
            return
        self._wakeup_pending = True
        if self._wakeup is not None:
            self._wakeup.set()
        elif not self._writer_started and self._tg is not None:
            self._writer_started = True
            try:
                self._tg.start_soon(self._write_loop)
            except RuntimeError:  # the task group has finished: nothing to write to
                pass

    async def _write_loop(self) -> None:
        while True:
            self._wakeup_pending = False
            await self._flush()
            if not self._wakeup_pending:
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
                self._wakeup = None

    async def _flush(self, *, reader: bool = False) -> None:
        """Write everything the core has queued and wait until the transport
        has taken it; never raises transport errors (a broken transport is
        dropped, and the reader ends the connection).

        ``reader``: called by the reader task, which stops reading ahead
        while it waits for the peer to take our data.
        """
        core, transport = self._core, self._transport
        assert core is not None and transport is not None
        while not self._broken:
            chunks = core.chunks_to_send()
            transport.write(chunks)
            if reader and not transport.writable:
                transport.pause_reading()
            # Also with nothing new: wait for another task's write in progress.
            if not await transport.drain():
                self._broken = True
            if not chunks or not core.pending:
                break
        if self._broken:
            await self._abort()

    async def _keepalive(self, interval: float) -> None:
        timeout = self._ping_timeout if self._ping_timeout is not None else interval
        count = 0
        previous: _PendingPing | None = None
        while True:
            await anyio.sleep(interval)
            if self.ready_state is not ReadyState.OPEN:
                return
            count += 1
            pending = self._queue_ping(str(count), None)
            self._wake_writer()
            if math.isinf(timeout):
                # Nothing waits for these pongs: keep one entry for the
                # latency, not one per interval for a peer that never answers.
                if previous is not None and previous in self._pings:
                    self._pings.remove(previous)
                previous = pending
                continue
            with anyio.move_on_after(timeout):
                await pending.done.wait()
            if not pending.answered and self.ready_state is ReadyState.OPEN:
                await self._fail(1011, "keepalive ping timeout")
                return

    def _draft_idle_timeout(self, interval: float) -> float | None:
        """The drafts have no ping: with ``ping`` set, a draft peer that sends
        nothing for ``ping + ping_timeout`` seconds is taken for gone (the
        time a hybi peer has to answer a ping); None if ``ping_timeout`` is
        infinite."""
        timeout = self._ping_timeout if self._ping_timeout is not None else interval
        return None if math.isinf(timeout) else interval + timeout

    async def _idle_watch(self, idle: float) -> None:
        """Fail a draft connection whose reader has waited ``idle`` seconds
        for the peer (time the application keeps it busy does not count)."""
        while True:
            since, now = self._idle_since, anyio.current_time()
            if since is not None and now - since >= idle:
                if self.ready_state in (ReadyState.CONNECTING, ReadyState.OPEN):
                    await self._fail(1011, f"idle timeout: nothing received for {idle:g} s")
                return
            await anyio.sleep(idle if since is None else since + idle - now)

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the connection from our side and drop the transport."""
        core = self._core
        assert core is not None
        if self._closer is None:
            self._closer = "us"
        core.fail(code, reason)
        await self._emit(Event("error", self, message=reason))
        with anyio.move_on_after(min(1.0, self._close_timeout)):
            await self._flush()
        await self._abort()

    def _start_close_timer(self) -> None:
        if not self._close_timer_started and self._tg is not None:
            self._close_timer_started = True
            self._tg.start_soon(self._close_timer)

    async def _close_timer(self) -> None:
        await anyio.sleep(self._close_timeout)
        if not self._finished:
            await self._abort()

    async def _abort(self) -> None:
        """Drop the transport now; the reader then ends the connection."""
        self._read_scope.cancel()
        if self._transport is not None:
            await self._transport.abort()

    async def _linger(self, transport: Transport[Any], core: Core) -> None:
        """After failing: send our Close, half-close, and drain until the peer
        hangs up, so our Close is not lost to a TCP reset (RFC 6455 section
        7.1.1 lets the peer answer before the transport goes)."""
        with anyio.move_on_after(self._close_timeout):
            await self._flush()
            if self._broken:
                return
            await transport.send_eof()
            await _read_to_eof(transport)

    async def _await_eof(self, transport: Transport[Any]) -> None:
        """The client waits for the server to close TCP (RFC 6455 section 7.1.1)."""
        with anyio.move_on_after(self._close_timeout):
            await _read_to_eof(transport)

    async def _finish(self) -> None:
        """End the connection as its core says it ended."""
        core = self._core
        if self._finished or core is None:
            return
        core.receive_eof()  # a no-op unless the transport dropped first
        assert core.close_code is not None
        await self._end(core.close_code, core.close_reason)

    async def _end(self, code: int, reason: str = "", *, error: str | None = None) -> None:
        """The one way a connection ends, whatever ended it (before or after
        opening, either side, a timeout, an abort, a cancellation): record
        ``code`` and ``reason``, wake every waiter, fire ``error`` (if
        given) and ``close``, once. Shielded: it runs in cancelled code too.
        """
        if self._finished:
            return
        self._finished = True
        self._final_code, self._final_reason = code, reason
        if logger.isEnabledFor(logging.DEBUG):
            closer = self._closer or ("nobody: the connection was lost" if code == 1006
                                      else "the peer")
            lived = anyio.current_time() - self._opened_at if self._opened_at else 0.0
            logger.debug("close %s peer=%s code=%d reason=%r closed by %s after %.3f s",
                         self.url, self._peer_address() or "?", code, reason, closer, lived)
        self._queue.close()
        if self._opened_event is not None:
            self._opened_event.set()
        for pending in self._pings:
            pending.done.set()
        self._pings = []
        try:
            with anyio.CancelScope(shield=True):
                if error is not None:
                    await self._emit(Event("error", self, message=error))
                await self._emit(Event("close", self, code=code, reason=reason))
        finally:
            self._mark_closed()


async def _read_to_eof(transport: Transport[Any]) -> None:
    try:
        while await transport.receive() is not None:
            pass
    except TransportLost:
        pass


def _delivered(message: Message) -> Message:
    """A message as the application gets it: text the core kept as UTF-8
    (WebSocketProtocol.compact_text) is decoded when it is taken."""
    return message.decode("utf-8") if type(message) is Utf8Text else message


def _check_message(item: object) -> None:  # annotations are not enforced at run time
    if not isinstance(item, (str, bytes, bytearray, memoryview)):
        raise TypeError("a message is str (text) or bytes-like (binary), "
                        f"not {type(item).__name__}")
