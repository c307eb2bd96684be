"""Our WebSocket and EventSource inside ASGI applications, under the real
servers: uvicorn (its default WebSocket implementation, and ``--ws
wsproto``) and hypercorn (asyncio and trio workers), each run as a user
runs it, in its own process, serving tests/asgi/apps.py (Starlette routes
and a plain ASGI app using the adapters). Our client, and the Node
reference client, drive them on both anyio backends.

The adapters' own behaviour where no server can be made to show it (a
server without the denial extension, an old spec version, a failing
``send``, backpressure on ``receive``) is checked against an in-memory
ASGI server in tests/test_asgi_unit.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import h11
import pytest

from faye_websocket import ConnectionClosedError, EventSource, HandshakeError, WebSocket

from .helpers import SECOND
from .test_interop import node_client, node_command

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
APP = "tests.asgi.apps:app"
#: Bound on each test's waits.
TIMEOUT = 15 * SECOND
#: Bound on a server's start.
START_TIMEOUT = 30


def _command(name: str, port: int) -> list[str]:
    uvicorn = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "warning", "--no-access-log"]
    hypercorn = [sys.executable, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}"]
    return {
        "uvicorn": uvicorn,
        "uvicorn-wsproto": [*uvicorn, "--ws", "wsproto"],
        "hypercorn-asyncio": [*hypercorn, "--worker-class", "asyncio"],
        "hypercorn-trio": [*hypercorn, "--worker-class", "trio"],
    }[name]


SERVERS = ["uvicorn", "uvicorn-wsproto", "hypercorn-asyncio", "hypercorn-trio"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AsgiServer:
    """A real ASGI server process serving tests/asgi/apps.py."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.log = log_dir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(_command(name, self.port), cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"{self.name} did not listen within {START_TIMEOUT} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def closing_code(self, code: int, reason: str) -> tuple[int, str]:
        """What the application learns of a client's Close: hypercorn (0.18)
        passes no code on, reporting every close it did not start as 1006."""
        return (1006, "") if self.name.startswith("hypercorn") else (code, reason)

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module", params=SERVERS)
def asgi_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    server = AsgiServer(request.param, tmp_path_factory.mktemp("asgi"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    # Every error the application raised is a failure of the adapters.
    output = server.output()
    assert "Traceback" not in output, output


async def http_get(port: int, target: str, headers: list[tuple[str, str]] | None = None,
                   ) -> tuple[int, dict[str, str], bytes]:
    """GET ``target`` over a fresh connection and read the whole response."""
    conn = h11.Connection(h11.CLIENT)
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        request = h11.Request(method="GET", target=target, headers=[
            ("Host", f"127.0.0.1:{port}"), ("Connection", "close"), *(headers or [])])
        await stream.send(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, head, body = 0, {}, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    conn.receive_data(b"")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                head = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, head, bytes(body)


async def server_log(server: AsgiServer, key: str, value: object) -> dict[str, Any]:
    """The application's log entry whose ``key`` is ``value`` (polled: the
    application records it when its connection ends)."""
    while True:
        _, _, body = await http_get(server.port, "/log")
        for entry in json.loads(body):
            if entry.get(key) == value:
                return dict(entry)
        await anyio.sleep(0.02)


def tag() -> str:
    return uuid.uuid4().hex[:12]


async def test_echo_text_binary_and_a_large_message(asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url("/echo"), ["echo", "chat"]) as ws:
            assert ws.protocol == "echo"  # the client's first that the route speaks
            messages: list[str | bytes] = ["hello", "ünïcode ✓", b"\x00\x01\xff", "x" * 60_000]
            for message in messages:
                await ws.send(message)
                assert await ws.receive() == message
        assert ws.close_code == 1000


async def test_the_adapter_sees_the_request(asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url("/info?room=1"), ["xmpp", "chat"],
                                    headers={"Origin": "https://site.example"}) as ws:
            info = json.loads(str(await ws.receive()))
            assert ws.protocol == "chat"
            assert ws.headers["x-adapter"] == "faye"  # extra accept headers
    assert info["protocol"] == "chat"
    assert info["url"] == asgi_server.url("/info?room=1")
    assert info["version"] == "hybi-13"
    assert info["ready_state"] == "OPEN"
    assert info["origin"] == "https://site.example"
    assert info["repr"].startswith(f"<WebSocket OPEN {asgi_server.url('/info?room=1')} "
                                   "peer=127.0.0.1:")


async def test_the_application_closes_with_a_code_and_reason(asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url(f"/echo?{tag()}")) as ws:
            await ws.send("close please")
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.receive()
        assert (caught.value.code, caught.value.reason) == (4001, "asked to")
        assert (ws.close_code, ws.close_reason) == (4001, "asked to")


async def test_the_client_closes_and_the_application_sees_its_code(
        asgi_server: AsgiServer) -> None:
    target = f"/echo?{tag()}"
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url(target)) as ws:
            await ws.send("one")
            assert await ws.receive() == "one"
            await ws.close(4002, "done here")
        entry = await _closed(asgi_server, target)
    assert (entry["code"], entry["reason"]) == asgi_server.closing_code(4002, "done here")


async def _closed(server: AsgiServer, target: str) -> dict[str, Any]:
    return await server_log(server, "target", target)


async def test_a_client_that_vanishes_ends_the_application_side_with_1006(
        asgi_server: AsgiServer) -> None:
    target = f"/echo?{tag()}"
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url(target)) as ws:
            await ws.send("one")
            assert await ws.receive() == "one"
            assert ws._transport is not None
            await ws._transport.abort()  # the TCP connection drops, no Close frame
        entry = await _closed(asgi_server, target)
    assert entry["code"] == 1006


async def test_a_message_over_max_length_closes_with_1009(asgi_server: AsgiServer) -> None:
    target = f"/echo?{tag()}"
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url(target)) as ws:
            await ws.send(b"x" * 70_000)  # the route's max_length is 64 KiB
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.receive()
        assert caught.value.code == 1009
        entry = await _closed(asgi_server, target)
    assert entry["code"] == 1009


