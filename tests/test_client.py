"""WebSocket.Client over real loopback sockets.

Against our own server and the Node reference server (``interop/server.js``):
echoes, the request (URL, headers, Host, userinfo), the nursery form and
callbacks, and wss with trustme certificates. Proxies are in
``test_client_proxy.py``; opening failures and cancellation while
connecting in ``test_client_opening.py``.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import faye_websocket
from faye_websocket import (
    Client,
    ConnectError,
    ConnectionClosedError,
    Event,
    EventSource,
    PerMessageDeflate,
    ReadyState,
    WebSocket,
)
from faye_websocket._core.client_handshake import ClientHandshake
from faye_websocket._core.url import parse_url

from .client_peers import (
    CLOSE_ME,
    PEERS,
    TIMEOUT,
    EchoServer,
    basic,
    echo_peer,
    has_ipv6_loopback,
    tls_echo,
)
from .helpers import header, kinds, recorded

pytestmark = pytest.mark.anyio


SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


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
