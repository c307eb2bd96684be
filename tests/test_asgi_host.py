"""ASGI applications served by ``Server(app=...)`` and ``python -m
faye_websocket serve``: FastAPI and Starlette apps unmodified, and raw ASGI
apps for what frameworks hide (backpressure, disconnects, broken apps).

Real loopback sockets on both backends, driven by httpx, raw h11 and our
own WebSocket client.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import h11
import httpx
import pytest

from faye_websocket import PerMessageDeflate, WebSocket
from faye_websocket.exceptions import (
    ClientDisconnected,
    ConnectionClosed,
    ConnectionClosedOK,
    HandshakeError,
    LifespanError,
)
from faye_websocket.http import Server

from .asgi_apps import app as fastapi_app
from .asgi_apps import starlette_app
from .helpers import SECOND, read_to_eof, running
from .test_cli import run_cli

pytestmark = pytest.mark.anyio

TIMEOUT = 10 * SECOND
ROOT = Path(__file__).parent.parent

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def http_client(port: int, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", **kwargs)


async def raw_request(port: int, data: bytes) -> tuple[list[h11.Response], list[bytes]]:
    """Send raw bytes (one or more requests), read responses until the
    server closes the connection."""
    conn = h11.Connection(h11.CLIENT)
    responses: list[h11.Response] = []
    bodies: list[bytes] = []
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        # Tell h11 about every request we sent, so it frames the responses.
        for _ in range(data.count(b"HTTP/1.1\r\n")):
            conn.send(h11.Request(method="HEAD" if data.startswith(b"HEAD") else "GET",
                                  target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(await stream.receive())
                    except anyio.EndOfStream:
                        conn.receive_data(b"")
                elif isinstance(event, h11.Response):
                    responses.append(event)
                    bodies.append(b"")
                elif isinstance(event, h11.Data):
                    bodies[-1] += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return responses, bodies
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                break
            conn.start_next_cycle()
    return responses, bodies


# -- FastAPI ---------------------------------------------------------------------


async def test_fastapi_json_routes_body_echo_streaming_and_state() -> None:
    async with running(Server(app=fastapi_app)) as port, http_client(port) as client:
        with anyio.fail_after(TIMEOUT):
            root = await client.get("/")
            item = await client.get("/items/42", params={"q": "ünï"})
            created = await client.post("/items/", json={"name": "pen", "price": 1.5})
            invalid = await client.post("/items/", json={"name": "pen"})
            state = await client.get("/state")
            big = bytes(range(256)) * 4000  # 1 MB: many reads, one message each way
            echoed = await client.post("/echo", content=big)
            streamed = await client.get("/stream", params={"n": 50})
            missing = await client.get("/no/such/route")
    assert root.status_code == 200 and root.json() == {"message": "Hello World"}
    assert item.json() == {"item_id": 42, "q": "ünï"}
    assert created.json() == {"name": "pen", "price": 1.5}
    assert invalid.status_code == 422
    assert state.json() == {"greeting": "hello from lifespan", "root_path": "", "path": "/state"}
    assert echoed.content == big
    assert streamed.text == "".join(f"{i}\n" for i in range(50))
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert missing.status_code == 404


async def test_fastapi_websocket_route(caplog: pytest.LogCaptureFixture) -> None:
    async with running(Server(app=fastapi_app)) as port:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws", ["other", "chat"],
                                        extensions=[PerMessageDeflate()]) as ws:
                assert ws.protocol == "chat"
                assert "permessage-deflate" in ws.extensions
                for text in ("hello", "ünïcode", "x" * 100_000):
                    await ws.send(text)
                    assert await ws.receive() == text
            assert ws.close_code == 1000

            # The application closes with its own code and reason.
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws") as ws:
                assert ws.protocol == ""
                await ws.send("close me")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4001, "as asked")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_fastapi_denial_response_and_close_before_accept() -> None:
    async with running(Server(app=fastapi_app)) as port:
        with anyio.fail_after(TIMEOUT):
            with pytest.raises(HandshakeError) as denied:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws/deny"):
                    pass
            with pytest.raises(HandshakeError) as closed:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws/close-first"):
                    pass
    assert denied.value.status_code == 401
    assert denied.value.body == b"go away"
    assert ("www-authenticate", "Bearer") in [(k.lower(), v) for k, v in denied.value.headers]
    assert closed.value.status_code == 403


async def test_root_path_is_in_scope_and_in_path() -> None:
    async with running(Server(app=fastapi_app, root_path="/api/")) as port, \
            http_client(port) as client:
        with anyio.fail_after(TIMEOUT):
            # The proxy took the prefix off; the application sees it in path.
            response = await client.get("/state")
    assert response.json() == {"greeting": "hello from lifespan", "root_path": "/api",
                               "path": "/api/state"}


# -- Starlette ------------------------------------------------------------------


async def test_starlette_app_http_head_and_websocket_echo() -> None:
    async with running(Server(app=starlette_app)) as port:
        with anyio.fail_after(TIMEOUT):
            async with http_client(port) as client:
                got = await client.get("/")
                head = await client.head("/")
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/echo",
                                        extensions=[PerMessageDeflate()]) as ws:
                assert "permessage-deflate" in ws.extensions
                await ws.send("text stays text")
                assert await ws.receive() == "text stays text"
                await ws.send(b"\x00\xffbinary")
                assert await ws.receive() == b"\x00\xffbinary"
    assert got.json() == {"framework": "starlette", "method": "GET"}
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(b'{"framework":"starlette","method":"HEAD"}'))


async def test_starlette_over_tls(server_context: ssl.SSLContext,
                                  client_context: ssl.SSLContext) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            scopes.append(scope)
        await starlette_app(scope, receive, send)

    async with running(Server(app=app), ssl_context=server_context) as port:
        with anyio.fail_after(TIMEOUT):
            async with httpx.AsyncClient(verify=client_context) as client:
                got = await client.get(f"https://localhost:{port}/")
            async with WebSocket.Client(f"wss://localhost:{port}/echo",
                                        tls=client_context) as ws:
                await ws.send("secure")
                assert await ws.receive() == "secure"
    assert got.json()["framework"] == "starlette"
    assert [scope["scheme"] for scope in scopes] == ["https", "wss"]


# -- the scope ---------------------------------------------------------------------


async def test_http_and_websocket_scopes() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["shared"] = "yes"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(scope)
        scope["state"]["changed"] = True  # a copy: the next request does not see it
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body"})
        else:
            assert await receive() == {"type": "websocket.connect"}
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close"})

    async with running(Server(app=app, root_path="/root")) as port:
        with anyio.fail_after(TIMEOUT):
            async with http_client(port) as client:
                await client.get("/a%20b/%C3%A9?x=1&y=%20", headers={"X-Test": "Yes"})
                await client.get("/")
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws?q=1",
                                        ["one", "two"]) as ws:
                with pytest.raises(ConnectionClosedOK):
                    await ws.receive()

    http, second, websocket = scopes
    assert http["type"] == "http"
    assert http["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert http["http_version"] == "1.1"
    assert http["method"] == "GET"
    assert http["scheme"] == "http"
    assert http["path"] == "/root/a b/é"
    assert http["raw_path"] == b"/root/a%20b/%C3%A9"
    assert http["query_string"] == b"x=1&y=%20"
    assert http["root_path"] == "/root"
    assert (b"x-test", b"Yes") in http["headers"]
    assert all(name == name.lower() for name, _ in http["headers"])
    assert http["client"][0] == "127.0.0.1" and isinstance(http["client"][1], int)
    assert http["server"] == ("127.0.0.1", port)
    assert http["state"] == {"shared": "yes", "changed": True}
    assert second["state"] == {"shared": "yes", "changed": True}
    assert second["path"] == "/root/"
    assert websocket["type"] == "websocket"
    assert websocket["scheme"] == "ws"
    assert websocket["path"] == "/root/ws"
    assert websocket["query_string"] == b"q=1"
    assert websocket["subprotocols"] == ["one", "two"]
    assert "websocket.http.response" in websocket["extensions"]
    assert "method" not in websocket


# -- streaming and backpressure ----------------------------------------------------


async def test_request_body_streams_with_backpressure() -> None:
    """While the application does not call receive(), the socket is not
    read: the client's writes stall once the kernel's buffers are full."""
    received: list[int] = []
    stalled = anyio.Event()
    resume = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        received.append(len(message["body"]))
        stalled.set()
        await resume.wait()
        while message.get("more_body"):
            message = await receive()
            received.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(sum(received)).encode()})

    total = 64 * 2**20
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"x" * 65536
        while sent < total:
            sent += len(chunk)
            yield chunk

    async with running(Server(app=app, max_body_size=total)) as port, \
            http_client(port, timeout=TIMEOUT) as client:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                responses: list[httpx.Response] = []

                async def post() -> None:
                    responses.append(await client.post("/", content=body()))

                tg.start_soon(post)
                await stalled.wait()
                await anyio.sleep(0.3)
                at_stall = sent
                resume.set()
    assert at_stall < total // 2, at_stall  # socket buffers, not the whole body
    assert responses[0].text == str(total)
    assert len(received) > 1 and max(received) <= 65536 + 16384


async def test_response_body_backpressure_and_client_disconnect() -> None:
    """Each send() returns once its chunk is written: with a client that
    reads nothing, the application stops; when the client leaves, its next
    send() raises an OSError."""
    chunks = 0
    failure: list[BaseException] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal chunks
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536,
                            "more_body": True})
                chunks += 1
        except OSError as exc:
            failure.append(exc)
            raise
        finally:
            done.set()

    async with running(Server(app=app)) as port:
        with anyio.fail_after(TIMEOUT):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            previous = -1
            while chunks != previous:  # until the application is blocked
                previous = chunks
                await anyio.sleep(0.2)
            assert chunks < 1000  # 64 MB: far more than the socket buffers
            await anyio.aclose_forcefully(stream)
            await done.wait()
    assert isinstance(failure[0], ClientDisconnected)
    assert isinstance(failure[0], OSError)


async def test_http_disconnect_after_the_body() -> None:
    messages: list[Message] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        messages.append(await receive())
        messages.append(await receive())  # waits for the client to leave
        done.set()

    async with running(Server(app=app)) as port:
        with anyio.fail_after(TIMEOUT):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                await anyio.sleep(0.1)
                assert not done.is_set()
            await done.wait()
    assert messages == [{"type": "http.request", "body": b"hello", "more_body": False},
                        {"type": "http.disconnect"}]


async def test_keep_alive_pipelining_and_head() -> None:
    async with running(Server(app=starlette_app)) as port:
        with anyio.fail_after(TIMEOUT):
            responses, bodies = await raw_request(
                port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head, head_bodies = await raw_request(
                port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert bodies == [b'{"framework":"starlette","method":"GET"}'] * 3
    assert head[0].status_code == 200 and head_bodies == [b""]


async def test_expect_100_continue() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        if scope["path"] == "/read":
            body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"got " + body})

    head = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n")
    async with running(Server(app=app)) as port:
        with anyio.fail_after(TIMEOUT):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(head % b"/read")
                interim = await stream.receive()
                assert interim.startswith(b"HTTP/1.1 100 ")
                await stream.send(b"hello")
                reply = b""
                while not reply.endswith(b"got hello"):
                    reply += await stream.receive()
            # Answered without asking for the body: no 100, and the
            # connection closes after the response instead of waiting.
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(head % b"/ignore")
                reply = await read_to_eof(stream)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"got ")


async def test_body_limits() -> None:
    calls = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        if scope["type"] != "http":
            return
        calls += 1
        message = await receive()
        while message["type"] == "http.request" and message.get("more_body"):
            message = await receive()
        if message["type"] == "http.disconnect":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with running(Server(app=app, max_body_size=1000)) as port, \
            http_client(port) as client:
        with anyio.fail_after(TIMEOUT):
            declared = await client.post("/", content=b"x" * 1001)
            assert calls == 0  # refused before the application runs

            async def chunked() -> AsyncIterator[bytes]:
                for _ in range(3):
                    yield b"x" * 600

            streamed = await client.post("/", content=chunked())
            fine = await client.post("/", content=b"x" * 1000)
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert fine.text == "ok"


# -- broken applications ---------------------------------------------------------


async def test_broken_http_apps_get_500_and_a_log_line(caplog: pytest.LogCaptureFixture,
                                                       ) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/raise":
            raise RuntimeError("boom")
        if path == "/order":
            await send({"type": "http.response.body", "body": b"too early"})
        if path == "/twice":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/half":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        # "/nothing": returns without a response

    async with running(Server(app=app)) as port, http_client(port) as client:
        with anyio.fail_after(TIMEOUT):
            statuses = [(await client.get(path)).status_code
                        for path in ("/raise", "/order", "/twice", "/nothing")]
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/half")  # started: the connection is closed
    assert statuses == [500, 500, 500, 500]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("Exception in ASGI application (GET /raise)" in e for e in errors)
    assert any("(GET /order)" in e for e in errors)
    assert any("returned without sending the response (GET /nothing)" in e for e in errors)
    assert any("returned without completing the response (GET /half)" in e for e in errors)


async def test_fastapi_exception_gets_500(caplog: pytest.LogCaptureFixture) -> None:
    async with running(Server(app=fastapi_app)) as port, http_client(port) as client:
        with anyio.fail_after(TIMEOUT):
            response = await client.get("/boom")
    assert response.status_code == 500
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


async def test_broken_websocket_apps(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        path = scope["path"]
        if path == "/raise-before":
            raise RuntimeError("before accept")
        if path == "/return-before":
            return
        if path == "/send-before":
            await send({"type": "websocket.send", "text": "not accepted"})
        await send({"type": "websocket.accept"})
        if path == "/raise-after":
            raise RuntimeError("after accept")

    async with running(Server(app=app)) as port:
        with anyio.fail_after(TIMEOUT):
            statuses = []
            for path in ("/raise-before", "/return-before", "/send-before"):
                with pytest.raises(HandshakeError) as refused:
                    async with WebSocket.Client(f"ws://127.0.0.1:{port}{path}"):
                        pass
                statuses.append(refused.value.status_code)
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/raise-after") as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.receive()
            # FastAPI's own route raising after accept.
            async with running(Server(app=fastapi_app)) as fastapi_port:
                async with WebSocket.Client(f"ws://127.0.0.1:{fastapi_port}/ws") as ws2:
                    await ws2.send("raise")
                    with pytest.raises(ConnectionClosed) as fastapi_closed:
                        await ws2.receive()
    assert statuses == [500, 500, 500]
    assert closed.value.code == 1011
    assert fastapi_closed.value.code == 1011
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("Exception in ASGI application (WebSocket" in e for e in errors) == 4
    assert any("returned without accepting" in e for e in errors)


# -- lifespan ----------------------------------------------------------------------


async def test_lifespan_startup_failure_raises() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with anyio.fail_after(TIMEOUT), pytest.raises(LifespanError, match="no database"):
        await Server(app=app).serve("127.0.0.1", 0)


async def test_lifespan_unsupported_is_fine_and_on_requires_it(
        caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope type {scope['type']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})

    caplog.set_level(logging.DEBUG, logger="faye_websocket.asgi")
    async with running(Server(app=app)) as port, http_client(port) as client:
        with anyio.fail_after(TIMEOUT):
            assert (await client.get("/")).text == "plain"
    assert any("lifespan protocol not supported" in r.getMessage() and
               r.levelno == logging.DEBUG for r in caplog.records)
    with anyio.fail_after(TIMEOUT), pytest.raises(LifespanError):
        await Server(app=app, lifespan="on").serve("127.0.0.1", 0)


async def test_shutdown_closes_websockets_with_1001_ends_streams_and_runs_lifespan() -> None:
    events: list[str] = []
    disconnects: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            events.append("lifespan shutdown")
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":  # an event stream that listens for disconnect
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "body": b"data: hi\n\n",
                        "more_body": True})
            assert (await receive())["more_body"] is False
            disconnects.append(await receive())
            await send({"type": "http.response.body", "body": b""})
        else:
            await receive()
            await send({"type": "websocket.accept"})
            disconnects.append(await receive())

    server = Server(app=app)
    with anyio.fail_after(TIMEOUT):
        async with running(server) as port:
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/") as ws, \
                    http_client(port) as client, client.stream("GET", "/events") as stream:
                lines = stream.aiter_lines()
                assert await lines.__anext__() == "data: hi"
                await server.shutdown()
                with pytest.raises(ConnectionClosedOK) as closed:
                    await ws.receive()
                rest = [line async for line in lines]
    assert closed.value.code == 1001
    assert rest == [""]
    assert {"type": "http.disconnect"} in disconnects
    assert {"type": "websocket.disconnect", "code": 1001,
            "reason": "server shutting down"} in disconnects
    assert events == ["lifespan shutdown"]


# -- the command line ----------------------------------------------------------------


async def test_cli_serves_fastapi_app_and_exits_0_on_sigterm(
        anyio_backend: str, free_tcp_port: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve tests.asgi_apps:app --backend trio`` (and asyncio)."""
    marker = tmp_path / "lifespan"
    monkeypatch.setenv("FAYE_TEST_LIFESPAN_MARKER", str(marker))
    monkeypatch.chdir(ROOT)
    port = free_tcp_port
    with anyio.fail_after(30):
        async with run_cli("serve", anyio_backend, port, "tests.asgi_apps:app") as cli:
            assert marker.read_text() == "startup\n"
            async with http_client(port) as client:
                item = await client.get("/items/7")
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws", ["chat"]) as ws:
                await ws.send("over the command line")
                assert await ws.receive() == "over the command line"
                cli.process.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosedOK) as closed:
                    await ws.receive()
            assert await cli.wait_exit() == 0
    assert item.json() == {"item_id": 7, "q": None}
    assert closed.value.code == 1001
    assert marker.read_text() == "startup\nshutdown\n"


async def test_cli_startup_failure_and_bad_app_spec(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n")
    with anyio.fail_after(30):
        results = [await anyio.run_process(
            [sys.executable, "-m", "faye_websocket", "serve", spec,
             "--port", "0"], cwd=tmp_path, check=False)
            for spec in ("failing:app", "missing:app", "failing:nothing", "failing")]
    assert [r.returncode for r in results] == [1, 1, 1, 1]
    errors = [r.stderr.decode() for r in results]
    assert errors[0] == "error: application startup failed: no database\n"
    assert errors[1].startswith("error: can't import 'missing'")
    assert errors[2] == "error: module 'failing' has no attribute 'nothing'\n"
    assert errors[3].startswith("error: the application is given as MODULE:ATTR")
