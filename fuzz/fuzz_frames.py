"""atheris target: the hybi-13 frame reader (``WebSocketProtocol.receive_data``).

Input layout: byte 0 chooses the configuration, byte 1 how the rest is cut
into reads and whether it is raw, the rest is what the peer sent.

* byte 0, bit 0: this side is the client (expects unmasked frames);
  bit 1: permessage-deflate negotiated; bit 2: the peer resets its
  compressor per message (our inflater does too); bit 3: we reset ours;
  bit 4: ``defer_close_reply`` (as the runtime sets it); bits 5-6: the
  ``max_length`` (2**26 - 1, 0, 125 or 1000); bit 7: echo messages back.
* byte 1, bits 0-6: 0 feeds the bytes whole, n in reads of n bytes; bit 7:
  the rest is not raw bytes but frame descriptions that :func:`build`
  turns into frames, deflating data frames with a real compressor (mutated
  raw bytes seldom hold valid deflate data).

Invariants checked on every input:

* ``receive_data`` raises nothing; events are the documented ones; a
  failure carries 1002, 1007 or 1009; nothing follows a Close or a failure;
  no message is larger than ``max_length``; ping and pong payloads fit a
  control frame.
* Cutting the input into reads changes nothing: the events equal those of
  the same bytes fed whole (except which code a failure reports when one
  frame breaks two rules at once, see ``same_events``).
* What the core writes back (pongs, echoes, the Close) is well-formed: masked
  exactly when we are the client, minimal length fields, control frames
  final and short, RSV1 only on compressed data; and a peer core reading it
  gets the pongs, the echoed messages and the Close we meant to send.

Run: ``python fuzz/fuzz_frames.py [libFuzzer options] CORPUS_DIR...`` or
``nox -s fuzz``.
"""

from __future__ import annotations

import struct
import sys
import zlib

import atheris

with atheris.instrument_imports(include=["faye_websocket", "wsproto"]):
    from faye_websocket._core.deflate import DeflateParams, DeflateSession, PerMessageDeflate
    from faye_websocket._core.websocket import (
        CloseReceived,
        Event,
        Failed,
        MessageReceived,
        PingReceived,
        PongReceived,
        ReadyState,
        WebSocketProtocol,
    )

FAILURE_CODES = frozenset({1002, 1007, 1009})
VALID_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})
MAX_LENGTHS = (2**26 - 1, 0, 125, 1000)


def make_core(*, client: bool, deflate: bool, inbound_reset: bool, outbound_reset: bool,
              max_length: int) -> WebSocketProtocol:
    sessions = []
    if deflate:
        params = DeflateParams(outbound_no_context_takeover=outbound_reset,
                               inbound_no_context_takeover=inbound_reset)
        sessions.append(DeflateSession(PerMessageDeflate(), params, max_length=max_length))
    return WebSocketProtocol(client=client, extensions=sessions, max_length=max_length)


def _xor(data: bytes, key: bytes) -> bytes:
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def build(spec: bytes, *, masked: bool, reset: bool) -> bytes:
    """Frames from descriptions: a flags byte, a length byte, that many
    payload bytes. Flags: bits 0-2 the opcode (continuation, text, binary,
    close, ping, pong, 3, 11); bit 3 not final; bit 4 deflate the payload
    (RSV1 on a message's first frame); bit 5 the payload 40 times over
    (a 16-bit length); bit 6 masked the wrong way; bit 7 RSV1 flipped."""
    out = bytearray()
    compressor = None
    pos = 0
    while pos + 2 <= len(spec):
        flags, size = spec[pos], spec[pos + 1]
        payload = spec[pos + 2 : pos + 2 + size]
        pos += 2 + size
        opcode = (0, 1, 2, 8, 9, 10, 3, 11)[flags & 7]
        fin = not flags & 8
        if flags & 32:
            payload *= 40
        rsv1 = False
        if flags & 16 and opcode < 3:
            if compressor is None:
                compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if fin:  # RFC 7692 section 7.2.1: the message drops its last empty block
                payload = payload[:-4]
                if reset:
                    compressor = None
            rsv1 = opcode != 0
        rsv1 ^= bool(flags & 128)
        out.append((0 if not fin else 0x80) | (0x40 if rsv1 else 0) | opcode)
        mask = masked != bool(flags & 64)
        bit = 0x80 if mask else 0
        if len(payload) < 126:
            out.append(bit | len(payload))
        elif len(payload) < 65536:
            out += bytes([bit | 126]) + struct.pack("!H", len(payload))
        else:
            out += bytes([bit | 127]) + struct.pack("!Q", len(payload))
        if mask:
            key = b"\x9c\x01\x5a\xe3"
            out += key + _xor(payload, key)
        else:
            out += payload
    return bytes(out)


