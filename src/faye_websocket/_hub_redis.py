"""The hub's Redis backend, through coredis (which runs on anyio, so on trio
and asyncio alike): one Redis stream per channel.

* ``publish`` is ``XADD <prefix><channel> MAXLEN ~ <history> * d <data> t
  s|b u <token> [e <event>]``: Redis assigns the id, which is the message id
  in every process, and the stream is the history. A retried publish looks
  for its token first, so a lost answer does not store it twice.
* Each process runs one reader task: ``XREAD BLOCK`` over the streams of
  the channels it has subscribers for, from the last id it delivered of
  each. A process therefore delivers every entry after its cursor, in
  stream order, whoever published it, and a pause (Redis restarting, a slow
  ``wait`` subscriber) delays delivery without skipping anything.
* ``replay`` is ``XRANGE`` from the resume id. The id is found in the
  stream, or it is the last one trimmed (``max-deleted-entry-id``): the
  replay is complete; otherwise the subscriber is told what is lost.

Pub/sub plus a stream would deliver with one hop less, but pub/sub drops
whatever is published while a subscriber's connection is down, and merging
its messages with the stream's at the seam needs the same ids anyway; the
stream alone gives the cursor for free.

When Redis goes away, the reader retries with exponential backoff (50 ms up
to 2 s). When it is back, each channel's cursor is looked up: if its entry
is still there, reading on from it loses nothing; if not (Redis restarted
without persistence, or trimmed past it), the subscribers get a ``lost``
report where the gap is. A restart the reader did not see break its
connection (it was not reading then: a ``wait`` subscriber held it up, or
it was delivering a batch) is found by the server's ``run_id`` (``INFO
server``), asked before every ``XREAD``: a new one means a new server, and
the cursors are looked up the same way. Commands of ``publish`` and ``replay`` retry the
same way for ``redis_timeout`` seconds, then raise HubUnavailableError.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc

from ._core.hub import HubMessage, Replay, format_id, parse_id
from ._emitter import logger
from .exceptions import HubUnavailableError

try:
    import coredis
    import coredis.exceptions
    from coredis import PureToken
    from coredis.retry import NoRetryPolicy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("Hub(redis=...) needs coredis: pip install 'faye-websocket[redis]'"
                      ) from exc

__all__ = ["RedisBackend"]

_T = TypeVar("_T")
#: What coredis raises when Redis cannot be reached or the connection broke.
_REDIS_DOWN: tuple[type[BaseException], ...] = (
    coredis.exceptions.ConnectionError, TimeoutError, OSError)
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
#: XREAD BLOCK, milliseconds: the reader wakes this often when idle.
_BLOCK_MS = 5000
_READ_COUNT = 500
_ID = re.compile(rb"\d+-\d+")
#: Seconds between two trims of a channel by age (see publish).
_AGE_TRIM_EVERY = 1.0
#: Entries a retried publish looks through for its own (see publish).
_TOKEN_SEARCH = 1000


class _Hub(Protocol):
    """What the backend calls on its :class:`~faye_websocket.Hub` (named
    here, so this module does not import the one that imports it)."""

    async def _deliver(self, message: HubMessage) -> None: ...

    def _report_lost(self, channel_name: str, reason: str) -> None: ...


class RedisBackend:
    """Channels as Redis streams, shared by every process using them."""

    def __init__(self, url: str, *, prefix: str, history: int, history_age: float,
                 timeout: float) -> None:
        self._url = url
        # No retries in coredis (it retries a broken command twice by
        # default, which would store a publish twice): ours, with backoff
        # and the idempotent publish, are the only ones.
        self._client: coredis.Redis[bytes] = coredis.Redis.from_url(
            url, decode_responses=False, retry_policy=NoRetryPolicy())
        self._prefix = prefix
        self._history = max(history, 1)  # a stream is also the live feed
        self._history_age = history_age
        self._timeout = timeout
        #: Watched channels: the id of the last entry delivered of each.
        self._cursors: dict[str, str] = {}
        self._changed = anyio.Event()
        self._read_scope: anyio.CancelScope | None = None
        self._in_contact = True
        #: When each channel was last trimmed by age (``time.monotonic()``).
        self._age_trimmed: dict[str, float] = {}
        #: The ``run_id`` of the Redis server the cursors were read from.
        self._run_id: str | None = None

    def _key(self, channel: str) -> str:
        return self._prefix + channel

    async def run(self, hub: _Hub, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        async with self._client:
            task_status.started()
            await self._read_loop(hub)

    # -- commands, retried while Redis is away ----------------------------

    async def _retrying(self, what: str, command: Callable[[], Awaitable[_T]]) -> _T:
        deadline = anyio.current_time() + self._timeout
        delay = _BACKOFF_FIRST
        while True:
            try:
                return await command()
            except _REDIS_DOWN as exc:
                if anyio.current_time() + delay > deadline:
                    raise HubUnavailableError(
                        f"{what}: Redis at {self._url} is unreachable ({exc})") from exc
                await anyio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    async def publish(self, channel: str, data: str | bytes, event: str | None) -> str:
        # ``u``: a token of this publish, so that an XADD retried after the
        # connection broke (Redis may have stored the entry and the answer
        # got lost) is not stored twice: the retry looks for it first.
        token = os.urandom(8)
        fields: dict[str, str | bytes] = {"d": data, "t": "s" if isinstance(data, str) else "b",
                                          "u": token}
        if event is not None:
            fields["e"] = event
        key = self._key(channel)
        tried = False

        async def add() -> str:
            nonlocal tried
            if tried:
                stored = await self._find_token(key, token)
                if stored is not None:
                    return stored
            tried = True
            entry_id = await self._client.xadd(
                key, fields, trim_strategy=PureToken.MAXLEN,
                trim_operator=PureToken.APPROXIMATELY, threshold=self._history)
            assert entry_id is not None
            return _text(entry_id)

        entry_id = await self._retrying("publish", add)
        await self._trim_by_age(channel, key)
        return entry_id

    async def _trim_by_age(self, channel: str, key: str) -> None:
        """Drop the entries older than ``history_age`` (``XTRIM MINID``), at
        most once a second per channel: ``XADD`` trims by count only, and
        a quiet channel's old entries would otherwise stay (replay skips
        them anyway; this is for Redis's memory)."""
        now = time.monotonic()
        last = self._age_trimmed.get(channel)
        if last is not None and now - last < _AGE_TRIM_EVERY:  # (inf: never again)
            return
        self._age_trimmed[channel] = now
        oldest_ms = int((time.time() - self._history_age) * 1000)
        if oldest_ms <= 0:
            return
        try:
            await self._client.xtrim(key, PureToken.MINID, oldest_ms)
        except _REDIS_DOWN:
            pass  # the next publish tries again
        except coredis.exceptions.ResponseError as exc:  # MINID needs Redis 6.2
            logger.warning("hub: cannot trim %r by age (%s); replay still skips old "
                           "messages", key, exc)
            self._age_trimmed[channel] = float("inf")

    async def _find_token(self, key: str, token: bytes) -> str | None:
        """The id of the entry of ``key`` published with ``token``, among
        the newest (where a publish that just broke off would be)."""
        for entry in await self._client.xrevrange(key, "+", "-", count=_TOKEN_SEARCH):
            if entry.field_values.get(b"u") == token:
                return _text(entry.identifier)
        return None

    async def replay(self, channel: str, after: str) -> Replay:
        key = parse_id(after)
        if key is None:
            return Replay([], complete=False)
        start = format_id(key)
        stream = self._key(channel)
        entries = await self._retrying("replay", lambda: self._client.xrange(stream, start, "+"))
        messages = [_message(channel, entry.identifier, entry.field_values)
                    for entry in entries]
        if messages and messages[0].key == key:
            complete = True
            messages = messages[1:]
        else:
            complete = await self._trimmed_at(stream) == key
        oldest = time.time() - self._history_age
        fresh = [m for m in messages if m.time >= oldest]
        return Replay(fresh, complete=complete and len(fresh) == len(messages))

    async def _trimmed_at(self, stream: str) -> tuple[int, int] | None:
        """The id of the last entry trimmed from ``stream`` (None if it does
        not exist)."""
        if not await self._retrying("replay", lambda: self._client.exists([stream])):
            return None
        info = await self._retrying("replay", lambda: self._client.xinfo_stream(stream))
        # coredis 6 hands this one field over as the repr of the bytes.
        match = _ID.search(str(info.get("max-deleted-entry-id", "")).encode())
        return parse_id(match.group().decode()) if match else None

    async def watch(self, channel: str) -> None:
        stream = self._key(channel)
        if self._run_id is None:
            # Before the cursor: a restart in between shows as a new run_id.
            self._run_id = await self._retrying("subscribe", self._server_run_id)
        last = await self._retrying("subscribe", lambda: self._client.xrevrange(
            stream, "+", "-", count=1))
        self._cursors[channel] = _text(last[0].identifier) if last else "0-0"
        self._wake()

    def unwatch(self, channel: str) -> None:
        self._cursors.pop(channel, None)
        self._wake()

    def _wake(self) -> None:
        """Have the reader start over with the new set of streams."""
        self._changed.set()
        if self._read_scope is not None:
            self._read_scope.cancel()

    # -- the reader -------------------------------------------------------

    async def _read_loop(self, hub: _Hub) -> None:
        delay = _BACKOFF_FIRST
        while True:
            while not self._cursors:
                await self._changed.wait()
                self._changed = anyio.Event()
            cursors = dict(self._cursors)
            streams = {self._key(channel): cursor for channel, cursor in cursors.items()}
            result: dict[bytes, tuple[Any, ...]] | None = None
            with anyio.CancelScope() as self._read_scope:
                try:
                    run_id = await self._server_run_id()
                    if not self._in_contact or run_id != self._run_id:
                        await self._check_cursors(hub, restarted=self._in_contact)
                    self._run_id = run_id
                    result = await self._client.xread(streams, count=_READ_COUNT,
                                                      block=_BLOCK_MS)
                except _REDIS_DOWN as exc:
                    if self._in_contact:
                        self._in_contact = False
                        logger.warning("hub: lost contact with Redis at %s (%s); retrying",
                                       self._url, exc)
                    self._read_scope = None
                    await anyio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)
                    continue
            self._read_scope = None
            delay = _BACKOFF_FIRST
            if not result:
                continue
            for stream, entries in result.items():
                channel = stream.decode()[len(self._prefix):]
                if channel not in self._cursors:
                    continue  # nobody here listens any more
                if len(entries) >= max(1, self._history // 2):
                    await self._check_trimmed(hub, channel, cursors[channel])
                for entry in entries:
                    message = _message(channel, entry.identifier, entry.field_values)
                    self._cursors[channel] = message.id
                    await hub._deliver(message)

    async def _server_run_id(self) -> str:
        """The Redis server's ``run_id``: a new one each time it starts."""
        info = await self._client.info("server")
        return _text(info.get("run_id", b""))  # type: ignore[arg-type]

    async def _check_cursors(self, hub: _Hub, *, restarted: bool = False) -> None:
        """Back in contact, or Redis restarted (a new ``run_id``) while the
        reader was not reading: for each channel, is the entry we read last
        still there (then nothing was lost)?"""
        for channel, cursor in list(self._cursors.items()):
            stream = self._key(channel)
            found = await self._client.xrange(stream, cursor, cursor)
            if not found:
                trimmed = await self._trimmed_at(stream)
                if trimmed is None or trimmed != parse_id(cursor):
                    logger.warning("hub: channel %r may have lost messages after %s while "
                                   "Redis was away", channel, cursor)
                    hub._report_lost(channel, "backend")
        if restarted:
            logger.warning("hub: Redis at %s restarted between two reads", self._url)
        else:
            self._in_contact = True
            logger.warning("hub: back in contact with Redis at %s", self._url)

    async def _check_trimmed(self, hub: _Hub, channel: str, cursor: str) -> None:
        """Before a long batch: has the stream been trimmed past our cursor
        (the reader fell more than the history behind)? Trimming takes the
        oldest entries, so it may also have taken some of the batch since we
        read it: then we cannot tell, and report the loss anyway.)"""
        trimmed = await self._trimmed_at(self._key(channel))
        start = parse_id(cursor)
        if trimmed is not None and start is not None and trimmed > start:
            logger.warning("hub: reader fell behind on channel %r; messages lost", channel)
            hub._report_lost(channel, "history")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _message(channel: str, identifier: str | bytes, fields: Any) -> HubMessage:
    key = parse_id(_text(identifier))
    assert key is not None
    raw = fields.get(b"d", b"")
    data: str | bytes = raw.decode("utf-8", "replace") if fields.get(b"t") == b"s" else raw
    event = fields.get(b"e")
    return HubMessage(channel, key, data, event.decode() if event is not None else None)

