"""Opening handshakes: recognising upgrade requests and answering them."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .deflate import DeflateSession, NegotiationError, PerMessageDeflate, format_params
from .hixie import challenge_keys
from .http import (
    Request,
    header_tokens,
    http_response,
    parse_extension_header,
    refusal_head,
    validate_header,
)
from .url import request_url

__all__ = [
    "Accepted",
    "Rejected",
    "accept_key",
    "detect_version",
    "is_websocket",
    "normalize_headers",
    "server_handshake",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"

#: Headers the handshake writes itself; user ``headers`` may not set them.
RESERVED_HEADERS = frozenset({
    "upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
    "sec-websocket-extensions", "sec-websocket-version", "sec-websocket-key",
    "content-length", "transfer-encoding",
})


def is_websocket(request: Request) -> bool:
    """A ``GET`` asking to upgrade to ``websocket`` (S-4)."""
    return (
        request.method == "GET"
        and "upgrade" in header_tokens(request.header("connection"))
        and (request.header("upgrade") or "").strip().lower() == "websocket"
    )


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()  # the RFC's hash
    return base64.b64encode(digest).decode("ascii")


def normalize_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    *,
    reserved: frozenset[str] = RESERVED_HEADERS,
) -> list[tuple[str, str]]:
    """Validate user-supplied extra headers.

    Raises:
        ValueError: a name or value would break the message, or the header
            belongs to the protocol (the reference ignores such headers
            silently; we refuse them).
    """
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str]] = []
    for name, value in items:
        # Only optional whitespace (RFC 9110 section 5.6.3) is trimmed: a
        # control character at either end is refused, not silently dropped.
        name, value = name.strip(), str(value).strip(" \t")
        validate_header(name, value)
        if name.lower() in reserved:
            raise ValueError(f"header {name!r} is set by the protocol and cannot be overridden")
        out.append((name, value))
    return out


@dataclass(frozen=True, slots=True)
class Accepted:
    """The handshake succeeded: write :attr:`response` and start framing."""

    response: bytes
    protocol: str
    extensions: str
    sessions: list[DeflateSession] = field(default_factory=list)
    #: ``"hybi-13"``, ``"hixie-76"`` or ``"hixie-75"``.
    version: str = "hybi-13"
    #: hixie-76's two key numbers, answered once the 8 body bytes arrive.
    keys: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The handshake failed: answer with this response and close."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return self.reason.encode("utf-8")

    @property
    def response(self) -> bytes:
        return http_response(self.status, refusal_head(self.headers, self.body), self.body)


def _reject(status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> Rejected:
    return Rejected(status, reason, list(headers))


def detect_version(request: Request) -> str:
    """Which protocol an upgrade request speaks (S-8)."""
    if request.header("sec-websocket-version") is not None or \
            request.header("sec-websocket-key") is not None:
        return "hybi-13"
    if request.header("sec-websocket-key1") is not None or \
            request.header("sec-websocket-key2") is not None:
        return "hixie-76"
    return "hixie-75"


def server_handshake(
    request: Request,
    *,
    protocols: Sequence[str] = (),
    extensions: Sequence[PerMessageDeflate] = (),
    headers: Sequence[tuple[str, str]] = (),
    max_length: int = 2**26 - 1,
    url: str = "",
    allowed_origins: Collection[str] | None = None,
    drafts: bool = False,
) -> Accepted | Rejected:
    """Answer an opening handshake: hybi-13 (RFC 6455 section 4.2), or, if
    ``drafts``, hixie-76 and hixie-75 (no subprotocols, no extensions)."""
    if not is_websocket(request):
        return _reject(400, "Not a WebSocket handshake request: expected a GET with "
                            "'Connection: Upgrade' and 'Upgrade: websocket'")
    if allowed_origins is not None and (request.header("origin") or "") not in allowed_origins:
        # A browser sends Origin on every WebSocket request; refusing unknown
        # ones stops other sites from using a visitor's cookies here.
        return _reject(403, "Origin not allowed")
    draft = detect_version(request)
    if draft != "hybi-13" and not drafts:
        # RFC 6455 section 4.4: name the version we speak.
        return _reject(426, f"{draft} is not accepted here; this server speaks RFC 6455 "
                            f"(Sec-WebSocket-Version: {SUPPORTED_VERSION})",
                       [("Sec-WebSocket-Version", SUPPORTED_VERSION)])
    if draft != "hybi-13":
        return _draft_handshake(request, draft, headers, url or request_url(request,
                                                                            secure=False))
    version = request.header("sec-websocket-version")
    if version is None:
        return _reject(400, "Missing Sec-WebSocket-Version header")
    if version.strip() != SUPPORTED_VERSION:
        return _reject(426, f"Unsupported WebSocket version: {version.strip()}",
                       [("Sec-WebSocket-Version", SUPPORTED_VERSION)])
    key = (request.header("sec-websocket-key") or "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return _reject(400, "Missing or invalid Sec-WebSocket-Key header")

    # S-11: the client's order decides; the first protocol we support wins.
    offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",")]
    protocol = next((p for p in offered if p and p in protocols), "")

    try:
        accepted, sessions = _negotiate(request.header("sec-websocket-extensions"),
                                        extensions, max_length)
    except ValueError as exc:
        return _reject(400, str(exc))

    head = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key))]
    if protocol:
        head.append(("Sec-WebSocket-Protocol", protocol))
    if accepted:
        head.append(("Sec-WebSocket-Extensions", accepted))
    head.extend(headers)
    return Accepted(http_response(101, head), protocol, accepted, sessions)


def _draft_handshake(request: Request, draft: str, headers: Sequence[tuple[str, str]],
                     url: str) -> Accepted | Rejected:
    origin = request.header("origin") or ""
    keys = None
    if draft == "hixie-76":
        key1, key2 = request.header("sec-websocket-key1"), request.header("sec-websocket-key2")
        if not key1 or not key2:
            missing = "Sec-WebSocket-Key1" if not key1 else "Sec-WebSocket-Key2"
            return _reject(400, f"Missing required header: {missing}")
        try:
            keys = challenge_keys(key1, key2)
        except ValueError as exc:
            return _reject(400, str(exc))
        # The 16-byte answer follows once the client's 8 body bytes arrive.
        head = [("Upgrade", "WebSocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Origin", origin), ("Sec-WebSocket-Location", url), *headers]
        status_line = "WebSocket Protocol Handshake"
    else:
        head = [("Upgrade", "WebSocket"), ("Connection", "Upgrade"),
                ("WebSocket-Origin", origin), ("WebSocket-Location", url), *headers]
        status_line = "Web Socket Protocol Handshake"
    if any(c in origin for c in "\r\n\0"):
        return _reject(400, "invalid Origin header")
    return Accepted(http_response(101, head, reason=status_line), "", "", [], draft, keys)


def _negotiate(header: str | None, extensions: Sequence[PerMessageDeflate],
               max_length: int) -> tuple[str, list[DeflateSession]]:
    if not header or not extensions:
        return "", []
    offers = parse_extension_header(header)
    responses: list[str] = []
    sessions: list[DeflateSession] = []
    # S-42: extensions are asked in registration order; each takes the first
    # of its offers it can accept (RFC 7692 section 5: invalid ones are skipped).
    for extension in extensions:
        for name, params in offers:
            if name != extension.name or params is None:
                continue
            try:
                response, agreed = extension.accept(params)
            except NegotiationError:
                continue
            responses.append(format_params(extension.name, response))
            sessions.append(extension.session(agreed, max_length=max_length))
            break
    return ", ".join(responses), sessions
