"""Property-based tests of the sans-IO core (Hypothesis).

Three families, all synchronous (the core does no I/O):

* split invariance: a valid byte stream gives the same events and the same
  replies however the transport cuts it into reads;
* hostile input: random bytes and random frame sequences never make the core
  raise; it reports :class:`Failed` with 1002, 1007 or 1009, and whatever it
  writes back is well-formed;
* round trips: every message size class (7-bit, 16-bit and 64-bit length
  encodings), text and binary, with and without permessage-deflate, between
  our own client and server cores and against wsproto's independent codec;
  SSE events through ``format_event`` and :class:`EventStreamParser`.

Frames are built and parsed here by hand (``encode_frame``/``decode_frames``)
rather than with the code under test.
"""

from __future__ import annotations

import random
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate
from wsproto.frame_protocol import FrameProtocol

from faye_websocket import PerMessageDeflate
from faye_websocket._core.client_handshake import ClientHandshake, HandshakeFailure
from faye_websocket._core.deflate import (
    DeflateParams,
    DeflateSession,
    NegotiationError,
    format_params,
)
from faye_websocket._core.hixie import HixieProtocol
from faye_websocket._core.http import Request, parse_extension_header
from faye_websocket._core.server_handshake import Accepted, Rejected, accept_key, server_handshake
from faye_websocket._core.sse import (
    PING,
    EventStreamParser,
    EventTooLarge,
    ServerSentEvent,
    format_event,
    format_retry,
)
from faye_websocket._core.url import Target
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

from .wsclient import raw_frame, xor_mask

# deadline=None: timings on a shared machine are noise, not failures. The
# example counts keep the whole file to a few seconds.
QUICK = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
THOROUGH = settings(QUICK, max_examples=150)

CONT, TEXT, BINARY, CLOSE, PING_OP, PONG_OP = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: The codes a failure may carry: protocol error, invalid data, too big.
FAILURE_CODES = frozenset({1002, 1007, 1009})
#: Close codes a peer may send (RFC 6455 section 7.4 and the IANA registry).
VALID_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})
TAIL = b"\x00\x00\xff\xff"
DEFAULT_MAX = 2**26 - 1


# -- wire format, by hand ------------------------------------------------------


@dataclass(frozen=True)
class WireFrame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes


def decode_frames(data: bytes, *, masked: bool) -> list[WireFrame]:
    """Parse a whole byte string of frames, asserting it is well-formed:
    masked exactly when ``masked``, minimal length fields, no trailing bytes,
    control frames final and short."""
    frames = []
    pos, end = 0, len(data)
    while pos < end:
        assert end - pos >= 2, "truncated frame header"
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        assert bool(b1 & 0x80) == masked, "wrong masking"
        size = b1 & 0x7F
        if size == 126:
            assert end - pos >= 2, "truncated length"
            (size,) = struct.unpack_from("!H", data, pos)
            pos += 2
            assert size >= 126, "16-bit length for a short payload"
        elif size == 127:
            assert end - pos >= 8, "truncated length"
            (size,) = struct.unpack_from("!Q", data, pos)
            pos += 8
            assert 65536 <= size < 2**63, "bad 64-bit length"
        key = b""
        if masked:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + size]
        assert len(payload) == size, "truncated payload"
        pos += size
        opcode = b0 & 0x0F
        assert opcode in (CONT, TEXT, BINARY, CLOSE, PING_OP, PONG_OP), "reserved opcode"
        if opcode >= CLOSE:
            assert b0 & 0x80 and size <= 125, "bad control frame"
        frames.append(WireFrame(bool(b0 & 0x80), (b0 >> 4) & 7, opcode,
                                xor_mask(payload, key) if masked else payload))
    return frames


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason.encode()


def feed(core: WebSocketProtocol | HixieProtocol, data: bytes, cuts: Sequence[int]
         ) -> list[Event]:
    """Feed ``data`` in pieces cut at ``cuts``; the events of every piece."""
    events: list[Event] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        core.receive_data(data[start:cut])
        events += core.events_received()
        start = max(start, cut)
    return events


def cut_points(size: int, max_cuts: int = 20) -> st.SearchStrategy[list[int]]:
    """Where to cut a byte string of ``size`` bytes into reads."""
    return st.lists(st.integers(0, size), max_size=max_cuts)


# -- (a) split invariance ----------------------------------------------------


@dataclass
class Stream:
    """A valid stream from one peer, and what the receiver should make of it."""

    client_sends: bool
    inbound_no_context_takeover: bool
    deflate: bool
    defer_close_reply: bool
    wire: bytes
    events: list[Event]
    #: (opcode, payload) of the frames the receiver should write back.
    replies: list[tuple[int, bytes]]
    #: The receiver's limit: the default, or exactly the largest message
    #: (its wire size or its inflated size), so that any miscount shows.
    max_length: int = DEFAULT_MAX
    #: Where each frame starts in :attr:`wire`.
    starts: tuple[int, ...] = ()


