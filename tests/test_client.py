"""WebSocket.Client over real loopback sockets.

Against our own server and the Node reference server (``interop/server.js``),
wss with trustme certificates, HTTP CONNECT proxies (pproxy, and a small
proxy written here for https origins and ``proxy="env"``), the opening
timeout, refused handshakes and cancellation while connecting.
"""

from __future__ import annotations

import base64
import errno
import gc
import os
import shutil
import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSListener

import faye_websocket
from faye_websocket import (
    Client,
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    Event,
    EventSource,
    FayeWebSocketError,
    HandshakeError,
    PerMessageDeflate,
    ProxyError,
    ReadyState,
    WebSocket,
)
from faye_websocket._core.client import ClientHandshake, parse_url
from faye_websocket._demo import echo_server
from faye_websocket.http import Request, Server

from .helpers import SECOND, accept_for, header, kinds, open_fds, recorded, running

pytestmark = pytest.mark.anyio

SERVER_JS = Path(__file__).parent / "interop" / "server.js"
#: Bound on each I/O test.
TIMEOUT = 15 * SECOND
#: Text messages that make our echo server close with 4001, or drop the TCP
#: connection without a Close frame.
CLOSE_ME = "please close with 4001"
VANISH = "please vanish"
SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# -- peers -----------------------------------------------------------------------


class EchoServer:
    """Our server: echo with subprotocols irc/xmpp and permessage-deflate."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.closes: list[tuple[int | None, str]] = []
        self.closed = anyio.Event()
        self.server = Server(on_upgrade=self.on_upgrade)

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        self.requests.append(request)
        ws = WebSocket(request, stream, body, ["irc", "xmpp"],
                       extensions=[PerMessageDeflate()])

        def on_close(event: Event) -> None:
            self.closes.append((event.code, event.reason))
            self.closed.set()

        ws.on("close", on_close)
        async with ws:
            try:
                async for message in ws:
                    if message == CLOSE_ME:
                        await ws.close(4001, "server says bye")
                    elif message == VANISH:
                        await anyio.aclose_forcefully(stream)  # no Close frame
                    else:
                        await ws.send(message)
            except ConnectionClosed:
                pass  # the client closed with an error code, or we vanished


@dataclass
class Peer:
    """An echo server for the client to talk to."""

    kind: str
    port: int
    host: str = "127.0.0.1"
    ours: EchoServer | None = None
    process: anyio.abc.Process | None = None

    def url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    async def vanish(self, ws: Client) -> None:
        """Make the server drop the connection without a Close frame."""
        if self.process is not None:
            self.process.kill()
        else:
            await ws.send(VANISH)


def node_command() -> str:
    """Path of ``node``, failing the test with instructions when it is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("these tests need Node.js: install `node`, then run "
                    "`npm ci --prefix tests/interop`", pytrace=False)
    if not (SERVER_JS.parent / "node_modules" / "faye-websocket" / "package.json").is_file():
        pytest.fail("tests/interop/node_modules is missing: run `npm ci --prefix tests/interop`",
                    pytrace=False)
    return node


@asynccontextmanager
async def node_server() -> AsyncIterator[Peer]:
    """The Node reference echo server on a free port."""
    process = await anyio.open_process([node_command(), str(SERVER_JS), "0"],
                                       stdout=subprocess.PIPE, stderr=None)
    try:
        assert process.stdout is not None
        with anyio.fail_after(10):
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 100)
        word, port = line.decode().split()
        assert word == "listening"
        yield Peer("node", int(port), process=process)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()


@asynccontextmanager
async def echo_peer(kind: str) -> AsyncIterator[Peer]:
    if kind == "node":
        async with node_server() as peer:
            yield peer
    else:
        ours = EchoServer()
        async with running(ours.server) as port:
            yield Peer("ours", port, ours=ours)


PEERS = ["ours", "node"]


# -- against both servers ----------------------------------------------------------


