"""The pre-standard drafts hixie-75 and hixie-76, which the reference speaks.

wsproto rejects both, so they have their own small state machine here with
the same interface as :class:`~faye_websocket._core.websocket.WebSocketProtocol`,
and the runtime drives either. The drafts carry text only, have no ping,
no subprotocols, no extensions and no close codes.

* hixie-75: frames are ``0x00 <UTF-8> 0xFF``; a frame whose type byte has
  the high bit set carries a length prefix and is skipped.
* hixie-76: as hixie-75, plus a challenge: the 8 bytes that follow the
  request head, with the two ``Sec-WebSocket-Key`` numbers, are answered with
  their MD5 digest. Those bytes may arrive late (some proxies hold them
  back), so the connection opens only once they have, and messages sent
  before are held and written after the answer, in order. ``0xFF 0x00``
  closes.

Parsing costs constant time per byte: a length prefix longer than
``max_length`` allows closes with 1009 as soon as it does (an unbounded
prefix would otherwise grow an ever larger integer, byte by byte).
"""

from __future__ import annotations

import hashlib
import struct

from .websocket import CloseReceived, Event, MessageReceived, ReadyState

__all__ = ["HixieProtocol", "challenge_keys"]

_BODY_SIZE = 8


def challenge_keys(key1: str, key2: str) -> tuple[int, int]:
    """The numbers behind hixie-76's ``Sec-WebSocket-Key1``/``Key2``.

    Each is the key's digits read as one number, divided by its count of
    spaces (draft-hixie-thewebsocketprotocol-76, section 5.2).

    Raises:
        ValueError: a key without digits or spaces, or whose number is not a
            multiple of its spaces.
    """
    values = []
    for key in (key1, key2):
        digits = "".join(c for c in key if c.isascii() and c.isdigit())
        spaces = key.count(" ")
        if not digits or spaces == 0 or int(digits) % spaces or int(digits) // spaces >= 2**32:
            raise ValueError("Client sent invalid Sec-WebSocket-Key headers")
        values.append(int(digits) // spaces)
    return values[0], values[1]


class HixieProtocol:
    """Sans-IO hixie-75/76 server connection, shaped like WebSocketProtocol."""

    client = False

    def __init__(self, version: str, *, max_length: int = 2**26 - 1,
                 keys: tuple[int, int] | None = None) -> None:
        if version not in ("hixie-75", "hixie-76"):
            raise ValueError(f"unknown draft {version!r}")
        if (version == "hixie-76") != (keys is not None):
            raise ValueError("hixie-76, and only it, takes the challenge keys")
        self.version = version
        self.max_length = max_length
        self.state = ReadyState.CONNECTING if keys is not None else ReadyState.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self._keys = keys
        self._body = b""
        self._held = bytearray()  # output written before the challenge is answered
        self._out = bytearray()
        self._events: list[Event] = []
        # Frame parser: stage 0 = expecting a type byte, 1 = reading a length
        # (skipped frame or closing frame), 2 = in a frame's body.
        self._stage = 0
        self._length = 0
        self._skip = 0
        self._closing = False
        self._buffer = bytearray()

    # -- input -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is ReadyState.CLOSED:
            return
        if self.state is ReadyState.CONNECTING:
            self._body += data
            if len(self._body) < _BODY_SIZE:
                return
            data, self._body = self._body[_BODY_SIZE:], self._body[:_BODY_SIZE]
            self._answer_challenge()
        self._parse(data)

    def _answer_challenge(self) -> None:
        assert self._keys is not None
        digest = hashlib.md5(struct.pack("!II", *self._keys) + self._body).digest()
        self._out += digest
        self._out += self._held
        self._held = bytearray()
        self.state = ReadyState.OPEN

    def _parse(self, data: bytes) -> None:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n and self.state is ReadyState.OPEN:
            if self._stage == 0:
                octet = view[i]
                i += 1
                if octet & 0x80:
                    # 0xFF then 0x00 closes (hixie-76); other high-bit types
                    # are length-prefixed binary frames, skipped.
                    self._closing = octet == 0xFF and self.version == "hixie-76"
                    self._length = 0
                    self._stage = 1
                else:
                    self._buffer = bytearray()
                    self._stage = 2
            elif self._stage == 1:
                octet = view[i]
                i += 1
                self._length = self._length * 128 + (octet & 0x7F)
                if self._closing and self._length == 0:
                    self._on_close()
                    return
                if self._length > self.max_length:
                    # Skipped or not, a frame this long is over the limit;
                    # stopping here also keeps ``_length`` a small integer.
                    self._close_now(1009, "message too large")
                    return
                if not octet & 0x80:
                    self._skip = self._length
                    self._stage = 3 if self._length else 0
            elif self._stage == 3:  # skipping a length-prefixed frame
                step = min(self._skip, n - i)
                i += step
                self._skip -= step
                if self._skip == 0:
                    self._stage = 0
            else:  # stage 2: text until 0xFF
                end = data.find(b"\xff", i)
                chunk = view[i:] if end < 0 else view[i:end]
                if len(self._buffer) + len(chunk) > self.max_length:
                    # As the reference: too large means close, silently.
                    self._close_now(1009, "message too large")
                    return
                self._buffer += chunk
                if end < 0:
                    return
                i = end + 1
                self._stage = 0
                text = self._buffer.decode("utf-8", "replace")
                self._buffer = bytearray()
                self._events.append(MessageReceived(text))

    def _on_close(self) -> None:
        self._out += b"\xff\x00"
        self._close_now(1000, "")
        self._events.append(CloseReceived(1000, ""))

    def _close_now(self, code: int, reason: str) -> None:
        self.state = ReadyState.CLOSED
        self.close_code, self.close_reason = code, reason

    def receive_eof(self) -> None:
        if self.state is not ReadyState.CLOSED:
            self._close_now(1006, "")

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- output ------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        """Messages may be sent (hixie-76 holds them until it opens)."""
        return self.state in (ReadyState.CONNECTING, ReadyState.OPEN)

    def send_message(self, data: str | bytes | bytearray | memoryview, *,
                     compress: bool = True) -> None:
        if not isinstance(data, str):
            raise TypeError(f"{self.version} connections carry text only; "
                            "binary messages cannot be sent")
        if not self.can_send:
            raise RuntimeError(f"cannot send in state {self.state.name}")
        frame = b"\x00" + data.encode("utf-8") + b"\xff"
        if self.state is ReadyState.CONNECTING:
            self._held += frame
        else:
            self._out += frame

    def send_ping(self, payload: bytes = b"") -> None:
        raise NotImplementedError(f"ping is not supported on {self.version} connections")

    def send_pong(self, payload: bytes = b"") -> None:
        raise NotImplementedError(f"pong is not supported on {self.version} connections")

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Close at once: the drafts have no closing handshake to wait for."""
        if self.state is ReadyState.CLOSED:
            return
        if self.state is ReadyState.OPEN and self.version == "hixie-76":
            self._out += b"\xff\x00"
        self._close_now(1000, "")

    def fail(self, code: int, reason: str) -> None:
        """Close at once, recording ``code`` and ``reason`` (the drafts have
        no close codes on the wire: hixie-76 sends its closing frame)."""
        if self.state is ReadyState.CLOSED:
            return
        self.send_close()
        self._close_now(code, reason)

    def chunks_to_send(self) -> list[bytes]:
        """:meth:`data_to_send` as a list (the interface of the hybi core)."""
        data = self.data_to_send()
        return [data] if data else []

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out, self._out = bytes(self._out), bytearray()
        return out

    @property
    def pending(self) -> int:
        return len(self._out) + len(self._held)

    @property
    def failed(self) -> bool:
        return False

    def close_expected(self) -> bool:
        return self.state is ReadyState.CLOSED