close_codes = st.one_of(st.sampled_from(sorted(VALID_CLOSE_CODES - set(range(3000, 5000)))),
                        st.integers(3000, 4999))
short_text = st.text(max_size=20).filter(lambda s: len(s.encode()) <= 123)


@st.composite
def valid_streams(draw: st.DrawFn) -> Stream:
    client_sends = draw(st.booleans())
    deflate = draw(st.booleans())
    sender_resets = draw(st.booleans())
    # A receiver may reset its inflater only if the sender resets its deflater.
    receiver_resets = sender_resets and draw(st.booleans())
    level = draw(st.integers(0, 9))
    wbits = draw(st.integers(9, 15))
    compressor: zlib._Compress | None = None

    wire = bytearray()
    events: list[Event] = []
    replies: list[tuple[int, bytes]] = []
    starts: list[int] = []

    def put(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> None:
        starts.append(len(wire))
        mask = draw(st.binary(min_size=4, max_size=4)) if client_sends else None
        wire.extend(raw_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))

    def controls() -> None:
        for opcode, payload in draw(st.lists(st.tuples(st.sampled_from([PING_OP, PONG_OP]),
                                                       st.binary(max_size=125)), max_size=2)):
            put(opcode, payload)
            if opcode == PING_OP:
                events.append(PingReceived(payload))
                replies.append((PONG_OP, payload))
            else:
                events.append(PongReceived(payload))

    messages = draw(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=1000)),
                             max_size=6))
    largest = 0
    for data in messages:
        raw = data.encode() if isinstance(data, str) else data
        largest = max(largest, len(raw))
        compressed = deflate and draw(st.booleans())
        if compressed:
            if compressor is None:
                compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits)
            raw = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
            assert raw.endswith(TAIL)
            raw = raw[:-4]
            if sender_resets:
                compressor = None
        largest = max(largest, len(raw))
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        for i, piece in enumerate(pieces):
            controls()  # pings and pongs may come between any two fragments
            opcode = CONT if i else (TEXT if isinstance(data, str) else BINARY)
            put(opcode, piece, fin=i == len(pieces) - 1, rsv=4 if compressed and not i else 0)
        events.append(MessageReceived(data))
    controls()

    defer = False
    if draw(st.booleans()):
        code = draw(st.none() | close_codes)
        reason = draw(short_text) if code is not None else ""
        put(CLOSE, close_payload(code, reason))
        events.append(CloseReceived(1000 if code is None else code, reason))
        replies.append((CLOSE, close_payload(code, reason)))
        defer = draw(st.booleans())
    tight = draw(st.booleans())
    return Stream(client_sends, receiver_resets, deflate, defer, bytes(wire), events, replies,
                  largest if tight else DEFAULT_MAX, tuple(starts))


def receiver(stream: Stream) -> WebSocketProtocol:
    sessions = []
    if stream.deflate:
        params = DeflateParams(inbound_no_context_takeover=stream.inbound_no_context_takeover)
        sessions.append(DeflateSession(PerMessageDeflate(), params,
                                       max_length=stream.max_length))
    core = WebSocketProtocol(client=not stream.client_sends, extensions=sessions,
                             max_length=stream.max_length)
    core.defer_close_reply = stream.defer_close_reply
    return core


def finish(core: WebSocketProtocol) -> bytes:
    if core.close_answer_pending:
        core.answer_close()
    return core.data_to_send()


@settings(THOROUGH, max_examples=100)
@given(stream=valid_streams(), data=st.data())
def test_any_split_of_a_valid_stream_gives_the_same_events(stream: Stream,
                                                          data: st.DataObject) -> None:
    whole, split = receiver(stream), receiver(stream)
    # Anywhere, and often inside a frame header (2 to 14 bytes from its start).
    near_headers = st.lists(st.tuples(st.sampled_from(stream.starts or (0,)), st.integers(0, 14))
                            .map(sum), max_size=10)
    cuts = data.draw(cut_points(len(stream.wire)), label="cuts") + [
        min(cut, len(stream.wire)) for cut in data.draw(near_headers, label="header cuts")]

    assert feed(whole, stream.wire, []) == stream.events
    assert feed(split, stream.wire, cuts) == stream.events

    out_whole, out_split = finish(whole), finish(split)
    masked = not stream.client_sends  # the receiver is a client: it masks
    for out in (out_whole, out_split):
        frames = decode_frames(out, masked=masked)
        assert [(f.opcode, f.payload) for f in frames] == stream.replies
        assert all(f.rsv == 0 and f.fin for f in frames)
    if not masked:
        assert out_whole == out_split
    if any(isinstance(e, CloseReceived) for e in stream.events):
        assert whole.state is split.state is ReadyState.CLOSED


