"""atheris target: the EventSource client's parser (``EventStreamParser``).

Input layout: byte 0 chooses the configuration, byte 1 how the rest is cut
into reads and whether it is raw, the rest is what the server sent.

* byte 0, bits 0-1: ``max_size`` (2**26 - 1, 1, 16 or 100 bytes); bit 2:
  the stream is sent twice, with an end of stream between (a
  reconnection: the last event ID and the retry time carry over, the
  partial event does not); bits 3-7: the initial last event ID is that
  many ``"7"`` characters.
* byte 1, bits 0-6: 0 feeds the bytes whole, n in reads of n bytes (at most
  about a thousand reads); bit 7: the rest is not raw bytes but event
  descriptions that :func:`build` turns into a stream with the server's own
  ``format_event``/``format_retry``/``PING``.

Invariants checked on every input:

* ``receive_data`` raises nothing but ``EventTooLarge``; every event has a
  type, and an ID without NUL, CR or LF; the origin is the parser's.
* The events, the last event ID and the retry time equal those of
  :func:`reference`, the spec's algorithm written plainly (decode the whole
  stream, then split it into lines), and cutting the input into reads
  changes nothing.
* ``max_size`` holds: ``EventTooLarge`` is raised exactly when
  :func:`first_too_large` (the bytes held for an event, the line being read
  included, comments excluded) says so, after exactly the events before
  that line; and between reads the parser never holds more than
  ``max_size`` bytes.
* Built streams round-trip: the parser gives back the events that were
  formatted.

Run: ``python fuzz/fuzz_sse_client.py [libFuzzer options] CORPUS_DIR...`` or
``nox -s fuzz``.
"""

from __future__ import annotations

import re
import struct
import sys

import atheris

with atheris.instrument_imports(include=["faye_websocket"]):
    from faye_websocket._core.sse import (
        PING,
        EventStreamParser,
        EventTooLarge,
        ServerSentEvent,
        format_event,
        format_retry,
    )

MAX_SIZES = (2**26 - 1, 1, 16, 100)
ORIGIN = "https://example.com"
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")
_BYTES_LINE_END = re.compile(rb"\r\n|\r|\n")


