"""The client side of the opening handshake, and proxy CONNECT requests.

Builds the request bytes and checks the server's response; no I/O.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .deflate import DeflateSession, NegotiationError, PerMessageDeflate, format_params
from .http import header_tokens, parse_extension_header
from .server_handshake import accept_key
from .url import Target

__all__ = ["ClientHandshake", "HandshakeFailure", "check_protocols", "connect_request",
           "encode_headers", "new_key"]

#: Headers the client writes itself; user ``headers`` may not set them.
CLIENT_RESERVED = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-protocol", "sec-websocket-extensions", "content-length",
    "transfer-encoding",
})


#: A subprotocol is an HTTP token (RFC 6455 section 4.1, item 10).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HandshakeFailure(ValueError):
    """The server's response does not complete the handshake."""


def encode_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Header names (tokens, so ASCII) and values (UTF-8) as h11 takes them;
    a ``str`` value past ASCII would make h11 raise ``UnicodeEncodeError``."""
    return [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]


def check_protocols(protocols: Sequence[str]) -> list[str]:
    """The subprotocols to offer, each an HTTP token.

    Raises:
        ValueError: one is not (a space, a comma, a control character...).
    """
    for protocol in protocols:
        if not isinstance(protocol, str) or not _TOKEN.fullmatch(protocol):
            raise ValueError(f"invalid subprotocol {protocol!r}: it must be an HTTP token")
    return list(protocols)


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded
    (RFC 6455 section 4.1, item 7)."""
    return base64.b64encode(os.urandom(16)).decode()


@dataclass(slots=True)
class ClientHandshake:
    """One client opening handshake (RFC 6455 section 4.1)."""

    target: Target
    protocols: Sequence[str] = ()
    extensions: Sequence[PerMessageDeflate] = ()
    #: Not in the repr: they may hold credentials.
    headers: Sequence[tuple[str, str]] = field(default=(), repr=False)
    max_length: int = 2**26 - 1
    key: str = field(default_factory=new_key)

    def request_headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Host", self.target.authority),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self.protocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(self.protocols)))
        if self.extensions:
            offers = ", ".join(format_params(ext.name, ext.offer()) for ext in self.extensions)
            headers.append(("Sec-WebSocket-Extensions", offers))
        auth = self.target.basic_auth()
        if auth is not None and not any(k.lower() == "authorization" for k, _ in self.headers):
            headers.append(("Authorization", auth))
        headers.extend(self.headers)
        return headers

    def check_response(self, status: int, headers: Sequence[tuple[str, str]]
                       ) -> tuple[str, str, list[DeflateSession]]:
        """Validate the response head (S-19).

        Returns:
            The subprotocol, the extensions header and the extension sessions.

        Raises:
            HandshakeFailure: it does not complete this handshake.
        """
        def get(name: str) -> str | None:
            values = [v for k, v in headers if k.lower() == name]
            return ", ".join(values) if values else None

        if status != 101:
            raise HandshakeFailure(f"Unexpected response code: {status}")
        if (get("upgrade") or "").strip().lower() != "websocket":
            raise HandshakeFailure("'Upgrade' header value is not 'websocket'")
        # A token-list check: 'Connection: keep-alive, Upgrade' is valid
        # (the reference wants exactly 'Upgrade').
        if "upgrade" not in header_tokens(get("connection")):
            raise HandshakeFailure("'Connection' header value is not 'Upgrade'")
        if (get("sec-websocket-accept") or "").strip() != accept_key(self.key):
            raise HandshakeFailure("Sec-WebSocket-Accept mismatch")

        protocol = (get("sec-websocket-protocol") or "").strip()
        if protocol and protocol not in self.protocols:
            raise HandshakeFailure("Sec-WebSocket-Protocol mismatch")

        accepted = get("sec-websocket-extensions") or ""
        sessions: list[DeflateSession] = []
        if accepted:
            try:
                responses = parse_extension_header(accepted)
            except ValueError as exc:
                raise HandshakeFailure(f"invalid Sec-WebSocket-Extensions: {exc}") from exc
            offered = {ext.name: ext for ext in self.extensions}
            for name, params in responses:
                extension = offered.pop(name, None)
                if extension is None:
                    raise HandshakeFailure(f"Sec-WebSocket-Extensions: {name!r} was not "
                                           "offered or is repeated")
                if params is None:
                    raise HandshakeFailure(f"Sec-WebSocket-Extensions: {name} repeats a "
                                           "parameter")
                try:
                    agreed = extension.activate(params)
                except NegotiationError as exc:
                    raise HandshakeFailure(f"Sec-WebSocket-Extensions: {exc}") from exc
                sessions.append(extension.session(agreed, max_length=self.max_length))
        return protocol, accepted, sessions


def connect_request(target: Target, *, auth: str | None,
                    headers: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Headers of an HTTP CONNECT to ``target`` through a proxy (S-22)."""
    out = [("Host", target.connect_authority), ("Connection", "keep-alive"),
           ("Proxy-Connection", "keep-alive")]
    if auth is not None:
        out.append(("Proxy-Authorization", auth))
    out.extend(headers)
    return out
