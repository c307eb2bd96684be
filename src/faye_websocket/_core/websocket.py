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

import codecs
import enum
import math
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
from .frames import LARGE as _LARGE
from .frames import SIMPLE, coalesce, frame_parts, mask, parse_header, serialize

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
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
#: Codes that must not be sent (RFC 6455 section 7.4.1); 1000 goes instead.
_LOCAL_ONLY = frozenset({1005, 1006, 1015})
#: First header bytes of whole compressed text and binary frames (FIN, RSV1).
_COMPRESSED = frozenset({0xC1, 0xC2})
_MAX_REASON_BYTES = 123
#: The connection runtime's :attr:`WebSocketProtocol.batch_size`: bytes of
#: messages one :meth:`~WebSocketProtocol.receive_data` call produces at
#: most (plus one message); the rest of the input stays as it came,
#: compressed and encoded, until the runtime asks for more.
BATCH = 1 << 14


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
        # The size of the message's frames read to their end. wsproto may
        # report one header twice (before its masking key has arrived, and
        # again once it has), so the header hook must not accumulate.
        self._done = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:
        return False

    def frame_inbound_header(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                             rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            return _NO_RSV
        if opcode is Opcode.CONTINUATION:
            self._size = self._done + payload_length
        else:
            self._size = payload_length
        if self._size > self._max_length:
            return CloseReason.MESSAGE_TOO_BIG
        return _NO_RSV

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol,
                               fin: bool) -> bytes | CloseReason | None:
        self._done = self._size  # a control frame's end leaves it as it is
        return None


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
        self._out: list[bytes] = []
        self._pending = 0
        #: Input not parsed yet, while the fast path has it (see
        #: :meth:`_receive_fast`); otherwise wsproto holds it.
        self._buf: bytes | bytearray = bytearray()
        self._fast = True
        # Validation state of an incomplete text frame at the buffer's start.
        self._text_checked = 0
        self._text_decoder = _utf8_decoder()
        self._events: list[Event] = []
        self._parts: list[str | bytes] = []
        self._size = 0
        #: Parse at most this many bytes of messages (plus one message) per
        #: :meth:`receive_data` call (the runtime sets :data:`BATCH`); by
        #: default every whole message is parsed at once.
        self.batch_size: float = math.inf
        #: Input left unparsed because the messages parsed from it reached
        #: :attr:`batch_size`: ``receive_data(b"")`` parses the next batch.
        self.more = False
        self._budget: float = math.inf

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the transport."""
        self.more = False
        self._budget = self.batch_size
        if self.state is ReadyState.CLOSED or self._input_closed:
            return  # nothing after the closing handshake or a failure matters
        if not self._fast:
            self._proto.receive_bytes(data)
        elif self._buf:
            self._buf += data
        else:
            # Nothing buffered (the usual case): parse the bytes as they
            # came, without copying them into the buffer first (a caller's
            # bytearray is copied: the buffer is edited in place).
            self._buf = data if type(data) is bytes else bytearray(data)
        try:
            # Each step returns True when it handed over to the other one
            # with bytes left to parse.
            while self._receive_fast() if self._fast else self._receive_wsproto():
                if self._input_closed or self._closed_now():
                    break
        except ParseFailed as exc:
            reason = str(exc)
            if reason == "error in extension":
                reason = _REASONS.get(exc.code, reason)
                if exc.code == CloseReason.MESSAGE_TOO_BIG:
                    reason = f"message larger than {self.max_length} bytes"
            self._fail(int(exc.code), reason)

    def _closed_now(self) -> bool:
        # A method, so that mypy does not narrow ``state`` across the calls
        # that change it.
        return self.state is ReadyState.CLOSED

    def _receive_fast(self) -> bool:
        """Parse the whole, unfragmented frames at the start of the buffer.

        Stops at an incomplete frame (keeping it for the next call), once
        the messages parsed reach :attr:`batch_size` (keeping the rest, and
        setting :attr:`more`), or at the first frame it does not take (a
        fragment, a Close, anything invalid): that frame and the rest go to
        wsproto, which returns True.
        """
        buf = self._buf
        end = len(buf)
        pos = 0
        client = self.client
        deflate = self._deflate
        events = self._events
        while pos < end:
            first = buf[pos]
            opcode = SIMPLE.get(first)
            if opcode is None:
                if deflate is None or first not in _COMPRESSED:
                    return self._hand_over(pos)
                opcode = first & 0x0F
            head = parse_header(buf, pos)
            if head is None:
                if opcode & 0x8 and end - pos >= 2 and buf[pos + 1] & 0x7F > 125:
                    # A control frame with a 16/64-bit length: wsproto fails
                    # it now, without waiting for the rest of the header.
                    return self._hand_over(pos)
                break
            size, length, masked = head
            if not size or masked == client or (
                length > 125 if opcode & 0x8 else length > self.max_length
            ):
                return self._hand_over(pos)  # wsproto reports the error
            if masked:
                size += 4
            start = pos + size
            if end - start < length:
                if opcode == _TEXT and not first & 0x40 and \
                        not self._text_prefix_valid(buf, start, end, masked):
                    return self._hand_over(pos)  # fail fast, as wsproto does
                break
            self._text_checked = 0
            if length >= _LARGE:
                # Through a view: one copy of a large payload, not two.
                with memoryview(buf) as view:
                    if masked:
                        payload = mask(view[start:start + length], bytes(view[start - 4:start]))
                    else:
                        payload = bytes(view[start:start + length])
            elif masked:
                payload = mask(buf[start:start + length], buf[start - 4:start])
            else:
                payload = bytes(buf[start:start + length])
            if opcode & 0x8:  # ping or pong
                if opcode == _PING:
                    if self.state is ReadyState.OPEN:
                        self._queue(serialize(_PONG, payload, client=client))
                    events.append(PingReceived(payload))
                else:
                    events.append(PongReceived(payload))
            else:
                if first & 0x40:
                    assert deflate is not None
                    data = self._inflate(deflate, opcode, payload)
                elif opcode == _TEXT:
                    try:
                        data = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        return self._hand_over(pos)
                else:
                    data = payload
                events.append(MessageReceived(data))
                self._budget -= _size(data)
                if self._budget <= 0:
                    pos = start + length
                    self.more = pos < end
                    break
            pos = start + length
        self._keep(buf, pos)
        return False

    def _keep(self, buf: bytes | bytearray, pos: int) -> None:
        """Keep the unparsed rest of ``buf`` (from ``pos``) for the next read."""
        if pos == len(buf):
            # A fresh buffer: a bytearray keeps its largest size otherwise,
            # which an idle connection need not carry.
            self._buf = bytearray()
        elif isinstance(buf, bytearray):
            del buf[:pos]
        else:
            self._buf = bytearray(memoryview(buf)[pos:])

    def _text_prefix_valid(self, buf: bytes | bytearray, start: int, end: int,
                           masked: int) -> bool:
        """Check the UTF-8 of the part of an incomplete text frame received
        so far, so that invalid text fails the connection before the rest of
        the frame comes (Autobahn 6.4.3 and 6.4.4 expect it); each byte is
        checked once, however many reads the frame takes."""
        checked = self._text_checked
        if checked == 0:
            self._text_decoder = _utf8_decoder()
        if end - start <= checked:
            return True
        chunk = buf[start + checked:end]
        if masked:
            key = buf[start - 4:start]
            turn = checked % 4
            chunk = bytearray(mask(chunk, key[turn:] + key[:turn]))
        try:
            self._text_decoder.decode(chunk, False)
        except UnicodeDecodeError:
            return False
        self._text_checked = end - start
        return True

    def _hand_over(self, pos: int) -> bool:
        self._text_checked = 0
        self._proto.receive_bytes(bytes(self._buf[pos:]))
        self._buf = bytearray()
        self._fast = False
        return True

    def _inflate(self, deflate: DeflateSession, opcode: int, payload: bytes) -> str | bytes:
        """A whole compressed message (one frame)."""
        data = deflate.inflate_message(payload)
        if isinstance(data, CloseReason):
            raise ParseFailed("error in extension", data)
        if opcode == _BINARY:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseFailed(str(exc), CloseReason.INVALID_FRAME_PAYLOAD_DATA) from exc

    def _receive_wsproto(self) -> bool:
        """Let wsproto parse what it holds; take the input back once it is
        between messages (returns True if bytes came back to parse)."""
        progress = False
        for frame in self._proto.received_frames():
            progress = True
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
                if frame.message_finished and self._batch_full(self._events[-1]):
                    # wsproto keeps the rest; receive_data(b"") goes on.
                    self.more = True
                    return False
            elif opcode is Opcode.PING:
                assert isinstance(frame.payload, bytes)
                if self.state is ReadyState.OPEN:
                    self._queue(bytes(self._proto.pong(frame.payload)))
                self._events.append(PingReceived(frame.payload))
            elif opcode is Opcode.PONG:
                assert isinstance(frame.payload, bytes)
                self._events.append(PongReceived(frame.payload))
            elif opcode is Opcode.CLOSE:
                assert isinstance(frame.payload, tuple)
                self._on_close(*frame.payload)
                return False
        return progress and self._take_back()

    def _batch_full(self, event: Event) -> bool:
        assert type(event) is MessageReceived
        self._budget -= _size(event.data)
        return self._budget <= 0

    def _take_back(self) -> bool:
        """Move wsproto's unparsed bytes back to the fast path if it is
        between frames and messages (it keeps them otherwise). Called only
        after wsproto parsed a frame, so the two never pass the same bytes
        back and forth.

        This reads wsproto internals; if they change, the connection just
        stays on wsproto (tests/test_frames.py notices).
        """
        if self._parts:
            return False
        try:
            decoder = self._proto._frame_decoder
            if decoder.header is not None or self._proto._message_decoder.opcode is not None:
                return False
            buffer = decoder.buffer
            rest = buffer.buffer[buffer.bytes_used:]
            buffer.buffer = bytearray()
            buffer.bytes_used = 0
        except AttributeError:  # pragma: no cover - another wsproto
            return False
        self._buf = rest
        self._fast = True
        return bool(rest)

    def receive_eof(self) -> None:
        """The transport reached end of file (or broke)."""
        if self._deflate is not None:
            self._deflate.release()  # nothing more is inflated or sent
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
        self._events.append(Failed(code, truncate_reason(reason)))

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): queue a Close with
        ``code`` and ignore all further input."""
        if self.state is ReadyState.CLOSED or self._failed:
            return
        reason = truncate_reason(reason)
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
        if isinstance(data, str):
            opcode, payload = _TEXT, data.encode("utf-8")
        else:
            opcode, payload = _BINARY, bytes(data)
        rsv1 = False
        deflate = self._deflate
        if deflate is not None and compress:
            compressed = deflate.compress(payload)
            if compressed is not None:
                payload, rsv1 = compressed, True
        head, body = frame_parts(opcode, payload, rsv1=rsv1, client=self.client)
        if len(body) >= _LARGE:
            # Kept apart, so the payload reaches the transport uncopied
            # (see chunks_to_send).
            self._out += (head, body)
            self._pending += len(head) + len(body)
        else:
            self._queue(head + body)

    @property
    def frame_key(self) -> str | None:
        """What a frame built elsewhere must have been built for to be sent
        here as it is (:meth:`send_frame`): ``"plain"`` for a server without
        compression; for a server with permessage-deflate without context
        takeover, the session's :attr:`~DeflateSession.shared_key` (frames
        from :meth:`build_frame`); ``None`` when each frame is this
        connection's own (a client masks every frame with a fresh key; a
        deflate stream with context takeover depends on what this connection
        compressed before)."""
        if self.client:
            return None
        deflate = self._deflate
        return "plain" if deflate is None else deflate.shared_key

    def build_frame(self, data: str | bytes) -> bytes:
        """The whole frame of one message for :attr:`frame_key`, built
        without changing this connection (any connection with the same key
        can :meth:`send_frame` it). Only valid while :attr:`frame_key` is not
        ``None``."""
        if isinstance(data, str):
            opcode, payload = _TEXT, data.encode("utf-8")
        else:
            opcode, payload = _BINARY, data
        deflate = self._deflate
        compressed = deflate.compress_shared(payload) if deflate is not None else None
        if compressed is None:
            head, body = frame_parts(opcode, payload)
        else:
            head, body = frame_parts(opcode, compressed, rsv1=True)
        return head + body

    def send_frame(self, frame: bytes) -> None:
        """Queue one whole message frame built elsewhere for :attr:`frame_key`
        (the fan-out hub builds each message's frame once for all)."""
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot send in state {self.state.name}")
        self._queue(frame)

    def send_ping(self, payload: bytes = b"") -> None:
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot ping in state {self.state.name}")
        self._queue(serialize(_PING, payload, client=self.client))

    def send_pong(self, payload: bytes = b"") -> None:
        if self.state is not ReadyState.OPEN:
            raise RuntimeError(f"cannot pong in state {self.state.name}")
        self._queue(serialize(_PONG, payload, client=self.client))

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake (no-op once a Close was sent)."""
        if self.state is ReadyState.OPEN:
            self._queue_close(code, reason)
            self.state = ReadyState.CLOSING

    def _queue_close(self, code: int | None, reason: str) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._queue(serialize(_CLOSE, close_payload(code, reason), client=self.client))

    def _queue(self, frame: bytes) -> None:
        self._out.append(frame)
        self._pending += len(frame)

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport, in order (each returned once)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self._pending = 0
        return data

    def chunks_to_send(self) -> list[bytes]:
        """Like :meth:`data_to_send`, as a list: small frames joined, large
        payloads left as they are (each to be written without a copy)."""
        out = self._out
        if len(out) <= 1:
            self._out = []
            self._pending = 0
            return out
        total = self._pending
        self._out = []
        self._pending = 0
        if total < _LARGE:
            return [b"".join(out)]  # no chunk is large
        return coalesce(out)

    @property
    def can_send(self) -> bool:
        """Messages may be sent (only while open)."""
        return self.state is ReadyState.OPEN

    @property
    def pending(self) -> int:
        """Bytes queued and not yet collected by :meth:`data_to_send`."""
        return self._pending

    @property
    def failed(self) -> bool:
        return self._failed

    def close_expected(self) -> bool:
        """Whether this side should now close the transport.

        The server closes TCP once the closing handshake is over (RFC 6455
        section 7.1.1); either side does after failing the connection.
        """
        return self._failed or (self.state is ReadyState.CLOSED and not self.client)


def close_payload(code: int | None, reason: str = "") -> bytes:
    """A Close frame's payload: empty without a code, else the code and the
    reason cut to 123 bytes of whole UTF-8 characters."""
    if code is None:
        return b""
    if code in _LOCAL_ONLY:
        code = 1000
    return code.to_bytes(2, "big") + truncate_reason(reason).encode("utf-8")


def _size(data: str | bytes) -> int:
    """About what a message takes in memory: a ``str`` that is not ASCII
    takes up to 4 bytes per character (``str.isascii()`` is a flag check)."""
    return len(data) if type(data) is bytes or data.isascii() else 4 * len(data)


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")()


def _join(parts: list[str | bytes]) -> str | bytes:
    if isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[arg-type]
    return b"".join(parts)  # type: ignore[arg-type]


def truncate_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of whole UTF-8 characters a Close
    frame has room for."""
    raw = reason.encode("utf-8")
    if len(raw) <= _MAX_REASON_BYTES:
        return reason
    return raw[:_MAX_REASON_BYTES].decode("utf-8", "ignore")
