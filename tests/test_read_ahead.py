"""The reader's read-ahead is bounded (issue 19): a peer that sends faster
than the application receives costs a bounded amount of memory, however
much arrives in one read, compressed or not.

The core parses at most a batch of messages (``BATCH`` bytes, plus one
message) per call and leaves the rest as it came; the runtime parses the
next batch only while the queue (``max_queue`` messages, ``READ_LIMIT``
bytes) has room. Memory is measured with ``tracemalloc`` and the queue's
own count of bytes; nothing here is timed.
"""

from __future__ import annotations

import sys
import tracemalloc
import zlib
from typing import Any

import anyio
import anyio.abc
import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from faye_websocket import PerMessageDeflate, WebSocket
from faye_websocket._core.deflate import DeflateParams
from faye_websocket._core.websocket import (
    BATCH,
    Failed,
    MessageReceived,
    Utf8Text,
    WebSocketProtocol,
)
from faye_websocket._runtime.connection import READ_LIMIT
from faye_websocket.http import Request
from faye_websocket.testing import memory_stream_pair

from .wsclient import raw_frame

pytestmark = pytest.mark.anyio

KIB = 1024
PARAMS = DeflateParams(outbound_bits=13, inbound_bits=13)


def core_pair() -> tuple[WebSocketProtocol, WebSocketProtocol]:
    """A client and a server core with permessage-deflate both ways."""
    deflate = PerMessageDeflate()
    server = WebSocketProtocol(client=False,
                               extensions=[deflate.session(PARAMS, max_length=2**20)])
    server.batch_size = BATCH  # as the connection runtime has it
    return (WebSocketProtocol(client=True, extensions=[deflate.session(PARAMS, max_length=2**20)]),
            server)


