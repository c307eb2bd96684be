"""Helpers for the hub tests: a server that subscribes every WebSocket and
EventSource to the channel in its path, raw readers, and a Redis server."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

from faye_websocket import EventSource, Hub, WebSocket
from faye_websocket.http import Request, Response, Server


def _route(target: str) -> tuple[str, str | None]:
    """``/<kind>/<channel>?last_id=X`` -> (channel, X or None)."""
    url = urlsplit(target)
    channel = url.path.rsplit("/", 1)[-1]
    values = parse_qs(url.query).get("last_id")
    return channel, values[0] if values else None


def hub_server(hub: Hub, *, write_limit: int = 65536, **subscribe: Any) -> Server:
    """``/ws/<channel>``: a WebSocket subscribed to the channel (``?last_id=``
    resumes), whose messages are published there; ``/es/<channel>``: an
    EventSource subscribed to it (resuming after its Last-Event-ID)."""

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        channel, last_id = _route(request.target)
        _small_send_buffer(stream)
        async with WebSocket(request, stream, body, write_limit=write_limit) as ws:
            options = dict(subscribe)
            if last_id is not None:
                options["last_id"] = last_id
            async with hub.subscribe(ws, channel, **options):
                async for message in ws:
                    await hub.publish(channel, message)

    async def on_request(request: Request, response: Response) -> None:
        channel, _ = _route(request.target)
        _small_send_buffer(response.stream)
        async with EventSource(request, response, ping=None, retry=0.5,
                               write_limit=write_limit) as es:
            async with hub.subscribe(es, channel, **subscribe):
                await es.wait_closed()

    return Server(on_request=on_request, on_upgrade=on_upgrade)


def _small_send_buffer(stream: anyio.abc.AnyByteStream) -> None:
    """A fixed, small kernel send buffer (no autotuning up to megabytes), so
    a client that stops reading is soon behind in our buffers, where the
    hub's policies act."""
    raw = stream.extra(SocketAttribute.raw_socket, None)
    if raw is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)


async def wait_for(condition: Any, within: float = 10) -> None:
    """Poll ``condition()`` until it is true, for at most ``within`` seconds
    (the hub has no event for "subscribed"; polling keeps the tests honest
    about what a user can see)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


class RawReader:
    """A minimal WebSocket client on a bare socket, for many connections at
    little cost: it reads unmasked server frames (no extensions). A test
    stalls one by not calling :meth:`receive`."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, port: int, path: str) -> RawReader:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        reader = cls(stream)
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        while b"\r\n\r\n" not in reader.buffer:
            reader.buffer += await stream.receive()
        head, _, rest = bytes(reader.buffer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        reader.buffer = bytearray(rest)
        return reader

    def _frame(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        length, pos = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < pos + length:
            return None
        opcode, payload = buf[0] & 0x0F, bytes(buf[pos:pos + length])
        del buf[:pos + length]
        return opcode, payload

    async def receive(self) -> str | bytes | None:
        """The next message; None once the server closed (``close_code`` set)."""
        while True:
            frame = self._frame()
            if frame is not None:
                opcode, payload = frame
                if opcode == 0x8:
                    self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                    return None
                if opcode == 0x1:
                    return payload.decode()
                if opcode == 0x2:
                    return payload
                continue  # ping/pong
            try:
                self.buffer += await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return None

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


class StalledClient:
    """A WebSocket client that never reads after its handshake, on a blocking
    socket with a small receive buffer (so the kernel holds little for it,
    and its server-side backlog shows up quickly). Blocking calls run in a
    worker thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, port: int, path: str) -> StalledClient:
        return cls(await anyio.to_thread.run_sync(_blocking_handshake, port, path))

    async def read_to_close(self, within: float = 10) -> int | None:
        """Read on until the server's Close (or EOF); its close code."""
        reader = RawReader(None)  # type: ignore[arg-type]
        self.sock.settimeout(within)

        def read() -> None:
            while True:
                frame = reader._frame()
                if frame is not None:
                    if frame[0] == 0x8:
                        self.close_code = int.from_bytes(frame[1][:2], "big")
                        return
                    continue
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                reader.buffer += chunk

        await anyio.to_thread.run_sync(read)
        return self.close_code

    def close(self) -> None:
        self.sock.close()


def _blocking_handshake(port: int, path: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     .encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: nothing past the head
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return sock
    except BaseException:
        sock.close()
        raise


# -- a real Redis ------------------------------------------------------------

REDIS_MISSING = (
    "redis-server is not installed: the Redis hub tests need it (they start their "
    "own on a free loopback port). Install it: `sudo apt-get install redis-server` "
    "(Debian/Ubuntu; .ci/run does this), `brew install redis` (macOS).")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A throw-away ``redis-server`` on a loopback port (no persistence)."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(REDIS_MISSING, pytrace=False)
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
