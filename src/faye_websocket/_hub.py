"""The fan-out hub: named channels of WebSocket and EventSource subscribers.

::

    async with Hub() as hub:                          # or Hub(redis="redis://...")
        async with hub.subscribe(ws, "room"):         # or es; replays after es.last_event_id
            ...
        message_id = await hub.publish("room", "hello")

Delivery, per subscription, is exactly once and in publish order. A message
goes straight into the subscriber's own write buffer (``send_nowait``, or
for a WebSocket that takes the shared frame, its core's queue, which the hub
writes in batches: see Hub._run_flusher) while that has room; past that, it
waits in the subscription's queue, bounded in messages and bytes, which one
task (started only while there is a backlog) feeds to the subscriber as it
reads. When the queue is full, the
subscription's policy decides: drop the oldest (the subscriber is told how
many it lost), close the subscriber, or make the publisher wait up to a
timeout. The publisher never waits on a subscriber otherwise, and a
subscriber that has gone is removed without a word to anyone else.

The backend (:mod:`._hub_redis`, or the memory one here) assigns ids, keeps
the history and carries messages between processes; the hub delivers them to
this process's subscribers.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Literal, Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from ._core.hub import History, HubMessage, IdClock, Lost, MessageId, Replay, lost_event, parse_id
from ._core.options import check_count, check_seconds
from ._emitter import Event, logger
from ._eventsource import EventSource
from ._runtime.connection import Connection
from .exceptions import ConnectionClosed

__all__ = ["Hub", "HubMessage", "Lost", "MemoryBackend", "Policy", "Subscription"]

#: What happens when a subscriber's queue is full: ``"drop_oldest"``,
#: ``"close"`` or ``"wait"``.
Policy = Literal["drop_oldest", "close", "wait"]
_POLICIES = ("drop_oldest", "close", "wait")
#: The close code for a subscriber too slow for the ``close`` policy: 1013
#: "Try Again Later" (a temporary condition on our side; a client should come
#: back later and resume), not 1008 (it broke no rule, and 1008 says "do not
#: retry as it is").
SLOW_CLOSE_CODE = 1013
SLOW_CLOSE_REASON = "subscriber too slow"
#: WebSocket frames wait in the subscribers' queues for at most this many
#: turns of the event loop in which more messages were published, or until
#: this many bytes of messages were published, before the hub writes them
#: (see Hub._run_flusher).
_BATCH_TURNS = 16
_BATCH_BYTES = 16384
#: Seconds between two warnings about one WebSocket subscription's losses
#: (a subscriber under ``drop_oldest`` that stays behind loses messages at
#: every publish; the log gets one line per interval, with the sum).
_LOST_WARNING_EVERY = 10.0


class _FromSubscriber:
    """``last_id``'s default: the EventSource's ``last_event_id``; for a
    WebSocket, nothing (live messages only)."""

    def __repr__(self) -> str:
        return "<the subscriber's Last-Event-ID>"


FROM_SUBSCRIBER: Any = _FromSubscriber()


class _Gone(Exception):
    """The subscriber has closed."""


class _Backend(Protocol):
    """Where ids, history and cross-process delivery come from."""

    async def run(self, hub: Hub, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Background work for the hub's lifetime (started in its task group)."""

    async def publish(self, channel: str, data: str | bytes, event: str | None) -> str:
        """Store the message and have it delivered (here, through
        :meth:`Hub._deliver`, and in every other process); its id."""

    async def replay(self, channel: str, after: str) -> Replay:
        """The history after ``after``."""

    async def watch(self, channel: str) -> None:
        """``channel`` has its first subscriber in this process: deliver
        from now on."""

    def unwatch(self, channel: str) -> None:
        """``channel`` has no subscriber left in this process."""


