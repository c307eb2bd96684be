"""RFC 6455 framing for the fast path: header parsing, masking, serialising.

wsproto parses every frame through several objects (a buffer, a header, a
masker, a frame, a message decoder), which is most of the cost of a small
message. :class:`~faye_websocket._core.websocket.WebSocketProtocol` uses the
functions here for the common case, whole unfragmented data frames and
small pings and pongs, and hands anything else to wsproto, which stays the
reference for what is valid. tests/test_frames.py checks both paths
against each other on the same input.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

__all__ = ["LARGE", "SIMPLE", "c_mask", "coalesce", "frame_parts", "mask", "parse_header",
           "python_mask", "serialize"]

#: Payloads from this size on are handled through views and written as
#: chunks of their own, to save copying them.
LARGE = 1 << 16

_TEXT, _BINARY, _PING, _PONG = 0x1, 0x2, 0x9, 0xA

#: First header byte -> opcode, for the frames the fast path takes: FIN set,
#: no RSV bit, and a text, binary, ping or pong opcode. (RSV1 on data
#: frames is handled separately, as it needs a negotiated extension.)
SIMPLE = {0x80 | op: op for op in (_TEXT, _BINARY, _PING, _PONG)}

_MALFORMED = (0, 0, 0)
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")

#: XOR tables: ``_XOR[k]`` maps each byte ``b`` to ``b ^ k``.
_XOR = [bytes(b ^ k for b in range(256)) for k in range(256)]

#: Above this size, masking four byte-strided slices with ``bytes.translate``
#: beats one big-integer XOR (whose conversions to and from ``int`` cost more
#: per byte than the two C loops per slice).
_TRANSLATE_FROM = 2048


def parse_header(buf: bytearray | bytes, pos: int) -> tuple[int, int, int] | None:
    """Read the length part of the frame header at ``pos``.

    Returns:
        ``(header_size, payload_length, masked)`` without the masking key
        (add 4 to the header size when ``masked``); ``None`` while the
        header is incomplete; a header size of 0 when the length is not
        minimally encoded, which RFC 6455 section 5.2 forbids (the caller
        lets wsproto say so).
    """
    end = len(buf)
    if end - pos < 2:
        return None
    second = buf[pos + 1]
    masked = second >> 7
    length = second & 0x7F
    if length < 126:
        return 2, length, masked
    if length == 126:
        if end - pos < 4:
            return None
        length = _U16.unpack_from(buf, pos + 2)[0]
        return (4, length, masked) if length >= 126 else _MALFORMED
    if end - pos < 10:
        return None
    length = _U64.unpack_from(buf, pos + 2)[0]
    return (10, length, masked) if length > 0xFFFF and not length >> 63 else _MALFORMED


def python_mask(payload: bytes | bytearray | memoryview, key: bytes | bytearray) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (masking and unmasking
    are the same operation), in pure Python."""
    size = len(payload)
    if size < _TRANSLATE_FROM:
        if not size:
            return b""
        repeated = key * (size // 4 + 1)
        value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated[:size], "little")
        return value.to_bytes(size, "little")
    out = bytearray(payload)
    for i in range(4):
        out[i::4] = out[i::4].translate(_XOR[key[i]])
    return bytes(out)


Masker = Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]


def _load_speedups() -> Masker | None:
    """The C ``mask`` when it was built (setup.py marks it optional) and not
    turned off with ``FAYE_WEBSOCKET_NO_SPEEDUPS=1``."""
    if os.environ.get("FAYE_WEBSOCKET_NO_SPEEDUPS"):
        return None
    try:
        from ._speedups import mask as c_mask
    except ImportError:
        return None
    return c_mask


#: The C accelerator's ``mask``, or ``None`` (pure Python).
c_mask = _load_speedups()
mask: Masker = c_mask or python_mask


def coalesce(chunks: list[bytes]) -> list[bytes]:
    """``chunks`` with each run of small ones joined (one write for them)
    and the :data:`LARGE` ones left as they are (written without a copy)."""
    out: list[bytes] = []
    small: list[bytes] = []
    for chunk in chunks:
        if len(chunk) >= LARGE:
            if small:
                out.append(small[0] if len(small) == 1 else b"".join(small))
                small = []
            out.append(chunk)
        else:
            small.append(chunk)
    if small:
        out.append(small[0] if len(small) == 1 else b"".join(small))
    return out


def serialize(opcode: int, payload: bytes, *, rsv1: bool = False,
              client: bool = False) -> bytes:
    """One whole frame (FIN set); a client's frame is masked with a fresh key."""
    head, body = frame_parts(opcode, payload, rsv1=rsv1, client=client)
    return head + body


def frame_parts(opcode: int, payload: bytes, *, rsv1: bool = False,
                client: bool = False) -> tuple[bytes, bytes]:
    """A whole frame as its header (with the masking key) and its body, so
    that a large payload can be written without copying it into a frame."""
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    size = len(payload)
    if client:
        if size < 126:
            head = bytes((first, 0x80 | size))
        elif size < 0x10000:
            head = _HEAD_16.pack(first, 0xFE, size)
        else:
            head = _HEAD_64.pack(first, 0xFF, size)
        key = os.urandom(4)
        return head + key, mask(payload, key)
    if size < 126:
        return bytes((first, size)), payload
    if size < 0x10000:
        return _HEAD_16.pack(first, 126, size), payload
    return _HEAD_64.pack(first, 127, size), payload