def reference(stream: bytes, last_event_id: str
              ) -> tuple[list[ServerSentEvent], str, int | None]:
    """WHATWG HTML 9.2.6 on a whole stream: the events, the last event ID
    and the retry time (``None`` if never set)."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _TEXT_LINE_END.split(text)
    lines.pop()  # what follows the last line end is not a line (yet)
    events: list[ServerSentEvent] = []
    data, event_type, id_buffer, retry = "", "", last_event_id, None
    for line in lines:
        if not line:
            last_event_id = id_buffer
            if data:
                events.append(ServerSentEvent(event_type or "message", data[:-1],
                                              last_event_id, ORIGIN))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            retry = min(int(value), 10**18) if len(value) < 4000 else 10**18
    return events, last_event_id, retry


def first_too_large(stream: bytes, max_size: int) -> int | None:
    """How many events the parser dispatches before it must refuse the
    stream, or ``None`` if it must not."""
    if len(stream) < 3 and b"\xef\xbb\xbf".startswith(stream):
        return None  # maybe the start of a byte order mark: nothing to judge yet
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    data_held = type_held = dispatched = 0
    pos = 0
    while True:
        match = _BYTES_LINE_END.search(stream, pos)
        line = stream[pos : match.start()] if match else stream[pos:]
        if line[:1] != b":" and len(line) + data_held + type_held > max_size:
            return dispatched
        if match is None:
            return None
        pos = match.end()
        if not line:
            dispatched += data_held > 0
            data_held = type_held = 0
        elif not line.startswith(b":"):
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"data":
                data_held += len(value) + 1
            elif name == b"event":
                type_held = len(value)


def feed(parser: EventStreamParser, stream: bytes, step: int, max_size: int
         ) -> tuple[list[ServerSentEvent], bool]:
    """The events, and whether the parser refused the stream."""
    events: list[ServerSentEvent] = []
    if step == 0:
        pieces = [stream]
    else:
        step = max(step, len(stream) // 1024)
        pieces = [stream[i : i + step] for i in range(0, len(stream), step)]
    for piece in pieces:
        try:
            got = parser.receive_data(piece)
        except EventTooLarge as exc:
            return events + exc.events, True
        events += got
        held = len(parser._data) + len(parser._event_type) + len(parser._line)
        assert held <= max_size, f"holds {held} bytes, over {max_size}"
    return events, False


def build(spec: bytes) -> tuple[bytes, list[tuple[str, str | None, str | None]]]:
    """A stream from descriptions, and the (data, event, id) it carries.

    Each description: a kind byte; kind % 4 == 0 a keep-alive comment, 1 a
    ``retry`` (2 more bytes: milliseconds), otherwise an event: a length
    byte and that many bytes of data (UTF-8, invalid bytes replaced), then,
    with kind bit 2, a length byte and the event type, with bit 3 a length
    byte and the id (line breaks and NUL dropped from both)."""
    out = bytearray()
    sent: list[tuple[str, str | None, str | None]] = []
    pos = 0

    def take() -> str:
        nonlocal pos
        size = spec[pos] if pos < len(spec) else 0
        value = spec[pos + 1 : pos + 1 + size].decode("utf-8", "replace")
        pos += 1 + size
        return value

    while pos < len(spec):
        kind = spec[pos]
        pos += 1
        if kind % 4 == 0:
            out += PING
        elif kind % 4 == 1:
            (millis,) = struct.unpack("!H", spec[pos : pos + 2].ljust(2, b"\0"))
            pos += 2
            out += format_retry(millis / 1000)
        else:
            data = take()
            event = re.sub(r"[\r\n\0]", "", take()) if kind & 4 else None
            event_id = re.sub(r"[\r\n\0]", "", take()) if kind & 8 else None
            out += format_event(data, event=event, id=event_id)
            sent.append((data, event, event_id))
    return bytes(out), sent


def check_events(events: list[ServerSentEvent]) -> None:
    for event in events:
        assert event.type and event.origin == ORIGIN
        assert not any(c in event.id for c in "\0\r\n"), "a bad id"


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    config, step, stream = data[0], data[1] & 0x7F, data[2:]
    max_size = MAX_SIZES[config & 3]
    twice = bool(config & 4)
    last_event_id = "7" * (config >> 3)
    sent = None
    if data[1] & 0x80:
        stream, sent = build(stream)
        max_size = MAX_SIZES[0]

    parser = EventStreamParser(origin=ORIGIN, last_event_id=last_event_id, max_size=max_size)
    whole = EventStreamParser(origin=ORIGIN, last_event_id=last_event_id, max_size=max_size)
    retry = None
    for _ in range(2 if twice else 1):
        events, refused = feed(parser, stream, step, max_size)
        whole_events, whole_refused = feed(whole, stream, 0, max_size)
        assert (events, refused) == (whole_events, whole_refused), "split changed the events"
        check_events(events)
        expected, expected_id, expected_retry = reference(stream, last_event_id)
        retry = expected_retry if expected_retry is not None else retry
        limit = first_too_large(stream, max_size)
        assert refused == (limit is not None), f"refused {refused}, expected at {limit}"
        if refused:
            assert limit is not None
            assert events == expected[:limit], "events before the refusal"
            return  # the client closes: the parser is not used again
        assert events == expected, "events differ from the reference"
        assert parser.last_event_id == expected_id, "last event ID"
        assert parser.retry == retry, "retry"
        if sent is not None:
            assert [(e.data, e.type) for e in events] == [
                (re.sub(r"\r\n|\r|\n", "\n", d), t or "message") for d, t, _ in sent], \
                "round trip"
        parser.receive_eof()
        whole.receive_eof()
        last_event_id = parser.last_event_id


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
