"""WebSocket.Client's opening going wrong, over real loopback sockets: the
opening timeout, refused and crafted handshake responses, refused
connections, and cancellation while connecting.
"""

from __future__ import annotations

import errno
import gc
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import h11
import pytest

from faye_websocket import (
    Client,
    ConnectError,
    ConnectionClosedError,
    EventSource,
    FayeWebSocketError,
    HandshakeError,
    ProxyError,
    ReadyState,
    WebSocket,
)
from faye_websocket._demo import echo_server
from faye_websocket.http import Request, Server

from .client_peers import TIMEOUT
from .helpers import accept_for, header, kinds, open_fds, recorded, running

pytestmark = pytest.mark.anyio


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