@pytest.mark.parametrize("peer_kind", PEERS)
@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_echo_sizes(peer_kind: str, deflate: bool) -> None:
    extensions = [PerMessageDeflate()] if deflate else []
    with anyio.fail_after(TIMEOUT):
        async with echo_peer(peer_kind) as peer, \
                WebSocket.Client(peer.url(), extensions=extensions) as ws:
            assert ("permessage-deflate" in ws.extensions) is deflate
            for size in SIZES:
                payload = os.urandom(size)
                await ws.send(payload)
                assert await ws.receive() == payload
                text = "é" * (size // 2) + "x" * (size % 2)
                await ws.send(text)
                assert await ws.receive() == text


@pytest.mark.parametrize("peer_kind", PEERS)
async def test_subprotocol_compression_and_handshake_response(peer_kind: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer(peer_kind) as peer:
            # The server picks the first protocol of the client's list it speaks.
            async with WebSocket.Client(peer.url("/chat"), ["mqtt", "xmpp", "irc"],
                                        extensions=[PerMessageDeflate()]) as ws:
                assert ws.protocol == "xmpp"
                assert ws.extensions.startswith("permessage-deflate")
                assert ws.status_code == 101
                assert (header(ws.headers, "Upgrade") or "").lower() == "websocket"
                assert header(ws.headers, "Sec-WebSocket-Accept")
                assert header(ws.headers, "Sec-WebSocket-Protocol") == "xmpp"
                assert ws.url == peer.url("/chat")
                assert ws.version == "hybi-13"
                assert ws.ready_state is ReadyState.OPEN
            async with WebSocket.Client(peer.url(), ["mqtt"]) as ws:
                assert (ws.protocol, ws.extensions) == ("", "")
                assert header(ws.headers, "Sec-WebSocket-Protocol") is None


@pytest.mark.parametrize("peer_kind", PEERS)
async def test_ping_returns_latency(peer_kind: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer(peer_kind) as peer, WebSocket.Client(peer.url()) as ws:
            assert ws.latency is None
            latency = await ws.ping("are you there")
            assert 0 <= latency < TIMEOUT and ws.latency == latency
            await ws.send("after the ping")
            assert await ws.receive() == "after the ping"


@pytest.mark.parametrize("peer_kind", PEERS)
async def test_client_close_with_code_and_reason(peer_kind: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer(peer_kind) as peer:
            async with WebSocket.Client(peer.url()) as ws:
                events = recorded(ws)
                await ws.send("last words")
                assert await ws.receive() == "last words"
                await ws.close(4000, "bye")
                assert ws.ready_state is ReadyState.CLOSED
            # Both servers echo the code and reason in their Close.
            assert kinds(events) == [("close", 4000)]
            assert events[0].reason == "bye"
            assert (ws.close_code, ws.close_reason) == (4000, "bye")
            with pytest.raises(ConnectionClosedError):
                await ws.send("too late")
            if peer.ours is not None:
                await peer.ours.closed.wait()
                assert peer.ours.closes == [(4000, "bye")]


@pytest.mark.parametrize("peer_kind", PEERS)
async def test_peer_vanishing_fires_close_1006(peer_kind: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer(peer_kind) as peer, WebSocket.Client(peer.url()) as ws:
            events = recorded(ws)
            await ws.send("hello")
            assert await ws.receive() == "hello"
            await peer.vanish(ws)
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.receive()
            assert caught.value.code == 1006
            await ws.wait_closed()
            assert kinds(events) == [("close", 1006)]
            assert ws.ready_state is ReadyState.CLOSED


async def iterate(ws: Client) -> None:
    async for message in ws:
        pytest.fail(f"unexpected message {message!r}")


@pytest.mark.parametrize("peer_kind", PEERS)
async def test_server_initiated_close_is_seen_by_the_client(peer_kind: str) -> None:
    # Both servers close with 4001 when sent CLOSE_ME.
    with anyio.fail_after(TIMEOUT):
        async with echo_peer(peer_kind) as peer, WebSocket.Client(peer.url()) as ws:
            events = recorded(ws)
            await ws.send(CLOSE_ME)
            with pytest.raises(ConnectionClosedError) as caught:
                await iterate(ws)
            assert (caught.value.code, caught.value.reason) == (4001, "server says bye")
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.receive()
            assert caught.value.code == 4001
            await ws.wait_closed()
            assert [(e.type, e.code, e.reason) for e in events] == [
                ("close", 4001, "server says bye")]
        if peer.ours is not None:
            assert peer.ours.closes == [(4001, "server says bye")]


# -- the request: URL, headers, Host, userinfo ------------------------------------


async def test_request_path_query_host_and_userinfo() -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer("ours") as peer:
            url = f"ws://alice:s%40cret@127.0.0.1:{peer.port}/chat/room?id=1&x=%20y"
            async with WebSocket.Client(url, headers={"Origin": "http://example.com",
                                                      "User-Agent": "tests"}) as ws:
                assert ws.url == f"ws://127.0.0.1:{peer.port}/chat/room?id=1&x=%20y"
                assert "alice" not in ws.url and "cret" not in ws.url
        assert peer.ours is not None
        [request] = peer.ours.requests
        assert request.target == "/chat/room?id=1&x=%20y"
        assert request.header("host") == f"127.0.0.1:{peer.port}"
        assert request.header("authorization") == basic("alice:s@cret")
        assert request.header("origin") == "http://example.com"
        assert request.header("user-agent") == "tests"


async def test_no_authorization_without_userinfo() -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer("ours") as peer:
            async with WebSocket.Client(peer.url()):
                pass
        assert peer.ours is not None
        [request] = peer.ours.requests
        assert request.header("authorization") is None
        assert request.target == "/"


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_literal() -> None:
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (cannot bind ::1)")
    ours = EchoServer()
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(ours.server.serve, "::1", 0)
            async with WebSocket.Client(f"ws://[::1]:{port}/v6") as ws:
                assert ws.url == f"ws://[::1]:{port}/v6"
                await ws.send("over IPv6")
                assert await ws.receive() == "over IPv6"
            tg.cancel_scope.cancel()
    [request] = ours.requests
    assert request.header("host") == f"[::1]:{port}"
    assert request.target == "/v6"


@pytest.mark.parametrize("url", ["http://example.com/", "https://example.com/x",
                                 "ftp://example.com/", "example.com", "ws:///nohost"])
async def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a valid WebSocket URL") as caught:
        WebSocket.Client(url)
    assert url in str(caught.value)


@pytest.mark.parametrize("headers", [
    {"X-Evil": "a\r\nSet-Cookie: x"}, {"X-Evil": "a\nb"}, {"X-Evil": "a\rb"},
    {"X-Evil\r\nSet-Cookie": "x"}])
async def test_header_line_breaks_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        WebSocket.Client("ws://127.0.0.1/", headers=headers)


#: A secret that must never appear in an error, a log line or a repr.
SECRET = "c2VjcmV0LXRva2Vu"


def make_client(kind: str, url: str, **options: Any) -> object:
    """A ``WebSocket.Client`` (``kind`` "WebSocket"), an ``EventSource.Client``
    ("EventSource"), or a ``WebSocket.Client`` with ``url`` as its proxy."""
    if kind == "EventSource":
        return EventSource.Client(url.replace("ws://", "http://", 1), **options)
    if kind == "proxy":
        return WebSocket.Client("ws://127.0.0.1/", proxy=url.replace("ws://", "http://", 1))
    return WebSocket.Client(url, **options)


@pytest.mark.parametrize("value", [
    f"Bearer {SECRET}\x0b", f"Bearer {SECRET}\x0cmore", f"\x1b[31m{SECRET}", f"{SECRET}\x7f",
    f"\x0b{SECRET}", f"{SECRET}\x00", f"{SECRET}\x85\x0b"])
@pytest.mark.parametrize("kind", ["WebSocket", "EventSource"])
async def test_header_control_characters_are_refused_without_the_value(value: str,
                                                                       kind: str) -> None:
    # RFC 9110 field-value: no control character but tab. Before, VT and FF
    # passed (or were stripped at the ends) and h11 refused them later with
    # an error that repeated the value.
    with pytest.raises(ValueError, match="control character|line break") as caught:
        make_client(kind, "ws://127.0.0.1/", headers={"Authorization": value})
    assert SECRET not in str(caught.value)
    assert "Authorization" in str(caught.value)


async def test_header_tabs_and_text_past_ascii_are_allowed() -> None:
    WebSocket.Client("ws://127.0.0.1/", headers={"X-A": "a\tb", "X-B": "\u00e9\u2603"})


#: URLs that do not parse, each with credentials.
BAD_URLS = [
    f"ws://{SECRET}@127.0.0.1:99999/", f"ws://user:{SECRET}@127.0.0.1:99999/",
    f"ws://{SECRET}@127.0.0.1:port/", f"ws://user:a/{SECRET}@127.0.0.1:99999/",
    f"ws://user:a#{SECRET}@127.0.0.1/", f"ws://{SECRET}@[::1/", f"ws://{SECRET}@/",
    f"ws://{SECRET}@bad host/", f"ws://{SECRET}@exa\x0bmple.com/",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("kind", ["WebSocket", "EventSource", "proxy"])
async def test_userinfo_is_never_in_a_url_error(url: str, kind: str) -> None:
    # Before: a user name alone (a token, often) came back in the message.
    with pytest.raises(ValueError, match=f"not a valid {kind} URL") as caught:
        make_client(kind, url)
    assert SECRET not in str(caught.value)
    assert "***@" in str(caught.value)


async def test_userinfo_is_never_in_connection_errors_or_reprs(free_tcp_port: int) -> None:
    url = f"ws://user:{SECRET}@127.0.0.1:{free_tcp_port}/"
    ws = WebSocket.Client(url, headers={"X-Api-Key": SECRET},
                          proxy={"origin": f"http://proxy:{SECRET}@127.0.0.1:{free_tcp_port}",
                                 "headers": {"X-Proxy-Key": SECRET}})
    events = recorded(ws)
    with anyio.fail_after(TIMEOUT), pytest.raises(OSError) as caught:
        async with ws:
            pytest.fail("connected")
    shown = [str(caught.value), ws.url, repr(ws._handshake), repr(ws._proxy),
             repr(ws._target)] + [repr(event) for event in events]
    assert not [text for text in shown if SECRET in text]
    source = EventSource.Client(f"http://user:{SECRET}@127.0.0.1:{free_tcp_port}/")
    with anyio.fail_after(TIMEOUT), pytest.raises(OSError) as caught:
        async with source:
            pytest.fail("connected")
    assert SECRET not in str(caught.value) and SECRET not in source.url


async def test_request_target_and_header_values_past_ascii() -> None:
    # Spaces, controls and non-ASCII characters in the path and the query
    # are percent-encoded as UTF-8, as browsers do (before: h11's "Illegal
    # target characters", or UnicodeEncodeError); header values past ASCII
    # go out as UTF-8 (before: UnicodeEncodeError).
    with anyio.fail_after(TIMEOUT):
        async with echo_peer("ours") as peer:
            async with WebSocket.Client(peer.url("/a b/\u00e9\u2603?q=\u00fc \x01&x=%20"),
                                        headers={"X-Name": "J\u00fcrgen \u2603"}) as ws:
                await ws.send("hi")
                assert await ws.receive() == "hi"
    assert peer.ours is not None
    [request] = peer.ours.requests
    assert request.target == "/a%20b/%C3%A9%E2%98%83?q=%C3%BC%20%01&x=%20"
    assert request.header("x-name") == "J\u00fcrgen \u2603".encode().decode("latin-1")


@pytest.mark.parametrize(("url", "host"), [
    ("ws://B\u00fccher.example/", "xn--bcher-kva.example"),
    ("wss://\u4f8b\u3048.jp:8443/", "xn--r8jz45g.jp"), ("ws://[::1]:80/", "::1")])
def test_host_names_past_ascii_are_idna_encoded(url: str, host: str) -> None:
    assert parse_url(url, schemes=("ws", "wss")).host == host


@pytest.mark.parametrize("protocols", [["a b"], ["chat, x"], ["x\x0by"], [""], ["\u00e9"]])
async def test_subprotocols_must_be_tokens(protocols: list[str]) -> None:
    with pytest.raises(ValueError, match="invalid subprotocol"):
        WebSocket.Client("ws://127.0.0.1/", protocols)


@pytest.mark.parametrize("name", ["Host", "Upgrade", "connection", "Sec-WebSocket-Key",
                                  "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                                  "sec-websocket-extensions"])
async def test_user_headers_cannot_override_protocol_headers(name: str) -> None:
    with pytest.raises(ValueError):
        WebSocket.Client("ws://127.0.0.1/", headers={name: "x"})


def test_client_is_exposed_on_websocket_and_the_package() -> None:
    assert WebSocket.Client is faye_websocket.Client


@pytest.mark.parametrize(("url", "host"), [
    ("ws://example.com/", "example.com"), ("ws://example.com:80/", "example.com"),
    ("wss://example.com:443/", "example.com"), ("ws://example.com:443/", "example.com:443"),
    ("wss://example.com:80/", "example.com:80"), ("ws://[::1]/", "[::1]"),
    ("wss://[::1]:8443/", "[::1]:8443")])
def test_host_header_has_the_port_only_when_not_the_default(url: str, host: str) -> None:
    headers = ClientHandshake(parse_url(url)).request_headers()
    assert header(headers, "Host") == host


async def test_option_errors() -> None:
    with pytest.raises(ValueError):
        WebSocket.Client("ws://127.0.0.1/", tls=ssl.create_default_context(), ca="ca.pem")
    with pytest.raises(ValueError, match="Unrecognized proxy option: tsl"):
        WebSocket.Client("ws://127.0.0.1/", proxy={"origin": "http://127.0.0.1:1", "tsl": 1})
    with pytest.raises(ValueError, match="not a valid proxy URL"):
        WebSocket.Client("ws://127.0.0.1/", proxy="ftp://127.0.0.1:1")


# -- nursery form, callback style ---------------------------------------------------


async def test_connect_runs_in_the_callers_task_group() -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer("ours") as peer:
            async with anyio.create_task_group() as tg:
                ws = await WebSocket.Client.connect(tg, peer.url(), ["irc"])
                events = recorded(ws)
                assert ws.ready_state is ReadyState.OPEN and ws.protocol == "irc"
                await ws.send("in your group")
                assert await ws.receive() == "in your group"
                await ws.close()
                # Nothing of the connection is left in the group: it exits
                # at once, long before this deadline.
                tg.cancel_scope.deadline = anyio.current_time() + 5
            assert not tg.cancel_scope.cancelled_caught
            assert kinds(events) == [("close", 1000)]


async def test_cancelling_the_callers_task_group_closes_the_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        async with echo_peer("ours") as peer:
            async with anyio.create_task_group() as tg:
                ws = await WebSocket.Client.connect(tg, peer.url())
                events = recorded(ws)
                await ws.send("hi")
                assert await ws.receive() == "hi"
                tg.cancel_scope.cancel()  # the connection's tasks are in here
            assert ws.ready_state is ReadyState.CLOSED
            assert [e.type for e in events] == ["close"]
            assert peer.ours is not None
            await peer.ours.closed.wait()
            assert peer.ours.closes == [(1001, "going away")]


async def test_callback_style() -> None:
    seen: list[str] = []
    got = anyio.Event()

    with anyio.fail_after(TIMEOUT):
        async with echo_peer("ours") as peer:
            ws = WebSocket.Client(peer.url(), ["irc"])
            ws.on("open", lambda event: seen.append(f"open {event.target is ws}"))

            async def on_message(event: Event) -> None:
                seen.append(f"message {event.data!r}")
                got.set()

            ws.onmessage = on_message
            ws.onclose = lambda event: seen.append(f"close {event.code}")
            ws.onerror = lambda event: seen.append(f"error {event.message}")
            async with ws:
                assert ws.protocol == "irc"
                await ws.send("callback")
                await got.wait()
    assert seen == ["open True", "message 'callback'", "close 1000"]


# -- wss -------------------------------------------------------------------------


@asynccontextmanager
async def tls_echo(context: ssl.SSLContext) -> AsyncIterator[Peer]:
    ours = EchoServer()
    async with running(ours.server, ssl_context=context) as port:
        yield Peer("ours", port, host="localhost", ours=ours)


async def test_wss_with_a_tls_context(server_context: ssl.SSLContext,
                                      client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tls_echo(server_context) as peer, \
                WebSocket.Client(f"wss://localhost:{peer.port}/secure",
                                 tls=client_context) as ws:
            assert ws.url == f"wss://localhost:{peer.port}/secure"
            await ws.send(b"\x00secure")
            assert await ws.receive() == b"\x00secure"
        assert peer.ours is not None
        assert peer.ours.requests[0].header("host") == f"localhost:{peer.port}"


async def test_wss_with_a_ca_file(server_context: ssl.SSLContext, ca: trustme.CA,
                                  tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    with anyio.fail_after(TIMEOUT):
        async with tls_echo(server_context) as peer, \
                WebSocket.Client(f"wss://localhost:{peer.port}/", ca=str(path)) as ws:
            await ws.send("trusted by file")
            assert await ws.receive() == "trusted by file"


async def test_wss_unknown_ca_fails(server_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with tls_echo(server_context) as peer:
            ws = WebSocket.Client(f"wss://localhost:{peer.port}/")  # system CAs only
            events = recorded(ws)
            with pytest.raises(ConnectError, match="TLS handshake with localhost") as info:
                async with ws:
                    pytest.fail("connected")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert ws.ready_state is ReadyState.CLOSED


async def test_wss_wrong_host_name_fails(ca: trustme.CA,
                                         client_context: ssl.SSLContext) -> None:
    other = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(other)
    with anyio.fail_after(TIMEOUT):
        async with tls_echo(other) as peer:
            ws = WebSocket.Client(f"wss://localhost:{peer.port}/", tls=client_context)
            events = recorded(ws)
            with pytest.raises(ConnectError, match="[Hh]ostname"):
                async with ws:
                    pytest.fail("connected")
    assert kinds(events) == [("error", None), ("close", 1006)]


# -- proxies: pproxy ------------------------------------------------------------------


class PProxy:
    """A running pproxy (``-v`` prints one line per connection)."""

    def __init__(self, process: anyio.abc.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._changed = anyio.Event()

    async def read_lines(self, stdout: BufferedByteReceiveStream) -> None:
        while True:
            try:
                line = await stdout.receive_until(b"\n", 1 << 16)
            except (anyio.IncompleteRead, anyio.EndOfStream):
                return
            self.lines.append(line.decode())
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_for(self, text: str) -> str:
        """The first output line containing ``text`` (waiting for it)."""
        while True:
            for line in self.lines:
                if text in line:
                    return line
            await self._changed.wait()


@asynccontextmanager
async def pproxy(port: int, auth: str | None = None,
                 scheme: str = "http") -> AsyncIterator[PProxy]:
    """``python -m pproxy -l SCHEME://127.0.0.1:PORT[#user:pass] --auth 0 -v``.

    ``--auth 0`` makes pproxy check every request's credentials (by default
    it trusts an address for 30 days once it authenticated).
    """
    listen = f"{scheme}://127.0.0.1:{port}" + (f"#{auth}" if auth else "")
    command = [sys.executable, "-u", "-m", "pproxy", "-l", listen, "--auth", "0", "-v"]
    process = await anyio.open_process(command, stdout=subprocess.PIPE, stderr=None)
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(10):
            line = await stdout.receive_until(b"\n", 1 << 16)
        assert line.startswith(b"Serving on"), line
        proxy = PProxy(process, port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(proxy.read_lines, stdout)
            yield proxy
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_pproxy_tunnel(secure: bool, free_tcp_port: int,
                             server_context: ssl.SSLContext,
                             client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with pproxy(free_tcp_port) as proxy, \
                tls_echo(server_context) if secure else echo_peer("ours") as peer:
            scheme = "wss" if secure else "ws"
            url = f"{scheme}://{peer.host}:{peer.port}/via-proxy"
            async with WebSocket.Client(url, tls=client_context if secure else None,
                                        proxy=f"http://127.0.0.1:{proxy.port}") as ws:
                await ws.send("through the tunnel")
                assert await ws.receive() == "through the tunnel"
            await proxy.wait_for(f"-> {peer.host}:{peer.port}")
        assert peer.ours is not None
        assert peer.ours.requests[0].target == "/via-proxy"


async def test_pproxy_basic_auth(free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with pproxy(free_tcp_port, auth="user:pass") as proxy, \
                echo_peer("ours") as peer:
            origin = f"http://user:pass@127.0.0.1:{proxy.port}"
            async with WebSocket.Client(peer.url(), proxy={"origin": origin}) as ws:
                await ws.send("authenticated")
                assert await ws.receive() == "authenticated"
            await proxy.wait_for(f"-> 127.0.0.1:{peer.port}")
        assert peer.ours is not None
        # The proxy's credentials are for the proxy only.
        assert peer.ours.requests[0].header("proxy-authorization") is None
        assert peer.ours.requests[0].header("authorization") is None


@pytest.mark.parametrize(("scheme", "secure"), [
    ("socks5", False), ("socks5h", True), ("socks4", False), ("socks4", True)])
async def test_socks_proxy_tunnel(scheme: str, secure: bool, free_tcp_port: int,
                                  server_context: ssl.SSLContext,
                                  client_context: ssl.SSLContext) -> None:
    listen = "socks4" if scheme.startswith("socks4") else "socks5"
    with anyio.fail_after(TIMEOUT):
        async with pproxy(free_tcp_port, scheme=listen) as proxy, \
                tls_echo(server_context) if secure else echo_peer("ours") as peer:
            host = "localhost" if secure else peer.host
            url = f"{'wss' if secure else 'ws'}://{host}:{peer.port}/via-socks"
            async with WebSocket.Client(url, tls=client_context if secure else None,
                                        proxy=f"{scheme}://127.0.0.1:{proxy.port}") as ws:
                await ws.send(f"through {scheme}")
                assert await ws.receive() == f"through {scheme}"
            line = await proxy.wait_for(f":{peer.port}")
            # socks5h leaves the name lookup to the proxy; the others send an address.
            assert (f"-> localhost:{peer.port}" in line) == (scheme == "socks5h"), line


async def test_socks5_auth_and_refusal(free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with pproxy(free_tcp_port, auth="user:pass", scheme="socks5") as proxy, \
                echo_peer("ours") as peer:
            origin = f"socks5://user:pass@127.0.0.1:{proxy.port}"
            async with WebSocket.Client(peer.url(), proxy=origin) as ws:
                await ws.send("authenticated")
                assert await ws.receive() == "authenticated"
            ws = WebSocket.Client(peer.url(),
                                  proxy=f"socks5://user:wrong@127.0.0.1:{proxy.port}")
            events = recorded(ws)
            with pytest.raises(ProxyError, match="the proxy socks5://127.0.0.1") as caught:
                async with ws:
                    pytest.fail("connected")
    assert "wrong" not in str(caught.value)
    assert kinds(events) == [("error", None), ("close", 1006)]


async def test_socks_proxy_from_all_proxy(free_tcp_port: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
                 "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{free_tcp_port}")
    with anyio.fail_after(TIMEOUT):
        async with pproxy(free_tcp_port, scheme="socks5") as proxy, echo_peer("ours") as peer:
            async with WebSocket.Client(peer.url(), proxy="env") as ws:
                await ws.send("from the environment")
                assert await ws.receive() == "from the environment"
            await proxy.wait_for(f"-> {peer.host}:{peer.port}")


async def test_unreachable_socks_proxy_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as caught:
        async with WebSocket.Client("ws://127.0.0.1:1/", proxy=f"socks5://127.0.0.1:{port}"):
            pytest.fail("connected")
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)


async def test_socks_proxy_options_are_checked() -> None:
    with pytest.raises(ValueError, match="neither headers nor tls"):
        WebSocket.Client("ws://example.com/", proxy={
            "origin": "socks5://127.0.0.1:1080", "headers": {"X-A": "b"}})
    with pytest.raises(ValueError, match="not a valid proxy URL"):
        WebSocket.Client("ws://example.com/", proxy="socks5://127.0.0.1:1080/path")


async def test_pproxy_wrong_password_is_a_proxy_error(free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with pproxy(free_tcp_port, auth="user:pass") as proxy, \
                echo_peer("ours") as peer:
            ws = WebSocket.Client(peer.url(), proxy={
                "origin": f"http://user:wrong@127.0.0.1:{proxy.port}"})
            events = recorded(ws)
            with pytest.raises(ProxyError) as caught:
                async with ws:
                    pytest.fail("connected")
            await proxy.wait_for("Unauthorized")
    error = caught.value
    assert isinstance(error, HandshakeError)
    assert error.status_code == 407
    assert header(error.headers, "Proxy-Authenticate") == 'Basic realm="simple"'
    assert "407" in str(error)
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert "407" in events[0].message
    assert ws.ready_state is ReadyState.CLOSED
    assert peer.ours is not None and peer.ours.requests == []


# -- proxies: our own CONNECT proxy ----------------------------------------------------


@dataclass
class ConnectRecord:
    target: str
    headers: list[tuple[str, str]]


@dataclass
class ConnectProxy:
    """A minimal HTTP CONNECT proxy: parse with h11, connect, pipe both ways."""

    port: int = 0
    connects: list[ConnectRecord] = field(default_factory=list)

    async def handle(self, client: anyio.abc.ByteStream) -> None:
        async with client:
            try:
                await self._tunnel(client)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError,
                    anyio.EndOfStream, OSError):
                pass

    async def _tunnel(self, client: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await client.receive())
            elif isinstance(event, h11.Request):
                request = event
            elif event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        assert request is not None and request.method == b"CONNECT"
        target = request.target.decode()
        self.connects.append(ConnectRecord(target, [
            (k.decode(), v.decode()) for k, v in request.headers]))
        host, _, port = target.rpartition(":")
        upstream = await anyio.connect_tcp(host.strip("[]"), int(port))
        async with upstream:
            await client.send(conn.send(h11.Response(status_code=200, headers=[])) or b"")
            if conn.next_event() is not h11.PAUSED:  # after a 2xx, h11 hands over
                return
            early, _ = conn.trailing_data
            if early:
                await upstream.send(bytes(early))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pipe, client, upstream, tg.cancel_scope)
                tg.start_soon(self._pipe, upstream, client, tg.cancel_scope)

    @staticmethod
    async def _pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream,
                    scope: anyio.CancelScope) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()  # one side is done: the tunnel is done


@asynccontextmanager
async def connect_proxy(ssl_context: ssl.SSLContext | None = None
                        ) -> AsyncIterator[ConnectProxy]:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy = ConnectProxy(tcp.extra(anyio.abc.SocketAttribute.local_port))
    listener: anyio.abc.Listener[Any] = tcp
    if ssl_context is not None:
        listener = TLSListener(tcp, ssl_context, standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy.handle, tg)
        yield proxy
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss-tls-in-tls"])
async def test_https_proxy(secure: bool, server_context: ssl.SSLContext,
                           client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy(server_context) as proxy, \
                tls_echo(server_context) if secure else echo_peer("ours") as peer:
            scheme = "wss" if secure else "ws"
            async with WebSocket.Client(
                    f"{scheme}://{peer.host}:{peer.port}/tunnelled",
                    tls=client_context if secure else None,
                    proxy={"origin": f"https://user:p%40ss@localhost:{proxy.port}",
                           "headers": {"X-Proxy-Test": "yes"},
                           "tls": client_context}) as ws:
                for size in (0, 126, 65536):
                    payload = os.urandom(size)
                    await ws.send(payload)
                    assert await ws.receive() == payload
    [connect] = proxy.connects
    assert connect.target == f"{peer.host}:{peer.port}"
    assert header(connect.headers, "Host") == f"{peer.host}:{peer.port}"
    assert header(connect.headers, "Proxy-Authorization") == basic("user:p@ss")
    assert header(connect.headers, "X-Proxy-Test") == "yes"
    assert peer.ours is not None
    [request] = peer.ours.requests
    assert request.target == "/tunnelled"
    assert request.header("x-proxy-test") is None
    assert request.header("proxy-authorization") is None


async def test_proxy_headers_cannot_override_connect_headers() -> None:
    for name in ("Host", "Proxy-Authorization"):
        with pytest.raises(ValueError):
            WebSocket.Client("ws://127.0.0.1/", proxy={"origin": "http://127.0.0.1:1",
                                                       "headers": {name: "x"}})


def clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy",
                 "wss_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize("secure", [False, True], ids=["ws-http_proxy", "wss-https_proxy"])
async def test_proxy_from_environment(secure: bool, monkeypatch: pytest.MonkeyPatch,
                                      server_context: ssl.SSLContext,
                                      client_context: ssl.SSLContext) -> None:
    clear_proxy_env(monkeypatch)
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy() as proxy, \
                tls_echo(server_context) if secure else echo_peer("ours") as peer:
            # The other variable points nowhere: using it would fail.
            used, unused = ("https_proxy", "http_proxy") if secure else \
                ("http_proxy", "https_proxy")
            monkeypatch.setenv(used, f"http://env:secret@127.0.0.1:{proxy.port}")
            monkeypatch.setenv(unused, "http://127.0.0.1:1")
            scheme = "wss" if secure else "ws"
            async with WebSocket.Client(f"{scheme}://{peer.host}:{peer.port}/env",
                                        tls=client_context if secure else None,
                                        proxy="env") as ws:
                await ws.send("via env")
                assert await ws.receive() == "via env"
    assert [c.target for c in proxy.connects] == [f"{peer.host}:{peer.port}"]
    assert header(proxy.connects[0].headers, "Proxy-Authorization") == basic("env:secret")


async def test_ipv6_target_through_a_proxy() -> None:
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (cannot bind ::1)")
    ours = EchoServer()
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy() as proxy, anyio.create_task_group() as tg:
            port: int = await tg.start(ours.server.serve, "::1", 0)
            async with WebSocket.Client(f"ws://[::1]:{port}/",
                                        proxy=f"http://127.0.0.1:{proxy.port}") as ws:
                await ws.send("v6 via proxy")
                assert await ws.receive() == "v6 via proxy"
            tg.cancel_scope.cancel()
    [connect] = proxy.connects
    assert connect.target == f"[::1]:{port}"
    assert header(connect.headers, "Host") == f"[::1]:{port}"
    assert ours.requests[0].header("host") == f"[::1]:{port}"


async def test_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy() as proxy, echo_peer("ours") as peer:
            monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
            monkeypatch.setenv("no_proxy", "example.com,127.0.0.1")
            async with WebSocket.Client(peer.url(), proxy="env") as ws:
                await ws.send("direct")
                assert await ws.receive() == "direct"
    assert proxy.connects == []


# -- opening failures -------------------------------------------------------------------


@dataclass
class Silent:
    """A TCP server that accepts and reads but never answers."""

    port: int = 0
    accepted: anyio.Event = field(default_factory=anyio.Event)
    hung_up: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        async with stream:
            self.accepted.set()
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            self.hung_up.set()


@asynccontextmanager
async def silent_server() -> AsyncIterator[Silent]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    silent = Silent(listener.extra(anyio.abc.SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, silent.handle, tg)
        yield silent
        tg.cancel_scope.cancel()


async def test_open_timeout() -> None:
    with anyio.fail_after(TIMEOUT):
        async with silent_server() as silent:
            ws = WebSocket.Client(f"ws://127.0.0.1:{silent.port}/", open_timeout=0.2)
            events = recorded(ws)
            with pytest.raises(TimeoutError):
                async with ws:
                    pytest.fail("connected")
            assert silent.accepted.is_set()
            await silent.hung_up.wait()  # the client closed its socket
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert "no answer within open_timeout (0.2 s)" in events[0].message
    assert ws.ready_state is ReadyState.CLOSED


async def test_refused_connection(free_tcp_port: int) -> None:
    ws = WebSocket.Client(f"ws://127.0.0.1:{free_tcp_port}/")
    events = recorded(ws)
    with anyio.fail_after(TIMEOUT), pytest.raises(OSError):
        async with ws:
            pytest.fail("connected")
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert ws.ready_state is ReadyState.CLOSED
    assert ws.status_code is None
    with pytest.raises(ConnectionClosedError) as caught:
        await ws.send("never")
    assert caught.value.code == 1006


async def test_refusal_with_a_body_is_a_handshake_error() -> None:
    async def refuse(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        await stream.send(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                          b"X-Why: no entry\r\nContent-Length: 9\r\n\r\nGo away!\n")

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_upgrade=refuse)) as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
            events = recorded(ws)
            with pytest.raises(HandshakeError) as caught:
                async with ws:
                    pytest.fail("connected")
    error = caught.value
    assert not isinstance(error, ProxyError)
    assert error.status_code == 403
    assert header(error.headers, "X-Why") == "no entry"
    assert error.body == b"Go away!\n"
    assert "403" in str(error)
    assert ws.status_code == 403
    assert header(ws.headers, "X-Why") == "no entry"
    assert kinds(events) == [("error", None), ("close", 1002)]
    assert ws.ready_state is ReadyState.CLOSED
    with pytest.raises(ConnectionClosedError) as closed:
        await ws.send("never")
    assert closed.value.code == 1002


def accepting(key: str, *, upgrade: str = "websocket", connection: str = "Upgrade",
              extra: str = "") -> str:
    """The headers of a valid 101 for ``key``, changed as asked."""
    return (f"Upgrade: {upgrade}\r\nConnection: {connection}\r\n"
            f"Sec-WebSocket-Accept: {accept_for(key)}\r\n{extra}")


#: Crafted 101 responses: name -> their headers, given the request's key.
CRAFTED: dict[str, Callable[[str], str]] = {
    "ok": accepting,
    # A token list is fine (the reference wants exactly 'Upgrade').
    "ok-connection-token-list": lambda key: accepting(key, connection="keep-alive, Upgrade"),
    "ok-offered-protocol": lambda key: accepting(key, extra="Sec-WebSocket-Protocol: irc\r\n"),
    "wrong-accept": lambda key: accepting(key + "x"),
    "no-accept": lambda key: "Upgrade: websocket\r\nConnection: Upgrade\r\n",
    "wrong-upgrade": lambda key: accepting(key, upgrade="h2c"),
    "wrong-connection": lambda key: accepting(key, connection="keep-alive"),
    "protocol-not-offered": lambda key: accepting(key,
                                                  extra="Sec-WebSocket-Protocol: mqtt\r\n"),
    "extension-not-offered": lambda key: accepting(
        key, extra="Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"),
}


@asynccontextmanager
async def crafted_server(headers: Callable[[str], str], tail: bytes = b""
                         ) -> AsyncIterator[int]:
    """Answers the upgrade with a hand-written 101 (and ``tail`` in the same
    write), then answers a Close."""

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER)
            while (event := conn.next_event()) is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
            assert isinstance(event, h11.Request)
            key = dict(event.headers)[b"sec-websocket-key"].decode()
            await stream.send(f"HTTP/1.1 101 Switching Protocols\r\n{headers(key)}\r\n"
                              .encode() + tail)
            try:
                await stream.receive()  # the client's Close (or its hanging up)
                await stream.send(b"\x88\x02\x03\xe8")  # Close 1000, unmasked
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("case", list(CRAFTED))
async def test_crafted_handshake_responses(case: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with crafted_server(CRAFTED[case]) as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/", ["irc"])
            events = recorded(ws)
            if case.startswith("ok"):  # the server itself is right
                async with ws:
                    assert ws.status_code == 101
                    assert ws.protocol == ("irc" if "protocol" in case else "")
                assert kinds(events) == [("open", None), ("close", 1000)]
                return
            with pytest.raises(HandshakeError) as caught:
                async with ws:
                    pytest.fail("connected")
    assert caught.value.status_code == 101
    assert ws.status_code == 101
    assert kinds(events) == [("error", None), ("close", 1002)]
    assert ws.ready_state is ReadyState.CLOSED


async def test_frame_right_behind_the_101_is_delivered() -> None:
    with anyio.fail_after(TIMEOUT):
        async with crafted_server(CRAFTED["ok"], tail=b"\x81\x05early") as port, \
                WebSocket.Client(f"ws://127.0.0.1:{port}/") as ws:
            assert await ws.receive() == "early"


async def test_extension_not_offered_when_none_were() -> None:
    def deflate(key: str) -> str:
        return accepting(key, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")

    with anyio.fail_after(TIMEOUT):
        async with crafted_server(deflate) as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
            events = recorded(ws)
            with pytest.raises(HandshakeError, match="permessage-deflate"):
                async with ws:
                    pytest.fail("connected")
    assert kinds(events) == [("error", None), ("close", 1002)]


# -- cancellation while connecting ---------------------------------------------------------


async def _connect_forever(ws: Client) -> None:
    async with ws:
        pytest.fail("connected")


@pytest.mark.parametrize("how", ["ws", "wss", "proxy"])
async def test_cancelling_a_connecting_client_leaks_nothing(
        how: str, client_context: ssl.SSLContext) -> None:
    gc.collect()
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with anyio.fail_after(TIMEOUT):
            async with silent_server() as silent:
                # The server (or proxy) reads the request, the TLS ClientHello
                # or the CONNECT, and never answers; cancel the waiting client.
                scheme = "wss" if how == "wss" else "ws"
                ws = WebSocket.Client(
                    f"{scheme}://127.0.0.1:{silent.port}/",
                    tls=client_context if how == "wss" else None,
                    proxy=f"http://127.0.0.1:{silent.port}" if how == "proxy" else None)
                events = recorded(ws)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_connect_forever, ws)
                    await silent.accepted.wait()
                    await anyio.wait_all_tasks_blocked()
                    tg.cancel_scope.cancel()
                await silent.hung_up.wait()  # the client's socket is closed
                # The attempt is over: the object says so, and waiters wake.
                await ws.wait_closed()
                assert ws.ready_state is ReadyState.CLOSED
                assert kinds(events) == [("close", 1006)]
                with pytest.raises(ConnectionClosedError):
                    await ws.send("never")
            del ws, events
            gc.collect()
            while open_fds() > before:  # noqa: ASYNC110 (no event for closed fds)
                await anyio.sleep(0.01)
        gc.collect()
    assert open_fds() == before
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_server_hanging_up_before_responding() -> None:
    async def hang_up(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            await stream.receive()  # the request; no answer

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(TIMEOUT):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, hang_up, tg)
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
            events = recorded(ws)
            with pytest.raises(HandshakeError, match="connection closed before a response"):
                async with ws:
                    pytest.fail("connected")
            tg.cancel_scope.cancel()
    # No response at all: 1006, as when no connection was made (the reference).
    assert kinds(events) == [("error", None), ("close", 1006)]
    assert ws.status_code is None


async def test_a_refused_connection_raises_connect_error_with_its_errno() -> None:
    # A port nobody listens on: bind one, then close it.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    for client in (WebSocket.Client(f"ws://127.0.0.1:{port}/"),
                   EventSource.Client(f"http://127.0.0.1:{port}/")):
        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
            async with client:
                pytest.fail("connected")
        error = info.value
        assert isinstance(error, OSError) and isinstance(error, FayeWebSocketError)
        assert error.errno == errno.ECONNREFUSED
        assert (error.host, error.port) == ("127.0.0.1", port)
        assert str(error) == f"Cannot connect to 127.0.0.1:{port}: Connection refused"
        assert error.__cause__ is not None


async def test_a_client_is_entered_once_and_used_only_inside() -> None:
    async with running(echo_server()) as port:
        ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
        with anyio.fail_after(TIMEOUT):
            with pytest.raises(RuntimeError, match="not open yet"):
                await ws.receive()
            with pytest.raises(RuntimeError, match="not open yet"):
                await ws.__anext__()  # what async for calls
            async with ws:
                await ws.send("hi")
                assert await ws.receive() == "hi"
                with pytest.raises(RuntimeError, match="already been entered"):
                    async with ws:
                        pytest.fail("entered twice")
                await ws.send("still usable")
                assert await ws.receive() == "still usable"
            with pytest.raises(RuntimeError, match="connects once"):
                async with ws:
                    pytest.fail("entered again")


async def test_open_timeout_and_handshake_errors_name_the_url() -> None:
    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep(5)

    async def refusing(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    for handler, error, fragment in (
            (silent, TimeoutError, "no answer within open_timeout (0.2 s)"),
            (refusing, HandshakeError, "Unexpected response code: 404")):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            url = f"ws://user:secret@127.0.0.1:{port}/path"
            with anyio.fail_after(TIMEOUT), pytest.raises(error) as info:
                async with WebSocket.Client(url, open_timeout=0.2):
                    pytest.fail("connected")
            tg.cancel_scope.cancel()
        message = str(info.value)
        assert fragment in message
        assert f"127.0.0.1:{port}/path" in message and "secret" not in message
