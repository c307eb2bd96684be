"""Servers for the WebSocket.Client tests (``test_client*.py``): our echo
server, the Node reference server (``interop/server.js``) and a TLS echo
server, each on a free loopback port; and the small checks they share.
"""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from faye_websocket import Client, ConnectionClosed, Event, PerMessageDeflate, WebSocket
from faye_websocket.http import Request, Server

from .helpers import SECOND, running, stop_process

SERVER_JS = Path(__file__).parent / "interop" / "server.js"
#: Bound on each I/O test.
TIMEOUT = 15 * SECOND
#: Text messages that make our echo server close with 4001, or drop the TCP
#: connection without a Close frame.
CLOSE_ME = "please close with 4001"
VANISH = "please vanish"


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
        await stop_process(process)


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


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@asynccontextmanager
async def tls_echo(context: ssl.SSLContext) -> AsyncIterator[Peer]:
    ours = EchoServer()
    async with running(ours.server, ssl_context=context) as port:
        yield Peer("ours", port, host="localhost", ours=ours)
