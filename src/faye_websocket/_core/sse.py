"""Server-sent events, both sides (WHATWG HTML, "Server-sent events"):
bytes in, events out, and events to bytes; no I/O.

The client side: :class:`EventStreamParser` is WHATWG HTML's "Interpreting
an event stream" (section 9.2.6), step by step; :func:`request_headers` and
:func:`check_response` are the request and the response checks of its
processing model (section 9.2.3). The server side, after them: the
framing of events (:func:`format_event`, :func:`format_retry`,
:data:`PING`), the response headers, and :func:`is_eventsource`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .http import Request, header_tokens
from .url import Target, request_target

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "PING",
    "REQUEST_RESERVED",
    "EventSourceState",
    "EventStreamParser",
    "EventTooLarge",
    "ServerSentEvent",
    "check_response",
    "format_event",
    "format_retry",
    "is_eventsource",
    "origin_of",
    "request_headers",
    "request_target",
    "response_headers",
]

#: The default bound on the bytes held for one event, the line being read
#: included (64 MiB).
DEFAULT_MAX_EVENT_SIZE = 2**26 - 1
#: Headers the client writes itself; user ``headers`` may not set them.
REQUEST_RESERVED = frozenset({"host", "accept", "cache-control", "last-event-id", "connection",
                              "content-length", "transfer-encoding"})

# A line ends with CRLF, LF or CR (section 9.2.5, the stream's ABNF). The
# parser splits bytes, not text: CR, LF and ":" are ASCII, which UTF-8 never
# uses inside a multi-byte sequence, and a decoder that replaces invalid
# sequences never swallows an ASCII byte, so splitting first and decoding
# each value then gives what decoding the whole stream first would.
_LINE_END = re.compile(rb"\r\n|\r|\n")
# Where a run of comment lines and blank lines ends: at a line end followed
# by a line that is neither. A keep-alive flood is made of such runs; found
# with one search, it costs the regex engine's time, not a turn of the
# Python loop per line.
_RUN_END = re.compile(rb"[\r\n][^:\r\n]")
# "consists of only ASCII digits": not str.isdigit(), which also takes "²" or "٣".
_DIGITS = re.compile(rb"[0-9]+")
_BOM = b"\xef\xbb\xbf"
# A reconnection time past this (about 31 million years) is stored as this,
# so a server cannot make the client build a huge integer.
_MAX_RETRY_MS = 10**18
# What the parser does with the line it is in the middle of.
_BUFFER, _COMMENT, _DATA = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event, as a browser's ``MessageEvent``.

    Attributes:
        type: the ``event`` field, ``"message"`` when absent.
        data: the ``data`` lines, joined with ``"\\n"``.
        id: the last event ID at dispatch (the browser's ``lastEventId``):
            it stays set for later events that have no ``id`` field.
        origin: ``scheme://host[:port]`` of the stream's URL.
    """

    type: str
    data: str
    id: str = ""
    origin: str = ""


class EventTooLarge(ValueError):
    """An event, with the line being read, outgrew the parser's limit.

    :attr:`events` holds the events completed in the same chunk before
    the offending line, which are still the application's.
    """

    events: list[ServerSentEvent]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.events = []