def test_split_byte_by_byte_with_deflate_and_pings() -> None:
    # One fixed case of the property above, fed a byte at a time.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = compressor.compress(b"hello hello hello") + compressor.flush(zlib.Z_SYNC_FLUSH)
    body = body[:-4]
    key = b"\x01\x02\x03\x04"
    wire = (raw_frame(TEXT, body[:3], fin=False, rsv=4, mask=key)
            + raw_frame(PING_OP, b"p", mask=key)
            + raw_frame(CONT, body[3:], mask=key))
    stream = Stream(True, False, True, False, wire,
                    [PingReceived(b"p"), MessageReceived("hello hello hello")],
                    [(PONG_OP, b"p")])
    core = receiver(stream)
    assert feed(core, wire, range(len(wire))) == stream.events
    assert core.data_to_send() == b"\x8a\x01p"


# -- (b) hostile input ---------------------------------------------------------


@dataclass
class Config:
    client: bool
    deflate: DeflateParams | None
    max_length: int
    defer_close_reply: bool

    def core(self) -> WebSocketProtocol:
        sessions = []
        if self.deflate is not None:
            sessions.append(DeflateSession(PerMessageDeflate(), self.deflate,
                                           max_length=self.max_length))
        core = WebSocketProtocol(client=self.client, extensions=sessions,
                                 max_length=self.max_length)
        core.defer_close_reply = self.defer_close_reply
        return core


configs = st.builds(
    Config,
    client=st.booleans(),
    deflate=st.none() | st.builds(DeflateParams, outbound_bits=st.integers(8, 15),
                                  outbound_no_context_takeover=st.booleans(),
                                  inbound_no_context_takeover=st.booleans()),
    max_length=st.sampled_from([DEFAULT_MAX, 0, 1, 125, 126, 1000]) | st.integers(0, 300),
    defer_close_reply=st.booleans(),
)


def check_hostile(config: Config, data: bytes, cuts: Sequence[int]) -> None:
    """Feed ``data``; the core must not raise, and must end well-formed.

    Fed whole, the same bytes give the same events, except which code a
    failure reports when one frame breaks two rules at once (wsproto checks
    a frame's payload through the extensions before its message decoder
    sees it, so what it finds first can depend on how much has arrived).
    """
    core = config.core()
    events = feed(core, data, cuts)  # no exception, whatever the bytes
    whole = feed(config.core(), data, [])
    assert [e if not isinstance(e, Failed) else Failed for e in events] == \
        [e if not isinstance(e, Failed) else Failed for e in whole]

    for i, event in enumerate(events):
        assert isinstance(event, (MessageReceived, PingReceived, PongReceived,
                                  CloseReceived, Failed))
        if isinstance(event, (CloseReceived, Failed)):
            assert i == len(events) - 1, "events after the end of input"
        if isinstance(event, MessageReceived):
            raw = event.data.encode() if isinstance(event.data, str) else event.data
            assert len(raw) <= config.max_length
        if isinstance(event, (PingReceived, PongReceived)):
            assert len(event.payload) <= 125

    replies = [(PONG_OP, e.payload) for e in events if isinstance(e, PingReceived)]
    last = events[-1] if events else None
    if isinstance(last, Failed):
        assert last.code in FAILURE_CODES
        assert len(last.reason.encode()) <= 123
        core.fail(last.code, last.reason)  # as the runtime does
        replies.append((CLOSE, close_payload(last.code, last.reason)))
        assert core.close_expected() and core.close_code == last.code
    elif isinstance(last, CloseReceived):
        assert last.code in VALID_CLOSE_CODES
        if core.close_answer_pending:
            core.answer_close()
        assert core.state is ReadyState.CLOSED
    out = core.data_to_send()
    frames = decode_frames(out, masked=config.client)
    assert all(f.fin and f.rsv == 0 for f in frames)
    if isinstance(last, CloseReceived):
        # The echo carries the peer's code, or nothing for an empty Close.
        assert frames[-1].opcode == CLOSE
        echo = frames.pop().payload
        assert echo == b"" or struct.unpack("!H", echo[:2])[0] == last.code
    assert [(f.opcode, f.payload) for f in frames] == replies

    # Nothing after the end counts, and EOF is always accepted.
    if last is not None and isinstance(last, (CloseReceived, Failed)):
        core.receive_data(raw_frame(TEXT, b"late", mask=None if config.client else b"abcd"))
        assert core.events_received() == []
    core.receive_eof()
    assert core.state is ReadyState.CLOSED and core.close_code is not None


@THOROUGH
@given(config=configs, data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600),
                                                                     max_size=8))
def test_random_bytes_never_raise(config: Config, data: bytes, cuts: list[int]) -> None:
    check_hostile(config, data, cuts)