def feed(core: WebSocketProtocol, data: bytes, step: int) -> list[Event]:
    events: list[Event] = []
    if step == 0:
        core.receive_data(data)
        return core.events_received()
    step = max(step, len(data) // 1024)  # at most about a thousand reads
    for i in range(0, len(data), step):
        core.receive_data(data[i : i + step])
        events += core.events_received()
    return events


def check_wire(data: bytes, *, masked: bool, deflate: bool) -> None:
    """Frames as RFC 6455 section 5.2 wants them, and no trailing bytes."""
    pos, end = 0, len(data)
    in_message = False
    while pos < end:
        assert end - pos >= 2, "truncated header"
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        assert bool(b1 & 0x80) == masked, "wrong masking"
        size = b1 & 0x7F
        if size == 126:
            (size,) = struct.unpack_from("!H", data, pos)
            pos += 2
            assert size >= 126, "non-minimal 16-bit length"
        elif size == 127:
            (size,) = struct.unpack_from("!Q", data, pos)
            pos += 8
            assert 65536 <= size < 2**63, "bad 64-bit length"
        pos += 4 if masked else 0
        assert end - pos >= size, "truncated payload"
        pos += size
        opcode, fin, rsv = b0 & 0x0F, bool(b0 & 0x80), (b0 >> 4) & 7
        assert rsv in ((0, 4) if deflate else (0,)), "reserved bits"
        if opcode >= 8:
            assert opcode in (8, 9, 10) and fin and size <= 125 and rsv == 0, "bad control"
        else:
            assert opcode in (0, 1, 2), "reserved opcode"
            assert (opcode == 0) == in_message, "bad fragmentation"
            assert not (opcode == 0 and rsv), "RSV1 on a continuation"
            in_message = not fin


def same_events(whole: list[Event], split: list[Event]) -> bool:
    """Equal, except for the code of a final failure: when one frame breaks
    two rules, which one is seen first can depend on how much of it has
    arrived (wsproto inflates a frame's payload before its message decoder
    checks the opcode sequence and UTF-8), and either code is right."""
    if len(whole) != len(split):
        return False
    for a, b in zip(whole, split, strict=True):
        if isinstance(a, Failed) and isinstance(b, Failed):
            if b.code not in FAILURE_CODES:
                return False
        elif a != b:
            return False
    return True


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    config, step, wire = data[0], data[1] & 0x7F, data[2:]
    client, deflate = bool(config & 1), bool(config & 2)
    inbound_reset, outbound_reset = bool(config & 4), bool(config & 8)
    if data[1] & 0x80:
        wire = build(wire, masked=not client, reset=inbound_reset)
    defer, echo = bool(config & 16), bool(config & 128)
    max_length = MAX_LENGTHS[(config >> 5) & 3]

    def new_core() -> WebSocketProtocol:
        core = make_core(client=client, deflate=deflate, inbound_reset=inbound_reset,
                         outbound_reset=outbound_reset, max_length=max_length)
        core.defer_close_reply = defer
        return core

    whole, split = new_core(), new_core()
    events = feed(whole, wire, 0)
    assert same_events(events, feed(split, wire, step)), "split changed the events"

    # React as the runtime does: answer messages, then the Close or failure.
    core = whole
    pongs: list[bytes] = []
    echoed: list[str | bytes] = []
    closing: CloseReceived | None = None
    for i, event in enumerate(events):
        if isinstance(event, (CloseReceived, Failed)):
            assert i == len(events) - 1, "events after the end"
        if isinstance(event, MessageReceived):
            assert isinstance(event.data, (str, bytes))
            size = len(event.data.encode() if isinstance(event.data, str) else event.data)
            assert size <= max_length, "message over max_length"
            if echo and core.can_send:
                core.send_message(event.data)
                echoed.append(event.data)
        elif isinstance(event, (PingReceived, PongReceived)):
            assert isinstance(event.payload, bytes) and len(event.payload) <= 125
            if isinstance(event, PingReceived):
                pongs.append(event.payload)
        elif isinstance(event, Failed):
            assert event.code in FAILURE_CODES, f"failure code {event.code}"
            assert len(event.reason.encode()) <= 123
            core.fail(event.code, event.reason)
            closing = CloseReceived(event.code, event.reason)
            assert core.close_expected() and core.state is ReadyState.CLOSING
        elif isinstance(event, CloseReceived):
            assert event.code in VALID_CLOSE_CODES, f"close code {event.code}"
            core.answer_close()
            closing = event
            assert core.state is ReadyState.CLOSED
        else:
            raise AssertionError(f"unexpected event {event!r}")

    out = core.data_to_send()
    check_wire(out, masked=client, deflate=deflate)

    # A peer with the matching configuration reads exactly what we meant.
    peer = make_core(client=not client, deflate=deflate, inbound_reset=outbound_reset,
                     outbound_reset=inbound_reset, max_length=2**26 - 1)
    peer.receive_data(out)
    got = peer.events_received()
    assert [e.payload for e in got if isinstance(e, PongReceived)] == pongs, "pongs"
    assert [e.data for e in got if isinstance(e, MessageReceived)] == echoed, "echoes"
    ends = [e for e in got if isinstance(e, (CloseReceived, Failed))]
    assert ends == ([closing] if closing else []), f"close: {ends} != {closing}"

    # Nothing counts after the end, and EOF is always accepted.
    if closing is not None:
        core.receive_data(b"\x81\x00" if client else b"\x81\x80abcd")
        assert core.events_received() == []
    core.receive_eof()
    assert core.state is ReadyState.CLOSED and core.close_code is not None


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
