"""The fast path of the hybi core against wsproto, on the same input.

:class:`WebSocketProtocol` parses whole, unfragmented frames itself and
hands everything else to wsproto. The reference here is the same core with
the fast path switched off, so every frame goes through wsproto: for any
byte stream, split anyhow, both must report the same events and write the
same bytes.
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faye_websocket._core.deflate import DeflateParams, DeflateSession, PerMessageDeflate
from faye_websocket._core.frames import (
    Masker,
    c_mask,
    mask,
    parse_header,
    python_mask,
    serialize,
)
from faye_websocket._core.websocket import (
    Event,
    Failed,
    MessageReceived,
    PingReceived,
    WebSocketProtocol,
)

from .wsclient import raw_frame

MAX_LENGTH = 4096


class _WsprotoOnly(WebSocketProtocol):
    """The core with every frame parsed by wsproto."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._fast = False

    def _take_back(self) -> bool:
        return False


def _deflate() -> DeflateSession:
    return DeflateSession(PerMessageDeflate(), DeflateParams(15, False, False),
                          max_length=MAX_LENGTH)


def _pair(client: bool, deflate: bool) -> tuple[WebSocketProtocol, WebSocketProtocol]:
    def make(cls: type[WebSocketProtocol]) -> WebSocketProtocol:
        return cls(client=client, extensions=[_deflate()] if deflate else [],
                   max_length=MAX_LENGTH)
    return make(WebSocketProtocol), make(_WsprotoOnly)


def _compress(data: bytes, compressor: zlib._Compress) -> bytes:
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def _summary(events: list[Event]) -> list[tuple[str, object]]:
    # A failure is compared by its code and the start of its reason: the
    # fast path must not invent reasons of its own, but wsproto's text for
    # bad UTF-8 gives a position within the chunk it was fed.
    def key(e: Event) -> object:
        if isinstance(e, Failed):
            return e.code, e.reason.split(" in position")[0]
        return getattr(e, "data", None) or getattr(e, "payload", None)
    return [(type(e).__name__, key(e)) for e in events]


def _feed(core: WebSocketProtocol, data: bytes, cuts: list[int]) -> tuple[list[Event], bytes]:
    events: list[Event] = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        core.receive_data(data[previous:cut])
        events += core.events_received()
        previous = cut
    return events, core.data_to_send()


texts = st.text(max_size=40).map(lambda t: t.encode("utf-8"))
payloads = st.one_of(texts, st.binary(max_size=40), st.binary(min_size=120, max_size=300),
                     st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"caf\xc3", b""]))


@st.composite
def frames(draw: st.DrawFn, client: bool, deflate: bool) -> bytes:
    """Mostly well-formed traffic, with the odd broken frame."""
    kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "fragmented",
                                 "compressed", "close", "broken", "broken"]))
    masked = not client
    if kind in ("text", "binary", "ping", "pong"):
        opcode = {"text": 1, "binary": 2, "ping": 9, "pong": 10}[kind]
        payload = draw(payloads)
        if opcode >= 8:
            payload = payload[:125]
        return raw_frame(opcode, payload, mask=masked)
    if kind == "fragmented":
        parts = draw(st.lists(texts, min_size=2, max_size=4))
        out = b""
        for i, part in enumerate(parts):
            out += raw_frame(1 if i == 0 else 0, part, fin=i == len(parts) - 1, mask=masked)
            if draw(st.booleans()):
                out += raw_frame(9, b"in between", mask=masked)
        return out
    if kind == "compressed":
        payload = draw(payloads)
        data = _compress(payload, zlib.compressobj(6, zlib.DEFLATED, -15))
        return raw_frame(draw(st.sampled_from([1, 2])), data, rsv=4, mask=masked)
    if kind == "close":
        return raw_frame(8, struct.pack("!H", 1000) + b"bye", mask=masked)
    return raw_frame(
        draw(st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11])),
        draw(st.one_of(payloads, st.binary(min_size=126, max_size=200))),
        fin=draw(st.booleans()), rsv=draw(st.sampled_from([0, 0, 1, 2, 4])),
        mask=draw(st.sampled_from([masked, masked, not masked])),
        wide=draw(st.sampled_from([0, 0, 1, 2])),
    )