def text(i: int, size: int) -> str:
    return f"{i:06d}:" + "log line, compresses well; " * (size // 27)


def drain(core: WebSocketProtocol) -> tuple[list[int], list[str | bytes]]:
    """Every message ``core`` holds, a batch at a time: (batch sizes, messages)."""
    sizes: list[int] = []
    messages: list[str | bytes] = []
    while True:
        events = core.events_received()
        batch = [e.data for e in events if isinstance(e, MessageReceived)]
        sizes.append(sum(map(len, batch)))
        messages += batch
        if not core.more:
            return sizes, messages
        core.receive_data(b"")


def test_without_a_batch_size_the_core_parses_everything_at_once() -> None:
    client, _ = core_pair()
    server = WebSocketProtocol(client=False, extensions=[
        PerMessageDeflate().session(PARAMS, max_length=2**20)])
    sent = [text(i, 1000) for i in range(200)]
    for message in sent:
        client.send_message(message)
    server.receive_data(client.data_to_send())
    assert server.events_received() == [MessageReceived(m) for m in sent]
    assert not server.more


@pytest.mark.parametrize("size", [100, 1000, 30 * KIB, 100 * KIB])
def test_the_core_parses_a_burst_one_batch_at_a_time(size: int) -> None:
    client, server = core_pair()
    sent = [text(i, size) for i in range(max(8, 400 * KIB // size))]
    for message in sent:
        client.send_message(message)
    server.receive_data(client.data_to_send())  # one read holding every message
    sizes, received = drain(server)
    assert received == sent
    assert len(sizes) > 1
    # A batch stops at the message that reaches BATCH bytes.
    assert max(sizes) < BATCH + len(sent[0]) + 8


def test_fragmented_messages_are_batched_too() -> None:
    frames = FrameProtocol(client=True, extensions=[])
    sent = [text(i, 4 * KIB) for i in range(64)]
    wire = bytearray()
    for message in sent:
        wire += frames.send_data(message[:1000], fin=False)
        wire += frames.send_data(message[1000:], fin=True)
    server = WebSocketProtocol(client=False)
    server.batch_size = BATCH
    server.receive_data(bytes(wire))
    sizes, received = drain(server)
    assert received == sent
    assert len(sizes) > 1
    assert max(sizes) < BATCH + 5 * KIB


def test_a_burst_ending_in_a_partial_frame_keeps_the_rest() -> None:
    client, server = core_pair()
    sent = [text(i, 2 * KIB) for i in range(40)]
    for message in sent:
        client.send_message(message)
    wire = client.data_to_send()
    server.receive_data(wire[:-5])
    _, received = drain(server)
    server.receive_data(wire[-5:])
    _, rest = drain(server)
    assert received + rest == sent
    assert len(rest) == 1


def ws_request() -> Request:
    return Request.build("GET", "/", {
        "Host": "test", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Extensions": "permessage-deflate"})


async def read_head(stream: anyio.abc.ObjectReceiveStream[bytes]) -> bytes:
    """The server's 101 response head, read off the client's end."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive()
    return head


def compressed_frame(message: str) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -13)
    payload = compressor.compress(message.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return raw_frame(Opcode.TEXT, payload[:-4], rsv=4)


async def test_a_flood_the_application_does_not_read_is_held_compressed() -> None:
    # 128 messages of 32 KiB (4 MiB as text) arrive compressed in one read of
    # ~40 KiB while the application receives nothing. The reader used to
    # inflate and decode all of them at once; now it stops once the queue
    # is full, and the rest waits as it came.
    count, size = 128, 32 * KIB
    sent = [text(i, size) for i in range(count)]
    wire = b"".join(compressed_frame(message) for message in sent)
    assert len(wire) < count * size // 20
    client_end, server_end = memory_stream_pair()
    async with client_end, WebSocket(ws_request(), server_end,
                                     extensions=[PerMessageDeflate()]) as ws:
        assert b"permessage-deflate" in await read_head(client_end)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            with anyio.fail_after(10):
                await client_end.send(wire)
                await anyio.wait_all_tasks_blocked()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        queue = ws._queue
        assert 0 < len(queue) < count
        assert queue._bytes <= READ_LIMIT + size
        # Queue, one batch in the reader, the compressed rest, one inflater:
        # a fraction of the 4 MiB the messages take once decoded.
        assert held < 512 * KIB
        with anyio.fail_after(10):
            received = [await ws.receive() for _ in range(count)]
        assert received == sent
        await client_end.send(raw_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))


# -- text that is not ASCII waits as UTF-8 -----------------------------------------


def test_compact_text_keeps_validated_utf8_and_still_fails_invalid_text() -> None:
    client, server = core_pair()
    server.compact_text = True
    sent = ["plain ASCII", "caf\u00e9 " * 100, "emoji \U0001f600" * 50]
    for message in sent:
        client.send_message(message)  # compressed
        client.send_message(message, compress=False)
    server.receive_data(client.data_to_send())
    _, received = drain(server)
    assert [type(m) for m in received] == [str, str, Utf8Text, Utf8Text, Utf8Text, Utf8Text]
    assert [m.decode() if isinstance(m, Utf8Text) else m for m in received] == \
        [m for m in sent for _ in range(2)]
    server.receive_data(raw_frame(Opcode.TEXT, b"bad \xff text"))
    assert [e.code for e in server.events_received() if isinstance(e, Failed)] == [1007]


def test_compact_text_still_fails_invalid_compressed_text() -> None:
    _, server = core_pair()
    server.compact_text = True
    compressor = zlib.compressobj(6, zlib.DEFLATED, -13)
    payload = compressor.compress(b"bad \xff text") + compressor.flush(zlib.Z_SYNC_FLUSH)
    server.receive_data(raw_frame(Opcode.TEXT, payload[:-4], rsv=4))
    assert [e.code for e in server.events_received() if isinstance(e, Failed)] == [1007]


async def test_queued_astral_text_takes_its_utf8_size() -> None:
    # 64 messages of 4 KiB of UTF-8 ending in an emoji (16 KiB each as a str)
    # queue as their UTF-8, and come out as the same str.
    sent = [text(i, 4 * KIB) + "\U0001f600" for i in range(64)]
    wire = b"".join(compressed_frame(message) for message in sent)
    client_end, server_end = memory_stream_pair()
    async with client_end, WebSocket(ws_request(), server_end,
                                     extensions=[PerMessageDeflate()]) as ws:
        await read_head(client_end)
        with anyio.fail_after(10):
            await client_end.send(wire)
            await anyio.wait_all_tasks_blocked()
        queue = ws._queue
        # READ_LIMIT of UTF-8, not a quarter of it.
        assert len(queue) == min(16, READ_LIMIT // sys.getsizeof(Utf8Text(sent[0].encode())))
        assert queue._bytes <= READ_LIMIT
        with anyio.fail_after(10):
            received = [await ws.receive() for _ in range(63)]
            await anyio.wait_all_tasks_blocked()
            received.append(ws.receive_nowait())
        assert received == sent
        await client_end.send(raw_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))


async def test_message_listeners_get_compact_text_decoded() -> None:
    sent = ["\U0001f600 " * n for n in (1, 100, 10000)]
    client_end, server_end = memory_stream_pair()
    got: list[Any] = []
    done = anyio.Event()

    def on_message(event: Any) -> None:
        got.append(event.data)
        if len(got) == len(sent):
            done.set()

    async with client_end, WebSocket(ws_request(), server_end,
                                     extensions=[PerMessageDeflate()]) as ws:
        ws.on("message", on_message)
        await read_head(client_end)
        with anyio.fail_after(10):
            await client_end.send(b"".join(compressed_frame(message) for message in sent))
            await done.wait()
        assert got == sent
        await client_end.send(raw_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
