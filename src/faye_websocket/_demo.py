"""The demo and echo servers behind ``python -m faye_websocket``."""

from __future__ import annotations

import sys
from importlib import resources

import anyio
import anyio.abc

from ._core.deflate import PerMessageDeflate
from ._core.http import Request
from ._emitter import Event
from ._eventsource import EventSource
from ._runtime.server import Response, Server
from ._websocket import WebSocket

__all__ = ["demo_server", "echo_server"]

ECHO_MAX_LENGTH = 16 * 2**20


def _log(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def demo_server(*, interval: float = 2.0, drafts: bool = True) -> Server:
    """The reference's ``examples/server.js``: echo over WebSocket, a page at ``/``.

    Like the reference, it also speaks the drafts hixie-75/76 unless
    ``drafts`` is false.
    """

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        if not WebSocket.is_websocket(request):
            return
        ws = WebSocket(request, stream, body, ["irc", "xmpp"],
                       extensions=[PerMessageDeflate()], ping=15, drafts=drafts)

        def on_close(event: Event) -> None:
            _log(f"close {event.code} {event.reason}")

        ws.on("close", on_close)
        async with ws:
            _log(f"open {ws.url} {ws.version} {ws.protocol}")
            await _echo(ws)

    async def on_request(request: Request, response: Response) -> None:
        if EventSource.is_eventsource(request):
            await _event_stream(request, response, interval)
            return
        if request.method in ("GET", "HEAD") and request.path == "/":
            page = resources.files("faye_websocket").joinpath("demo.html").read_bytes()
            response.write_head(200, {"Content-Type": "text/html; charset=utf-8"})
            await response.end(page)
            return
        response.write_head(404, {"Content-Type": "text/plain; charset=utf-8"})
        await response.end("Not found\n")

    return Server(on_request=on_request, on_upgrade=on_upgrade)


async def _event_stream(request: Request, response: Response, interval: float) -> None:
    """Welcome, then ``Time: N`` every interval and, half an interval later,
    an ``update`` event with id N; N goes on from ``Last-Event-ID``."""
    async with EventSource(request, response) as es:
        _log(f"open {es.url} {es.last_event_id}")
        try:
            time = int(es.last_event_id)
        except ValueError:
            time = 0
        es.on("close", lambda _event: _log(f"close {es.url}"))
        await es.send("Welcome!\n\nThis is an EventSource server.")
        await anyio.sleep(interval)
        while es.ready_state is EventSource.OPEN:
            time += 1
            await es.send(f"Time: {time}")
            await anyio.sleep(interval / 2)
            await es.send("Update!!", event="update", id=str(time))
            await anyio.sleep(interval / 2)


def echo_server(*, drafts: bool = True) -> Server:
    """A bare echo server (deflate on, 16 MiB messages, and the drafts unless
    ``drafts`` is false) for conformance runs."""

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body, extensions=[PerMessageDeflate()],
                             max_length=ECHO_MAX_LENGTH, drafts=drafts) as ws:
            await _echo(ws)

    return Server(on_upgrade=on_upgrade)
