"""permessage-deflate memory follows use, and the caps hold with the defaults.

Memory is measured with ``tracemalloc``, which sees zlib's allocations
(CPython gives zlib its raw allocator). The bounds are allocation sizes per
connection, with room for Python's own objects; nothing here is timed.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from faye_websocket import PerMessageDeflate
from faye_websocket._core.client_handshake import ClientHandshake
from faye_websocket._core.http import Request
from faye_websocket._core.server_handshake import Accepted, server_handshake
from faye_websocket._core.url import Target
from faye_websocket._core.websocket import Failed, MessageReceived, WebSocketProtocol

from .wsclient import raw_frame

KIB = 1024
N = 40  # connections per measurement
SMALL = '{"type":"message","room":"general","user":"alice","text":"hi"}'  # 62 B
LARGE = ('{"type":"history","messages":[' + ",".join(
    f'{{"id":{i},"user":"u{i % 7}","text":"message number {i} of the backlog"}}'
    for i in range(200)) + "]}")


def pair(client: PerMessageDeflate | None = None, server: PerMessageDeflate | None = None,
         *, max_length: int = 2**20) -> tuple[WebSocketProtocol, WebSocketProtocol]:
    """A client core and a server core after the real handshake."""
    handshake = ClientHandshake(Target(secure=False, host="example.com", port=80),
                                extensions=[client or PerMessageDeflate()],
                                max_length=max_length)
    request = Request.build("GET", "/", handshake.request_headers())
    result = server_handshake(request, extensions=[server or PerMessageDeflate()],
                              max_length=max_length)
    assert isinstance(result, Accepted)
    lines = result.response.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines)]
    _protocol, _extensions, sessions = handshake.check_response(101, headers)
    return (WebSocketProtocol(client=True, extensions=sessions, max_length=max_length),
            WebSocketProtocol(client=False, extensions=result.sessions, max_length=max_length))


def exchange(client: WebSocketProtocol, server: WebSocketProtocol, message: str) -> None:
    """``message`` from the client to the server, and echoed back."""
    client.send_message(message)
    server.receive_data(client.data_to_send())
    assert server.events_received() == [MessageReceived(message)]
    server.send_message(message)
    client.receive_data(server.data_to_send())
    assert client.events_received() == [MessageReceived(message)]


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """Bytes allocated since the block began (live ones only)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield lambda: (gc.collect(), tracemalloc.get_traced_memory()[0] - base)[1]
    finally:
        tracemalloc.stop()


def server_growth(step: Callable[[WebSocketProtocol, WebSocketProtocol], None],
                  client: PerMessageDeflate | None = None,
                  server: PerMessageDeflate | None = None) -> float:
    """Memory the servers' sessions hold after ``step``, per connection.

    The clients' sessions are released before the count, so only the server
    side is measured (as a server operator would).
    """
    pairs = [pair(client, server) for _ in range(N)]
    with traced() as grown:
        for c, s in pairs:
            step(c, s)
        for c, _s in pairs:
            c.receive_eof()  # drops the client's zlib state
        per_connection = grown() / N
    return per_connection


def test_a_connection_holds_no_zlib_state_until_a_message_needs_it() -> None:
    assert server_growth(lambda c, s: None) < 1 * KIB


def test_a_small_message_does_not_create_a_compressor() -> None:
    # The client compressed (it is ours: its own threshold is 64 B too, so
    # it sends SMALL raw); the server only answers: a 62-byte echo stays
    # uncompressed and no compressor is built on either side.
    grown = server_growth(lambda c, s: exchange(c, s, SMALL))
    assert grown < 2 * KIB, grown


def test_threshold_zero_compresses_small_messages() -> None:
    config = PerMessageDeflate(threshold=0)
    c, s = pair(config, config)
    c.send_message(SMALL)
    assert c.data_to_send()[0] & 0x40  # RSV1: compressed


