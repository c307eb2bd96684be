"""The client side of server-sent events: bytes in, events out; no I/O.

:class:`EventStreamParser` is WHATWG HTML's "Interpreting an event stream"
(section 9.2.6), step by step; :func:`request_headers` and
:func:`check_response` are the request and the response checks of its
processing model (section 9.2.3).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from .client import Target

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "REQUEST_RESERVED",
    "EventStreamParser",
    "EventTooLarge",
    "ServerSentEvent",
    "check_response",
    "origin_of",
    "request_headers",
    "request_target",
]

#: The default bound on one line and on one event's data, in characters.
DEFAULT_MAX_EVENT_SIZE = 2**26 - 1
#: Headers the client writes itself; user ``headers`` may not set them.
REQUEST_RESERVED = frozenset({"host", "accept", "cache-control", "last-event-id", "connection",
                              "content-length", "transfer-encoding"})

# A line ends with CRLF, LF or CR (section 9.2.5, the stream's ABNF).
_LINE_END = re.compile(r"\r\n|\r|\n")
# "consists of only ASCII digits": not str.isdigit(), which also takes "²" or "٣".
_DIGITS = re.compile(r"[0-9]+")
# A reconnection time past this (about 31 million years) is stored as this,
# so a server cannot make the client build a huge integer.
_MAX_RETRY_MS = 10**18


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
    """A line, or an event's data, is longer than the parser's limit.

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

    Args:
        origin: the ``origin`` of the events.
        last_event_id: the initial last event ID string.
        max_size: the longest line, and the longest data of one event, in
            characters (the spec has no limit; memory has).
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
        # The decoder replaces invalid UTF-8 with U+FFFD (the stream is always
        # UTF-8, whatever the Content-Type's charset says).
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._at_start = True
        self._line: list[str] = []
        self._line_size = 0
        # A CR ended the last chunk: a LF first in the next one is its CRLF.
        self._after_cr = False
        self._data: list[str] = []
        self._data_size = 0
        self._event_type = ""
        # A new stream's ID buffer starts at the last event ID string, as in
        # browsers: an ``id`` in an event cut off by a disconnect is lost.
        self._id_buffer = self.last_event_id

    def receive_data(self, data: bytes) -> list[ServerSentEvent]:
        """Parse more of the stream.

        Returns:
            The events completed by ``data`` (a blank line dispatches).

        Raises:
            EventTooLarge: a line or an event outgrows ``max_size``.
        """
        text = self._decoder.decode(data)
        if self._at_start and text:
            self._at_start = False
            if text[0] == "\ufeff":  # one byte order mark, at the start only
                text = text[1:]
        if self._after_cr and text:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        events: list[ServerSentEvent] = []
        try:
            self._parse(text, events)
        except EventTooLarge as exc:
            exc.events = events
            raise
        return events

    def _parse(self, text: str, events: list[ServerSentEvent]) -> None:
        pos, end = 0, len(text)
        while pos < end:
            match = _LINE_END.search(text, pos)
            if match is None:
                self._grow_line(text[pos:])
                break
            line = text[pos:match.start()]
            if self._line:
                line = "".join(self._line) + line
                self._line.clear()
                self._line_size = 0
            if len(line) > self._max_size:
                raise EventTooLarge(f"event stream line longer than {self._max_size}")
            if match.end() == end and match.group() == "\r":
                self._after_cr = True  # dispatch now, not when the next chunk comes
            pos = match.end()
            event = self._process_line(line)
            if event is not None:
                events.append(event)

    def receive_eof(self) -> None:
        """The stream ended: discard any partial line or event ("once the end
        of the file is reached, any pending data must be discarded") and get
        ready for the next stream."""
        self._start_stream()

    def _grow_line(self, piece: str) -> None:
        self._line.append(piece)
        self._line_size += len(piece)
        if self._line_size > self._max_size:
            raise EventTooLarge(f"event stream line longer than {self._max_size}")

    def _process_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment
        # No colon: the whole line is the field name, the value is empty.
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "event":
            self._event_type = value
        elif name == "data":
            # Kept as a list of lines: joined with LF at dispatch, that is the
            # buffer with a LF after each value, less the last LF.
            self._data_size += len(value) + 1
            if self._data_size > self._max_size:
                raise EventTooLarge(f"event data longer than {self._max_size}")
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            digits = value.lstrip("0") or "0"
            self.retry = int(digits) if len(digits) < 19 else _MAX_RETRY_MS
        return None  # other fields are ignored

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        if not self._data:  # an empty data buffer: no event, type reset
            self._event_type = ""
            return None
        event = ServerSentEvent(self._event_type or "message", "\n".join(self._data),
                                self.last_event_id, self.origin)
        self._data.clear()
        self._data_size = 0
        self._event_type = ""
        return event


def origin_of(target: Target) -> str:
    """The serialised origin of an ``http(s)://`` URL (default port omitted)."""
    return ("https://" if target.secure else "http://") + target.authority


def request_target(target: Target) -> bytes:
    """The request target: path and query, with anything outside printable
    ASCII (spaces, non-ASCII characters) percent-encoded as UTF-8."""
    return "".join(c if "!" <= c <= "~" else quote(c) for c in target.resource).encode("ascii")


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
