"""URLs: parsing the ones clients are given (:class:`Target`), the request
target sent for one, keeping credentials out of messages, and the URL a
server-side object reports for the request it answers."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from .http import Request

__all__ = ["Target", "is_secure_request", "parse_url", "public_url", "redact_url",
           "request_target", "request_url"]

#: What a host may hold once IDNA-encoded: a reg-name (RFC 3986 section
#: 3.2.2: unreserved, pct-encoded, sub-delims) or an IPv6 literal (hex
#: digits, ":" and "." and, for a zone, "%25" and unreserved characters).
_HOST = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:]+")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a ``ws://``, ``wss://``, ``http://`` or ``https://`` URL points."""

    secure: bool
    host: str
    port: int
    resource: str = "/"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.secure else 80)

    @property
    def authority(self) -> str:
        """``host[:port]`` as in a Host header (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"

    @property
    def connect_authority(self) -> str:
        """``host:port`` as in a CONNECT request target (port always present)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def basic_auth(self) -> str | None:
        """``Basic <credentials>`` from the URL's userinfo, if it has any."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_url(url: str, *, schemes: tuple[str, str] = ("ws", "wss")) -> Target:
    """Split a WebSocket URL (or, with ``schemes=("http", "https")``, a proxy URL).

    A host name past ASCII is IDNA-encoded, as browsers do. The error never
    repeats the URL's userinfo, even when the URL is too broken to say
    where it is.

    Raises:
        ValueError: another scheme, no host or a host that cannot be one,
            or a port out of range.
    """
    kind = "WebSocket" if schemes == ("ws", "wss") else "proxy"
    invalid = ValueError(f"{redact_url(url)} is not a valid {kind} URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number, a broken IPv6 literal
        raise invalid from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in schemes or not host:
        raise invalid
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise invalid from None
    if not _HOST.fullmatch(host):
        raise invalid
    secure = scheme == schemes[1]
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return Target(
        secure=secure,
        host=host,
        port=port or (443 if secure else 80),
        resource=resource,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def public_url(url: str) -> str:
    """The URL without its userinfo (so credentials never reach logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_url(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def redact_url(url: str) -> str:
    """``url`` with ``***`` for anything that may be userinfo, for the
    message about a URL that does not parse: everything from ``//`` to
    the last ``@`` (a password may hold ``/`` or ``#``, and then no parser
    agrees on where the host starts)."""
    start = url.find("//")
    start = 0 if start < 0 else start + 2
    at = url.rfind("@", start)
    return url if at < 0 else url[:start] + "***" + url[at:]


def request_target(target: Target) -> bytes:
    """The request target: path and query, with anything outside printable
    ASCII (spaces, non-ASCII characters, controls) percent-encoded as UTF-8,
    as browsers do."""
    return "".join(c if "!" <= c <= "~" else quote(c) for c in target.resource).encode("ascii")


def is_secure_request(request: Request) -> bool:
    """Whether proxy headers say the client used TLS (S-9)."""
    return (
        (request.header("https") or "").lower() == "on"
        or (request.header("x-forwarded-ssl") or "").lower() == "on"
        or (request.header("x-forwarded-scheme") or "").lower() == "https"
        or (request.header("x-forwarded-proto") or "").lower() == "https"
    )


def request_url(request: Request, *, secure: bool, websocket: bool = True) -> str:
    """``ws:``/``wss:`` (or ``http:``/``https:``) + ``//`` + Host + target."""
    secure = secure or is_secure_request(request)
    scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
    return f"{scheme}://{request.header('host') or ''}{request.target}"