def test_after_a_large_message_zlib_state_is_bounded_by_the_defaults() -> None:
    # 12-bit windows, memory level 5: the compressor allocates
    # 2**14 + 2**14 bytes plus ~6 KiB of state, and the inflater 2**12
    # plus ~7 KiB.
    grown = server_growth(lambda c, s: exchange(c, s, LARGE))
    assert 40 * KIB < grown < 60 * KIB, grown
    # zlib's defaults (15 bits, memory level 8) would hold four times that.
    old = PerMessageDeflate(max_window_bits=15, request_max_window_bits=15, mem_level=8)
    grown_old = server_growth(lambda c, s: exchange(c, s, LARGE), old, old)
    assert grown_old > 250 * KIB, grown_old


def test_small_messages_reuse_an_existing_compressor() -> None:
    c, s = pair()
    exchange(c, s, LARGE)
    s.send_message(SMALL)
    assert s.data_to_send()[0] & 0x40  # compressed against the context


def test_no_context_takeover_releases_zlib_state_after_each_message() -> None:
    config = PerMessageDeflate(no_context_takeover=True, request_no_context_takeover=True)
    grown = server_growth(lambda c, s: exchange(c, s, LARGE), config, config)
    assert grown < 2 * KIB, grown


def test_the_end_of_the_connection_releases_zlib_state() -> None:
    def step(c: WebSocketProtocol, s: WebSocketProtocol) -> None:
        exchange(c, s, LARGE)
        s.receive_eof()  # the runtime always calls it as the connection ends

    assert server_growth(step) < 2 * KIB


def test_a_peer_bounded_to_12_bits_gets_a_12_bit_inflater() -> None:
    _c, s = pair()
    session = s._deflate
    assert session is not None and session.params.inbound_bits == 12


# -- the caps still hold -----------------------------------------------------


def _compressed_frame(data: bytes, wbits: int = 12) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -wbits, 9)
    payload = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    return raw_frame(0x2, payload[:-4], rsv=4)


@pytest.mark.parametrize("fragmented", [False, True])
def test_a_decompression_bomb_is_refused_with_1009(fragmented: bool) -> None:
    _c, s = pair(max_length=2**20)
    bomb = zlib.compressobj(9, zlib.DEFLATED, -12, 9)
    payload = bomb.compress(bytes(64 * 2**20)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]
    assert len(payload) < 2**17  # 64 MiB of zeros in ~64 KiB
    with traced() as grown:
        if fragmented:
            half = len(payload) // 2
            s.receive_data(raw_frame(0x2, payload[:half], rsv=4, fin=False)
                           + raw_frame(0x0, payload[half:]))
        else:
            s.receive_data(raw_frame(0x2, payload, rsv=4))
        peak = tracemalloc.get_traced_memory()[1]
    [event] = s.events_received()
    assert isinstance(event, Failed) and event.code == 1009
    # Never more than the cap (and its one extra byte) was inflated: CPython's
    # zlib gathers the output in blocks and joins them, so the peak is about
    # twice the cap, not the 64 MiB the bomb holds.
    assert peak < 2.5 * 2**20, peak
    del grown


@pytest.mark.parametrize("fragmented", [False, True])
def test_max_length_is_exact_after_inflating(fragmented: bool) -> None:
    limit = 100_000
    for size, ok in ((limit, True), (limit + 1, False)):
        _c, s = pair(max_length=limit)
        frame = _compressed_frame(bytes(size))
        if fragmented:
            comp = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
            payload = (comp.compress(bytes(size)) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
            frame = raw_frame(0x2, payload[:5], rsv=4, fin=False) + raw_frame(0x0, payload[5:])
        s.receive_data(frame)
        [event] = s.events_received()
        if ok:
            assert event == MessageReceived(bytes(size))
        else:
            assert isinstance(event, Failed) and event.code == 1009


def test_a_peer_compressing_past_the_granted_window_fails_with_1007() -> None:
    _c, s = pair()  # the client was granted 12 bits
    block = random.Random(7).randbytes(12_000)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    # The second message refers 12,000 bytes back, into the first: past the
    # 4 KiB the server's inflater keeps between messages.
    for _ in range(2):
        payload = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
        s.receive_data(raw_frame(0x2, payload[:-4], rsv=4))
    first, second = s.events_received()
    assert first == MessageReceived(block)
    assert isinstance(second, Failed) and second.code == 1007
