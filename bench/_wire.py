"""WebSocket wire bytes shared by the load generator and the fixed echo server.

Everything here is built once: client frames are masked with a fixed key up
front, so sending a message costs the load generator one ``send`` call.
"""

from __future__ import annotations

import base64
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(hashlib.sha1(KEY + GUID).digest())
MASK = b"\x1f\x2e\x3d\x4c"

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8


def accept_for(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


#: What the fan-out scenario with compression offers: permessage-deflate
#: without server context takeover, so a server may send every subscriber
#: the same compressed frame.
DEFLATE_OFFER = "permessage-deflate; server_no_context_takeover; client_max_window_bits"


def upgrade_request(port: int, path: str = "/", extensions: str | None = None) -> bytes:
    """A minimal hybi-13 opening handshake, always with the same key."""
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{offer}"
        "\r\n"
    ).encode()


def check_upgrade_response(head: bytes) -> None:
    """Raise unless ``head`` (up to the blank line) is a 101 with our accept value."""
    status, _, rest = head.partition(b"\r\n")
    if b" 101 " not in status + b" ":
        raise RuntimeError(f"handshake refused: {status!r}")
    if ACCEPT not in rest:
        raise RuntimeError("handshake: wrong or missing Sec-WebSocket-Accept")


def xor_mask(payload: bytes, mask: bytes) -> bytes:
    """Mask (or unmask) ``payload`` with a 4-byte key, in pure Python."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        n, "little"
    )


def _header(opcode: int, length: int, masked: bool) -> bytes:
    bit = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, bit | length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, bit | 127, length)


def client_frame(opcode: int, payload: bytes, mask: bytes = MASK) -> bytes:
    """A complete, masked frame as a client sends it."""
    return _header(opcode, len(payload), True) + mask + xor_mask(payload, mask)


def server_frame(opcode: int, payload: bytes) -> bytes:
    """A complete, unmasked frame as a server sends it."""
    return _header(opcode, len(payload), False) + payload


def server_frame_size(length: int) -> int:
    """Bytes on the wire of an unmasked frame with a ``length``-byte payload."""
    return length + (2 if length < 126 else 4 if length < 1 << 16 else 10)


CLOSE_1000 = client_frame(OP_CLOSE, struct.pack("!H", 1000))