@st.composite
def random_frames(draw: st.DrawFn, client_sends: bool) -> bytes:
    """Frames that are each plausible and together often wrong: reserved
    opcodes and bits, wrong masking, bad UTF-8, bad close payloads, broken
    deflate data, lengths above the limit, fragments out of order."""
    wire = bytearray()
    for _ in range(draw(st.integers(0, 8))):
        opcode = draw(st.sampled_from([CONT, TEXT, BINARY, CLOSE, PING_OP, PONG_OP])
                      | st.integers(0, 15))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            payload = draw(st.binary(max_size=200))
        elif kind == 1:
            payload = draw(st.text(max_size=60)).encode()
        elif kind == 2:  # close-shaped: a code (any) and a reason (any bytes)
            payload = struct.pack("!H", draw(st.integers(0, 65535))) + draw(st.binary(
                max_size=130))
        elif kind == 3:  # deflate-shaped
            raw = zlib.compressobj(6, zlib.DEFLATED, -15)
            text = draw(st.binary(max_size=300))
            payload = (raw.compress(text) + raw.flush(zlib.Z_SYNC_FLUSH))[:-4]
            if draw(st.booleans()) and payload:
                flip = draw(st.integers(0, len(payload) - 1))
                payload = payload[:flip] + bytes([payload[flip] ^ 0xFF]) + payload[flip + 1:]
        else:  # a repeated byte, possibly a large, highly compressible run
            payload = bytes([draw(st.integers(0, 255))]) * draw(st.integers(0, 3000))
        masked = client_sends if draw(st.integers(0, 9)) else not client_sends
        mask = draw(st.binary(min_size=4, max_size=4)) if masked else None
        rsv = draw(st.sampled_from([0, 0, 0, 4]) | st.integers(0, 7))
        fin = draw(st.booleans())
        wire += raw_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask,
                             wide=draw(st.sampled_from([0, 0, 1, 2])))
    if draw(st.booleans()):
        wire = wire[: draw(st.integers(0, len(wire)))]  # cut short
    return bytes(wire)


@THOROUGH
@given(config=configs, data=st.data())
def test_random_frame_sequences_fail_only_with_protocol_codes(config: Config,
                                                               data: st.DataObject) -> None:
    wire = data.draw(random_frames(not config.client), label="wire")
    check_hostile(config, wire, data.draw(cut_points(len(wire)), label="cuts"))


def test_the_largest_64_bit_length_fails_1009_not_overflow() -> None:
    # 2**63 - 1 bytes declared: refused from the header alone.
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 2**63 - 1) + b"abcd"
    core = WebSocketProtocol(client=False)
    core.receive_data(head)
    [event] = core.events_received()
    assert isinstance(event, Failed) and event.code == 1009


# -- (c) round trips -----------------------------------------------------------

#: (lowest, highest) payload size of each length encoding of RFC 6455 5.2.
SIZE_CLASSES = [(0, 0), (1, 125), (126, 65535), (65536, 100_000)]
BOUNDARIES = [0, 1, 125, 126, 65535, 65536]
_ALPHABET = "abc xyz\n\té€😀ß\u0000"


def make_payload(size: int, text: bool, seed: int) -> str | bytes:
    """``size`` bytes of random binary, or text whose UTF-8 is ``size`` bytes."""
    rng = random.Random(seed)
    if not text:
        return rng.randbytes(size)
    raw = "".join(rng.choices(_ALPHABET, k=size)).encode()[:size]
    chars = raw.decode("utf-8", "ignore")
    return chars + "a" * (size - len(chars.encode()))


@st.composite
def payloads(draw: st.DrawFn) -> str | bytes:
    low, high = draw(st.sampled_from(SIZE_CLASSES))
    size = draw(st.sampled_from([b for b in BOUNDARIES if low <= b <= high])
                | st.integers(low, high))
    payload = make_payload(size, draw(st.booleans()), draw(st.integers(0, 2**32 - 1)))
    assert len(payload.encode() if isinstance(payload, str) else payload) == size
    return payload


deflate_configs = st.builds(
    PerMessageDeflate,
    level=st.integers(-1, 9),
    mem_level=st.integers(1, 9),
    max_window_bits=st.none() | st.integers(8, 15),
    request_max_window_bits=st.none() | st.integers(8, 15),
    no_context_takeover=st.booleans(),
    request_no_context_takeover=st.booleans(),
)


def negotiate(client_config: PerMessageDeflate | None, server_config: PerMessageDeflate | None,
              *, max_length: int = DEFAULT_MAX) -> tuple[WebSocketProtocol, WebSocketProtocol]:
    """A client core and a server core that went through the real opening
    handshake (request headers, server answer, response bytes parsed by h11,
    client check)."""
    target = Target(secure=False, host="example.com", port=80)
    handshake = ClientHandshake(target, protocols=["chat"], max_length=max_length,
                                extensions=[client_config] if client_config else [])
    request = Request.build("GET", "/", handshake.request_headers())
    result = server_handshake(request, protocols=["chat"], max_length=max_length,
                              extensions=[server_config] if server_config else [])
    assert isinstance(result, Accepted), result
    response = parse_response(result.response)
    assert isinstance(response, h11.InformationalResponse) and response.status_code == 101
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
    protocol, extensions, sessions = handshake.check_response(101, headers)
    assert protocol == "chat" and extensions == result.extensions
    assert bool(sessions) == bool(client_config and server_config)
    return (WebSocketProtocol(client=True, extensions=sessions, max_length=max_length),
            WebSocketProtocol(client=False, extensions=result.sessions, max_length=max_length))


