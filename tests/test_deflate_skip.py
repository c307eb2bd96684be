"""permessage-deflate leaves incompressible messages uncompressed.

``PerMessageDeflate(skip_incompressible=True)`` (the default) samples 256
bytes from the middle of every message of 1 KiB or more and sends it
uncompressed (RSV1 clear) when the sample looks random. These tests check
the wire bit, that text and JSON are never skipped, that the peer's
inflater stays in step when raw and compressed messages alternate under
context takeover, and the same through a real server and websockets'
client on both backends.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib

import anyio
import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from faye_websocket import PerMessageDeflate
from faye_websocket._core.deflate import SAMPLE_FROM, looks_incompressible
from faye_websocket._core.websocket import MessageReceived, WebSocketProtocol

from .helpers import SECOND
from .test_deflate_memory import pair
from .test_deflate_negotiation import our_echo_server, websockets_client_exchange

_rng = random.Random(1907)
RANDOM = _rng.randbytes(8_000)
GZIPPED = zlib.compress(json.dumps(
    [{"id": i, "value": _rng.random(), "tag": f"t{i % 13}"} for i in range(2_000)]).encode())
DASHBOARD = json.dumps({"series": [{"t": 1_700_000_000 + i, "cpu": round(_rng.random(), 3),
                                    "host": f"web-{i % 9}"} for i in range(300)]})
CHAT_CJK = json.dumps({"text": "".join(chr(_rng.randint(0x4E00, 0x9FFF)) for _ in range(900))},
                      ensure_ascii=False)
EMOJI = "🎉 shipped it " * 300
BASE64 = base64.b64encode(_rng.randbytes(1_500)).decode()  # 2,000 characters
COUNTERS = struct.pack("<2000i", *(i * 3 + _rng.randint(0, 100) for i in range(2000)))


def sent_compressed(core: WebSocketProtocol, message: str | bytes) -> bool:
    core.send_message(message)
    frame = core.data_to_send()
    return bool(frame[0] & 0x40)  # RSV1


@pytest.mark.parametrize("message", [RANDOM, GZIPPED], ids=["random", "gzipped"])
def test_random_looking_messages_are_sent_uncompressed(message: bytes) -> None:
    assert looks_incompressible(message)
    client, server = pair()
    assert not sent_compressed(server, message)
    assert not sent_compressed(client, message)
    # Nor did they build a compressor: a connection that only sends such
    # data holds no deflate state.
    for core in (client, server):
        assert core._deflate is not None and core._deflate._compressor is None


@pytest.mark.parametrize("message", [DASHBOARD, CHAT_CJK, EMOJI, BASE64, COUNTERS],
                         ids=["dashboard", "cjk", "emoji", "base64", "counters"])
def test_text_json_and_structured_binary_are_compressed(message: str | bytes) -> None:
    data = message.encode() if isinstance(message, str) else message
    assert len(data) >= SAMPLE_FROM and not looks_incompressible(data)
    _client, server = pair()
    assert sent_compressed(server, message)


def test_short_messages_are_not_sampled() -> None:
    _client, server = pair(server=PerMessageDeflate(threshold=0))
    assert sent_compressed(server, RANDOM[:SAMPLE_FROM - 1])


def test_skip_incompressible_false_compresses_everything() -> None:
    config = PerMessageDeflate(skip_incompressible=False)
    _client, server = pair(server=config)
    assert sent_compressed(server, RANDOM)


def test_raw_and_compressed_messages_alternate_under_context_takeover() -> None:
    client, server = pair()
    messages: list[str | bytes] = [DASHBOARD, RANDOM, DASHBOARD, GZIPPED, DASHBOARD[:500],
                                   BASE64, RANDOM, BASE64]
    compressed = []
    for message in messages:
        server.send_message(message)
        frame = server.data_to_send()
        compressed.append(bool(frame[0] & 0x40))
        client.receive_data(frame)
        assert client.events_received() == [MessageReceived(message)]
        if message is BASE64:
            size = len(frame)
    assert compressed == [True, False, True, False, True, True, False, True]
    # The second BASE64 referred back to the first across 8,000 raw bytes,
    # which a 4 KiB window could not span had they entered it.
    assert size < 100


def test_the_hub_s_shared_frames_follow_the_option() -> None:
    _c1, on = pair()
    _c2, off = pair(server=PerMessageDeflate(skip_incompressible=False))
    assert on._deflate is not None and off._deflate is not None
    # Without context takeover both would share frames, but not with each other.
    assert on._deflate.compress_shared(RANDOM) is None
    assert off._deflate.compress_shared(RANDOM) is not None


@pytest.mark.anyio
async def test_websockets_client_gets_random_and_json_echoes_intact() -> None:
    # websockets' Sans-I/O client over an anyio stream, so on trio too.
    messages: list[str | bytes] = [RANDOM, DASHBOARD, GZIPPED, CHAT_CJK, RANDOM, EMOJI]
    async with our_echo_server(PerMessageDeflate()) as port:
        with anyio.fail_after(20 * SECOND):
            header = await websockets_client_exchange(
                port, ClientPerMessageDeflateFactory(client_max_window_bits=True), messages)
    assert header == "permessage-deflate; client_max_window_bits=12"
