"""The fan-out hub's bookkeeping, without I/O: message ids, messages that
encode themselves once, and a channel's bounded history.

Ids have the form of Redis stream entry ids, ``"<milliseconds>-<sequence>"``,
whichever backend makes them: the memory backend draws them from the wall
clock as Redis does, so ids compare in publish order, across backends and
across restarts of a process (a client's ``Last-Event-ID`` from before a
restart is then known to be older than anything the new process holds).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .frames import frame_parts
from .sse import format_event

__all__ = ["History", "HubMessage", "IdClock", "Lost", "Replay", "format_id", "lost_event",
           "parse_id"]

#: An id as a sortable pair: (milliseconds, sequence).
MessageId = tuple[int, int]
_TEXT, _BINARY = 0x1, 0x2


def parse_id(text: str) -> MessageId | None:
    """``"ms-seq"`` (or a bare ``"ms"``, as Redis reads it) as a pair; None if
    it is not an id."""
    ms, _, seq = text.partition("-")
    if not ms.isdigit() or not (seq.isdigit() or seq == ""):  # also: no sign, no spaces
        return None
    if len(ms) > 20 or len(seq) > 20:
        return None
    return int(ms), int(seq or 0)


def format_id(pair: MessageId) -> str:
    return f"{pair[0]}-{pair[1]}"


class IdClock:
    """Ids from the wall clock, strictly increasing (Redis's rule for ``XADD *``:
    the time in milliseconds, and a sequence number within one millisecond or
    while the clock stands still or goes back)."""

    def __init__(self) -> None:
        self._last: MessageId = (0, 0)

    def next(self, now_ms: int) -> MessageId:
        ms, seq = self._last
        self._last = (now_ms, 0) if now_ms > ms else (ms, seq + 1)
        return self._last


class HubMessage:
    """One published message, shared by every subscriber that gets it.

    Its encodings (the WebSocket frame, the server-sent event) are built on
    first use and kept, so a message goes to any number of subscribers for
    the cost of encoding it once per kind of connection.

    Attributes:
        channel: the channel it was published on.
        id: its id, ``"<ms>-<seq>"``.
        data: the payload: ``str`` (a text message) or ``bytes`` (binary).
        event: the event type for EventSource subscribers (``None``:
            ``message``); WebSocket subscribers get ``data`` only.
    """

    __slots__ = ("_frame", "_frames", "_sse", "channel", "data", "event", "id", "key", "size")

    def __init__(self, channel: str, key: MessageId, data: str | bytes,
                 event: str | None = None) -> None:
        self.channel = channel
        self.key = key
        self.id = format_id(key)
        self.data = data
        self.event = event
        #: Bytes this message counts for in a subscriber's bound.
        self.size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
        self._frame: bytes | None = None
        self._frames: dict[str, bytes] | None = None  # other frame keys (deflate)
        self._sse: bytes | None = None

    @property
    def time(self) -> float:
        """When it was published, in seconds since the epoch (from its id)."""
        return self.key[0] / 1000

    def text(self) -> str:
        """``data`` as text (bytes decoded as UTF-8, bad bytes replaced)."""
        data = self.data
        return data if isinstance(data, str) else data.decode("utf-8", "replace")

    def frame(self) -> bytes:
        """The whole, unmasked, uncompressed WebSocket frame a server sends."""
        frame = self._frame
        if frame is None:
            data = self.data
            if isinstance(data, str):
                head, body = frame_parts(_TEXT, data.encode("utf-8"))
            else:
                head, body = frame_parts(_BINARY, data)
            frame = self._frame = head + body
        return frame

    def frame_for(self, key: str, build: Callable[[str | bytes], bytes]) -> bytes:
        """The whole frame for connections of frame key ``key`` (``"plain"``:
        :meth:`frame`; a compressed one is built by ``build``, a connection
        of that key, on first use)."""
        if key == "plain":
            return self.frame()
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        frame = frames.get(key)
        if frame is None:
            frame = frames[key] = build(self.data)
        return frame

    def sse(self) -> bytes:
        """The server-sent event: ``event`` (when set), ``id`` and ``data``."""
        sse = self._sse
        if sse is None:
            sse = self._sse = format_event(self.text(), event=self.event, id=self.id)
        return sse

    def __repr__(self) -> str:
        return f"<HubMessage {self.channel!r} {self.id} {self.data!r:.40}>"


@dataclass(frozen=True, slots=True)
class Lost:
    """Messages a subscriber will not get, reported in its stream.

    Attributes:
        channel: the channel.
        after: the id of the last message the subscriber did get (or asked
            to resume after); ``""`` if none.
        reason: ``"history"`` (the resume id is older than the history, or
            unknown), ``"slow"`` (dropped by the ``drop_oldest`` policy) or
            ``"backend"`` (the hub lost contact with Redis and cannot tell
            whether messages were published meanwhile).
        count: how many messages were dropped, when known (``"slow"``);
            ``None`` otherwise.
    """

    channel: str
    after: str
    reason: str
    count: int | None = None


def lost_event(lost: Lost) -> bytes:
    """The ``lost`` server-sent event: no ``id`` field (a browser keeps its
    ``lastEventId``), ``data`` a JSON object of the :class:`Lost` fields."""
    data = {"channel": lost.channel, "after": lost.after, "reason": lost.reason}
    if lost.count is not None:
        data["count"] = lost.count  # type: ignore[assignment]
    return format_event(json.dumps(data, separators=(",", ":")), event="lost")


@dataclass(slots=True)
class Replay:
    """What a subscriber resuming after an id is owed.

    Attributes:
        messages: the messages after that id, oldest first.
        complete: ``messages`` is everything after that id (the id was
            found, or it is the last one trimmed from the history); when
            false, messages between the id and ``messages`` are gone.
    """

    messages: list[HubMessage] = field(default_factory=list)
    complete: bool = True


class History:
    """One channel's recent messages, bounded by count and by age.

    It remembers the id of the last message it let go (``floor``), so a
    resume from exactly that id is known to be complete.
    """

    def __init__(self, size: int, age: float) -> None:
        self._size = size
        self._age = age
        self._messages: deque[HubMessage] = deque()
        self.floor: MessageId | None = None

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[HubMessage]:
        return iter(self._messages)

    def append(self, message: HubMessage, now: float) -> None:
        if self._size:
            self._messages.append(message)
        else:
            self.floor = message.key
        self.expire(now)

    def expire(self, now: float) -> None:
        """Let go of messages over the count or older than the age."""
        messages = self._messages
        oldest = now - self._age
        while messages and (len(messages) > self._size or messages[0].time < oldest):
            self.floor = messages.popleft().key

    def after(self, last_id: str, now: float) -> Replay:
        """The messages after ``last_id`` (see :class:`Replay`)."""
        self.expire(now)
        key = parse_id(last_id)
        if key is None:
            return Replay([], complete=False)
        messages = [m for m in self._messages if m.key > key]
        before = len(self._messages) - len(messages) - 1  # the message just before them
        found = before >= 0 and self._messages[before].key == key
        return Replay(messages, complete=found or key == self.floor)
