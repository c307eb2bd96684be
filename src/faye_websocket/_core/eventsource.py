"""Server-sent events framing (WHATWG HTML, "Server-sent events"): bytes only."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence

from .http import Request, header_tokens

__all__ = ["PING", "EventSourceState", "format_event", "format_retry", "is_eventsource",
           "response_headers"]

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
