"""atheris target: the hixie-75/76 draft parser (``HixieProtocol.receive_data``).

Input layout: byte 0 chooses the configuration, byte 1 how the rest is cut
into reads, the rest is what the client sent after its request head (for
hixie-76 the first 8 bytes are the challenge).

* byte 0, bit 0: hixie-76 (else hixie-75); bits 1-2: the ``max_length``
  (2**26 - 1, 0, 10 or 1000); bit 3: send a message before the input
  (held until hixie-76's challenge is answered).
* byte 1: 0 feeds the bytes whole, n in reads of n bytes.

Invariants checked on every input:

* ``receive_data`` raises nothing; events are text messages and, on
  hixie-76 only, one ``CloseReceived(1000)`` last; the connection's code is
  1000, 1006 (end of input) or 1009 (``max_length``).
* No message has more characters than ``max_length`` bytes allowed, and a
  length prefix never grows past ``max_length`` (the parse stays linear:
  an unbounded prefix once took quadratic time).
* Cutting the input into reads changes nothing: the same events, the same
  bytes written back and the same close code as the bytes fed whole.
* What the core writes is a draft stream: the 16-byte challenge answer
  first (hixie-76), then the held message as ``0x00 <UTF-8> 0xFF``, then
  at most the closing frame; a fresh core reads the message back.

Run: ``python fuzz/fuzz_hixie.py [libFuzzer options] CORPUS_DIR...`` or
``nox -s fuzz``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["faye_websocket"]):
    from faye_websocket._core.hixie import HixieProtocol
    from faye_websocket._core.websocket import CloseReceived, Event, MessageReceived, ReadyState

MAX_LENGTHS = (2**26 - 1, 0, 10, 1000)
KEYS = (155712099, 173347027)
HELD = "held é \U0001f600"


def make_core(version: str, max_length: int) -> HixieProtocol:
    return HixieProtocol(version, max_length=max_length,
                         keys=KEYS if version == "hixie-76" else None)


def run(version: str, max_length: int, send_first: bool, data: bytes,
        step: int) -> tuple[list[Event], bytes, int | None]:
    core = make_core(version, max_length)
    if send_first:
        core.send_message(HELD)
    events: list[Event] = []
    out = b""
    cuts = range(0, len(data), step) if step else [0]
    for start in cuts:
        core.receive_data(data[start : start + step] if step else data)
        # The length prefix is bounded while the parse goes on.
        assert core.state is ReadyState.CLOSED or core._length <= max_length, core._length
        events += core.events_received()
        out += core.data_to_send()
    core.receive_eof()
    events += core.events_received()
    out += core.data_to_send()
    assert core.state is ReadyState.CLOSED
    return events, out, core.close_code


def check_events(version: str, max_length: int, events: list[Event], code: int | None) -> None:
    assert code in (1000, 1006, 1009), code
    for index, event in enumerate(events):
        if isinstance(event, MessageReceived):
            assert isinstance(event.data, str)
            assert len(event.data) <= max_length, (len(event.data), max_length)
        else:
            assert event == CloseReceived(1000, ""), event
            assert version == "hixie-76" and index == len(events) - 1
            assert code == 1000


def check_output(version: str, send_first: bool, data: bytes, out: bytes,
                 events: list[Event]) -> None:
    opened = version == "hixie-75" or len(data) >= 8
    expected_head = b""
    if version == "hixie-76" and opened:
        assert len(out) >= 16
        expected_head, out = out[:16], out[16:]
    if send_first and opened:
        frame = b"\x00" + HELD.encode() + b"\xff"
        assert out.startswith(frame), out
        reader = make_core("hixie-75", 2**26 - 1)
        reader.receive_data(frame)
        assert reader.events_received() == [MessageReceived(HELD)]
        out = out[len(frame):]
    closed_cleanly = bool(events) and isinstance(events[-1], CloseReceived)
    assert out == (b"\xff\x00" if closed_cleanly else b""), out
    if version == "hixie-76" and not opened:
        assert expected_head == b"" and out == b""


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    config, step, rest = data[0], data[1], data[2:]
    version = "hixie-76" if config & 1 else "hixie-75"
    max_length = MAX_LENGTHS[(config >> 1) & 3]
    send_first = bool(config & 8)
    events, out, code = run(version, max_length, send_first, rest, 0)
    check_events(version, max_length, events, code)
    check_output(version, send_first, rest, out, events)
    if step:
        assert run(version, max_length, send_first, rest, step) == (events, out, code)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