def parse_response(raw: bytes) -> h11.Response | h11.InformationalResponse:
    """A response head read by h11, as the client runtime reads it."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[
        ("Host", "example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]))
    conn.receive_data(raw)
    response = conn.next_event()
    assert isinstance(response, (h11.Response, h11.InformationalResponse))
    return response


def length_class(frame_start: bytes) -> int:
    """0, 1 or 2: the length encoding used by the frame at the start of the bytes."""
    field = frame_start[1] & 0x7F
    return 2 if field == 127 else 1 if field == 126 else 0


def expected_class(size: int) -> int:
    return 0 if size < 126 else 1 if size < 65536 else 2


@QUICK
@given(payload=payloads(), client_config=st.none() | deflate_configs,
       server_config=st.none() | deflate_configs, compress=st.booleans())
def test_round_trip_between_our_cores(payload: str | bytes,
                                      client_config: PerMessageDeflate | None,
                                      server_config: PerMessageDeflate | None,
                                      compress: bool) -> None:
    client, server = negotiate(client_config, server_config)
    size = len(payload.encode() if isinstance(payload, str) else payload)
    for sender, peer in ((client, server), (server, client)):
        # Three messages: the second reuses the compression context (or not,
        # as negotiated); the third may skip compression.
        sender.send_message(payload)
        first = sender.data_to_send()
        if not (client_config and server_config):  # wire size == payload size
            assert length_class(first) == expected_class(size)
        sender.send_message(payload)
        sender.send_message(payload, compress=compress)
        peer.receive_data(first + sender.data_to_send())
        assert peer.events_received() == [MessageReceived(payload)] * 3
        assert peer.data_to_send() == b""


@settings(QUICK, max_examples=40)
@given(max_length=st.integers(0, 300), size=st.integers(0, 600), config=deflate_configs,
       text=st.booleans(), compressible=st.booleans())
def test_max_length_bounds_wire_and_inflated_size(max_length: int, size: int,
                                                  config: PerMessageDeflate, text: bool,
                                                  compressible: bool) -> None:
    # Accepted exactly when both the wire size and the inflated size fit.
    payload = ("x" * size if text else b"x" * size) if compressible \
        else make_payload(size, text, size)
    for deflate in (None, config):
        client, server = negotiate(deflate, deflate, max_length=max_length)
        client.send_message(payload)
        out = client.data_to_send()
        [frame] = decode_frames(out, masked=True)
        server.receive_data(out)
        [event] = server.events_received()
        if max(size, len(frame.payload)) <= max_length:
            assert event == MessageReceived(payload)
        else:
            assert event == Failed(1009, f"message larger than {max_length} bytes")


def wsproto_pair(ours: PerMessageDeflate, theirs: WsprotoDeflate, *, our_side_client: bool
                 ) -> DeflateSession:
    """Negotiate permessage-deflate between our config and wsproto's
    extension (which ends up enabled); our session."""
    if our_side_client:
        offer = format_params(ours.name, ours.offer())
        answer = theirs.accept(offer)
        assert isinstance(answer, str), f"wsproto refused {offer!r}"
        [(_, params)] = parse_extension_header(
            "; ".join(filter(None, [ours.name, answer])))
        assert params is not None
        agreed = ours.activate(params)
    else:
        [(_, params)] = parse_extension_header(f"{theirs.name}; {theirs.offer()}")
        assert params is not None
        response, agreed = ours.accept(params)
        theirs.finalize(format_params(ours.name, response))
    assert theirs.enabled()
    return ours.session(agreed, max_length=DEFAULT_MAX)


# wsproto builds no window below 9 bits, so the cross-check stays in 9-15.
wsproto_configs = st.builds(
    PerMessageDeflate,
    level=st.integers(-1, 9),
    max_window_bits=st.none() | st.integers(9, 15),
    request_max_window_bits=st.none() | st.integers(9, 15),
    no_context_takeover=st.booleans(),
    request_no_context_takeover=st.booleans(),
)
wsproto_extensions = st.builds(
    WsprotoDeflate,
    client_no_context_takeover=st.booleans(),
    client_max_window_bits=st.none() | st.integers(9, 15),
    server_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(9, 15),
)


@QUICK
@given(payload=payloads(), our_side_client=st.booleans(), deflate=st.booleans(),
       ours=wsproto_configs, theirs=wsproto_extensions,
       pieces=st.lists(st.integers(0, 100_000), max_size=3))
def test_wsproto_agrees_with_our_codec(payload: str | bytes, our_side_client: bool,
                                       deflate: bool, ours: PerMessageDeflate,
                                       theirs: WsprotoDeflate, pieces: list[int]) -> None:
    sessions = [wsproto_pair(ours, theirs, our_side_client=our_side_client)] if deflate else []
    core = WebSocketProtocol(client=our_side_client, extensions=sessions)
    peer = FrameProtocol(client=not our_side_client, extensions=[theirs] if deflate else [])

    # Ours -> wsproto: two messages (the second reuses any context).
    core.send_message(payload)
    core.send_message(payload)
    peer.receive_bytes(core.data_to_send())
    received: list[str | bytes] = []
    parts: list[str | bytes] = []
    for frame in peer.received_frames():
        assert isinstance(frame.payload, (str, bytes, bytearray))
        parts.append(bytes(frame.payload) if isinstance(frame.payload, bytearray)
                     else frame.payload)
        if frame.message_finished:
            received.append("".join(parts) if isinstance(parts[0], str)  # type: ignore[arg-type]
                            else b"".join(parts))  # type: ignore[arg-type]
            parts = []
    assert received == [payload, payload]

    # wsproto -> ours: the same message fragmented where ``pieces`` say
    # (for text, at character offsets: wsproto sends str pieces).
    cuts = sorted({min(p, len(payload)) for p in pieces})
    chunks = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    wire = bytearray()
    for _ in range(2):
        for i, chunk in enumerate(chunks):
            wire += peer.send_data(chunk, fin=i == len(chunks) - 1)
    core.receive_data(bytes(wire))
    assert core.events_received() == [MessageReceived(payload)] * 2


# -- the opening handshake -----------------------------------------------------


@QUICK
@given(client_config=deflate_configs, server_config=deflate_configs, payload=payloads())
def test_any_pair_of_deflate_configs_negotiates_and_interoperates(
        client_config: PerMessageDeflate, server_config: PerMessageDeflate,
        payload: str | bytes) -> None:
    client, server = negotiate(client_config, server_config)
    for sender, peer in ((client, server), (server, client)):
        for _ in range(3):
            sender.send_message(payload)
        peer.receive_data(sender.data_to_send())
        assert peer.events_received() == [MessageReceived(payload)] * 3


_LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
_PIECES = ["permessage-deflate", "x-webkit-deflate-frame", "server_no_context_takeover",
           "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits",
           ";", ",", "=", '"', "\\", " ", "\t", "8", "9", "10", "15", "16", "08", "\u00b2",
           "\u00b9", "\u00bd", "foo"]
#: Header values built from the grammar's pieces and random Latin-1 (all
#: that an HTTP parser lets through as a field value).
header_values = st.lists(st.sampled_from(_PIECES) | st.text(_LATIN1, max_size=3),
                         max_size=12).map("".join)


@THOROUGH
@given(value=header_values)
def test_extension_header_parser_raises_only_value_error(value: str) -> None:
    try:
        offers = parse_extension_header(value)
    except ValueError:
        return
    for name, params in offers:
        assert name and name == name.lower()
        assert params is None or all(k == k.lower() for k in params)


@THOROUGH
@given(extensions=header_values, protocol=st.text(_LATIN1, max_size=10),
       accept_matches=st.booleans(), status=st.sampled_from([101, 200, 400]))
def test_client_response_check_raises_only_handshake_failure(
        extensions: str, protocol: str, accept_matches: bool, status: int) -> None:
    handshake = ClientHandshake(Target(secure=False, host="example.com", port=80),
                                protocols=["chat"],
                                extensions=[PerMessageDeflate(request_max_window_bits=12)])
    accept = accept_key(handshake.key)
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", accept if accept_matches else "x"),
               ("Sec-WebSocket-Protocol", protocol), ("Sec-WebSocket-Extensions", extensions)]
    try:
        handshake.check_response(status, headers)
    except HandshakeFailure:
        pass


_REQUEST_HEADERS = ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
                    "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                    "Sec-WebSocket-Extensions", "Sec-WebSocket-Key1", "Sec-WebSocket-Key2",
                    "Origin"]
_GOOD = {"Host": "example.com", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": "MDEyMzQ1Njc4OWFiY2RlZg==", "Sec-WebSocket-Version": "13"}


@THOROUGH
@given(headers=st.lists(st.tuples(st.sampled_from(_REQUEST_HEADERS),
                                  header_values | st.sampled_from(list(_GOOD.values()))
                                  | st.text(_LATIN1, max_size=20)), max_size=10),
       base=st.booleans(), deflate=st.none() | deflate_configs,
       origins=st.none() | st.just(["http://a.example"]), drafts=st.booleans())
def test_server_handshake_always_answers(headers: list[tuple[str, str]], base: bool,
                                         deflate: PerMessageDeflate | None,
                                         origins: list[str] | None, drafts: bool) -> None:
    # Any header values (as an HTTP parser decodes them) get an answer,
    # never an exception, and the answer is a response h11 can read.
    items = [*(_GOOD.items() if base else []), *headers]
    result = server_handshake(Request.build("GET", "/", items), protocols=["chat"],
                              extensions=[deflate] if deflate else [],
                              allowed_origins=origins, drafts=drafts)
    assert isinstance(result, (Accepted, Rejected))
    response = parse_response(result.response)
    assert isinstance(response, (h11.Response, h11.InformationalResponse))
    if isinstance(result, Accepted):
        assert response.status_code == 101
    else:
        assert response.status_code == result.status in (400, 403, 426)


# -- hixie-75 / hixie-76 -------------------------------------------------------


@st.composite
def hixie_streams(draw: st.DrawFn) -> tuple[str, bytes, list[Event], bool]:
    version = draw(st.sampled_from(["hixie-75", "hixie-76"]))
    wire = bytearray(draw(st.binary(min_size=8, max_size=8)) if version == "hixie-76" else b"")
    events: list[Event] = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            text = draw(st.text(max_size=50))
            wire += bytes([draw(st.integers(0, 0x7F))]) + text.encode() + b"\xff"
            events.append(MessageReceived(text))
        else:  # a length-prefixed frame, skipped
            skipped = draw(st.binary(max_size=300))
            size, digits = len(skipped), [len(skipped) & 0x7F]
            while size > 0x7F:
                size >>= 7
                digits.append(0x80 | (size & 0x7F))
            wire += bytes([draw(st.integers(0x80, 0xFE))]) + bytes(reversed(digits)) + skipped
    closes = version == "hixie-76" and draw(st.booleans())
    if closes:
        wire += b"\xff\x00"
        events.append(CloseReceived(1000, ""))
    return version, bytes(wire), events, closes


@THOROUGH
@given(stream=hixie_streams(), data=st.data())
def test_hixie_any_split_gives_the_same_events(stream: tuple[str, bytes, list[Event], bool],
                                               data: st.DataObject) -> None:
    version, wire, events, closes = stream
    keys = (1, 2) if version == "hixie-76" else None
    whole = HixieProtocol(version, keys=keys)
    split = HixieProtocol(version, keys=keys)
    cuts = data.draw(cut_points(len(wire)), label="cuts")
    assert feed(whole, wire, []) == events
    assert feed(split, wire, cuts) == events
    out = whole.data_to_send()
    assert out == split.data_to_send()
    assert len(out) == (16 if keys else 0) + (2 if closes else 0)


@THOROUGH
@given(version=st.sampled_from(["hixie-75", "hixie-76"]), data=st.binary(max_size=400),
       cuts=st.lists(st.integers(0, 400), max_size=8), max_length=st.integers(0, 100))
def test_hixie_random_bytes_never_raise(version: str, data: bytes, cuts: list[int],
                                        max_length: int) -> None:
    core = HixieProtocol(version, keys=(7, 9) if version == "hixie-76" else None,
                         max_length=max_length)
    for event in feed(core, data, cuts):
        assert isinstance(event, (MessageReceived, CloseReceived))
        if isinstance(event, MessageReceived):
            assert isinstance(event.data, str)
    core.receive_eof()
    assert core.state is ReadyState.CLOSED


# -- server-sent events ----------------------------------------------------------

_FIELD = st.text(max_size=20).filter(lambda s: "\r" not in s and "\n" not in s)


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent], int | None]:
    wire = bytearray()
    events = []
    last_id = ""
    retry = None
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            wire += PING
        elif kind == 1:
            seconds = draw(st.floats(0, 10**6, allow_nan=False))
            wire += format_retry(seconds)
            retry = int(format_retry(seconds)[7:-4])
        else:
            data = draw(st.text(max_size=40))
            event = draw(st.none() | _FIELD)
            event_id = draw(st.none() | _FIELD.filter(lambda s: "\0" not in s))
            wire += format_event(data, event=event, id=event_id)
            if event_id is not None:
                last_id = event_id
            events.append(ServerSentEvent(event or "message",
                                          re.sub(r"\r\n|\r|\n", "\n", data), last_id,
                                          "https://example.com"))
    return bytes(wire), events, retry


@THOROUGH
@given(stream=event_streams(), data=st.data())
def test_sse_format_then_parse_round_trips_under_any_split(
        stream: tuple[bytes, list[ServerSentEvent], int | None], data: st.DataObject) -> None:
    wire, events, retry = stream
    cuts = sorted(data.draw(cut_points(len(wire)), label="cuts"))
    parser = EventStreamParser(origin="https://example.com")
    got: list[ServerSentEvent] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got += parser.receive_data(wire[start:cut])
        start = cut
    assert got == events
    assert parser.retry == retry


@THOROUGH
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8),
       max_size=st.integers(1, 100))
def test_sse_parser_on_random_bytes_raises_only_event_too_large(
        data: bytes, cuts: list[int], max_size: int) -> None:
    parser = EventStreamParser(max_size=max_size)
    start = 0
    try:
        for cut in [*sorted(cuts), len(data)]:
            for event in parser.receive_data(data[start:cut]):
                assert "\r" not in event.id and "\n" not in event.id and "\0" not in event.id
                assert len(event.data) <= max_size
            start = max(start, cut)
    except EventTooLarge:  # the one error the parser raises
        pass
    parser.receive_eof()


@pytest.mark.parametrize("data", ["", "\r", "\n", "\r\n", "a\r\rb", "\ufeffx"])
def test_sse_edge_cases_round_trip(data: str) -> None:
    parser = EventStreamParser()
    wire = format_event(data, event="e", id="1")
    events = [e for i in range(len(wire)) for e in parser.receive_data(wire[i : i + 1])]
    assert events == [ServerSentEvent("e", re.sub(r"\r\n|\r|\n", "\n", data), "1")]


# -- regressions found by the fuzz targets (fuzz/) --------------------------------


def test_fuzz_sse_the_start_of_a_byte_order_mark_is_not_yet_a_line() -> None:
    # fuzz_sse_client: with max_size 1, a stream of "\xef\xbb" holds two bytes
    # that may still be a byte order mark; it is not a line to judge yet.
    parser = EventStreamParser(max_size=1)
    assert parser.receive_data(b"\xef\xbb") == []
    with pytest.raises(EventTooLarge):
        parser.receive_data(b"x")  # not a mark: a line of 3 bytes
    parser = EventStreamParser(max_size=1)
    assert parser.receive_data(b"\xef\xbb") == []
    assert parser.receive_data(b"\xbf\n") == []  # a mark, then a blank line


def test_fuzz_superscript_digit_in_window_bits_is_an_invalid_offer() -> None:
    # fuzz_handshake, mode 2: 'client_max_window_bits="1\xb2"' (Latin-1, as h11
    # decodes it). str.isdigit() accepted "²" and int() then raised a plain
    # ValueError: the server answered 400 instead of skipping the offer, and
    # the client's check_response raised ValueError, not HandshakeFailure.
    value = 'permessage-deflate; client_max_window_bits="1\u00b2"; server_max_window_bits=9'
    [(_, params)] = parse_extension_header(value)
    assert params is not None
    with pytest.raises(NegotiationError):
        PerMessageDeflate().accept(params)
    with pytest.raises(NegotiationError):
        PerMessageDeflate().activate(params)

    result = server_handshake(Request.build("GET", "/", [
        *_GOOD.items(), ("Sec-WebSocket-Extensions", value + ", permessage-deflate")]),
        extensions=[PerMessageDeflate()])
    assert isinstance(result, Accepted) and result.extensions == "permessage-deflate"

    handshake = ClientHandshake(Target(secure=False, host="example.com", port=80),
                                extensions=[PerMessageDeflate()])
    with pytest.raises(HandshakeFailure, match="invalid client_max_window_bits"):
        handshake.check_response(101, [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(handshake.key)),
            ("Sec-WebSocket-Extensions", value)])


def test_fuzz_a_frame_header_read_twice_is_counted_once() -> None:
    # fuzz_frames (a built input): wsproto shows a frame header to the
    # extensions before the masking key has arrived and again once it has;
    # the max_length guard added a continuation frame's length each time,
    # so a fragmented message within the limit failed with 1009 when a read
    # ended inside a masking key.
    key = b"\x9c\x01\x5a\xe3"
    wire = (raw_frame(TEXT, b"ab", fin=False, mask=key) + raw_frame(PING_OP, b"", mask=key)
            + raw_frame(CONT, b"x" * 600, fin=False, mask=key)
            + raw_frame(CONT, b"y" * 398, mask=key))
    core = WebSocketProtocol(client=False, max_length=1000)  # exactly the message's size
    assert feed(core, wire, range(len(wire))) == [
        PingReceived(b""), MessageReceived("ab" + "x" * 600 + "y" * 398)]
    # One byte more is still refused, however the bytes arrive.
    every_byte: Sequence[int] = range(len(wire))
    for cuts in ([], every_byte):
        core = WebSocketProtocol(client=False, max_length=999)
        assert feed(core, wire, cuts) == [
            PingReceived(b""), Failed(1009, "message larger than 999 bytes")]


@pytest.mark.parametrize("client", [False, True])
def test_fuzz_a_long_control_frame_fails_before_its_length_arrives(client: bool) -> None:
    # fuzz_frames: a Ping whose length field says 126 or 127 is invalid from
    # its second byte on, and wsproto fails it at once; the fast path waited
    # for the rest of the header, so the same bytes failed or not depending
    # on which path held them (whole: wsproto after a fragmented message;
    # in reads: the fast path).
    key = None if client else b"\x37\xfa\x21\x3d"
    fragmented = raw_frame(TEXT, b"ab", fin=False, mask=key) + \
        raw_frame(CONT, b"c", mask=key)
    for field in (126, 127):
        head = bytes([0x89, field | (0 if client else 0x80)])
        wire = fragmented + raw_frame(BINARY, b"raw", mask=key) + head
        for cuts in ([], [len(wire) - 2], list(range(len(wire)))):
            core = WebSocketProtocol(client=client)
            assert feed(core, wire, cuts) == [
                MessageReceived("abc"), MessageReceived(b"raw"),
                Failed(1002, "Control frame with payload len > 125")]
