"""permessage-deflate (RFC 7692): negotiation and a per-connection codec.

:class:`PerMessageDeflate` is the user-facing configuration (one instance may
serve many connections). Negotiation turns it into :class:`DeflateParams`,
and :class:`DeflateSession` is the per-connection codec that plugs into
wsproto's frame protocol. It inflates with a cap, so a small compressed
message that would grow past ``max_length`` is refused without the whole
output ever being allocated.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from wsproto.extensions import Extension as _WsprotoExtension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["DeflateParams", "DeflateSession", "NegotiationError", "PerMessageDeflate"]

_MAX_BITS = 15
_MIN_BITS = 8
#: The defaults, chosen from ``python -m bench.compression`` (see
#: docs/compression.md): a 12-bit window each way and memory level 5 cost
#: ~49 KiB of zlib state per active connection instead of zlib's ~300 KiB,
#: compress chat JSON as well as websockets' defaults (the same settings),
#: and memory level 5 is where incompressible data stops getting slower to
#: deflate. 13 bits compress chat JSON 7 % better for 20 KiB more per
#: connection, which under a busy server's mixed load is most of the gap
#: between a server that fits and one that does not.
DEFAULT_WINDOW_BITS = 12
DEFAULT_MEM_LEVEL = 5
#: Messages shorter than this are sent uncompressed unless the compressor
#: already exists: a compressor costs tens of KiB, and deflating a message
#: this small saves a few bytes at best.
DEFAULT_THRESHOLD = 64
#: Messages this long or longer are sampled before they are compressed
#: (``skip_incompressible``): below it, deflating costs little whatever the
#: data, and short messages compress against the context anyway.
SAMPLE_FROM = 1024
_SAMPLE = 256
#: A sample of 256 bytes with more distinct byte values than this is taken
#: for data that deflate cannot shrink. Random or already compressed bytes
#: show ~162 (256 * (1 - (255/256)**256), give or take 8); text, JSON,
#: base64, UTF-8 in any script and most binary formats well under 128.
_DISTINCT = 144
# The sync-flush marker RFC 7692 section 7.2.1 strips from every message.
_TAIL = b"\x00\x00\xff\xff"
_NO_RSV = RsvBits(False, False, False)
_RSV1 = RsvBits(True, False, False)
#: Below this compressed size, :meth:`DeflateSession.inflate_message` appends
#: the tail and inflates in one call.
_SMALL = 2048

Params = dict[str, "str | None"]


class NegotiationError(ValueError):
    """A permessage-deflate offer or response breaks RFC 7692."""


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What one connection agreed on, from this endpoint's point of view."""

    #: LZ77 window we compress with.
    outbound_bits: int = _MAX_BITS
    #: We reset our compressor after every message.
    outbound_no_context_takeover: bool = False
    #: The peer resets its compressor after every message.
    inbound_no_context_takeover: bool = False
    #: The largest window the peer may compress with (our inflater's window).
    inbound_bits: int = _MAX_BITS