class MemoryBackend:
    """In this process only: ids from the clock, a history per channel."""

    def __init__(self, history: int, history_age: float) -> None:
        self._history_size = history
        self._history_age = history_age
        self._histories: dict[str, History] = {}
        self._clock = IdClock()
        self._hub: Hub | None = None
        self._lock = anyio.Lock(fast_acquire=True)

    async def run(self, hub: Hub, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        self._hub = hub
        task_status.started()

    async def publish(self, channel: str, data: str | bytes, event: str | None) -> str:
        assert self._hub is not None
        # One publish at a time: they are delivered in id order, and the
        # ``wait`` policy holds the next one back while it waits.
        async with self._lock:
            now = time.time()
            message = HubMessage(channel, self._clock.next(int(now * 1000)), data, event)
            history = self._histories.get(channel)
            if history is None:
                history = self._histories[channel] = History(self._history_size,
                                                             self._history_age)
            history.append(message, now)
            await self._hub._deliver(message)
        # Let the subscribers' writers run: a loop of publish() calls must
        # not starve them (they would look slow to the policy).
        await anyio.lowlevel.checkpoint()
        return message.id

    async def replay(self, channel: str, after: str) -> Replay:
        history = self._histories.get(channel)
        if history is None:
            history = self._histories[channel] = History(self._history_size, self._history_age)
        return history.after(after, time.time())

    async def watch(self, channel: str) -> None:
        pass

    def unwatch(self, channel: str) -> None:
        pass


class _Channel:
    __slots__ = ("ready", "snapshot", "subscriptions")

    def __init__(self) -> None:
        self.subscriptions: dict[Subscription, None] = {}  # ordered set
        self.snapshot: tuple[Subscription, ...] = ()
        self.ready: anyio.Event | None = anyio.Event()  # None once watched


class Hub(anyio.AsyncContextManagerMixin):
    """Named channels of subscribers, fed by :meth:`publish`.

    ::

        async with Hub() as hub:
            ...

    The hub runs for the block (its background tasks live in it). Leaving
    the block stops delivery; subscribers stay open.

    Args:
        redis: a Redis URL (``redis://host:6379/0``, ``rediss://...``):
            share channels, ids and history with every process using the
            same Redis (needs the ``redis`` extra, coredis). ``None``: this
            process only.
        redis_prefix: prefix of the Redis stream keys (one stream per
            channel).
        history: messages kept per channel for replay.
        history_age: seconds a message is kept for replay.
        policy: what to do when a subscriber's queue is full (see
            :data:`Policy`); a subscription may choose its own.
        max_pending: messages a subscription may queue (on top of what the
            subscriber's own write buffer, ``write_limit``, holds).
        max_pending_bytes: bytes of message data a subscription may queue.
        wait_timeout: seconds the ``wait`` policy holds up the publisher
            for a full subscriber, which is then closed.
        redis_timeout: seconds a Redis command retries, with backoff,
            while Redis is unreachable before
            :exc:`~faye_websocket.exceptions.HubUnavailableError`.

    Raises:
        ValueError: an option out of range, or an unknown policy.
    """

    def __init__(
        self,
        *,
        redis: str | None = None,
        redis_prefix: str = "faye:hub:",
        history: int = 1000,
        history_age: float = 3600,
        policy: Policy = "close",
        max_pending: int = 256,
        max_pending_bytes: int = 2**20,
        wait_timeout: float = 5,
        redis_timeout: float = 10,
    ) -> None:
        check_count("history", history)
        check_seconds("history_age", history_age)
        check_seconds("wait_timeout", wait_timeout)
        check_seconds("redis_timeout", redis_timeout)
        _check_bounds(policy, max_pending, max_pending_bytes)
        self._policy: Policy = policy
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._wait_timeout = wait_timeout
        self._channels: dict[str, _Channel] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        # The batched path: subscriptions with frames queued and not yet
        # written, what was published since the last write, and the event
        # that wakes the flusher task.
        self._dirty: list[Subscription] = []
        self._published = 0
        self._batch_bytes = 0
        self._flush_wanted: anyio.Event | None = None
        self._backend: _Backend
        if redis is None:
            self._backend = MemoryBackend(history, history_age)
        else:
            from ._hub_redis import RedisBackend

            self._backend = RedisBackend(redis, prefix=redis_prefix, history=history,
                                         history_age=history_age, timeout=redis_timeout)

    def __repr__(self) -> str:
        subscriptions = sum(len(c.subscriptions) for c in self._channels.values())
        return (f"<Hub {type(self._backend).__name__} channels={len(self._channels)} "
                f"subscriptions={subscriptions}>")

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Hub]:
        if self._tg is not None:
            raise RuntimeError("a Hub is entered once")
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._flush_wanted = anyio.Event()
            tg.start_soon(self._run_flusher)
            await tg.start(self._backend.run, self)
            try:
                yield self
            finally:
                self._flush()  # what was handed over goes out
                for channel in list(self._channels.values()):
                    for subscription in list(channel.subscriptions):
                        subscription._end()
                tg.cancel_scope.cancel()

    def _group(self) -> anyio.abc.TaskGroup:
        if self._tg is None or self._tg.cancel_scope.cancel_called:
            raise RuntimeError("the Hub is not running; use it inside 'async with'")
        return self._tg

    # -- publishing -------------------------------------------------------

    async def publish(self, channel: str, data: str | bytes, *,
                      event: str | None = None) -> str:
        """Send ``data`` to every subscriber of ``channel`` (in every process
        sharing the Redis backend).

        It returns once the message is stored (in the history) and handed to
        this process's subscribers; it waits for a subscriber only under
        the ``wait`` policy, at most ``wait_timeout`` seconds.

        Args:
            channel: the channel.
            data: ``str`` (a text message) or ``bytes`` (binary; an
                EventSource subscriber gets it decoded as UTF-8).
            event: the event type EventSource subscribers see (``None``:
                ``message``); WebSocket subscribers get ``data`` alone.

        Returns:
            The message's id (also the ``id`` of its server-sent event).

        Raises:
            TypeError: ``data`` is neither ``str`` nor bytes.
            ValueError: ``event`` contains a line break.
            HubUnavailableError: Redis stayed unreachable for
                ``redis_timeout`` seconds.
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, (str, bytes)):
            raise TypeError(f"a message is str or bytes, not {type(data).__name__}")
        if event is not None and ("\r" in event or "\n" in event):
            raise ValueError("the event type cannot contain a line break")
        self._group()
        return await self._backend.publish(channel, data, event)

    async def _deliver(self, message: HubMessage) -> None:
        """Hand ``message`` to this process's subscribers of its channel (the
        backend calls this once per message, in id order)."""
        channel = self._channels.get(message.channel)
        if channel is None:
            return
        waiting: list[Subscription] | None = None
        for subscription in channel.snapshot:
            if subscription._offer(message):
                if waiting is None:
                    waiting = []
                waiting.append(subscription)
        self._published += 1
        self._batch_bytes += message.size
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush()
        if waiting:
            deadline = anyio.current_time() + min(s._wait_timeout for s in waiting)
            for subscription in waiting:
                await subscription._wait_for_room(deadline)

    # -- the batched write ------------------------------------------------

    def _flush_soon(self, subscription: Subscription) -> None:
        """``subscription``'s WebSocket has frames queued in its core: write
        them with the next batch."""
        subscription._dirty = True
        if not self._dirty and self._flush_wanted is not None:
            self._flush_wanted.set()
        self._dirty.append(subscription)

    async def _run_flusher(self) -> None:
        """Write the queued frames of every subscriber once publishing
        pauses for a turn of the event loop, or after ``_BATCH_TURNS``
        turns that published more (or ``_BATCH_BYTES``, in :meth:`_deliver`).

        A loop of publishes (a burst, a backlog read from Redis, many
        connections publishing in the same turn) then costs each subscriber
        one write and one system call per batch instead of one per message,
        which on asyncio is most of a delivery's cost; a lone message waits
        two turns of the loop."""
        while True:
            assert self._flush_wanted is not None
            await self._flush_wanted.wait()
            self._flush_wanted = anyio.Event()
            for _ in range(_BATCH_TURNS):
                published = self._published
                await anyio.lowlevel.checkpoint()
                if self._published == published or not self._dirty:
                    break
            self._flush()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._batch_bytes = 0
        for subscription in dirty:
            subscription._dirty = False
            subscriber = subscription.subscriber
            assert isinstance(subscriber, Connection)
            subscriber._write_queued()

    def _report_lost(self, channel_name: str, reason: str) -> None:
        """Tell every subscriber of ``channel_name`` here that messages may
        be missing at this point of its stream."""
        channel = self._channels.get(channel_name)
        if channel is not None:
            for subscription in channel.snapshot:
                subscription._lose(reason)

    # -- subscribing ------------------------------------------------------

    def subscribe(
        self,
        subscriber: Connection | EventSource,
        channel: str,
        *,
        last_id: str = FROM_SUBSCRIBER,
        policy: Policy | None = None,
        max_pending: int | None = None,
        max_pending_bytes: int | None = None,
        wait_timeout: float | None = None,
        on_lost: Callable[[Lost], object] | None = None,
    ) -> Subscription:
        """Subscribe an open WebSocket (server side, client, or
        ``WebSocket.from_asgi``) or EventSource to ``channel``.

        Either await it, or use it as an async context manager, which
        unsubscribes on leaving::

            subscription = await hub.subscribe(ws, "room")
            async with hub.subscribe(es, "room"):
                await es.wait_closed()

        It stays subscribed until it closes (or :meth:`Subscription.cancel`).

        Args:
            subscriber: the WebSocket or EventSource, open.
            channel: the channel.
            last_id: resume after this message id: the messages after it
                come first (from the history), then live ones, with no gap
                and no duplicate between them. By default an EventSource's
                :attr:`~faye_websocket.EventSource.last_event_id` (its
                ``Last-Event-ID``), nothing for a WebSocket; ``""``: live
                messages only.
            policy, max_pending, max_pending_bytes, wait_timeout: this
                subscription's own, instead of the hub's.
            on_lost: called (sync or async) with a :class:`Lost` where
                messages are missing from this subscriber's stream. By
                default an EventSource gets a ``lost`` event, and for a
                WebSocket a warning is logged.

        Raises:
            RuntimeError: the subscriber is not open, or the hub not running.
            ValueError: an option out of range.
        """
        if last_id is FROM_SUBSCRIBER:
            last_id = subscriber.last_event_id if isinstance(subscriber, EventSource) else ""
        if wait_timeout is not None:
            check_seconds("wait_timeout", wait_timeout)
        policy = self._policy if policy is None else policy
        max_pending = self._max_pending if max_pending is None else max_pending
        max_pending_bytes = self._max_pending_bytes if max_pending_bytes is None \
            else max_pending_bytes
        _check_bounds(policy, max_pending, max_pending_bytes)
        return Subscription(self, subscriber, channel, last_id, policy, max_pending,
                            max_pending_bytes,
                            self._wait_timeout if wait_timeout is None else wait_timeout,
                            on_lost)

    def subscriber_count(self, channel: str) -> int:
        """Subscriptions to ``channel`` in this process that get what is
        published from now on (their ``subscribe`` has returned)."""
        entry = self._channels.get(channel)
        return sum(s._ready for s in entry.subscriptions) if entry is not None else 0

    async def _add(self, subscription: Subscription) -> None:
        name = subscription.channel
        channel = self._channels.get(name)
        first = channel is None
        if channel is None:
            channel = self._channels[name] = _Channel()
        channel.subscriptions[subscription] = None
        channel.snapshot = tuple(channel.subscriptions)
        if first:
            try:
                await self._backend.watch(name)
            except BaseException:
                self._remove(subscription)
                raise
            finally:
                assert channel.ready is not None
                channel.ready.set()
                channel.ready = None
        elif channel.ready is not None:
            await channel.ready.wait()

    def _remove(self, subscription: Subscription) -> None:
        name = subscription.channel
        channel = self._channels.get(name)
        if channel is None or subscription not in channel.subscriptions:
            return
        del channel.subscriptions[subscription]
        channel.snapshot = tuple(channel.subscriptions)
        if not channel.subscriptions and channel.ready is None:
            del self._channels[name]
            self._backend.unwatch(name)


def _check_bounds(policy: str, max_pending: int, max_pending_bytes: int) -> None:
    if policy not in _POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {_POLICIES}")
    check_count("max_pending", max_pending, minimum=1)
    check_count("max_pending_bytes", max_pending_bytes, minimum=1)


_WS, _ES = 0, 1


class Subscription:
    """One subscriber's subscription to one channel (from :meth:`Hub.subscribe`).

    Await it, or use it with ``async with`` (which unsubscribes on leaving).

    Attributes:
        channel: the channel.
        subscriber: the WebSocket or EventSource.
        last_id: the id of the last message handed to the subscriber (``""``
            before the first).
        dropped: messages dropped by the ``drop_oldest`` policy.
        lost: how many times messages were reported lost (see
            :class:`Lost`).
    """

    def __init__(self, hub: Hub, subscriber: Connection | EventSource, channel: str,
                 resume_after: str, policy: Policy, max_pending: int, max_pending_bytes: int,
                 wait_timeout: float, on_lost: Callable[[Lost], object] | None) -> None:
        self.channel = channel
        self.subscriber = subscriber
        self.last_id = ""
        self.dropped = 0
        self.lost = 0
        self._hub = hub
        self._resume_after = resume_after
        self._policy = policy
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._wait_timeout = wait_timeout
        self._on_lost = on_lost
        if not isinstance(subscriber, (Connection, EventSource)):
            raise TypeError(f"subscribe a WebSocket or an EventSource, not {subscriber!r}")
        self._kind = _WS if isinstance(subscriber, Connection) else _ES
        # The frames this WebSocket can take as built once per message for
        # all (see Connection._frame_key), and the WebSocket when it has
        # one; set once it is open.
        self._frame_key = ""
        self._shared: Connection | None = None
        # The newest id accepted (sent or queued): nothing at or before it
        # is accepted again (the seam between replay and live messages).
        self._newest: MessageId | None = None
        # While catching up (the replay is being fetched), live messages wait here.
        self._held: list[HubMessage] | None = None
        # Unbounded (the replay, lost markers), then bounded (live messages).
        self._replay: deque[HubMessage | Lost] = deque()
        self._live: deque[HubMessage | Lost] = deque()
        self._live_count = 0
        self._live_bytes = 0
        self._dropped_unreported = 0
        self._pumping = False
        self._dirty = False  # frames queued in the WebSocket's core (Hub._flush_soon)
        # The default report for a WebSocket, a warning, rate-limited: when
        # the last one was logged, and the reports (and messages) since.
        self._warned_at: float | None = None
        self._unwarned = 0
        self._unwarned_count = 0
        self._room: anyio.Event | None = None
        self._started = False
        self._ready = False
        self._ended = False

    def __repr__(self) -> str:
        state = "ended" if self._ended else f"pending={len(self._replay) + len(self._live)}"
        return f"<Subscription {self.channel!r} {self.subscriber!r} {state}>"

    # -- the awaitable / async context manager forms ----------------------

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self._start().__await__()

    async def __aenter__(self) -> Subscription:
        return await self._start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.cancel()

    @property
    def active(self) -> bool:
        """Whether it is subscribed (started, and not cancelled or closed since)."""
        return self._started and not self._ended

    def cancel(self) -> None:
        """Unsubscribe (messages still queued for the subscriber are dropped)."""
        self._end()

    async def _start(self) -> Subscription:
        if self._started:
            raise RuntimeError("a Subscription is started once")
        self._started = True
        hub, subscriber = self._hub, self.subscriber
        hub._group()
        if subscriber.ready_state != 1:  # OPEN, for every kind
            raise RuntimeError(f"subscribe an open WebSocket or EventSource, not {subscriber!r}")
        if isinstance(subscriber, Connection):
            # Negotiated at the handshake, so fixed from now on.
            key = subscriber._frame_key
            if key is not None:
                self._frame_key, self._shared = key, subscriber
        resume = self._resume_after
        if resume:
            self._held = []
        subscriber.on("close", self._on_close)
        try:
            await hub._add(self)
            if resume:
                replay = await hub._backend.replay(self.channel, resume)
                self._catch_up(resume, replay)
        except BaseException:
            self._end()
            raise
        self._ready = not self._ended
        return self

    def _catch_up(self, resume: str, replay: Replay) -> None:
        held, self._held = self._held or [], None
        if self._ended:
            return
        if not replay.complete:
            self._lose("history", after=resume, live=False)
        self._newest = parse_id(resume)
        for message in replay.messages:
            self._accept(message, bounded=False)
        for message in held:
            self._offer(message)

    def _on_close(self, event: Event) -> None:
        self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._ready = False
        self._replay.clear()
        self._live.clear()
        self._live_count = self._live_bytes = 0
        if self._room is not None:
            self._room.set()
        self.subscriber.off("close", self._on_close)
        self._hub._remove(self)

    # -- delivery ---------------------------------------------------------

    def _offer(self, message: HubMessage) -> bool:
        """Take a live message; True if the publisher has to wait for room
        (``wait`` policy)."""
        if self._ended:
            return False
        if self._held is not None:
            self._held.append(message)
            return False
        newest = self._newest
        if newest is not None and message.key <= newest:
            return False  # replayed already
        return self._accept(message, bounded=True)

    def _accept(self, message: HubMessage, *, bounded: bool) -> bool:
        if self._ended:
            return False
        self._newest = message.key
        if not self._pumping:
            # Nothing queued: straight into the subscriber's write buffer.
            try:
                if self._send_nowait(message):
                    self.last_id = message.id
                    return False
            except _Gone:
                self._end()
                return False
        if not bounded:
            self._replay.append(message)
        else:
            self._live.append(message)
            self._live_count += 1
            self._live_bytes += message.size
        self._pump()
        if bounded and (self._live_count > self._max_pending or
                        self._live_bytes > self._max_pending_bytes):
            return self._overflow()
        return False

    def _overflow(self) -> bool:
        policy = self._policy
        if policy == "wait":
            return True
        if policy == "close":
            self._close_slow()
            return False
        live = self._live
        while live and (self._live_count > self._max_pending or
                        self._live_bytes > self._max_pending_bytes):
            item = live.popleft()
            if isinstance(item, HubMessage):
                self._live_count -= 1
                self._live_bytes -= item.size
                self.dropped += 1
                self._dropped_unreported += 1
        return False

    def _full(self) -> bool:
        return self._live_count > self._max_pending or \
            self._live_bytes > self._max_pending_bytes

    async def _wait_for_room(self, deadline: float) -> None:
        with anyio.move_on_after(deadline - anyio.current_time()):
            while self._full() and not self._ended:
                if self._room is None:
                    self._room = anyio.Event()
                await self._room.wait()
        if self._full() and not self._ended:
            self._close_slow()

    def _close_slow(self) -> None:
        subscriber = self.subscriber
        logger.info("hub: closing %r, too slow for channel %r (%d messages, %d bytes queued)",
                    subscriber, self.channel, self._live_count, self._live_bytes)
        self._end()
        if isinstance(subscriber, Connection):
            subscriber._begin_close(SLOW_CLOSE_CODE, SLOW_CLOSE_REASON)
        else:
            subscriber.close_nowait()

    def _lose(self, reason: str, *, after: str | None = None, live: bool = True) -> None:
        """Report, at this point of the stream, that messages are missing."""
        if self._ended:
            return
        lost = Lost(self.channel, self.last_id if after is None else after, reason)
        (self._live if live else self._replay).append(lost)
        self._pump()

    def _pump(self) -> None:
        if not self._pumping and not self._ended:
            self._pumping = True
            self._hub._group().start_soon(self._run_pump)

    async def _run_pump(self) -> None:
        """Feed the queue to the subscriber as fast as it reads."""
        try:
            while not self._ended:
                if self._replay:
                    item = self._replay.popleft()
                elif self._live:
                    if self._dropped_unreported:
                        count, self._dropped_unreported = self._dropped_unreported, 0
                        await self._report(Lost(self.channel, self.last_id, "slow", count))
                        continue
                    item = self._live.popleft()
                    if isinstance(item, HubMessage):
                        self._live_count -= 1
                        self._live_bytes -= item.size
                        if self._room is not None:
                            self._room.set()
                            self._room = None
                else:
                    break
                if isinstance(item, Lost):
                    await self._report(item)
                else:
                    await self._send(item)
                    self.last_id = item.id
        except _Gone:
            self._end()
        finally:
            self._pumping = False

    def _send_nowait(self, message: HubMessage) -> bool:
        """Into the subscriber's write buffer if it has room: True; False
        if it is full. Raises _Gone once the subscriber has closed."""
        subscriber = self.subscriber
        try:
            shared = self._shared
            if shared is not None:
                # Queued in its core; the hub writes it with the batch.
                shared._queue_frame_nowait(message.frame_for(self._frame_key,
                                                             shared._build_frame))
                if not self._dirty:
                    self._hub._flush_soon(self)
            elif self._kind == _WS:
                assert isinstance(subscriber, Connection)
                subscriber.send_nowait(message.data)
            else:
                assert isinstance(subscriber, EventSource)
                if not subscriber._send_frame_nowait(message.sse()):
                    raise _Gone
        except anyio.WouldBlock:
            return False
        except (ConnectionClosed, anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise _Gone from None
        return True

    async def _send(self, message: HubMessage) -> None:
        """Into the subscriber's write buffer, waiting while it is full."""
        if self._send_nowait(message):
            return
        subscriber = self.subscriber
        try:
            if isinstance(subscriber, EventSource):
                if not await subscriber.send(message.text(), event=message.event,
                                             id=message.id):
                    raise _Gone
            else:
                await subscriber.send(message.data)
        except (ConnectionClosed, anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise _Gone from None

    async def _report(self, lost: Lost) -> None:
        self.lost += 1
        subscriber = self.subscriber
        if self._on_lost is not None:
            try:
                result = self._on_lost(lost)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("on_lost callback %r raised", self._on_lost)
        elif isinstance(subscriber, EventSource):
            if not await subscriber._write(lost_event(lost)):
                raise _Gone
        else:
            self._warn_lost(lost)

    def _warn_lost(self, lost: Lost) -> None:
        """Log a WebSocket's loss: at most once per ``_LOST_WARNING_EVERY``
        seconds, with what was not logged in between."""
        self._unwarned += 1
        self._unwarned_count += lost.count or 0
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < _LOST_WARNING_EVERY:
            return
        reports, count = self._unwarned, self._unwarned_count
        self._warned_at, self._unwarned, self._unwarned_count = now, 0, 0
        since = "" if reports == 1 else (
            f"; {reports} reports since the last warning"
            + (f", {count} messages dropped" if count else ""))
        logger.warning("hub: %r lost messages on channel %r after %r (%s%s)%s",
                       self.subscriber, lost.channel, lost.after or "the start", lost.reason,
                       f", {lost.count}" if lost.count is not None else "", since)

