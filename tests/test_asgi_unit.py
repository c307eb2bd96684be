"""The ASGI adapters against an in-memory ASGI server: what no real server
can be made to show on demand (an old spec version, no denial extension, a
``send`` that fails, backpressure on ``receive``), and the options that
belong to the server."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from faye_websocket import (
    ConnectionClosedError,
    ConnectionClosedOK,
    EventSource,
    PerMessageDeflate,
    WebSocket,
)
from faye_websocket.exceptions import HandshakeError

from .helpers import SECOND

pytestmark = pytest.mark.anyio

TIMEOUT = 5 * SECOND


def ws_scope(*, spec: str = "2.4", denial: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "type": "websocket", "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1", "scheme": "ws", "path": "/chat", "raw_path": b"/chat",
        "query_string": b"a=1", "root_path": "",
        "headers": [(b"host", b"example.com"), (b"origin", b"https://example.com")],
        "client": ("10.0.0.1", 5000), "server": ("127.0.0.1", 8000),
        "subprotocols": ["xmpp", "irc"],
        "extensions": {"websocket.http.response": {}} if denial else {},
        **extra,
    }


def http_scope(**extra: Any) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "GET", "scheme": "https", "path": "/feed",
        "raw_path": b"/feed", "query_string": b"last_event_id=7", "root_path": "",
        "headers": [(b"host", b"example.com"), (b"accept", b"text/event-stream")],
        "client": ("10.0.0.2", 6000), "server": ("127.0.0.1", 8000), **extra,
    }


class FakeServer:
    """The server side of one ASGI call: messages for the application go
    through a memory stream; what the application sends is recorded."""

    def __init__(self) -> None:
        self.inbox, self._outbox = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        self.sent: list[dict[str, Any]] = []
        self.receive_calls = 0
        self.fail_sends: BaseException | None = None
        self.sent_event = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        return await self._outbox.receive()

    async def send(self, message: Any) -> None:
        if self.fail_sends is not None:
            raise self.fail_sends
        self.sent.append(dict(message))
        self.sent_event.set()
        self.sent_event = anyio.Event()

    def put(self, message: dict[str, Any]) -> None:
        self.inbox.send_nowait(message)

    async def wait_sent(self, kind: str) -> dict[str, Any]:
        while True:
            for message in self.sent:
                if message["type"] == kind:
                    return message
            await self.sent_event.wait()

    def close(self) -> None:
        self.inbox.close()
        self._outbox.close()


@asynccontextmanager
async def fake_server() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    try:
        with anyio.fail_after(TIMEOUT):
            yield server
    finally:
        server.close()


async def test_entering_accepts_with_the_clients_first_subprotocol_we_speak() -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send, ["irc", "xmpp"],
                                 headers={"X-Served-By": "us"})
        assert ws.ready_state is WebSocket.CONNECTING
        assert ws.url == "ws://example.com/chat?a=1"
        async with ws:
            assert ws.ready_state is WebSocket.OPEN
            assert ws.protocol == "xmpp"
            assert repr(ws) == "<WebSocket OPEN ws://example.com/chat?a=1 peer=10.0.0.1:5000>"
            server.put({"type": "websocket.receive", "text": "hello"})
            server.put({"type": "websocket.receive", "bytes": b"\x00\x01"})
            assert await ws.receive() == "hello"
            assert await ws.receive() == b"\x00\x01"
            await ws.send("text back")
            await ws.send(b"bytes back")
            server.put({"type": "websocket.disconnect", "code": 1000, "reason": ""})
            with pytest.raises(ConnectionClosedOK):
                await ws.receive()
    assert server.sent[0] == {"type": "websocket.accept", "subprotocol": "xmpp",
                              "headers": [(b"x-served-by", b"us")]}
    assert server.sent[1:] == [{"type": "websocket.send", "text": "text back"},
                               {"type": "websocket.send", "bytes": b"bytes back"}]
    assert (ws.close_code, ws.ready_state) == (1000, WebSocket.CLOSED)


@pytest.mark.parametrize(("spec", "reason"), [("2.3", "bye now"), ("2.2", None)])
async def test_close_reasons_are_sent_from_spec_2_3(spec: str, reason: str | None) -> None:
    closes: list[tuple[int, str]] = []
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        ws = WebSocket.from_asgi(ws_scope(spec=spec), server.receive, server.send)
        ws.on("close", lambda e: closes.append((e.code, e.reason)))
        async with ws:
            ws.close_nowait(4000, "bye now")
            close = await server.wait_sent("websocket.close")
            # The server answers by reporting the client's echo.
            server.put({"type": "websocket.disconnect", "code": 4000})
            await ws.wait_closed()
    assert close.get("reason") == reason
    assert close["code"] == 4000
    assert closes == [(4000, "")]


async def test_reject_uses_the_denial_extension() -> None:
    closes: list[int] = []
    async with fake_server() as server:
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send)
        ws.on("close", lambda e: closes.append(e.code))
        await ws.reject(429, {"Retry-After": "3"}, "slow down")
    assert server.sent == [
        {"type": "websocket.http.response.start", "status": 429, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9"),
            (b"connection", b"close"), (b"retry-after", b"3")]},
        {"type": "websocket.http.response.body", "body": b"slow down", "more_body": False},
    ]
    assert closes == [1006]
    assert ws.ready_state is WebSocket.CLOSED
    with pytest.raises(RuntimeError):
        async with ws:
            pass


async def test_without_the_denial_extension_reject_closes_before_accepting() -> None:
    async with fake_server() as server:
        ws = WebSocket.from_asgi(ws_scope(denial=False), server.receive, server.send)
        await ws.reject(401)
    # A close before the accept: the server answers the upgrade with 403.
    assert server.sent == [{"type": "websocket.close", "code": 1000}]


async def test_an_origin_not_allowed_is_refused_with_403() -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send,
                                 allowed_origins=["https://other.example"])
        with pytest.raises(HandshakeError) as caught:
            async with ws:
                pass
    assert caught.value.status_code == 403
    assert server.sent[0]["status"] == 403
    assert server.sent[1]["body"] == b"Origin not allowed"


async def test_a_client_gone_before_the_accept_raises_1006() -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.disconnect", "code": 1006})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send)
        with pytest.raises(ConnectionClosedError) as caught:
            async with ws:
                pass
    assert caught.value.code == 1006
    assert server.sent == []


async def test_entering_a_connection_accepted_already_is_an_error() -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.receive", "text": "early"})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send)
        with pytest.raises(RuntimeError, match="accepted already"):
            async with ws:
                pass


async def test_a_failing_send_is_a_lost_connection() -> None:
    closes: list[int] = []
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send)
        ws.on("close", lambda e: closes.append(e.code))
        async with ws:
            server.fail_sends = OSError("the client went away")  # as uvicorn raises
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.send("into the void")  # sent at once: the failure is seen here
            assert caught.value.code == 1006
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.receive()
    assert caught.value.code == 1006
    assert closes == [1006]


@pytest.mark.parametrize(("message", "code"), [
    ({"type": "websocket.disconnect", "code": 1005}, 1006),  # uvicorn: the TCP connection dropped
    ({"type": "websocket.disconnect", "code": 1005, "reason": ""}, 1000),  # an empty Close
    ({"type": "websocket.disconnect", "code": 4004, "reason": "why"}, 4004),
])
async def test_disconnect_codes(message: dict[str, Any], code: int) -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send)
        async with ws:
            server.put(message)
            await ws.wait_closed()
    assert ws.close_code == code


async def test_a_message_over_max_length_closes_with_1009() -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send, max_length=4,
                                 close_timeout=1)
        errors: list[str] = []
        ws.on("error", lambda e: errors.append(e.message))
        async with ws:
            server.put({"type": "websocket.receive", "text": "ok"})
            server.put({"type": "websocket.receive", "text": "ünï"})  # 5 bytes of UTF-8
            assert await ws.receive() == "ok"
            close = await server.wait_sent("websocket.close")
            server.put({"type": "websocket.disconnect", "code": 1009})
            await ws.wait_closed()
    assert close["code"] == 1009
    assert ws.close_code == 1009
    assert errors and "max_length" in errors[0]


async def test_a_full_queue_stops_calling_receive() -> None:
    async with fake_server() as server:
        server.put({"type": "websocket.connect"})
        for n in range(20):
            server.put({"type": "websocket.receive", "text": str(n)})
        ws = WebSocket.from_asgi(ws_scope(), server.receive, server.send, max_queue=2)
        async with ws:
            await anyio.wait_all_tasks_blocked()
            # The connect, two queued messages, and one held for the full queue.
            assert server.receive_calls == 4
            assert await ws.receive() == "0"
            await anyio.wait_all_tasks_blocked()
            assert server.receive_calls == 5
            server.put({"type": "websocket.disconnect", "code": 1000, "reason": ""})
            received = [message async for message in ws]
    assert received == [str(n) for n in range(1, 20)]


async def test_wire_options_belong_to_the_server() -> None:
    async with fake_server() as server:
        for option in ({"ping": 5}, {"ping_timeout": 5},
                       {"extensions": [PerMessageDeflate()]}):
            with pytest.raises(ValueError, match="ASGI server's option"):
                WebSocket.from_asgi(ws_scope(), server.receive, server.send, **option)
        with pytest.raises(ValueError, match="not a websocket scope"):
            WebSocket.from_asgi(http_scope(), server.receive, server.send)
        server.put({"type": "websocket.connect"})
        async with WebSocket.from_asgi(ws_scope(), server.receive, server.send) as ws:
            with pytest.raises(NotImplementedError, match="ping"):
                await ws.ping()
            with pytest.raises(NotImplementedError):
                ws.ping_nowait()
            server.put({"type": "websocket.disconnect", "code": 1000, "reason": ""})


def test_scopes_are_recognised() -> None:
    assert WebSocket.is_websocket(ws_scope())
    assert not WebSocket.is_websocket(http_scope())
    assert EventSource.is_eventsource(http_scope())
    assert not EventSource.is_eventsource(http_scope(headers=[(b"accept", b"text/html")]))
    assert not EventSource.is_eventsource(ws_scope())


async def test_eventsource_streams_and_closes_when_the_client_leaves() -> None:
    closed = anyio.Event()
    async with fake_server() as server:
        es = EventSource.from_asgi(http_scope(), server.receive, server.send, ping=None,
                                   retry=3, headers={"Access-Control-Allow-Origin": "*"})
        es.on("close", lambda _e: closed.set())
        assert es.url == "https://example.com/feed?last_event_id=7"
        assert es.last_event_id == "7"  # from the query: browsers cannot set the header
        async with es:
            assert await es.send("eight", id="8")
            await server.wait_sent("http.response.body")
            while len(server.sent) < 3:
                await server.sent_event.wait()
            server.put({"type": "http.disconnect"})
            await closed.wait()
            assert es.ready_state is EventSource.CLOSED
            assert not await es.send("nobody is listening")
    start = server.sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"text/event-stream") in start["headers"]
    assert (b"access-control-allow-origin", b"*") in start["headers"]
    assert not any(name == b"connection" for name, _ in start["headers"])
    body = b"".join(m.get("body", b"") for m in server.sent[1:])
    assert body == b"retry: 3000\r\n\r\nid: 8\r\ndata: eight\r\n\r\n"


async def test_eventsource_ends_its_response_when_the_block_ends() -> None:
    async with fake_server() as server:
        async with EventSource.from_asgi(http_scope(), server.receive, server.send,
                                         ping=None) as es:
            await es.send("only one")
        with pytest.raises(ValueError, match="not an http scope"):
            EventSource.from_asgi(ws_scope(), server.receive, server.send)
    assert server.sent[-1] == {"type": "http.response.body", "body": b"",
                               "more_body": False}
    assert all(m.get("more_body") for m in server.sent[1:-1])