@dataclass(frozen=True, slots=True)
class PerMessageDeflate:
    """The permessage-deflate extension (RFC 7692), for ``extensions=[...]``.

    The defaults are measured (docs/compression.md): this side compresses
    with a 12-bit window at memory level 5, and a server asks a client that
    offers ``client_max_window_bits`` to use at most 12 bits too, so one
    active connection holds ~49 KiB of zlib state instead of ~300 KiB.

    Args:
        level: zlib compression level, 0-9 or -1 for zlib's default (6).
        mem_level: zlib memory level, 1-9; lower uses less memory per connection.
        max_window_bits: largest LZ77 window (8-15) this side compresses with
            (``None``: 12). A client offers it as ``client_max_window_bits``
            (bare when ``None``, leaving the server free to choose).
        request_max_window_bits: ask the peer to compress with at most this
            window. ``None``: a server answers a client that offers
            ``client_max_window_bits`` with 12 (or the client's smaller
            value); a client asks nothing.
        no_context_takeover: reset this side's compressor after every message
            (less memory per idle connection, worse ratio).
        request_no_context_takeover: ask the peer to do the same.
        threshold: messages shorter than this many bytes are sent
            uncompressed, unless this side's compressor already exists
            (context takeover keeps it between messages); ``0`` compresses
            every message.
        skip_incompressible: a message of ``SAMPLE_FROM`` (1 KiB) or more
            whose middle 256 bytes look random (more than 144 distinct
            values: random, encrypted or already compressed data) is sent
            uncompressed: deflate would spend CPU on both sides to make it
            larger. ``False`` compresses every message (above the threshold).
    """

    level: int = zlib.Z_DEFAULT_COMPRESSION
    mem_level: int = DEFAULT_MEM_LEVEL
    max_window_bits: int | None = None
    request_max_window_bits: int | None = None
    no_context_takeover: bool = False
    request_no_context_takeover: bool = False
    threshold: int = DEFAULT_THRESHOLD
    skip_incompressible: bool = True

    name = "permessage-deflate"

    def __post_init__(self) -> None:
        if not -1 <= self.level <= 9:
            raise ValueError(f"level must be -1 to 9, not {self.level!r}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be 1 to 9, not {self.mem_level!r}")
        for option in ("max_window_bits", "request_max_window_bits"):
            bits = getattr(self, option)
            if bits is not None and not _MIN_BITS <= bits <= _MAX_BITS:
                raise ValueError(f"{option} must be 8 to 15, not {bits!r}")
        if self.threshold < 0:
            raise ValueError(f"threshold must be 0 or more, not {self.threshold!r}")

    # -- server side -------------------------------------------------------

    def accept(self, offer: Params) -> tuple[Params, DeflateParams]:
        """Answer one client offer (RFC 7692 section 7.1).

        Returns:
            The response parameters and the agreed settings.

        Raises:
            NegotiationError: the offer is invalid; try the next one.
        """
        _validate(offer, client_side_offer=True)
        response: Params = {}

        # 7.1.1.1: the client may forbid our context takeover.
        outbound_reset = self.no_context_takeover or "server_no_context_takeover" in offer
        if outbound_reset:
            response["server_no_context_takeover"] = None
        # 7.1.1.2: we may ask the client to reset its context.
        inbound_reset = self.request_no_context_takeover or "client_no_context_takeover" in offer
        if inbound_reset:
            response["client_no_context_takeover"] = None

        # 7.1.2.1: the client may cap our window; we answer with what we use.
        own_bits = min(self.max_window_bits or DEFAULT_WINDOW_BITS,
                       _bits(offer, "server_max_window_bits"))
        if "server_max_window_bits" in offer:
            # Only echoed when asked for: Firefox fails the connection on an
            # unsolicited server_max_window_bits (as the reference notes).
            response["server_max_window_bits"] = str(own_bits)

        # 7.1.2.2: we may cap the client's window, but only if it said it can
        # (browsers do); our inflater then needs only that window.
        peer_bits = _MAX_BITS
        if "client_max_window_bits" in offer:
            peer_bits = min(self.request_max_window_bits or DEFAULT_WINDOW_BITS,
                            _bits(offer, "client_max_window_bits"))
            response["client_max_window_bits"] = str(peer_bits)

        return response, DeflateParams(own_bits, outbound_reset, inbound_reset, peer_bits)

    # -- client side -------------------------------------------------------

    def offer(self) -> Params:
        """The parameters a client offers (RFC 7692 section 7.1)."""
        params: Params = {}
        if self.no_context_takeover:
            params["client_no_context_takeover"] = None
        if self.request_no_context_takeover:
            params["server_no_context_takeover"] = None
        # We can always honour a cap on our own window, so say so.
        params["client_max_window_bits"] = (
            str(self.max_window_bits) if self.max_window_bits is not None else None
        )
        if self.request_max_window_bits is not None:
            params["server_max_window_bits"] = str(self.request_max_window_bits)
        return params

    def activate(self, response: Params) -> DeflateParams:
        """Check the server's response to :meth:`offer`.

        Raises:
            NegotiationError: the response breaks what we asked for.
        """
        _validate(response, client_side_offer=False)
        if self.request_no_context_takeover and "server_no_context_takeover" not in response:
            raise NegotiationError("server did not accept server_no_context_takeover")
        if self.request_max_window_bits is not None:
            if "server_max_window_bits" not in response:
                raise NegotiationError("server did not accept server_max_window_bits")
            if _bits(response, "server_max_window_bits") > self.request_max_window_bits:
                raise NegotiationError("server_max_window_bits above the requested value")
        # Compressing with a smaller window than allowed is always valid.
        own_bits = min(self.max_window_bits or DEFAULT_WINDOW_BITS,
                       _bits(response, "client_max_window_bits"))
        outbound_reset = self.no_context_takeover or "client_no_context_takeover" in response
        inbound_reset = "server_no_context_takeover" in response
        return DeflateParams(own_bits, outbound_reset, inbound_reset,
                             _bits(response, "server_max_window_bits"))

    def session(self, params: DeflateParams, *, max_length: int) -> DeflateSession:
        """A codec for one connection."""
        return DeflateSession(self, params, max_length=max_length)


