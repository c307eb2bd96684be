"""WebSocket.Client through proxies, over real loopback sockets: HTTP
CONNECT (pproxy, and a small proxy written here for https origins and
``proxy="env"``) and SOCKS.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSListener

from faye_websocket import ConnectError, HandshakeError, ProxyError, ReadyState, WebSocket

from .client_peers import TIMEOUT, EchoServer, basic, echo_peer, has_ipv6_loopback, tls_echo
from .helpers import header, kinds, pipe, recorded, stop_process

pytestmark = pytest.mark.anyio


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
        await stop_process(process)


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
                tg.start_soon(pipe, client, upstream, tg.cancel_scope)
                tg.start_soon(pipe, upstream, client, tg.cancel_scope)


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
