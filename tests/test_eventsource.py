"""The EventSource server: wire format, keep-alive, disconnects, TLS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from faye_websocket import EventSource
from faye_websocket._core.sse import format_event, format_retry
from faye_websocket.http import Request, Response, Server
from faye_websocket.testing import memory_stream_pair

from .helpers import open_fds, running

pytestmark = pytest.mark.anyio

Body = Callable[[EventSource], Awaitable[None]]


def sse_request(**headers: str) -> Request:
    return Request.build("GET", "/stream?x=1", {"Host": "example.com",
                                                "Accept": "text/event-stream", **headers})


# -- framing (no I/O) --------------------------------------------------------------


@pytest.mark.parametrize(("data", "kwargs", "wire"), [
    ("hello", {}, b"data: hello\r\n\r\n"),
    ("a\nb\r\nc\rd", {}, b"data: a\r\ndata: b\r\ndata: c\r\ndata: d\r\n\r\n"),
    ("", {}, b"data: \r\n\r\n"),
    ("x\n", {}, b"data: x\r\ndata: \r\n\r\n"),
    ("news", {"event": "notification", "id": "99"},
     b"event: notification\r\nid: 99\r\ndata: news\r\n\r\n"),
    ("zero", {"id": "0"}, b"id: 0\r\ndata: zero\r\n\r\n"),  # the reference drops id 0
    ("reset", {"id": ""}, b"id: \r\ndata: reset\r\n\r\n"),
    ("é", {}, "data: é\r\n\r\n".encode()),
])
def test_event_wire_format(data: str, kwargs: dict[str, str], wire: bytes) -> None:
    assert format_event(data, **kwargs) == wire


@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nid: 1"])
def test_line_breaks_in_fields_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        format_event("x", **{field: value})


def test_retry_is_written_in_milliseconds() -> None:
    assert format_retry(5) == b"retry: 5000\r\n\r\n"
    assert format_retry(0.25) == b"retry: 250\r\n\r\n"
    assert format_retry(0) == b"retry: 0\r\n\r\n"  # 0 means 0 (the reference falls back)
    with pytest.raises(ValueError):
        format_retry(-1)


def test_is_eventsource() -> None:
    assert EventSource.is_eventsource(sse_request())
    assert EventSource.is_eventsource(sse_request(Accept="text/html, text/event-stream;q=1"))
    assert not EventSource.is_eventsource(sse_request(Accept="text/html"))
    assert not EventSource.is_eventsource(Request.build("POST", "/", {
        "Accept": "text/event-stream"}))


# -- over a raw byte stream (as the reference writes it) ----------------------------


async def read_until(stream: anyio.abc.AnyByteStream, marker: bytes, buffer: bytearray
                     ) -> None:
    while marker not in buffer:
        buffer += await stream.receive()


async def test_raw_stream_response_byte_for_byte() -> None:
    client, server = memory_stream_pair()
    async with client:
        async with EventSource(sse_request(**{"Last-Event-ID": "41"}), server,
                               headers={"Access-Control-Allow-Origin": "*"},
                               retry=10, ping=None) as es:
            assert es.last_event_id == "41"
            assert es.url == "http://example.com/stream?x=1"
            assert es.ready_state is EventSource.OPEN
            assert await es.send("line 1\nline 2", event="update", id="42")
            await es.ping()
        assert es.ready_state is EventSource.CLOSED
        assert not await es.send("too late")
        received = bytearray()
        with anyio.fail_after(5):
            try:
                while True:
                    received += await client.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
    assert bytes(received) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache, no-store\r\nAccess-Control-Allow-Origin: *\r\n"
        b"Connection: close\r\n\r\n"
        b"retry: 10000\r\n\r\n"
        b"event: update\r\nid: 42\r\ndata: line 1\r\ndata: line 2\r\n\r\n"
        b":\r\n\r\n")


async def test_last_event_id_defaults_to_empty() -> None:
    client, server = memory_stream_pair()
    async with client, server:
        assert EventSource(sse_request(), server).last_event_id == ""


async def test_protocol_headers_cannot_be_overridden() -> None:
    client, server = memory_stream_pair()
    async with client, server:
        with pytest.raises(ValueError):
            EventSource(sse_request(), server, headers={"Content-Type": "text/plain"})


# -- through the HTTP helper -----------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.es: EventSource | None = None
        self.closed = anyio.Event()
        self.events: list[str] = []


@asynccontextmanager
async def serving(body: Body, *, ssl_context: ssl.SSLContext | None = None,
                  **options: Any) -> AsyncIterator[tuple[int, Seen]]:
    seen = Seen()

    async def on_request(request: Request, response: Response) -> None:
        es = EventSource(request, response, **options)
        seen.es = es
        es.on("open", lambda event: seen.events.append("open"))

        def on_close(event: Any) -> None:
            seen.events.append("close")
            seen.closed.set()

        es.onclose = on_close
        async with es:
            await body(es)

    async with running(Server(on_request=on_request), ssl_context=ssl_context) as port:
        yield port, seen


async def open_stream(port: int, **kwargs: Any) -> anyio.abc.ByteStream:
    stream: anyio.abc.ByteStream = await anyio.connect_tcp("127.0.0.1", port, **kwargs)
    await stream.send(b"GET /events HTTP/1.1\r\nHost: localhost\r\n"
                      b"Accept: text/event-stream\r\nLast-Event-ID: 7\r\n\r\n")
    return stream


async def test_ping_timer_writes_comment_lines() -> None:
    async def body(es: EventSource) -> None:
        await es.wait_closed()

    async with serving(body, ping=0.01) as (port, seen):
        stream = await open_stream(port)
        async with stream:
            buffer = bytearray()
            with anyio.fail_after(10):
                while buffer.count(b":\r\n\r\n") < 5:  # counted, not timed
                    buffer += await stream.receive()
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"retry: 5000\r\n\r\n" in rest


async def test_client_disconnect_fires_close_within_a_second() -> None:
    async def body(es: EventSource) -> None:
        await es.send("hello")
        await es.wait_closed()
        assert not await es.send("after")

    async with serving(body, ping=None) as (port, seen):
        stream = await open_stream(port)
        buffer = bytearray()
        with anyio.fail_after(5):
            await read_until(stream, b"data: hello", buffer)
        await stream.aclose()
        with anyio.fail_after(1):
            await seen.closed.wait()
    assert seen.events == ["open", "close"]
    assert seen.es is not None and seen.es.last_event_id == "7"


async def test_cancelling_the_stream_leaks_nothing() -> None:
    scope = anyio.CancelScope()
    started = anyio.Event()

    async def body(es: EventSource) -> None:
        with scope:
            started.set()
            while await es.send("tick"):  # noqa: ASYNC110 (the loop is the stream)
                await anyio.sleep(0.001)

    before = open_fds()
    async with serving(body, ping=0.001) as (port, seen):
        stream = await open_stream(port)
        async with stream:
            with anyio.fail_after(5):
                await started.wait()
                scope.cancel()
                await seen.closed.wait()
                buffer = bytearray()
                try:
                    while True:
                        buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
    assert buffer.endswith(b"0\r\n\r\n")  # the chunked body was ended properly
    with anyio.fail_after(5):
        while open_fds() > before:  # noqa: ASYNC110 (no event for fds)
            await anyio.sleep(0.01)


async def test_tls(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    async def body(es: EventSource) -> None:
        assert es.url == "https://localhost/events"
        await es.send("secure", id="1")

    async with serving(body, ssl_context=server_context, ping=None) as (port, seen):
        stream = await open_stream(port, tls=True, ssl_context=client_context,
                                   tls_hostname="localhost")
        async with stream:
            buffer = bytearray()
            with anyio.fail_after(5):
                try:  # the stream ends with the block: read to the TLS close
                    while True:
                        buffer += await stream.receive()
                except anyio.EndOfStream:
                    pass
    assert b"id: 1\r\ndata: secure\r\n\r\n" in buffer
    assert buffer.endswith(b"0\r\n\r\n")
