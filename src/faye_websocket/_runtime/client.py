"""Opening a client connection: TCP, TLS, proxy CONNECT and the handshake."""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11
from anyio.streams.tls import TLSStream

from .._core.client_handshake import ClientHandshake, connect_request, encode_headers
from .._core.http import DEFAULT_MAX_HEAD_SIZE, check_head_size, head_error
from .._core.server_handshake import normalize_headers
from .._core.url import Target, parse_url, redact_url, request_target
from ..exceptions import ConnectError, HandshakeError, ProxyError
from .streams import close_stream

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

__all__ = ["MAX_ERROR_BODY", "MAX_INFORMATIONAL", "NoResponse", "Proxy", "open_stream",
           "proxy_from_env", "read_error_body", "read_head", "resolve_proxy", "run_handshake",
           "tls_context"]

#: How much of a refused response's body an error keeps.
MAX_ERROR_BODY = 65536
#: Informational (1xx) responses a client reads before the real one. A
#: server sends one ``100 Continue`` or a few ``103 Early Hints`` at most;
#: one that sends them without end would keep the client parsing until
#: ``open_timeout``.
MAX_INFORMATIONAL = 10
#: Headers a proxy CONNECT writes itself.
_PROXY_RESERVED = frozenset({"host", "proxy-authorization", "connection", "proxy-connection"})


