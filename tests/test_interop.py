"""Interop with the Node reference: faye-websocket 0.11.4's client (with
permessage-deflate 0.1.7) against our server.

``tests/interop/client.js`` reports its events as JSON lines on stdout and
takes commands as JSON lines on stdin. Its dependencies are installed with
``npm ci --prefix tests/interop``; without them (or without ``node``) these
tests fail rather than skip, so a missing peer is never mistaken for a pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from faye_websocket import PerMessageDeflate, WebSocket
from faye_websocket.http import Request, Server

from .helpers import SECOND, running, stop_process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

INTEROP = Path(__file__).parent / "interop"
CLIENT_JS = INTEROP / "client.js"
#: Bound on each test; the Node client gives up by itself after 20 s.
TIMEOUT = 15 * SECOND
#: The text message that makes our server close with 4001.
CLOSE_ME = "please close with 4001"


def node_command() -> str:
    """Path of ``node``, failing the test with instructions when the peer is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("interop tests need Node.js: install `node`, then run "
                    "`npm ci --prefix tests/interop`", pytrace=False)
    for package in ("faye-websocket", "permessage-deflate"):
        if not (INTEROP / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"tests/interop/node_modules/{package} is missing: "
                        "run `npm ci --prefix tests/interop`", pytrace=False)
    return node


class EchoServer:
    """Our server: echo with subprotocols irc/xmpp and permessage-deflate."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.closes: list[tuple[int | None, str]] = []
        self.closed = anyio.Event()
        self.server = Server(on_upgrade=self.on_upgrade)
        self.port = 0

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        ws = WebSocket(request, stream, body, ["irc", "xmpp"],
                       extensions=[PerMessageDeflate()])

        def on_close(event: Any) -> None:
            self.closes.append((event.code, event.reason))
            self.closed.set()

        ws.on("close", on_close)
        async with ws:
            self.urls.append(ws.url)
            async for message in ws:
                if message == CLOSE_ME:
                    await ws.close(4001, "server says bye")
                    break
                await ws.send(message)


class NodeClient:
    """The running ``client.js``: commands in, JSON events out."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self.events: list[dict[str, Any]] = []
        self.stderr = bytearray()

    async def command(self, **command: object) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(command).encode() + b"\n")

    async def event(self) -> dict[str, Any]:
        try:
            line = await self._stdout.receive_until(b"\n", 1 << 24)
        except (anyio.IncompleteRead, anyio.EndOfStream):
            raise AssertionError(f"client.js stdout ended after {self.events}; stderr: "
                                 f"{self.stderr.decode(errors='replace')}") from None
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    async def expect(self, kind: str) -> dict[str, Any]:
        """The next event, which must be of type ``kind``."""
        event = await self.event()
        assert event.get("event") == kind, (kind, event)
        return event

    async def echo(self, **command: object) -> dict[str, Any]:
        """Send a message and wait for the echo (before any later close)."""
        await self.command(**command)
        return await self.expect("message")

    async def drain_stderr(self) -> None:
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.stderr += chunk


@asynccontextmanager
async def node_client(node: str, url: str) -> AsyncIterator[NodeClient]:
    process = await anyio.open_process([node, str(CLIENT_JS), url], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with anyio.create_task_group() as tg:
            client = NodeClient(process)
            tg.start_soon(client.drain_stderr)
            yield client
            tg.cancel_scope.cancel()
    finally:
        await stop_process(process)


@asynccontextmanager
async def session(path: str = "/path") -> AsyncIterator[tuple[EchoServer, NodeClient]]:
    """Our server on a free port and the Node client connected to it."""
    node = node_command()  # fail before starting anything when the peer is missing
    echo = EchoServer()
    async with running(echo.server) as echo.port, \
            node_client(node, f"ws://127.0.0.1:{echo.port}{path}") as client:
        yield echo, client


async def finish(client: NodeClient) -> int:
    """Wait for client.js to exit after its close event."""
    return await client.process.wait()


async def test_open_negotiates_subprotocol_and_deflate() -> None:
    with anyio.fail_after(TIMEOUT):
        async with session("/chat?room=1") as (server, client):
            opened = await client.expect("open")
            assert opened["protocol"] == "irc"
            assert "permessage-deflate" in opened["extensions"]
            await client.command(close=[1000, "done"])
            closed = await client.expect("close")
            assert closed["code"] == 1000
            assert await finish(client) == 0
    assert server.urls == [f"ws://127.0.0.1:{server.port}/chat?room=1"]


async def test_text_and_binary_echo_with_deflate() -> None:
    with anyio.fail_after(TIMEOUT):
        async with session() as (_server, client):
            await client.expect("open")

            echoed = await client.echo(send="hello")
            assert (echoed["type"], echoed["data"]) == ("text", "hello")

            unicode = "héllo wörld ✓ — 日本語 🚀"
            echoed = await client.echo(send=unicode)
            assert (echoed["type"], echoed["data"]) == ("text", unicode)

            echoed = await client.echo(send="")
            assert (echoed["type"], echoed["data"]) == ("text", "")

            payload = bytes(range(256)).hex()
            echoed = await client.echo(send_binary_hex=payload)
            assert (echoed["type"], echoed["data"]) == ("binary", payload)

            big = "".join(chr(0x41 + i % 26) for i in range(100_000))
            echoed = await client.echo(send=big)
            assert echoed["type"] == "text"
            assert echoed["data"] == big

            big_binary = (b"\x00\xff" * 50_000).hex()
            echoed = await client.echo(send_binary_hex=big_binary)
            assert (echoed["type"], echoed["data"]) == ("binary", big_binary)

            await client.command(close=[1000, ""])
            assert (await client.expect("close"))["code"] == 1000
            assert await finish(client) == 0


async def test_ping_gets_pong() -> None:
    with anyio.fail_after(TIMEOUT):
        async with session() as (_server, client):
            await client.expect("open")
            await client.command(ping="are you there")
            pong = await client.expect("pong")
            assert pong["data"] == "are you there"
            # The connection still works after the ping.
            echoed = await client.echo(send="after ping")
            assert echoed["data"] == "after ping"
            await client.command(close=[1000, ""])
            assert (await client.expect("close"))["code"] == 1000


async def test_client_initiated_close_seen_on_both_sides() -> None:
    with anyio.fail_after(TIMEOUT):
        async with session() as (server, client):
            await client.expect("open")
            echoed = await client.echo(send="last words")
            assert echoed["data"] == "last words"
            await client.command(close=[1000, "bye bye"])
            closed = await client.expect("close")
            assert (closed["code"], closed["reason"]) == (1000, "bye bye")
            assert await finish(client) == 0
            await server.closed.wait()
    assert server.closes == [(1000, "bye bye")]


async def test_server_initiated_close_4001_seen_by_node() -> None:
    with anyio.fail_after(TIMEOUT):
        async with session() as (server, client):
            await client.expect("open")
            echoed = await client.echo(send="first")
            assert echoed["data"] == "first"
            await client.command(send=CLOSE_ME)
            closed = await client.expect("close")
            assert (closed["code"], closed["reason"]) == (4001, "server says bye")
            assert await finish(client) == 0
            await server.closed.wait()
    assert server.closes == [(4001, "server says bye")]
    assert [e for e in client.events if e["event"] == "error"] == []
