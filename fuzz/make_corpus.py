"""Writes the seed corpora in fuzz/corpus/ (committed; rerun after changing
an input layout): small valid inputs and near misses for each target.

Layouts are described in fuzz_frames.py, fuzz_handshake.py, fuzz_hixie.py and
fuzz_sse_client.py.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

HERE = Path(__file__).parent
MASK = b"\x37\xfa\x21\x3d"


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False,
          masked: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def frames_seeds() -> dict[str, bytes]:
    # byte 0: config bits (1 client, 2 deflate, 16 defer close, 32/64 max_length,
    # 128 echo); byte 1: read size (0 = whole).
    hello = deflated(b"hello hello hello")
    close = struct.pack("!H", 1000) + b"bye"
    return {
        "server-text-binary-ping-close": b"\x80\x00" + frame(1, b"hello") + frame(2, b"\x00\xff")
        + frame(9, b"ping") + frame(8, close),
        "server-fragments-around-ping": b"\x80\x03" + frame(1, b"frag", fin=False)
        + frame(9, b"") + frame(0, b"ment", fin=False) + frame(0, b"ed"),
        "server-deflate-fragmented": b"\x82\x05" + frame(1, hello[:4], fin=False, rsv1=True)
        + frame(10, b"pong") + frame(0, hello[4:]) + frame(2, b"raw") + frame(8, b""),
        "client-text-pong-close": b"\x81\x00" + frame(1, b"hi", masked=False)
        + frame(10, b"x", masked=False) + frame(8, close, masked=False),
        "client-deflate": b"\x83\x01" + frame(1, hello, rsv1=True, masked=False)
        + frame(1, deflated(b""), rsv1=True, masked=False),
        "server-16bit-length": b"\x80\x07" + frame(2, bytes(range(256)) * 2),
        "server-defer-close": b"\x90\x00" + frame(1, b"last") + frame(8, struct.pack("!H", 4001)),
        "bad-utf8": b"\x80\x00" + frame(1, b"ok\xff\xfe"),
        "bad-close-length": b"\x80\x00" + frame(8, b"\x03"),
        "too-long-for-125": b"\xc0\x00" + frame(2, b"x" * 126),
        "rsv1-on-continuation": b"\x82\x00" + frame(1, hello[:2], fin=False, rsv1=True)
        + frame(0, hello[2:], rsv1=True),
        "deflate-bomb-at-1000": b"\xe2\x00" + frame(2, deflated(b"\0" * 100_000), rsv1=True),
        # byte 1 bit 7: frame descriptions (flags, length, payload), see build().
        "built-deflate-fragments-ping": b"\x82\x84" + b"\x19\x05hello" + b"\x04\x01p"
        + b"\x10\x06 world" + b"\x12\x03abc" + b"\x03\x02\x03\xe8",
        "built-client-large-compressed": b"\x8b\x80" + b"\x31\x08abcdefgh" + b"\x05\x00"
        + b"\x39\x04wxyz" + b"\x30\x02!!",
        "built-plain-fragments": b"\x80\x81" + b"\x09\x02ab" + b"\x04\x00"
        + b"\x28\x03xyz" + b"\x00\x01!",
    }


def request(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def handshake_seeds() -> dict[str, bytes]:
    # byte 0: mode (0 server, 1 client, 2 extension header) | options << 2
    # (options: 1 deflate, 2 second deflate config, 4 protocols, 8 secure, 16 origins).
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    hybi = ["GET /chat?x=1 HTTP/1.1", "Host: example.com", "Upgrade: websocket",
            "Connection: keep-alive, Upgrade", f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13", "Origin: http://example.com"]
    return {
        "server-hybi-deflate-protocol": bytes([(1 | 4 | 16) << 2]) + request(
            *hybi, "Sec-WebSocket-Protocol: superchat, chat",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
            "permessage-deflate; server_no_context_takeover",
            body=frame(1, b"hello")),
        "server-hybi-deflate-config2": bytes([(1 | 2) << 2]) + request(
            *hybi, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; "
            'client_max_window_bits="10"; client_no_context_takeover'),
        "server-hixie76": bytes([32 << 2]) + request(
            "GET /demo HTTP/1.1", "Host: example.com", "Connection: Upgrade",
            "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00", "Sec-WebSocket-Protocol: sample",
            "Upgrade: WebSocket", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5",
            "Origin: http://example.com", body=b"^n:ds[4U" + b"\x00hi\xff\xff\x00"),
        "server-hixie75": bytes([32 << 2]) + request(
            "GET /demo HTTP/1.1", "Host: example.com", "Connection: Upgrade",
            "Upgrade: WebSocket", "Origin: http://example.com", body=b"\x00hi\xff"),
        "server-version-8": b"\x00" + request(*hybi[:5], "Sec-WebSocket-Version: 8"),
        "server-bad-key": b"\x00" + request(*hybi[:4], "Sec-WebSocket-Key: abc",
                                            "Sec-WebSocket-Version: 13"),
        "server-wrong-origin": bytes([16 << 2]) + request(*hybi[:6], "Origin: http://evil"),
        "server-plain-get": b"\x00" + request("GET / HTTP/1.1", "Host: x",
                                              "Accept: text/event-stream"),
        "server-post-body": b"\x00" + request("POST /x HTTP/1.1", "Host: x",
                                              "Content-Length: 3", body=b"abc"),
        "client-101-deflate": bytes([1 | ((1 | 4) << 2)]) + request(
            "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
            "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}",
            "Sec-WebSocket-Protocol: chat",
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits=12",
            body=frame(1, deflated(b"hi"), rsv1=True, masked=False)),
        "client-101-plain": b"\x01" + request(
            "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
            "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}"),
        "client-101-wrong-accept": b"\x01" + request(
            "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Accept: x"),
        "client-400": b"\x01" + request("HTTP/1.1 400 Bad Request", "Content-Length: 2",
                                        body=b"no"),
        "client-200-event-stream": b"\x01" + request(
            "HTTP/1.1 200 OK", "Content-Type: text/event-stream; charset=utf-8"),
        "extensions-offers": b"\x02" + b"permessage-deflate; client_max_window_bits=10; "
        b"server_no_context_takeover, x-webkit-deflate-frame, permessage-deflate",
        "extensions-quoted": b"\x06" + b'permessage-deflate; client_max_window_bits="12"; '
        b'server_max_window_bits=9',
    }


def hixie_seeds() -> dict[str, bytes]:
    # byte 0: bit 0 hixie-76, bits 1-2 max_length (2**26 - 1, 0, 10, 1000),
    # bit 3 send a message first; byte 1: read size (0 = whole).
    challenge = b"Tm[K T2u"
    return {
        "hixie75-text": b"\x00\x00" + b"\x00hello\xff\x00caf\xc3\xa9\xff",
        "hixie75-skipped": b"\x08\x03" + b"\x80\x81\x00" + b"x" * 128 + b"\x00ok\xff",
        "hixie75-bad-utf8": b"\x00\x01" + b"\x00\xc3(\x80\xff",
        "hixie75-long-at-10": bytes([1 << 1 | 0, 0]) + b"\x00" + b"y" * 11 + b"\xff",
        "hixie75-endless-prefix": bytes([3 << 1, 0]) + b"\x80" + b"\xff" * 64,
        "hixie76-close": b"\x09\x05" + challenge + b"\x00bye\xff\xff\x00",
        "hixie76-late-challenge": b"\x09\x03" + challenge[:3],
        "hixie76-prefixed-close": b"\x01\x00" + challenge + b"\xff\x81\x00" + b"z" * 128,
    }


def sse_client_seeds() -> dict[str, bytes]:
    # byte 0: max_size (0 the default, 1: 1, 2: 16, 3: 100 bytes) | 4 the stream
    # twice | initial last event ID length << 3; byte 1: read size (0 = whole),
    # | 128 for event descriptions (see build() in fuzz_sse_client.py).
    spec = (b"data: one\n\nevent: two\nid: 2\ndata: a\ndata: b\n\n: note\n\n"
            b"data\n\nretry: 10\nid\ndata: four\n\n")
    return {
        "spec-examples-lf": b"\x00\x00" + spec,
        "spec-examples-crlf-in-3s": b"\x00\x03" + spec.replace(b"\n", b"\r\n"),
        "spec-examples-cr-bytewise": b"\x00\x01" + spec.replace(b"\n", b"\r"),
        "bom-then-comments": b"\x00\x02" + b"\xef\xbb\xbf:hi\n:\n\r\n:\r\rdata:x\r\n\r\n",
        "invalid-utf8-and-split-char": b"\x00\x05" + b"data: a\xffb\xed\xa0\x80c\n"
        + "data: \u2603\n\n".encode(),
        "retry-and-id-edge-cases": b"\x0c\x00" + b"retry: 0050\nretry: 1.5\nretry: "
        + b"9" * 30 + b"\nid: a\x00b\nid: 9\n\ndata: x\n\n",
        "limit-16-data-lines": b"\x02\x04" + b"data: 12345\ndata: 123\ndata: 1\n\n",
        "limit-100-long-line": b"\x03\x07" + b"data: " + b"y" * 120 + b"\n\n",
        "limit-16-event-type": b"\x02\x00" + b"event: abcdefghij\ndata: 12345\n\n",
        "limit-1-comments-only": b"\x01\x00" + b":" + b"c" * 200 + b"\n\n\n:\r\n",
        "twice-partial-event": b"\x04\x06" + b"id: 5\ndata: first\n\nid: 6\ndata: cut",
        # byte 1 bit 7: descriptions: kind, then lengths and values.
        "built-events-pings-retry": b"\x00\x80" + b"\x02\x05hello" + b"\x00"
        + b"\x01\x03\xe8" + b"\x0e\x03a\nb\x04type\x0212" + b"\x02\x00",
        "built-line-breaks-in-data": b"\x00\x83" + b"\x02\x07a\r\nb\rc\n" + b"\x06\x00\x00",
    }


def main() -> None:
    for target, seeds in (("frames", frames_seeds()), ("handshake", handshake_seeds()),
                          ("hixie", hixie_seeds()), ("sse_client", sse_client_seeds())):
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