@st.composite
def streams(draw: st.DrawFn) -> tuple[bool, bool, bytes, list[int]]:
    client = draw(st.booleans())
    deflate = draw(st.booleans())
    data = b"".join(draw(st.lists(frames(client, deflate), min_size=1, max_size=8)))
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=6))
    return client, deflate, data, cuts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_fast_path_agrees_with_wsproto(stream: tuple[bool, bool, bytes, list[int]]) -> None:
    client, deflate, data, cuts = stream
    fast, reference = _pair(client, deflate)
    fast_events, fast_out = _feed(fast, data, cuts)
    ref_events, ref_out = _feed(reference, data, [])
    assert _summary(fast_events) == _summary(ref_events)
    if not client:  # a client masks its pongs with random keys
        assert fast_out == ref_out
    assert (fast.state, fast.close_code, fast.close_reason) == \
        (reference.state, reference.close_code, reference.close_reason)


@given(st.binary(max_size=64), st.lists(st.integers(0, 64), max_size=4), st.booleans())
@settings(max_examples=300, deadline=None)
def test_garbage_gets_the_same_verdict(data: bytes, cuts: list[int], client: bool) -> None:
    fast, reference = _pair(client, False)
    cuts = [c for c in cuts if c <= len(data)]
    assert _summary(_feed(fast, data, cuts)[0]) == _summary(_feed(reference, data, [])[0])


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("client", [False, True])
def test_serialize_reads_back_through_wsproto(size: int, client: bool) -> None:
    payload = os.urandom(size)
    reader = _WsprotoOnly(client=not client, max_length=1 << 20)
    reader.receive_data(serialize(2, payload, client=client))
    assert reader.events_received() == [MessageReceived(payload)]


#: Both maskers when the C accelerator is built (it is optional).
MASKERS = [python_mask, *([c_mask] if c_mask is not None else [])]


@pytest.mark.parametrize("masker", MASKERS, ids=lambda m: m.__module__)
@pytest.mark.parametrize("size", [0, 3, 4, 5, 7, 8, 9, 2047, 2048, 2049, 65536, 100_003])
def test_mask_is_its_own_inverse(masker: Masker, size: int) -> None:
    payload, key = os.urandom(size), os.urandom(4)
    masked = masker(payload, key)
    assert type(masked) is bytes and len(masked) == size
    assert masker(masked, key) == payload
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4), st.integers(0, 8))
def test_maskers_agree(payload: bytes, key: bytes, offset: int) -> None:
    # From an offset into a bytearray, as the parser calls it on its buffer.
    data = bytearray(b"x" * offset + payload)[offset:]
    results = {masker(data, bytearray(key)) for masker in MASKERS}
    assert results == {bytes(b ^ key[i % 4] for i, b in enumerate(payload))}


def test_c_masker_is_built_and_checks_its_arguments() -> None:
    """The accelerator is optional for users, but this suite expects it
    (with a C compiler, ``pip install -e .`` builds it), except when run
    with FAYE_WEBSOCKET_NO_SPEEDUPS=1 to test the pure-Python path."""
    if os.environ.get("FAYE_WEBSOCKET_NO_SPEEDUPS"):
        assert c_mask is None and mask is python_mask
        return
    assert c_mask is not None and mask is c_mask
    with pytest.raises(ValueError, match="4 bytes"):
        c_mask(b"abc", b"12345")
    with pytest.raises(TypeError):
        c_mask("text", b"1234")  # type: ignore[arg-type]


def test_non_minimal_lengths_are_left_to_wsproto() -> None:
    assert parse_header(b"\x82\x7e\x00\x7d", 0) == (0, 0, 0)
    assert parse_header(b"\x82\x7f" + struct.pack("!Q", 0xFFFF), 0) == (0, 0, 0)
    assert parse_header(b"\x82\x7f" + struct.pack("!Q", 1 << 63), 0) == (0, 0, 0)
    assert parse_header(b"\x82\xfe\x01", 0) is None
    assert parse_header(b"\x82\xfe\x01\x00", 0) == (4, 256, 1)


