"""HTTP request model and header grammar shared by the WebSocket and
EventSource handshakes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import h11

__all__ = ["DEFAULT_MAX_HEAD_SIZE", "Headers", "Request", "check_head_size", "error_response",
           "head_error", "header_tokens", "http_response", "parse_extension_header",
           "parse_upgrade_head", "refusal_head", "status_phrase", "validate_header"]

#: The largest head read by default (request line or status line, and
#: headers), by the server and by the clients: a peer that sends an endless
#: head gets a clear error instead of growing memory.
DEFAULT_MAX_HEAD_SIZE = 16384

#: RFC 7230 section 3.2.6 ``tchar``.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: RFC 9110 section 5.5: CTL characters but HTAB may not appear in a field value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Headers(Sequence[tuple[str, str]]):
    """Header fields, in order: a sequence of ``(name, value)`` pairs that is
    also a case-insensitive multi-mapping. Immutable and hashable.

    ::

        headers["Host"]                  # the value; repeated fields joined with ", "
        "sec-websocket-key" in headers   # by name, in any case
        headers.get("Origin", "")        # like dict.get
        headers.get_all("Set-Cookie")    # every value, in order
        for name, value in headers: ...  # the pairs, as sent
        headers[0]                       # the first pair

    It equals any tuple or list of the same pairs.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = fields.items() if isinstance(fields, Mapping) else fields
        self._fields = tuple((str(name), str(value)) for name, value in items)

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    @overload
    def __getitem__(self, key: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, key: slice) -> Headers: ...
    @overload
    def __getitem__(self, key: str) -> str: ...

    def __getitem__(self, key: int | slice | str) -> tuple[str, str] | Headers | str:
        if isinstance(key, str):
            value = self.get(key)
            if value is None:
                raise KeyError(key)
            return value
        if isinstance(key, slice):
            return Headers(self._fields[key])
        return self._fields[key]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return self.get(item) is not None
        return item in self._fields

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._fields == other._fields
        if isinstance(other, (tuple, list)):
            return self._fields == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name`` (any case); repeated fields joined with ``", "``."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (any case), in order."""
        name = name.lower()
        return [value for key, value in self._fields if key.lower() == name]

    def keys(self) -> list[str]:
        """The field names, each once, in the order they first appear."""
        return list(dict.fromkeys(name for name, _ in self._fields))

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed HTTP request head (and, for plain requests, its body).

    Header names are lower-case; values keep their case. Repeated headers are
    kept in order. :attr:`headers` is a :class:`Headers`: it iterates as
    ``(name, value)`` pairs and looks names up in any case.
    """

    method: str
    target: str
    headers: Headers = Headers()
    http_version: str = "1.1"
    body: bytes = field(default=b"", repr=False)

    @classmethod
    def from_h11(cls, request: h11.Request, body: bytes = b"") -> Request:
        """Build a :class:`Request` from an :class:`h11.Request`."""
        return cls(
            method=request.method.decode("ascii"),
            target=request.target.decode("latin-1"),
            headers=Headers(
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in request.headers
            ),
            http_version=request.http_version.decode("ascii"),
            body=body,
        )

    @classmethod
    def build(
        cls,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """Build a request by hand (tests, adapters for other servers)."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        return cls(method, target, Headers((k.lower(), v) for k, v in items), body=body)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name``; repeated headers are joined with ``", "``."""
        name = name.lower()
        found: str | None = None
        for key, value in self.headers._fields:
            if key == name:
                found = value if found is None else f"{found}, {value}"
        return default if found is None else found

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


def coerce_request(request: Request | h11.Request) -> Request:
    """Accept either our :class:`Request` or an :class:`h11.Request`."""
    if isinstance(request, Request):
        return request
    return Request.from_h11(request)


#: Reason phrases by status (looked up once: an enum call costs more than
#: the rest of writing a 101).
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def status_phrase(status: int) -> str:
    """The reason phrase for ``status`` (``"Not Found"``); ``""`` for a
    status the standard library does not name."""
    return _PHRASES.get(status, "")


def check_head_size(response: h11.Response | h11.InformationalResponse,
                    max_head_size: int) -> str | None:
    """Why a response head that arrived whole is refused, or ``None``.

    h11's ``max_incomplete_event_size`` bounds a head still arriving; one
    that came in a single read is measured here.
    """
    size = len(response.reason) + 15  # "HTTP/1.1 NNN " and CRLF
    size += sum(len(name) + len(value) + 4 for name, value in response.headers)
    if size > max_head_size:
        return f"response head larger than {max_head_size} bytes"
    return None


