"""Redirects followed by WebSocket.Client and EventSource.Client.

Real servers on two loopback addresses (``127.0.0.1`` and ``127.0.0.2``, so
a redirect from one to the other changes the origin): chains of 301, 302,
303, 307 and 308, relative Locations, loops, a count that runs out, the
credentials that stay behind when the origin changes, and a ``wss`` ->
``ws`` downgrade (trustme certificates), refused unless allowed.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest

from faye_websocket import EventSource, HandshakeError, WebSocket
from faye_websocket._core.redirects import RedirectRefused, Redirects
from faye_websocket.http import Request, Response, Server

from .helpers import SECOND, serve

pytestmark = pytest.mark.anyio

#: Bound on each I/O test.
TIMEOUT = 15 * SECOND
#: The other loopback address: another origin for the same machine.
OTHER = "127.0.0.2"


@dataclass
class Site:
    """One of our servers. ``routes`` maps a path (with its query) to the
    redirect it answers, ``(status, Location)``; any other path is accepted:
    a WebSocket echoes, an EventSource sends one event and ends."""

    host: str = "127.0.0.1"
    secure: bool = False
    port: int = 0
    routes: dict[str, tuple[int, str]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def url(self, path: str = "/", *, scheme: str = "ws") -> str:
        scheme += "s" if self.secure else ""
        return f"{scheme}://{self.host}:{self.port}{path}"

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        self.requests.append(request)
        ws = WebSocket(request, stream, body)
        if request.target in self.routes:
            status, where = self.routes[request.target]
            await ws.reject(status, {"Location": where}, b"moved")
            return
        async with ws:
            async for message in ws:
                await ws.send(message)

    async def on_request(self, request: Request, response: Response) -> None:
        self.requests.append(request)
        if request.target in self.routes:
            status, where = self.routes[request.target]
            response.write_head(status, {"Location": where})
            await response.end(b"moved")
            return
        async with EventSource(request, response, retry=0.05, ping=None) as es:
            await es.send(f"hello from {self.host}", id=str(len(self.requests)))


@asynccontextmanager
async def sites(*specs: tuple[str, ssl.SSLContext | None]) -> AsyncIterator[list[Site]]:
    """Run one :class:`Site` per ``(host, ssl_context)`` for the block."""
    async with anyio.create_task_group() as tg:
        out = []
        for host, context in specs:
            site = Site(host, secure=context is not None)
            server = Server(on_request=site.on_request, on_upgrade=site.on_upgrade)
            site.port = await tg.start(serve, server, context, host)
            out.append(site)
        try:
            yield out
        finally:
            tg.cancel_scope.cancel()


def targets(site: Site) -> list[str]:
    return [request.target for request in site.requests]


# -- the sans-IO part ---------------------------------------------------------------------


def test_a_relative_location_is_resolved_against_the_current_url() -> None:
    redirects = Redirects("ws://user:pw@a.test/x/y?q=1")
    url, target = redirects.follow(302, "../z?r=2#fragment")
    assert url == "ws://user:pw@a.test/z?r=2"
    assert (target.resource, target.username, target.password) == ("/z?r=2", "user", "pw")
    assert redirects.chain == ["ws://a.test/x/y?q=1", "ws://a.test/z?r=2"]
    assert not redirects.crossed


def test_http_locations_mean_ws_and_wss() -> None:
    assert Redirects("ws://a.test/").follow(301, "https://b.test/s")[0] == "wss://b.test/s"
    assert Redirects("ws://a.test/").follow(301, "http://b.test/")[0] == "ws://b.test/"
    redirects = Redirects("ws://a.test/")
    assert redirects.follow(301, "ws://c.test:81/")[0] == "ws://c.test:81/"
    with pytest.raises(RedirectRefused, match="not a ws:// or wss:// URL"):
        redirects.follow(301, "ftp://d.test/")
    # EventSource URLs are http(s) only.
    with pytest.raises(RedirectRefused, match="not a http:// or https:// URL"):
        Redirects("http://a.test/", schemes=("http", "https")).follow(302, "ws://b.test/")


def test_an_absolute_location_on_the_same_origin_keeps_the_credentials() -> None:
    redirects = Redirects("ws://user:pw@a.test/")
    url, target = redirects.follow(307, "ws://a.test/elsewhere")
    assert url == "ws://user:pw@a.test/elsewhere" and target.username == "user"
    url, target = redirects.follow(307, "ws://b.test/")
    assert url == "ws://b.test/" and target.username is None and redirects.crossed
    # Coming back to the first origin does not bring them back.
    url, target = redirects.follow(307, "ws://a.test/again")
    assert target.username is None and redirects.crossed
    assert redirects.headers([("Cookie", "c"), ("Authorization", "a"), ("Origin", "o")]) \
        == [("Origin", "o")]


def test_a_port_or_scheme_change_is_another_origin() -> None:
    redirects = Redirects("ws://a.test/")
    redirects.follow(302, "ws://a.test:8080/")
    assert redirects.crossed
    redirects = Redirects("ws://a.test/")
    redirects.follow(302, "wss://a.test/")
    assert redirects.crossed


def test_the_messages_list_the_urls_without_credentials() -> None:
    redirects = Redirects("wss://user:secret@a.test/", max_redirects=1)
    with pytest.raises(RedirectRefused) as info:
        redirects.follow(301, "ws://b.test/")
    assert str(info.value) == ("redirect (301) from wss:// to ws:// refused "
                               "(allow_insecure_redirects=True would follow it): "
                               "wss://a.test/ -> ws://b.test/")
    redirects.follow(301, "/b")
    with pytest.raises(RedirectRefused) as info:
        redirects.follow(301, "/c")
    assert str(info.value) == "more than 1 redirect (301): wss://a.test/ -> wss://a.test/b " \
                              "-> wss://a.test/c"
    assert "secret" not in str(info.value)


# -- WebSocket.Client -----------------------------------------------------------------------


@pytest.mark.parametrize("statuses", [(301, 302, 307, 308), (303,)])
async def test_a_chain_across_origins_drops_the_credentials(statuses: tuple[int, ...]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None), (OTHER, None)) as (a, b):
            # a/0 -> a/1 -> ... (same origin), then the last one to b.
            hops = [f"/{i}" for i in range(len(statuses))]
            for i, status in enumerate(statuses):
                nxt = hops[i + 1] if i + 1 < len(hops) else b.url("/end?x=1")
                a.routes[hops[i]] = (status, nxt)
            url = a.url("/0").replace("ws://", "ws://user:pw@")
            async with WebSocket.Client(url, headers={"Cookie": "c=1",
                                                      "X-Kept": "yes"}) as ws:
                assert ws.status_code == 101
                assert ws.url == b.url("/end?x=1")
                await ws.send("hi")
                assert await ws.receive() == "hi"
            assert targets(a) == hops and targets(b) == ["/end?x=1"]
            for request in a.requests:  # the origin the credentials were meant for
                assert request.headers["authorization"].startswith("Basic ")
                assert request.headers["cookie"] == "c=1"
            final = b.requests[0].headers
            assert final.get("authorization") is None and final.get("cookie") is None
            assert final["x-kept"] == "yes"
            assert final["host"] == f"{OTHER}:{b.port}"


async def test_a_relative_location_and_an_http_location() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None)) as (a,):
            a.routes["/dir/start"] = (302, "next?step=2")
            a.routes["/dir/next?step=2"] = (301, a.url("/done", scheme="http"))
            async with WebSocket.Client(a.url("/dir/start"),
                                        headers={"Authorization": "Bearer t"}) as ws:
                assert ws.url == a.url("/done")
            assert targets(a) == ["/dir/start", "/dir/next?step=2", "/done"]
            # The same origin all along: the header went every time.
            assert [r.headers["authorization"] for r in a.requests] == ["Bearer t"] * 3


async def test_a_loop_is_an_error_naming_the_chain() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None), (OTHER, None)) as (a, b):
            a.routes["/a"] = (302, b.url("/b"))
            b.routes["/b"] = (307, a.url("/a"))
            client = WebSocket.Client(a.url("/a"))
            closes: list[int | None] = []
            client.on("close", lambda event: closes.append(event.code))
            with pytest.raises(HandshakeError) as info:
                async with client:
                    pass
            error = info.value
            assert error.status_code == 307
            assert ("location", a.url("/a")) in error.headers and error.body == b"moved"
            assert str(error) == (f"Error during WebSocket handshake with {b.url('/b')}: "
                                  f"redirect loop (307): {a.url('/a')} -> {b.url('/b')} -> "
                                  f"{a.url('/a')}")
            assert closes == [1002]
            assert targets(a) == ["/a"] and targets(b) == ["/b"]


async def test_running_out_of_redirects_is_an_error() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None)) as (a,):
            for i in range(5):
                a.routes[f"/{i}"] = (308, f"/{i + 1}")
            with pytest.raises(HandshakeError, match=r"more than 3 redirects \(308\): "
                               r".*/0 -> .*/1 -> .*/2 -> .*/3 -> .*/4$") as info:
                async with WebSocket.Client(a.url("/0"), max_redirects=3):
                    pass
            assert info.value.status_code == 308
            assert targets(a) == ["/0", "/1", "/2", "/3"]
            # Exactly as many as allowed is fine.
            a.requests.clear()
            async with WebSocket.Client(a.url("/1"), max_redirects=4) as ws:
                assert ws.url == a.url("/5")


async def test_max_redirects_0_follows_none() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None)) as (a,):
            a.routes["/old"] = (301, "/new")
            with pytest.raises(HandshakeError, match="Unexpected response code: 301") as info:
                async with WebSocket.Client(a.url("/old"), max_redirects=0):
                    pass
            assert info.value.status_code == 301
            assert targets(a) == ["/old"]
    with pytest.raises(ValueError, match="max_redirects"):
        WebSocket.Client("ws://127.0.0.1/", max_redirects=-1)


async def test_a_location_that_is_not_a_websocket_url() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None)) as (a,):
            a.routes["/"] = (302, "mailto:someone@example.com")
            with pytest.raises(HandshakeError, match="not a ws:// or wss:// URL"):
                async with WebSocket.Client(a.url("/")):
                    pass


async def test_a_redirect_without_location_is_a_refusal() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None)) as (a,):
            a.routes["/"] = (302, "")
            with pytest.raises(HandshakeError, match="Unexpected response code: 302"):
                async with WebSocket.Client(a.url("/")):
                    pass


async def test_a_downgrade_is_refused_unless_allowed(server_context: ssl.SSLContext,
                                                     client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", server_context), (OTHER, None)) as (a, b):
            a.routes["/"] = (302, b.url("/plain"))
            with pytest.raises(HandshakeError, match="from wss:// to ws:// refused") as info:
                async with WebSocket.Client(a.url("/"), tls=client_context):
                    pass
            assert info.value.status_code == 302
            assert targets(b) == []  # never asked
            async with WebSocket.Client(a.url("/"), tls=client_context,
                                        allow_insecure_redirects=True) as ws:
                assert ws.url == b.url("/plain")
                await ws.send("clear")
                assert await ws.receive() == "clear"
            assert targets(b) == ["/plain"]


async def test_an_upgrade_to_wss_is_followed(server_context: ssl.SSLContext,
                                             client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites((OTHER, None), ("127.0.0.1", server_context)) as (a, b):
            a.routes["/"] = (301, b.url("/secure", scheme="http"))  # https: -> wss:
            async with WebSocket.Client(a.url("/"), tls=client_context) as ws:
                assert ws.url == b.url("/secure") and ws.url.startswith("wss://")


# -- EventSource.Client ----------------------------------------------------------------------


async def test_eventsource_follows_a_chain_and_drops_the_credentials() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None), (OTHER, None)) as (a, b):
            a.routes["/events"] = (307, "/moved")
            a.routes["/moved"] = (302, b.url("/stream", scheme="http"))
            url = a.url("/events", scheme="http").replace("http://", "http://u:p@")
            async with EventSource.Client(url, headers={"Cookie": "k=v"}, retry=0) as source:
                assert source.url == a.url("/events", scheme="http")
                first = await source.receive()
                assert first.data == f"hello from {OTHER}"
                assert first.origin == source.origin == f"http://{OTHER}:{b.port}"
                # Each reconnection starts again from the URL asked for.
                second = await source.receive()
                assert second.data == f"hello from {OTHER}"
            assert targets(a) == ["/events", "/moved"] * 2
            assert all(r.headers.get("authorization") and r.headers.get("cookie")
                       for r in a.requests)
            assert targets(b) == ["/stream"] * 2
            assert all(r.headers.get("authorization") is None
                       and r.headers.get("cookie") is None for r in b.requests)
            # The Last-Event-ID of the first stream went through the redirects.
            assert b.requests[1].headers["last-event-id"] == "1"


async def test_eventsource_loop_and_downgrade(server_context: ssl.SSLContext,
                                              client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", server_context), (OTHER, None)) as (a, b):
            a.routes["/loop"] = (301, "/loop2")
            a.routes["/loop2"] = (303, "/loop")
            with pytest.raises(HandshakeError, match=r"redirect loop \(303\)") as info:
                async with EventSource.Client(a.url("/loop", scheme="http"),
                                              tls=client_context):
                    pass
            assert info.value.status_code == 303
            a.routes["/down"] = (302, b.url("/", scheme="http"))
            with pytest.raises(HandshakeError, match="from https:// to http:// refused"):
                async with EventSource.Client(a.url("/down", scheme="http"),
                                              tls=client_context):
                    pass
            assert targets(b) == []
            async with EventSource.Client(a.url("/down", scheme="http"), tls=client_context,
                                          allow_insecure_redirects=True) as source:
                assert (await source.receive()).data == f"hello from {OTHER}"


async def test_eventsource_max_redirects() -> None:
    with anyio.fail_after(TIMEOUT):
        async with sites(("127.0.0.1", None)) as (a,):
            a.routes["/1"] = (302, "/2")
            a.routes["/2"] = (302, "/3")
            with pytest.raises(HandshakeError, match=r"more than 1 redirect \(302\)"):
                async with EventSource.Client(a.url("/1", scheme="http"), max_redirects=1):
                    pass
            with pytest.raises(HandshakeError, match="unexpected response code: 302"):
                async with EventSource.Client(a.url("/1", scheme="http"), max_redirects=0):
                    pass