#: Proxy URL schemes: HTTP CONNECT, and SOCKS through python-socks
#: (``socks5h`` and ``socks4a`` leave the name lookup to the proxy).
_SOCKS = ("socks5", "socks5h", "socks4", "socks4a")


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy: HTTP reached with CONNECT (``proxy={"origin": ..., ...}``),
    or SOCKS (``proxy="socks5://user:pass@host:1080"``)."""

    origin: Target
    #: Not in the repr: they may hold credentials.
    headers: list[tuple[str, str]] = field(default_factory=list, repr=False)
    tls: ssl.SSLContext | None = None
    #: ``"http"`` (CONNECT over http or https), or one of the SOCKS schemes.
    scheme: str = "http"


def tls_context(tls: ssl.SSLContext | None, ca: str | None) -> ssl.SSLContext | None:
    """The ``tls``/``ca`` options as one context (``None``: anyio's default,
    which verifies certificates and host names against the system's CAs).

    Raises:
        ValueError: both were given.
    """
    if tls is not None and ca is not None:
        raise ValueError("pass either tls or ca, not both")
    return ssl.create_default_context(cafile=ca) if ca is not None else tls


def resolve_proxy(proxy: Mapping[str, Any] | str | None, target: Target) -> Proxy | None:
    """Turn the ``proxy`` option into a :class:`Proxy` (or ``None``).

    Raises:
        ValueError: an unknown key or an invalid origin.
    """
    if proxy is None:
        return None
    if proxy == "env":
        return proxy_from_env(target)
    if isinstance(proxy, str):
        proxy = {"origin": proxy}
    unknown = set(proxy) - {"origin", "headers", "tls"}
    if unknown:  # S-3: unknown options are errors, not silently ignored
        raise ValueError(f"Unrecognized proxy option: {sorted(unknown)[0]}")
    url = str(proxy["origin"])
    scheme = url.partition("://")[0].lower()
    if scheme in _SOCKS:
        if proxy.get("headers") or proxy.get("tls") is not None:
            raise ValueError("a SOCKS proxy takes neither headers nor tls")
        origin = parse_url("http" + url[len(scheme):], schemes=("http", "https"))
        if origin.resource != "/":
            raise ValueError(f"{redact_url(url)} is not a valid proxy URL")
        return Proxy(origin, scheme=scheme)
    origin = parse_url(url, schemes=("http", "https"))
    headers = normalize_headers(proxy.get("headers"), reserved=_PROXY_RESERVED)
    tls = proxy.get("tls")
    if tls is not None and not isinstance(tls, ssl.SSLContext):
        raise TypeError("proxy['tls'] must be an ssl.SSLContext")
    return Proxy(origin, headers, tls)


def proxy_from_env(target: Target) -> Proxy | None:
    """The proxy ``https_proxy``/``http_proxy``/``all_proxy`` name for
    ``target``, unless ``no_proxy`` excludes its host."""
    proxies = urllib.request.getproxies_environment()
    if _bypassed(target, proxies.get("no", "")):
        return None
    # (urllib reads ALL_PROXY / all_proxy as "all"; a socks5:// one is used too.)
    origin = proxies.get("https" if target.secure else "http") or proxies.get("all")
    if not origin:
        return None
    if "://" not in origin:
        origin = "http://" + origin
    return resolve_proxy({"origin": origin}, target)


def _bypassed(target: Target, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (``*``, or host names, domain suffixes and IPs,
    each optionally with ``:port``) excludes ``target``."""
    host = target.host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and port != str(target.port):
            continue
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


async def open_stream(target: Target, *, tls: ssl.SSLContext | None,
                      proxy: Proxy | None,
                      max_head_size: int = DEFAULT_MAX_HEAD_SIZE) -> anyio.abc.ByteStream:
    """Connect to ``target`` (through ``proxy``), with TLS for ``wss://``."""
    if proxy is None:
        return await _connect(target, tls)
    if proxy.scheme != "http":
        stream = await _connect_socks(proxy, target)
        try:
            if target.secure:
                stream = await TLSStream.wrap(stream, hostname=target.host, ssl_context=tls,
                                              standard_compatible=False)
        except ssl.SSLError as exc:
            await close_stream(stream, grace=0)
            raise connect_error(target, exc) from exc
        except BaseException:
            await close_stream(stream, grace=0)
            raise
        return stream
    stream = await _connect(proxy.origin, proxy.tls)
    try:
        await _connect_tunnel(stream, proxy, target, max_head_size)
        if target.secure:
            # TLS to the server inside the tunnel (TLS-in-TLS for an https proxy).
            try:
                stream = await TLSStream.wrap(stream, hostname=target.host, ssl_context=tls,
                                              standard_compatible=False)
            except ssl.SSLError as exc:
                raise connect_error(target, exc) from exc
    except BaseException:
        await close_stream(stream, grace=0)
        raise
    return stream


async def _connect(target: Target, tls: ssl.SSLContext | None) -> anyio.abc.ByteStream:
    try:
        if not target.secure:
            return await anyio.connect_tcp(target.host, target.port)
        # Without a context anyio builds the default one: system CAs, host
        # names checked. SNI is the host name. A WebSocket ends with its
        # Close frames, so a missing TLS close_notify is not an error.
        return await anyio.connect_tcp(target.host, target.port, tls=True, ssl_context=tls,
                                       tls_hostname=target.host,
                                       tls_standard_compatible=False)
    except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
        raise connect_error(target, exc) from exc


async def _connect_socks(proxy: Proxy, target: Target) -> anyio.abc.ByteStream:
    """A stream to ``target`` through a SOCKS proxy (python-socks, the
    ``socks`` extra). The proxy's refusal is a :class:`ProxyError`; not
    reaching the proxy a :class:`ConnectError`."""
    try:
        from python_socks import ProxyConnectionError, ProxyType
        from python_socks import ProxyError as SocksError
        from python_socks.async_.anyio import Proxy as SocksProxy
    except ImportError:
        raise RuntimeError("SOCKS proxies need python-socks: "
                           "pip install 'faye-websocket[socks]'") from None
    kinds = {"socks5": ProxyType.SOCKS5, "socks5h": ProxyType.SOCKS5,
             "socks4": ProxyType.SOCKS4, "socks4a": ProxyType.SOCKS4}
    origin = proxy.origin
    socks = SocksProxy(kinds[proxy.scheme], origin.host, origin.port,
                       username=origin.username, password=origin.password,
                       rdns=proxy.scheme in ("socks5h", "socks4a"))
    where = f"{proxy.scheme}://{origin.connect_authority}"
    try:
        stream: anyio.abc.ByteStream = await socks.connect(target.host, target.port)
    except ProxyConnectionError as exc:  # the proxy itself cannot be reached
        raise connect_error(origin, exc) from exc
    except OSError as exc:
        raise connect_error(origin, exc) from exc
    except Exception as exc:
        # python-socks' ProxyError (a refusal, bad credentials), or its own
        # error for a proxy that hung up in the middle of the negotiation.
        reason = str(exc) if isinstance(exc, SocksError) else "it closed the connection"
        raise ProxyError(f"Can't establish a connection to the server at "
                         f"{target.connect_authority}: the proxy {where} refused: "
                         f"{reason}") from exc
    return stream


def connect_error(target: Target, exc: OSError) -> ConnectError:
    """``exc`` (from connecting to ``target``) as a :class:`ConnectError`
    naming host and port, with the errno of the first failure that has one
    (anyio reports several attempts as one ``OSError`` whose cause holds them)."""
    where = f"{target.host}:{target.port}"
    if isinstance(exc, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return ConnectError(f"TLS handshake with {where} failed: {reason}",
                            host=target.host, port=target.port)
    cause = _with_errno(exc)
    if cause is None:
        reason = str(exc)
    elif cause.errno is not None and cause.errno > 0:
        reason = os.strerror(cause.errno)  # not asyncio's "Connect call failed (...)"
    else:
        reason = str(cause.strerror or cause)  # a resolver error (negative errno)
    return ConnectError(f"Cannot connect to {where}: {reason}", host=target.host,
                        port=target.port, errno=cause.errno if cause is not None else None)


def _with_errno(exc: BaseException) -> OSError | None:
    """The first ``OSError`` with an errno in ``exc``, its causes and groups."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        if error.__cause__ is not None:
            pending.append(error.__cause__)
    return None


async def _connect_tunnel(stream: anyio.abc.ByteStream, proxy: Proxy, target: Target,
                          max_head_size: int) -> None:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size)
    headers = connect_request(target, auth=proxy.origin.basic_auth(), headers=proxy.headers)
    await stream.send(conn.send(h11.Request(method="CONNECT", target=target.connect_authority,
                                            headers=encode_headers(headers))) or b"")
    await stream.send(conn.send(h11.EndOfMessage()) or b"")
    response, body = await _read_response(conn, stream, max_head_size)
    if not 200 <= response.status_code < 300:
        raise ProxyError(
            f"Can't establish a connection to the server at {target.connect_authority}: "
            f"the proxy answered {response.status_code} "
            f"{response.reason.decode('latin-1')}".rstrip(),
            status_code=response.status_code, headers=_decode(response.headers), body=body)


async def run_handshake(stream: anyio.abc.ByteStream, handshake: ClientHandshake,
                        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
                        ) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send the upgrade request and read the response head.

    Returns:
        The status, the headers and the bytes received past the head.

    Raises:
        HandshakeError: the response is not a 101 (status, headers and body
            are on the exception), or its head is over ``max_head_size``.
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size)
    request = h11.Request(method="GET", target=request_target(handshake.target),
                          headers=encode_headers(handshake.request_headers()))
    await stream.send((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
    response, body = await _read_response(conn, stream, max_head_size)
    headers = _decode(response.headers)
    if response.status_code != 101:
        raise HandshakeError(
            f"Error during WebSocket handshake: Unexpected response code: "
            f"{response.status_code}", status_code=response.status_code, headers=headers,
            body=body)
    return 101, headers, bytes(conn.trailing_data[0])


class NoResponse(Exception):
    """No usable response head: the connection ended or sent something
    other than HTTP before one, or the head was refused (too large, too
    many informational responses). The message says which; the cause is
    h11's error, if it found one."""

    def __init__(self, message: str,
                 informational: h11.InformationalResponse | None = None) -> None:
        super().__init__(message)
        #: The last informational response, when there were too many.
        self.informational = informational


async def read_head(conn: h11.Connection, stream: anyio.abc.ByteStream,
                    max_head_size: int) -> h11.Response | h11.InformationalResponse:
    """Read a response head: the final response, or a ``101`` (which h11
    lets through only for a request that asked to switch). Informational
    responses before it are skipped, up to :data:`MAX_INFORMATIONAL`.

    The reader of every client: the WebSocket handshake, the proxy
    ``CONNECT`` and the EventSource request.

    Raises:
        NoResponse: see there.
    """
    informational = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise NoResponse(head_error(exc, max_head_size)) from exc
        if isinstance(event, (h11.Response, h11.InformationalResponse)) and \
                (problem := check_head_size(event, max_head_size)):
            raise NoResponse(problem)
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive()
            except anyio.EndOfStream:
                data = b""
            if not data:
                # h11 would call this a protocol error; say what happened.
                raise NoResponse("connection closed before a response")
            conn.receive_data(data)
        elif isinstance(event, h11.InformationalResponse):
            if event.status_code == 101:
                return event
            informational += 1
            if informational > MAX_INFORMATIONAL:
                raise NoResponse(f"more than {MAX_INFORMATIONAL} informational (1xx) "
                                 "responses", event)
        elif isinstance(event, h11.Response):
            return event
        else:
            raise NoResponse("connection closed before a response")


async def read_error_body(conn: h11.Connection, stream: anyio.abc.ByteStream,
                          body: bytearray) -> None:
    """Read a refusal's body into ``body`` (so that what came is kept if
    the caller gives up waiting), up to :data:`MAX_ERROR_BODY` bytes: enough
    for the error, so it stops reading there.

    Raises:
        h11.RemoteProtocolError: the body is not valid HTTP.
    """
    while len(body) < MAX_ERROR_BODY:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive())
            except anyio.EndOfStream:
                conn.receive_data(b"")
        elif isinstance(event, h11.Data):
            body += event.data[: MAX_ERROR_BODY - len(body)]
        else:  # EndOfMessage, ConnectionClosed, PAUSED
            break


async def _read_response(conn: h11.Connection, stream: anyio.abc.ByteStream,
                         max_head_size: int,
                         ) -> tuple[h11.Response | h11.InformationalResponse, bytes]:
    """The final (or switching) response and, for a refusal, its body.

    Raises:
        HandshakeError: no usable response head, or an invalid body.
    """
    try:
        response = await read_head(conn, stream, max_head_size)
    except NoResponse as exc:
        event = exc.informational
        raise HandshakeError(
            f"Error during WebSocket handshake: {exc}",
            status_code=event.status_code if event is not None else 0,
            headers=_decode(event.headers) if event is not None else (),
        ) from exc.__cause__
    if isinstance(response, h11.InformationalResponse) or \
            conn.their_state is h11.SWITCHED_PROTOCOL:  # a 101, or a CONNECT that succeeded
        return response, b""
    body = bytearray()
    try:
        await read_error_body(conn, stream, body)
    except h11.RemoteProtocolError as exc:
        raise HandshakeError(f"Error during WebSocket handshake: "
                             f"{head_error(exc, max_head_size)}") from exc
    return response, bytes(body)


def _decode(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
