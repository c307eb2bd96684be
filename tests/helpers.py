"""What many test modules share: running a server, a loopback TCP pair,
counting file descriptors, recording events, reading a peer to its end,
and the one time unit every bound on a wait is a multiple of."""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from faye_websocket import Event
from faye_websocket.http import Server

#: The tests' unit of time, in seconds: each module's ``TIMEOUT`` (the
#: bound on every wait of a test) is a multiple of it. A slow machine sets
#: ``FAYE_TEST_TIME_SCALE=3`` for three times as long (and raises
#: pytest-timeout's ``--timeout`` with it).
SECOND = float(os.environ.get("FAYE_TEST_TIME_SCALE", "1"))

#: RFC 6455 section 1.3's GUID, for computing ``Sec-WebSocket-Accept`` here
#: rather than with the code under test.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@asynccontextmanager
async def running(server: Server, *, ssl_context: ssl.SSLContext | None = None,
                  host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Run ``server`` on a free port of ``host`` for the block; yields the port."""
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(serve, server, ssl_context, host)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


async def serve(server: Server, ssl_context: ssl.SSLContext | None, host: str = "127.0.0.1",
                *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """``server.serve()`` on a free port, for ``task_group.start()`` (which
    returns the port)."""
    await server.serve(host, 0, ssl_context=ssl_context, task_status=task_status)


@asynccontextmanager
async def raw_server(handle: Callable[[anyio.abc.SocketStream], Awaitable[None]]
                     ) -> AsyncIterator[int]:
    """A TCP server running ``handle`` on each connection; yields its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


async def tcp_pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    """A connected loopback pair: (client, accepted)."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    listener = multi.listeners[0]
    assert isinstance(listener, anyio.abc.SocketListener)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        return client, await listener.accept()


async def stop_process(process: anyio.abc.Process) -> None:
    """Kill ``process`` if it still runs and wait for it, even while the
    caller is being cancelled."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream,
               scope: anyio.CancelScope) -> None:
    """Copy ``source`` to ``sink`` until either breaks, then cancel
    ``scope``: one direction of a test proxy's tunnel."""
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    scope.cancel()


def open_fds() -> int:
    """File descriptors this process holds (Linux): the leak checks compare
    it before and after."""
    return len(os.listdir("/proc/self/fd"))


def recorded(ws: Any, *types: str) -> list[Event]:
    """Record the events of ``ws`` (by default ``open``, ``error`` and
    ``close``), in the order they fire."""
    events: list[Event] = []
    for type in types or ("open", "error", "close"):
        ws.on(type, events.append)
    return events


def kinds(events: list[Event]) -> list[tuple[str, int | None]]:
    """The type and code of each event."""
    return [(e.type, e.code) for e in events]


async def read_to_eof(stream: anyio.abc.AnyByteStream) -> bytes:
    """What the other side sends until it closes the connection (or resets it)."""
    chunks = bytearray()
    try:
        while True:
            chunks += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        pass
    return bytes(chunks)


def header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The values of header ``name``, joined with commas; ``None`` if absent."""
    values = [v for k, v in headers if k.lower() == name.lower()]
    return ", ".join(values) if values else None


def accept_for(key: str | bytes) -> str:
    """The ``Sec-WebSocket-Accept`` answering ``key``."""
    raw = key.encode() if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw + GUID.encode()).digest()).decode()