def format_params(name: str, params: Params) -> str:
    """Render one ``Sec-WebSocket-Extensions`` element."""
    parts = [name]
    parts.extend(key if value is None else f"{key}={value}" for key, value in params.items())
    return "; ".join(parts)


_KNOWN = ("server_no_context_takeover", "client_no_context_takeover",
          "server_max_window_bits", "client_max_window_bits")


def _validate(params: Params, *, client_side_offer: bool) -> None:
    for key, value in params.items():
        if key not in _KNOWN:
            raise NegotiationError(f"unknown permessage-deflate parameter {key!r}")
        if key.endswith("no_context_takeover") and value is not None:
            raise NegotiationError(f"{key} takes no value")
        if key.endswith("max_window_bits"):
            # A bare client_max_window_bits is allowed only in an offer.
            if value is None and (key == "server_max_window_bits" or not client_side_offer):
                raise NegotiationError(f"{key} needs a value")
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
            if value is not None and not (
                value.isascii() and value.isdigit()
                and _MIN_BITS <= int(value) <= _MAX_BITS and value[0] != "0"
            ):
                raise NegotiationError(f"invalid {key} value {value!r}")


def _bits(params: Params, key: str) -> int:
    value = params.get(key)
    return int(value) if value else _MAX_BITS


class DeflateSession(_WsprotoExtension):
    """The per-connection codec, driven by wsproto's frame protocol (for
    fragmented messages) and by the core's fast path (whole frames:
    :meth:`compress` and :meth:`inflate_message`).

    zlib state exists only while it is needed: each direction's codec is
    created by the first message that uses it, dropped after every message
    when that direction has no context takeover, and dropped by
    :meth:`release` when the connection ends.
    """

    name = "permessage-deflate"

    def __init__(self, config: PerMessageDeflate, params: DeflateParams, *,
                 max_length: int) -> None:
        self._level = config.level
        self._mem_level = config.mem_level
        self._threshold = config.threshold
        self._sample = SAMPLE_FROM if config.skip_incompressible else 0
        self._params = params
        self._outbound_reset = params.outbound_no_context_takeover
        self._inbound_reset = params.inbound_no_context_takeover
        self._max_length = max_length
        # zlib refuses an 8-bit window for raw deflate streams; 9 is the
        # smallest it builds, and inflaters cope (the reference does the same).
        # The inflater takes 9 for 8 too: a peer whose zlib made the same
        # substitution still inflates.
        self._outbound_wbits = -max(params.outbound_bits, 9)
        self._inbound_wbits = -max(params.inbound_bits, 9)
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        # For compress_shared (the hub's frame built once for many connections).
        self._zlib_args = (config.level, zlib.DEFLATED, self._outbound_wbits, config.mem_level)
        self._inbound_compressed = False
        # The frame being read is a control frame: a Ping or Pong between the
        # fragments of a compressed message is never inflated (RFC 7692 6.1).
        self._inbound_control = False
        # The message being sent goes out uncompressed (all its frames).
        self._outbound_raw = False
        self._inflated = 0
        #: Set by the core to send the next message uncompressed.
        self.skip_next = False

    @property
    def params(self) -> DeflateParams:
        return self._params

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:  # negotiation happens outside wsproto
        return False

    def release(self) -> None:
        """Drop both directions' zlib state (the connection is over)."""
        self._compressor = None
        self._decompressor = None

    # -- inbound -----------------------------------------------------------

    def frame_inbound_header(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                             rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        self._inbound_control = opcode.iscontrol()
        if self._inbound_control:
            return _NO_RSV  # RSV1 on a control frame is a protocol error
        if opcode is Opcode.CONTINUATION:
            if rsv.rsv1:  # RFC 7692 section 6.1: only the first frame may set it
                return CloseReason.PROTOCOL_ERROR
            return _NO_RSV
        self._inbound_compressed = rsv.rsv1
        self._inflated = 0
        return _RSV1

    def frame_inbound_payload_data(self, proto: FrameDecoder | FrameProtocol,
                                   data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or self._inbound_control:
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol,
                               fin: bool) -> bytes | CloseReason | None:
        if not self._inbound_compressed or self._inbound_control or not fin:
            return None
        tail = self._inflate(_TAIL)
        self._inbound_compressed = False
        if self._inbound_reset:
            self._decompressor = None  # the peer starts afresh; free the window
        return tail

    def inflate_message(self, payload: bytes) -> bytes | CloseReason:
        """A whole compressed message (one frame, FIN and RSV1 set)."""
        self._inflated = 0
        if len(payload) < _SMALL:
            # One zlib call instead of two; the copy is cheaper than the call.
            out = self._inflate(payload + _TAIL)
        else:
            out = self._inflate(payload)
            if not isinstance(out, CloseReason):
                tail = self._inflate(_TAIL)
                if isinstance(tail, CloseReason):
                    out = tail
                elif tail:
                    out += tail
        if self._inbound_reset:
            self._decompressor = None
        return out

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(self._inbound_wbits)
        room = self._max_length - self._inflated
        try:
            # Ask for one byte more than fits: getting it proves the message
            # is too large without inflating the rest.
            out = decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        self._inflated += len(out)
        return out

    # -- outbound ----------------------------------------------------------

    def compress(self, data: bytes) -> bytes | None:
        """A whole message's payload compressed, or ``None`` to send it as
        it is (:attr:`skip_next`, shorter than the threshold while no
        compressor exists, or sampled as incompressible)."""
        if self.skip_next:
            self.skip_next = False
            return None
        if self._looks_incompressible(data):
            return None
        compressor = self._compressor
        if compressor is None:
            if len(data) < self._threshold:
                return None
            compressor = self._new_compressor()
        out = compressor.compress(data)
        # A sync flush always ends with the marker (RFC 7692 section 7.2.1):
        # strip it from the flush's output, which is short, so the message
        # is copied once (not twice) on its way out.
        tail = compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
        if self._outbound_reset:
            self._compressor = None
        return out + tail if out else tail

    def _looks_incompressible(self, data: bytes) -> bool:
        """``skip_incompressible``: long enough to sample, and random-looking."""
        return bool(self._sample) and len(data) >= self._sample and looks_incompressible(data)

    def _new_compressor(self) -> zlib._Compress:
        compressor = self._compressor = zlib.compressobj(
            self._level, zlib.DEFLATED, self._outbound_wbits, self._mem_level)
        return compressor

    def frame_outbound(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                       rsv: RsvBits, data: bytes, fin: bool) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol():
            return rsv, data
        first = opcode is not Opcode.CONTINUATION
        if first:
            self._outbound_raw = self.skip_next
            self.skip_next = False
        if self._outbound_raw:
            return rsv, data
        compressor = self._compressor or self._new_compressor()
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(_TAIL):
            out = out[:-4]
        if fin and self._outbound_reset:
            self._compressor = None
        return RsvBits(first, rsv.rsv2, rsv.rsv3), out

    # -- one compressed message for many connections -------------------------

    @property
    def shared_key(self) -> str | None:
        """What a message compressed by :meth:`compress_shared` depends on,
        as a key: connections with equal keys can be sent the same
        compressed frame. ``None`` with context takeover, where each
        message depends on what this connection compressed before."""
        if not self._params.outbound_no_context_takeover:
            return None
        level, _, wbits, mem_level = self._zlib_args
        return f"deflate:{-wbits}:{level}:{mem_level}:{self._threshold}:{self._sample}"

    def compress_shared(self, payload: bytes) -> bytes | None:
        """A whole message's payload compressed afresh (RFC 7692 section 7.2.1,
        the tail stripped), without touching this connection's compressor:
        the same bytes any connection with an equal :attr:`shared_key` would
        send. ``None``: shorter than the threshold or sampled as
        incompressible, sent as it is (as :meth:`compress` does without
        context takeover, where no compressor outlives a message). Only valid
        without context takeover."""
        if len(payload) < self._threshold or self._looks_incompressible(payload):
            return None
        compressor = zlib.compressobj(*self._zlib_args)
        out = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out


def looks_incompressible(data: bytes) -> bool:
    """Whether 256 bytes from the middle of ``data`` (at least that long)
    have so many distinct values that deflate would not shrink it."""
    start = (len(data) - _SAMPLE) // 2
    return len(set(data[start:start + _SAMPLE])) > _DISTINCT
