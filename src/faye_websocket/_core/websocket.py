"""The hybi-13 (RFC 6455) connection state machine, after the handshake.

:class:`WebSocketProtocol` wraps wsproto's frame protocol and adds what the
runtime needs and wsproto leaves out: whole messages instead of frame
pieces, ``max_length`` on the wire size (checked at each frame header, before
the payload arrives), replies queued by the core itself (pongs, the close
echo), a failure path that tells the runtime which close code to report, and
one outgoing buffer that frames are appended to whole, so concurrent senders
can never interleave.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from wsproto.extensions import Extension as _WsprotoExtension
from wsproto.frame_protocol import (
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
)

from .deflate import DeflateSession

__all__ = [
    "CloseReceived",
    "Event",
    "Failed",
    "MessageReceived",
    "PingReceived",
    "PongReceived",
    "ReadyState",
    "WebSocketProtocol",
]

_NO_RSV = RsvBits(False, False, False)
_MAX_REASON_BYTES = 123


class ReadyState(enum.IntEnum):
    """The browser API's ``readyState`` values."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    """The peer pinged; the pong is already queued."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's Close frame: it started the closing handshake or answered ours."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The peer broke the protocol; further input is ignored.

    Call :meth:`WebSocketProtocol.fail` with the same code and reason to
    queue the Close frame. The runtime first lets the application answer the
    messages delivered before the error, so that their replies precede the
    Close on the wire (as a peer processing frames one by one would see).
    """

    code: int
    reason: str


Event = MessageReceived | PingReceived | PongReceived | CloseReceived | Failed


class _LengthGuard(_WsprotoExtension):
    """Enforces ``max_length`` on the wire size of each message.

    wsproto reports every frame header to its extensions with the declared
    payload length, so an oversized message is refused before its payload
    is read (as the reference does, S-34). Inflated sizes are checked by
    :class:`DeflateSession` as it inflates.
    """

    name = "_length_guard"

    def __init__(self, max_length: int) -> None:
        self._max_length = max_length
        self._size = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:
        return False

    def frame_inbound_header(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                             rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            return _NO_RSV
        if opcode is Opcode.CONTINUATION:
            self._size += payload_length
        else:
            self._size = payload_length
        if self._size > self._max_length:
            return CloseReason.MESSAGE_TOO_BIG
        return _NO_RSV


#: Registered codes wsproto does not know (IANA "WebSocket Close Code Number
#: Registry": 1014 Bad Gateway); accepted like 1012 and 1013.
_EXTRA_CODES = frozenset({1014})

#: Reasons sent when an extension hook reports a code (wsproto's own text
#: for these is "error in extension").
_REASONS = {
    CloseReason.MESSAGE_TOO_BIG: "message too large",
    CloseReason.INVALID_FRAME_PAYLOAD_DATA: "invalid compressed data",
    CloseReason.PROTOCOL_ERROR: "reserved bit set on a continuation frame",
}


class _FrameProtocol(FrameProtocol):
    def _process_close(self, frame: Frame) -> Frame:
        data = frame.payload
        if isinstance(data, (bytes, bytearray)) and len(data) >= 2 and \
                int.from_bytes(data[:2], "big") in _EXTRA_CODES:
            try:
                reason = bytes(data[2:]).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParseFailed(f"invalid UTF-8 in close reason: {exc}",
                                  CloseReason.INVALID_FRAME_PAYLOAD_DATA) from exc
            code = int.from_bytes(data[:2], "big")
            return Frame(frame.opcode, (code, reason), frame.frame_finished,
                         frame.message_finished)
        return super()._process_close(frame)


class WebSocketProtocol:
    """Sans-IO hybi-13 connection: feed bytes, read events, collect output.

    Args:
        client: this side is the client (it masks its frames and expects
            unmasked ones).
        extensions: negotiated extension sessions.
        max_length: the largest message accepted, in bytes, on the wire and
            after decompression.
    """

    def __init__(self, *, client: bool, extensions: Sequence[DeflateSession] = (),
                 max_length: int = 2**26 - 1) -> None:
        self.client = client
        self.max_length = max_length
        self.state = ReadyState.OPEN
        #: Code and reason of the Close that ended the connection (ours for a
        #: failure, the peer's otherwise; 1006 when the transport dropped).
        self.close_code: int | None = None
        self.close_reason = ""
        self._deflate = extensions[0] if extensions else None
        self._proto = _FrameProtocol(client, [_LengthGuard(max_length), *extensions])
        self._failed = False
        self._input_closed = False
        self._close_sent = False
        #: Hold back the answer to a Close the peer starts until
        #: :meth:`answer_close`, so the application can first reply to the
        #: messages that came before it (the runtime sets this).
        self.defer_close_reply = False
        self._close_answer: tuple[int | None, str] | None = None
        self._out = bytearray()
        self._events: list[Event] = []
        self._parts: list[str | bytes] = []
        self._size = 0

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the transport."""
        if self.state is ReadyState.CLOSED or self._input_closed:
            return  # nothing after the closing handshake or a failure matters
        self._proto.receive_bytes(data)
        try:
            for frame in self._proto.received_frames():
                opcode = frame.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    payload = frame.payload
                    assert isinstance(payload, (str, bytes))
                    if frame.message_finished and not self._parts:
                        self._events.append(MessageReceived(payload))
                    elif frame.message_finished:
                        self._parts.append(payload)
                        self._events.append(MessageReceived(_join(self._parts)))
                        self._parts = []
                    elif payload:
                        self._parts.append(payload)
                elif opcode is Opcode.PING:
                    assert isinstance(frame.payload, bytes)
                    if self.state is ReadyState.OPEN:
                        self._out += self._proto.pong(frame.payload)
                    self._events.append(PingReceived(frame.payload))
                elif opcode is Opcode.PONG:
                    assert isinstance(frame.payload, bytes)
                    self._events.append(PongReceived(frame.payload))
                elif opcode is Opcode.CLOSE:
                    assert isinstance(frame.payload, tuple)
                    self._on_close(*frame.payload)
                    break
        except ParseFailed as exc:
            reason = str(exc)
            if reason == "error in extension":
                reason = _REASONS.get(exc.code, reason)
                if exc.code == CloseReason.MESSAGE_TOO_BIG:
                    reason = f"message larger than {self.max_length} bytes"
            self._fail(int(exc.code), reason)

    def receive_eof(self) -> None:
        """The transport reached end of file (or broke)."""
        if self.state is not ReadyState.CLOSED:
            self.state = ReadyState.CLOSED
            if not self._failed and self._close_answer is None:
                # RFC 6455 section 7.1.5: no Close frame received means 1006.
                self.close_code, self.close_reason = CloseReason.ABNORMAL_CLOSURE, ""
            self._close_answer = None

    def events_received(self) -> list[Event]:
        """Events produced by the data fed so far (each returned once)."""
        events, self._events = self._events, []
        return events

    def _on_close(self, code: int, reason: str) -> None:
        answer: tuple[int | None, str] = (code, reason)
        if code == CloseReason.NO_STATUS_RCVD:
            # An empty Close frame: echo it empty, report 1000 (S-36).
            answer = (None, "")
            code = CloseReason.NORMAL_CLOSURE
        # Whoever started the handshake, the code reported is the peer's.
        self.close_code, self.close_reason = int(code), reason
        self._events.append(CloseReceived(int(code), reason))
        if self.defer_close_reply and self.state is ReadyState.OPEN:
            self._input_closed = True
            self._close_answer = answer
            return
        self._queue_close(*answer)
        self.state = ReadyState.CLOSED

    @property
    def close_answer_pending(self) -> bool:
        """The peer's Close is waiting for :meth:`answer_close`."""
        return self._close_answer is not None

    def answer_close(self) -> None:
        """Queue the answer held back by :attr:`defer_close_reply` (none if
        this side sent its own Close meanwhile) and end the handshake."""
        if self._close_answer is None:
            return
        answer, self._close_answer = self._close_answer, None
        self._queue_close(*answer)
        self.state = ReadyState.CLOSED

    def _fail(self, code: int, reason: str) -> None:
        self._input_closed = True
        self._parts = []
        self._events.append(Failed(code, _truncate(reason)))

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): queue a Close with
        ``code`` and ignore all further input."""
        if self.state is ReadyState.CLOSED or self._failed:
            return
        reason = _truncate(reason)
        self._input_closed = True
        self._queue_close(code, reason)
        self._failed = True
        self.state = ReadyState.CLOSING
        self.close_code, self.close_reason = code, reason

    # -- output --------------------------------------------------------------

    def send_message(self, data: str | bytes | bytearray | memoryview, *,
                     compress: bool = True) -> None:
        """Queue one message as a single frame."""
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot send in state {self.state.name}")
        if not compress and self._deflate is not None:
            self._deflate.skip_next = True
        if isinstance(data, memoryview):
            data = data.tobytes()
        self._out += self._proto.send_data(data)

    def send_ping(self, payload: bytes = b"") -> None:
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot ping in state {self.state.name}")
        self._out += self._proto.ping(payload)

    def send_pong(self, payload: bytes = b"") -> None:
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot pong in state {self.state.name}")
        self._out += self._proto.pong(payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake (no-op once a Close was sent)."""
        if self.state is ReadyState.OPEN:
            self._queue_close(code, reason)
            self.state = ReadyState.CLOSING

    def _queue_close(self, code: int | None, reason: str) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._out += self._proto.close(code, reason or None)

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport, in order (each returned once)."""
        if not self._out:
            return b""
        out, self._out = bytes(self._out), bytearray()
        return out

    @property
    def can_send(self) -> bool:
        """Messages may be sent (only while open)."""
        return self.state is ReadyState.OPEN

    @property
    def pending(self) -> int:
        """Bytes queued and not yet collected by :meth:`data_to_send`."""
        return len(self._out)

    @property
    def failed(self) -> bool:
        return self._failed

    def close_expected(self) -> bool:
        """Whether this side should now close the transport.

        The server closes TCP once the closing handshake is over (RFC 6455
        section 7.1.1); either side does after failing the connection.
        """
        return self._failed or (self.state is ReadyState.CLOSED and not self.client)


def _join(parts: list[str | bytes]) -> str | bytes:
    if isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[arg-type]
    return b"".join(parts)  # type: ignore[arg-type]


def _truncate(reason: str) -> str:
    raw = reason.encode("utf-8")
    if len(raw) <= _MAX_REASON_BYTES:
        return reason
    return raw[:_MAX_REASON_BYTES].decode("utf-8", "ignore")