def head_error(exc: h11.RemoteProtocolError, max_head_size: int) -> str:
    """What is wrong with a response h11 refused to parse."""
    if exc.error_status_hint == 431:  # h11's buffer bound: the head never ended
        return f"response head larger than {max_head_size} bytes"
    return f"invalid HTTP response: {exc}"


def http_response(status: int, headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                  *, reason: str | None = None) -> bytes:
    """Serialise an HTTP/1.1 response head (and body)."""
    if reason is None:
        reason = status_phrase(status)
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


def refusal_head(headers: Sequence[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """The head of a response refusing an upgrade: ``headers`` plus a
    length, ``Connection: close`` and (unless given) a plain-text type."""
    head = [("Content-Length", str(len(body))), ("Connection", "close"), *headers]
    if not any(name.lower() == "content-type" for name, _ in headers):
        head.insert(0, ("Content-Type", "text/plain; charset=utf-8"))
    return head


def error_response(status: int, text: str, *, head_only: bool = False) -> bytes:
    """A plain-text error response (``text`` and a line break), with
    ``Connection: close``; ``head_only`` leaves the body out (for a
    ``HEAD`` request), not its length."""
    body = f"{text}\n".encode()
    return http_response(status, refusal_head([], body), b"" if head_only else body)


#: What a request head may hold, for :func:`parse_upgrade_head`: visible
#: ASCII, obs-text, spaces, tabs and line ends.
_UNUSUAL_BYTE = re.compile(rb"[^\x21-\x7e\x80-\xff \t\r\n]")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_TOKEN_BYTES = "".join(sorted(_TCHAR)).encode("ascii")
#: Headers whose values are the same for many clients (not keys, cookies).
_SHARED_VALUES = frozenset({
    "host", "upgrade", "connection", "origin", "user-agent", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "accept-encoding", "accept-language",
    "pragma", "cache-control",
})


#: Strings of request heads, kept once (see _shared); cleared when full.
_STRINGS: dict[str, str] = {}
_STRINGS_MAX = 1024
_SHARED_LENGTH = 100


def _shared(text: str) -> str:
    """``text``, as the one copy of it the parser has seen before: every
    open connection keeps its request, and header names and many values
    repeat from client to client. Not ``sys.intern()``, whose strings are
    immortal on Python 3.12 (values a client chose would never be freed);
    this cache is bounded and starts over when full."""
    if len(text) > _SHARED_LENGTH:
        return text
    known = _STRINGS.get(text)
    if known is None:
        if len(_STRINGS) >= _STRINGS_MAX:
            _STRINGS.clear()
        known = _STRINGS[text] = text
    return known


def parse_upgrade_head(data: bytes, max_size: int) -> tuple[Request, bytes] | None:
    """The request and the bytes after its head, if ``data`` starts with
    a plain upgrade request; otherwise None, and h11 decides.

    This is the server's fast path for the common case, a WebSocket
    opening: ``GET`` over HTTP/1.1, the whole head in ``data``, CRLF line
    ends, one ``Host``, no body framing (``Content-Length``,
    ``Transfer-Encoding``), ``Connection`` naming ``upgrade`` and a
    non-empty ``Upgrade``, no folded lines and no control characters. The
    grammar is a subset of what h11 accepts, so whenever this returns a
    request, h11 parses the same request (the same ``Request.from_h11()``),
    pauses at the same byte and raises nothing: tests/test_properties.py
    checks it. ``max_size`` bounds the head as the server measures it
    (``None`` above it: h11's path answers 431).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"GET ") or _UNUSUAL_BYTE.search(data, 0, end):
        return None
    lines = data[:end].split(b"\r\n")
    line = lines[0]
    if not line.endswith(b" HTTP/1.1") or not _TARGET.fullmatch(line, 4, len(line) - 9):
        return None
    target = line[4:-9]
    size = len(target) + 15  # as the server measures h11's request line
    fields: list[tuple[str, str]] = []
    hosts = 0
    for line in lines[1:]:
        raw_name, colon, raw_value = line.partition(b":")
        if not colon or not raw_name or raw_name.translate(None, _TOKEN_BYTES) or \
                b"\r" in raw_value or b"\n" in raw_value:
            return None
        name = raw_name.decode("ascii").lower()
        value = raw_value.strip(b" \t")
        size += len(name) + len(value) + 4
        if name == "host":
            hosts += 1
        elif name in ("content-length", "transfer-encoding"):
            return None
        text = value.decode("latin-1")
        fields.append((_shared(name), _shared(text) if name in _SHARED_VALUES else text))
    if hosts != 1 or size > max_size:
        return None
    headers = Headers(fields)
    if "upgrade" not in header_tokens(headers.get("connection")) or \
            not header_tokens(headers.get("upgrade")):
        return None
    return Request("GET", target.decode("ascii"), headers), data[end + 4:]


def header_tokens(value: str | None) -> list[str]:
    """Split a comma-separated header into lower-case tokens (``Connection``)."""
    if not value:
        return []
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def validate_header(name: str, value: str) -> None:
    """Reject header names and values that RFC 9110 does not allow.

    A name is a token (section 5.1). A value (section 5.5) is visible
    characters, spaces, tabs and, past ASCII, ``obs-text``; so no control
    character but the tab: not CR, LF or NUL, which would break the
    framing, nor the others (VT, FF, ESC, DEL...), which h11 refuses with an
    error that repeats the value. The message never repeats the value,
    which may be a credential.

    Raises:
        ValueError: the name is not a token, or the value holds a control
            character other than tab.
    """
    if not name or not set(name) <= _TCHAR:
        raise ValueError(f"invalid header name: {name!r}")
    if _CONTROL.search(value):
        kind = "a line break or NUL" if any(c in value for c in "\r\n\0") else \
            "a control character other than tab"
        raise ValueError(f"invalid value for header {name!r}: it contains {kind}")


def parse_extension_header(value: str) -> list[tuple[str, dict[str, str | None] | None]]:
    """Parse ``Sec-WebSocket-Extensions`` (RFC 6455 section 9.1).

    Returns one ``(name, params)`` pair per offer, in order. A parameter
    without a value maps to ``None``; quoted strings are unquoted. An offer
    that repeats a parameter is invalid (RFC 7692 section 5) and comes back
    with ``params`` set to ``None``, so the caller can skip it.

    Written as a single left-to-right scan so that hostile input costs linear
    time (a regex here was CVE-2020-7662 in the Node ecosystem).

    Raises:
        ValueError: the header does not follow the grammar.
    """
    parser = _Scanner(value)
    offers: list[tuple[str, dict[str, str | None] | None]] = []
    while True:
        parser.skip_space()
        if parser.at_end():
            break
        if parser.peek() == ",":  # empty list elements are allowed (RFC 7230 7)
            parser.advance()
            continue
        name = parser.token()
        params: dict[str, str | None] = {}
        duplicated = False
        parser.skip_space()
        while parser.peek() == ";":
            parser.advance()
            parser.skip_space()
            key = parser.token().lower()
            parser.skip_space()
            param: str | None = None
            if parser.peek() == "=":
                parser.advance()
                parser.skip_space()
                param = parser.quoted() if parser.peek() == '"' else parser.token()
                parser.skip_space()
            duplicated = duplicated or key in params
            params[key] = param
        offers.append((name.lower(), None if duplicated else params))
        if parser.at_end():
            break
        if parser.peek() != ",":
            raise ValueError(f"invalid Sec-WebSocket-Extensions header: {value!r}")
        parser.advance()
    return offers


class _Scanner:
    __slots__ = ("_pos", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def at_end(self) -> bool:
        return self._pos >= len(self._text)

    def peek(self) -> str:
        return self._text[self._pos] if self._pos < len(self._text) else ""

    def advance(self) -> None:
        self._pos += 1

    def skip_space(self) -> None:
        while self.peek() in (" ", "\t") and not self.at_end():
            self._pos += 1

    def token(self) -> str:
        start = self._pos
        while not self.at_end() and self._text[self._pos] in _TCHAR:
            self._pos += 1
        if start == self._pos:
            raise ValueError(f"expected a token at offset {start} in {self._text!r}")
        return self._text[start : self._pos]

    def quoted(self) -> str:
        self._pos += 1  # opening quote
        out: list[str] = []
        while not self.at_end():
            char = self._text[self._pos]
            self._pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                if self.at_end():
                    break
                char = self._text[self._pos]
                self._pos += 1
            out.append(char)
        raise ValueError(f"unterminated quoted string in {self._text!r}")