class EventStreamParser:
    """An incremental ``text/event-stream`` decoder.

    Feed it the bytes of a response body with :meth:`receive_data`, which
    returns the events they complete; call :meth:`receive_eof` when the
    body ends (a partial event is then discarded, as the spec says). The
    last event ID and the reconnection time outlive the stream, so one
    parser serves every reconnection of a client.

    Memory is bounded by ``max_size`` bytes, counted as they are held: the
    event's data (each ``data`` value plus the LF that joins it to the
    next), its ``event`` type, and the line being read (field name
    included). Comment lines are skipped as they arrive and hold nothing,
    however long. Besides that, only the last event ID is kept (at most
    one line long).

    Args:
        origin: the ``origin`` of the events.
        last_event_id: the initial last event ID string.
        max_size: the bound above, in bytes (the spec has no limit; memory
            has).
    """

    def __init__(self, *, origin: str = "", last_event_id: str = "",
                 max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if "\0" in last_event_id or "\r" in last_event_id or "\n" in last_event_id:
            raise ValueError("a last event ID cannot contain NUL, CR or LF")
        self.origin = origin
        #: The last event ID string: set from the ID buffer at each dispatch.
        self.last_event_id = last_event_id
        #: The reconnection time in milliseconds from the last valid
        #: ``retry`` field (``None``: the server has not sent one).
        self.retry: int | None = None
        self._max_size = max_size
        self._start_stream()

    def _start_stream(self) -> None:
        # Up to two bytes that may begin a byte order mark, until a third
        # one says whether they do.
        self._at_start = True
        self._head = b""
        # The line being read, when a chunk ended in its middle: its bytes
        # (``_BUFFER``), nothing (``_COMMENT``), or, for a ``data`` line, the
        # value goes straight to ``_data`` (``_DATA``), so one long line is
        # never held twice. ``_line_size`` counts its bytes either way and
        # ``_base`` is what the event held when it began.
        self._line = bytearray()
        self._line_size = 0
        self._mode = _BUFFER
        self._base = 0
        # A CR ended the last chunk: a LF first in the next one is its CRLF.
        self._after_cr = False
        # The data buffer, as the spec has it: each value followed by a LF.
        self._data = bytearray()
        self._event_type = b""
        # A new stream's ID buffer starts at the last event ID string, as in
        # browsers: an ``id`` in an event cut off by a disconnect is lost.
        self._id_buffer = self.last_event_id

    def receive_data(self, data: bytes) -> list[ServerSentEvent]:
        """Parse more of the stream.

        Returns:
            The events completed by ``data`` (a blank line dispatches).

        Raises:
            EventTooLarge: the event outgrew ``max_size`` (the parser is
                then unusable until :meth:`receive_eof`).
        """
        pos = 0
        if self._at_start:
            if self._head:
                data = self._head + data
            if len(data) < 3 and _BOM.startswith(data):
                self._head = data
                return []
            self._at_start, self._head = False, b""
            if data.startswith(_BOM):  # one byte order mark, at the start only
                pos = 3
        elif self._after_cr and data:
            self._after_cr = False
            if data[0] == 0x0A:
                pos = 1
        events: list[ServerSentEvent] = []
        try:
            self._parse(data, pos, events)
        except EventTooLarge as exc:
            exc.events = events
            raise
        return events

    def receive_eof(self) -> None:
        """The stream ended: discard any partial line or event ("once the end
        of the file is reached, any pending data must be discarded") and get
        ready for the next stream."""
        self._start_stream()

    def _too_large(self) -> EventTooLarge:
        return EventTooLarge(f"event longer than {self._max_size} bytes")

    def _parse(self, buf: bytes, pos: int, events: list[ServerSentEvent]) -> None:
        end = len(buf)
        if self._line_size or self._mode == _COMMENT:
            # First the end of the line an earlier chunk began.
            match = _LINE_END.search(buf, pos)
            if match is None:
                self._grow_line(buf, pos, end)
                return
            event = self._end_line(buf, pos, match.start())
            if event is not None:
                events.append(event)
            pos = match.end()
            if pos == end and buf[pos - 1] == 0x0D:
                self._after_cr = True
        while pos < end:
            first = buf[pos]
            if first == 0x3A or first == 0x0D or first == 0x0A:
                pos = self._skip_idle(buf, pos, end, events)
                continue
            match = _LINE_END.search(buf, pos)
            if match is None:
                self._grow_line(buf, pos, end)
                return
            cut = match.start()
            if cut - pos + len(self._data) + len(self._event_type) > self._max_size:
                raise self._too_large()
            if buf.startswith(b"data:", pos, cut):  # the common case, inline
                pos += 6 if pos + 5 < cut and buf[pos + 5] == 0x20 else 5
                self._data += buf[pos:cut]
                self._data.append(0x0A)
            else:
                event = self._process_line(buf[pos:cut])
                if event is not None:
                    events.append(event)
            pos = match.end()
            if pos == end and buf[pos - 1] == 0x0D:
                self._after_cr = True  # dispatch now, not when the next chunk comes

    def _skip_idle(self, buf: bytes, pos: int, end: int, events: list[ServerSentEvent]) -> int:
        """Comment lines and blank lines from ``pos``: where they end."""
        if buf[pos] != 0x3A:  # a blank line; just one, most of the time
            after = pos + 2 if buf[pos] == 0x0D and pos + 1 < end and buf[pos + 1] == 0x0A \
                else pos + 1
            if after == end or buf[after] not in b":\r\n":
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                if after == end and buf[after - 1] == 0x0D:
                    self._after_cr = True
                return after
        # A run of them: one search finds its end.
        found = _RUN_END.search(buf, pos)
        stop = found.start() + 1 if found is not None else \
            max(buf.rfind(b"\r", pos), buf.rfind(b"\n", pos)) + 1
        if stop <= pos:  # a comment whose end is still to come
            self._mode = _COMMENT
            return end
        # A blank line among them dispatches; the ones after it and the
        # comments change nothing. One line end right after another is a
        # blank line, unless the two are a CRLF.
        if buf[pos] != 0x3A or buf.find(b"\n\n", pos, stop) >= 0 or \
                buf.find(b"\r\r", pos, stop) >= 0 or buf.find(b"\n\r", pos, stop) >= 0:
            event = self._dispatch()
            if event is not None:
                events.append(event)
        if stop == end and buf[stop - 1] == 0x0D:
            self._after_cr = True
        return stop

    def _end_line(self, buf: bytes, pos: int, cut: int) -> ServerSentEvent | None:
        """The line begun in an earlier chunk ends with ``buf[pos:cut]``."""
        mode, self._mode = self._mode, _BUFFER
        if mode == _COMMENT:
            return None
        self._line_size += cut - pos
        if self._base + self._line_size > self._max_size:
            raise self._too_large()
        self._line_size = 0
        if mode == _DATA:
            self._data += buf[pos:cut]
            self._data.append(0x0A)
            return None
        line, self._line = self._line, bytearray()
        line += buf[pos:cut]
        return self._process_line(line)

    def _grow_line(self, buf: bytes, pos: int, end: int) -> None:
        """Keep ``buf[pos:end]``, part of a line whose end is still to come."""
        if self._mode == _COMMENT:
            return
        if not self._line_size:
            if buf[pos] == 0x3A:  # a comment: nothing of it is needed
                self._mode = _COMMENT
                return
            self._base = len(self._data) + len(self._event_type)
        self._line_size += end - pos
        if self._base + self._line_size > self._max_size:
            raise self._too_large()
        if self._mode == _DATA:
            self._data += buf[pos:end]
            return
        self._line += buf[pos:end]
        if len(self._line) >= 6 and self._line.startswith(b"data:"):
            # A data line (and whether a space follows the colon is known):
            # its value goes to the data buffer from now on.
            self._data += self._line[6 if self._line[5] == 0x20 else 5:]
            self._line = bytearray()
            self._mode = _DATA

    def _process_line(self, line: bytes | bytearray) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:
            return None  # a comment
        # No colon: the whole line is the field name, the value is empty.
        colon = line.find(b":")
        size = len(line) if colon < 0 else colon
        start = len(line) if colon < 0 else colon + 1
        if start < len(line) and line[start] == 0x20:
            start += 1
        if size == 4 and line.startswith(b"data"):
            # The data buffer gets the value and a LF; the last LF goes at
            # dispatch.
            self._data += line[start:]
            self._data.append(0x0A)
        elif size == 5 and line.startswith(b"event"):
            self._event_type = bytes(line[start:])
        elif size == 2 and line.startswith(b"id"):
            value = line[start:]
            if b"\0" not in value:
                self._id_buffer = value.decode("utf-8", "replace")
        elif size == 5 and line.startswith(b"retry"):
            value = line[start:]
            if _DIGITS.fullmatch(value):
                digits = value.lstrip(b"0") or b"0"
                self.retry = int(digits) if len(digits) < 19 else _MAX_RETRY_MS
        return None  # other fields are ignored

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data, self._data = self._data, bytearray()
        event_type, self._event_type = self._event_type, b""
        if not data:  # an empty data buffer: no event, type reset
            return None
        del data[-1]  # the LF after the last value
        return ServerSentEvent(event_type.decode("utf-8", "replace") or "message",
                               data.decode("utf-8", "replace"), self.last_event_id,
                               self.origin)


def origin_of(target: Target) -> str:
    """The serialised origin of an ``http(s)://`` URL (default port omitted)."""
    return ("https://" if target.secure else "http://") + target.authority


def request_headers(target: Target, *, last_event_id: str = "",
                    headers: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Headers of the ``GET`` that opens (or reopens) a stream.

    ``Last-Event-ID`` is sent when the last event ID is not empty (values
    go on the wire UTF-8 encoded); an ID that no header can carry (a
    control character, or a space at either end) is left out rather than
    mangled.
    """
    out = [("Host", target.authority), ("Accept", "text/event-stream"),
           ("Cache-Control", "no-cache")]
    if last_event_id and _header_safe(last_event_id):
        out.append(("Last-Event-ID", last_event_id))
    auth = target.basic_auth()
    if auth is not None and not any(k.lower() == "authorization" for k, _ in headers):
        out.append(("Authorization", auth))
    out.extend(headers)
    return out


def _header_safe(value: str) -> bool:
    """A field value by RFC 9110 section 5.5: no CTL but HTAB, no OWS at the ends."""
    if value != value.strip(" \t"):
        return False
    return not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value)


def check_response(status: int, headers: Sequence[tuple[str, str]]) -> str:
    """What a response to the stream request means (section 9.2.3).

    Returns:
        ``"open"`` for a ``200`` with ``Content-Type: text/event-stream``
        (parameters such as ``charset`` allowed); ``"stop"`` for ``204 No
        Content``, the server's way to say "do not reconnect"; otherwise
        the reason the connection fails.
    """
    if status == 204:
        return "stop"
    if status != 200:
        return f"unexpected response code: {status}"
    types = [v for k, v in headers if k.lower() == "content-type"]
    essence = types[-1].split(";")[0].strip().lower() if types else ""
    if essence != "text/event-stream":
        shown = repr(types[-1]) if types else "missing"
        return f"Content-Type is {shown}, not text/event-stream"
    return "open"


# -- the server side: events to bytes ---------------------------------------------


class EventSourceState(enum.IntEnum):
    """The browser API's ``EventSource.readyState`` values."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2


#: A comment line: clients ignore it; it keeps proxies from timing out.
PING = b":\r\n\r\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def is_eventsource(request: Request) -> bool:
    """A ``GET`` whose ``Accept`` lists ``text/event-stream`` (S-49)."""
    if request.method != "GET":
        return False
    accept = [token.split(";")[0].strip() for token in header_tokens(request.header("accept"))]
    return "text/event-stream" in accept


def response_headers(extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Headers of the stream's response (S-50), then the user's."""
    return [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache, no-store"),
            *extra]


def format_retry(seconds: float) -> bytes:
    """The ``retry`` field: the reconnection delay, in whole milliseconds."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("retry must be a finite number of seconds >= 0")
    return f"retry: {math.floor(seconds * 1000)}\r\n\r\n".encode()


def _check_field(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        # The reference writes these as they are, which lets a value inject
        # fields; a line break can never be part of a field value.
        raise ValueError(f"the {name} of an event cannot contain a line break")


def format_event(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event: ``event:``/``id:`` fields, then a ``data:`` line per line of
    ``data`` (CR, LF and CRLF all break lines), then a blank line.

    Raises:
        ValueError: ``event`` or ``id`` contains a line break, or ``id`` a NUL
            (clients ignore such ids).
    """
    head = ""
    if event is not None:
        _check_field("event", event)
        head += f"event: {event}\r\n"
    if id is not None:
        _check_field("id", id)
        if "\0" in id:
            raise ValueError("the id of an event cannot contain NUL")
        head += f"id: {id}\r\n"
    body = "".join(f"data: {line}\r\n" for line in _LINE_BREAK.split(data))
    return (head + body + "\r\n").encode("utf-8")