def test_wsproto_hands_the_stream_back_after_an_unusual_frame() -> None:
    """After a fragmented message, parsing returns to the fast path (this
    reads wsproto internals, so a new wsproto that moves them shows here)."""
    core = WebSocketProtocol(client=False)
    core.receive_data(raw_frame(1, b"he", fin=False) + raw_frame(0, b"llo") +
                      raw_frame(1, b"next"))
    assert core.events_received() == [MessageReceived("hello"), MessageReceived("next")]
    assert core._fast
    core.receive_data(raw_frame(9, b"p")[:3])
    assert core._fast and core.events_received() == []


def test_compressed_message_too_large_after_inflating() -> None:
    fast, reference = _pair(False, True)
    bomb = raw_frame(2, _compress(b"\0" * (MAX_LENGTH + 1),
                                   zlib.compressobj(9, zlib.DEFLATED, -15)), rsv=4)
    results = [_feed(core, bomb, [])[0] for core in (fast, reference)]
    assert _summary(results[0]) == _summary(results[1])
    assert isinstance(results[0][0], Failed) and results[0][0].code == 1009


def test_ping_is_answered_by_the_fast_path() -> None:
    core = WebSocketProtocol(client=False)
    core.receive_data(raw_frame(9, b"hi"))
    assert core.events_received() == [PingReceived(b"hi")]
    assert core.data_to_send() == b"\x8a\x02hi"


@pytest.mark.parametrize("client", [False, True])
@pytest.mark.parametrize("wide", [1, 2])
@pytest.mark.parametrize("opcode", [1, 2, 9])
def test_non_minimal_length_fails_as_in_wsproto(client: bool, wide: int, opcode: int) -> None:
    data = raw_frame(opcode, b"hi", mask=not client, wide=wide) + raw_frame(
        1, b"after", mask=not client)
    fast, reference = _pair(client, False)
    events = _feed(fast, data, [])[0]
    assert _summary(events) == _summary(_feed(reference, data, [])[0])
    assert len(events) == 1 and isinstance(events[0], Failed) and events[0].code == 1002


@pytest.mark.parametrize("client", [False, True])
def test_bad_text_fails_before_the_rest_of_its_frame(client: bool) -> None:
    """Autobahn 6.4.3: invalid UTF-8 fails the connection at once, even
    when the frame it is in has not fully arrived."""
    frame = raw_frame(1, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"x" * 100,
                       mask=not client)
    core = WebSocketProtocol(client=client)
    core.receive_data(frame[:12])  # valid so far
    assert core.events_received() == []
    core.receive_data(frame[12:20])
    events = core.events_received()
    assert len(events) == 1 and isinstance(events[0], Failed) and events[0].code == 1007


@pytest.mark.parametrize(("code", "reason"), [
    (None, ""), (1000, ""), (1000, "bye"), (1001, "going away"), (4001, "é" * 100),
    (1005, ""), (1006, "x"), (1015, ""), (3000, "a" * 200),
])
def test_close_frames_match_wsproto(code: int | None, reason: str) -> None:
    from wsproto.frame_protocol import FrameProtocol

    ours = WebSocketProtocol(client=False)
    ours.send_close(code, reason)
    assert ours.data_to_send() == bytes(FrameProtocol(False, []).close(code, reason or None))


def test_large_payloads_are_written_as_chunks_of_their_own() -> None:
    def sends(core: WebSocketProtocol) -> None:
        core.send_message("a")
        core.send_message(b"b" * 70_000)
        core.send_message("c")
        core.send_message(b"d" * 65_536)

    chunked, joined = WebSocketProtocol(client=False), WebSocketProtocol(client=False)
    sends(chunked)
    sends(joined)
    assert chunked.pending == joined.pending
    chunks = chunked.chunks_to_send()
    assert b"".join(chunks) == joined.data_to_send()
    # a + the large frame's header, its payload, c + the header, the payload
    assert [len(c) for c in chunks] == [3 + 10, 70_000, 3 + 10, 65_536]
    assert chunked.pending == 0 and chunked.chunks_to_send() == []
    reader = WebSocketProtocol(client=True)
    for chunk in chunks:
        reader.receive_data(chunk)
    assert reader.events_received() == [MessageReceived("a"), MessageReceived(b"b" * 70_000),
                                        MessageReceived("c"), MessageReceived(b"d" * 65_536)]