async def test_reject_answers_the_upgrade_with_a_response(asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(HandshakeError) as caught:
        async with WebSocket.Client(asgi_server.url("/deny")):
            pass
    assert caught.value.status_code == 401
    assert caught.value.body == b"log in first"
    assert caught.value.headers is not None
    assert dict(caught.value.headers)["www-authenticate"] == "Bearer"


async def test_an_origin_not_allowed_gets_403(asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(HandshakeError) as caught:
            async with WebSocket.Client(asgi_server.url("/origin"),
                                        headers={"Origin": "https://evil.example"}):
                pass
        assert caught.value.status_code == 403
        async with WebSocket.Client(asgi_server.url("/origin"),
                                    headers={"Origin": "https://good.example"}) as ws:
            assert await ws.receive() == "welcome"


@pytest.mark.parametrize(("extra", "target", "first"), [
    ([("Last-Event-ID", "5")], "/count", 6),
    ([], "/count?last_event_id=2", 3),
    ([], "/count", 1),
])
async def test_eventsource_resumes_after_last_event_id(
        asgi_server: AsgiServer, extra: list[tuple[str, str]], target: str,
        first: int) -> None:
    with anyio.fail_after(TIMEOUT):
        status, head, body = await http_get(asgi_server.port, target,
                                            [("Accept", "text/event-stream"), *extra])
    assert status == 200
    assert head["content-type"] == "text/event-stream"
    assert head["cache-control"] == "no-cache, no-store"
    events = body.decode().split("\r\n\r\n")
    assert events[0] == "retry: 2000"
    assert events[1:4] == [f"id: {n}\r\ndata: event {n}" for n in range(first, first + 3)]


async def test_eventsource_notices_at_once_that_the_client_left(
        asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with EventSource.Client(asgi_server.url("/forever", "http")) as es:
            message = await es.receive()
            assert message.data == "hello"
        # The route waits up to 10 s for close; it fires well within TIMEOUT.
        entry = await server_log(asgi_server, "path", "/forever")
    assert entry["state"] == "CLOSED"


async def test_a_plain_asgi_app_uses_both_adapters(asgi_server: AsgiServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with WebSocket.Client(asgi_server.url("/raw/")) as ws:
            await ws.send("plain")
            assert await ws.receive() == "plain"
        async with EventSource.Client(asgi_server.url("/raw/", "http")) as es:
            message = await es.receive()
        assert (message.type, message.data) == ("greeting", "raw")
        status, _, body = await http_get(asgi_server.port, "/raw/")
    assert (status, body) == (404, b"not here")


async def test_the_node_reference_client_talks_to_the_adapter(asgi_server: AsgiServer) -> None:
    node = node_command()
    target = f"/echo?{tag()}"
    with anyio.fail_after(TIMEOUT):
        async with node_client(node, asgi_server.url(target)) as client:
            await client.expect("open")
            assert (await client.echo(send="from node"))["data"] == "from node"
            await client.command(close=[4003, "node is done"])
            closed = await client.expect("close")
            assert await client.process.wait() == 0
        entry = await _closed(asgi_server, target)
    assert closed["code"] == 4003
    assert (entry["code"], entry["reason"]) == asgi_server.closing_code(4003, "node is done")
