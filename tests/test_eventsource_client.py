"""EventSource.Client: the WHATWG parser (no I/O), then the client over real
loopback sockets against our server (reconnection, refusals, close, TLS,
proxies, backpressure, cancellation), then interop with Node: our client
reading the reference's ``WebSocket.EventSource`` (``interop/es_server.js``)
and the ``eventsource`` npm package (``interop/es_client.js``) reading our
server. The Node peers are installed with ``npm ci --prefix tests/interop``;
without them these tests fail rather than skip.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream

from faye_websocket import (
    ConnectError,
    EventSource,
    HandshakeError,
    ProtocolError,
    ProxyError,
    ServerSentEvent,
)
from faye_websocket._core.sse import (
    EventStreamParser,
    EventTooLarge,
    check_response,
    request_headers,
    request_target,
)
from faye_websocket._core.url import parse_url
from faye_websocket.http import Request, Response, Server

from .helpers import SECOND, header, open_fds, pipe, running

pytestmark = pytest.mark.anyio

#: Bound on each I/O test.
TIMEOUT = 15 * SECOND
#: The reconnection time our test server asks for, in seconds.
RETRY = 0.05
INTEROP = Path(__file__).parent / "interop"


def parse(*chunks: bytes, eof: bool = True) -> list[ServerSentEvent]:
    """Feed ``chunks`` to a fresh parser; the events, without their origin."""
    parser = EventStreamParser()
    events = [event for chunk in chunks for event in parser.receive_data(chunk)]
    if eof:
        parser.receive_eof()
    return events


def message(data: str, id: str = "", type: str = "message") -> ServerSentEvent:
    return ServerSentEvent(type, data, id)


# -- the parser: WHATWG HTML 9.2, "Server-sent events" ----------------------------------


def test_spec_stock_ticker_example() -> None:
    # 9.2.6: three data lines make one event with two line breaks inside.
    assert parse(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [message("YHOO\n+2\n10")]


def test_spec_event_types_example() -> None:
    stream = (b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"
              b"event: add\ndata: 113411\n\n")
    assert parse(stream) == [message("73857293", type="add"), message("2153", type="remove"),
                             message("113411", type="add")]


def test_spec_comments_and_ids_example() -> None:
    stream = (b": test stream\n\ndata: first event\nid: 1\n\n"
              b"data:second event\nid\n\ndata:  third event\n")
    # The blank line after "id" resets the last event ID; the third block
    # has no blank line after it, so the end of the stream discards it.
    assert parse(stream) == [message("first event", "1"), message("second event", "")]
    # With its blank line, its data keeps one of the two spaces.
    assert parse(stream + b"\n")[-1] == message(" third event", "")


def test_spec_empty_data_example() -> None:
    # "The first block fires events with the data set to the empty string...
    # the second with the data set to a single newline... the last block is
    # discarded because it is not followed by a blank line."
    assert parse(b"data\n\ndata\ndata\n\ndata:") == [message(""), message("\n")]


def test_spec_space_after_colon_example() -> None:
    assert parse(b"data:test\n\ndata: test\n\n") == [message("test"), message("test")]


def test_field_parsing() -> None:
    stream = (b"data\n\n"                        # no colon: the value is empty
              b"data:  two\n\n"                  # only one space is removed
              b"data: a:b: c\n\n"                # later colons belong to the value
              b"Data: ignored\nfoo: bar\ndata: known\n\n"  # names are case-sensitive
              b"data: nul \x00 kept\n\n"
              b":\n: comment\ndata: after comments\n\n")
    assert [e.data for e in parse(stream)] == ["", " two", "a:b: c", "known", "nul \0 kept",
                                                "after comments"]


def test_last_event_id_persists_and_blank_events_reset_the_type() -> None:
    parser = EventStreamParser(origin="https://example.com", last_event_id="seed")
    events = parser.receive_data(b"data: a\n\nid: 7\ndata: b\n\ndata: c\n\n"
                                 b"event: lost\n\ndata: d\n\nid: 8\n\n")
    assert [(e.data, e.id, e.type) for e in events] == [
        ("a", "seed", "message"), ("b", "7", "message"), ("c", "7", "message"),
        ("d", "7", "message")]
    assert {e.origin for e in events} == {"https://example.com"}
    # A blank event sets the last event ID without an event.
    assert parser.last_event_id == "8"


def test_an_id_in_an_unfinished_event_is_lost_with_it() -> None:
    parser = EventStreamParser()
    assert parser.receive_data(b"id: 1\ndata: kept\n\nid: 2\ndata: cut") == [
        message("kept", "1")]
    parser.receive_eof()
    assert parser.last_event_id == "1"
    # The next stream's ID buffer starts from the last event ID.
    assert parser.receive_data(b"data: next\n\n") == [message("next", "1")]


@pytest.mark.parametrize("value", [b"a\x00b", b"\x00", b"1\x00"])
def test_an_id_with_nul_is_ignored(value: bytes) -> None:
    assert parse(b"id: 1\ndata: x\n\nid: " + value + b"\ndata: y\n\n") == [
        message("x", "1"), message("y", "1")]


def test_retry_takes_ascii_digits_only() -> None:
    parser = EventStreamParser()
    assert parser.retry is None
    for value, expected in [(b"1500", 1500), (b"0", 0), (b"0050", 50), (b"15x", 50),
                            (b"-1", 50), (b"1.5", 50), (b" 100", 50), (b"", 50),
                            ("\u0663".encode(), 50), ("\u00b2".encode(), 50),
                            (b"+3", 50), (b"2500", 2500)]:
        parser.receive_data(b"retry: " + value + b"\n")
        assert parser.retry == expected, value
    parser.receive_data(b"retry\n")  # no colon: an empty value, ignored
    assert parser.retry == 2500
    parser.receive_data(b"retry: " + b"9" * 5000 + b"\n")  # no 4300-digit int() error
    assert parser.retry == 10**18
    assert parse(b"retry: 10\ndata: x\n\n") == [message("x")]  # retry alone is no event


def test_byte_order_mark() -> None:
    bom = "\ufeff".encode()
    assert parse(bom + b"data: x\n\n") == [message("x")]
    # Only one is stripped: a second makes the field name "\ufeffdata".
    assert parse(bom + bom + b"data: x\n\ndata: y\n\n") == [message("y")]
    # Split across chunks, byte by byte.
    assert parse(*[bytes([b]) for b in bom + b"data: x\n\n"]) == [message("x")]
    # Anywhere else it is data.
    assert parse(b"data: " + bom + b"x\n\n") == [message("\ufeffx")]
    # Each new stream may start with one.
    parser = EventStreamParser()
    assert parser.receive_data(bom + b"data: 1\n\n") == [message("1")]
    parser.receive_eof()
    assert parser.receive_data(bom + b"data: 2\n\n") == [message("2")]


def test_invalid_utf8_is_replaced_and_split_characters_are_joined() -> None:
    assert parse(b"data: a\xffb\xed\xa0\x80c\n\n") == [message("a\ufffdb\ufffd\ufffd\ufffdc")]
    snowman = "\u2603".encode()
    assert parse(b"data: " + snowman[:1], snowman[1:2], snowman[2:] + b"\n\n") == [
        message("\u2603")]


STREAM = ("data: one\n\nevent: two\nid: 2\ndata: a\ndata: b\n\n: note\n\n"
          "data\n\nretry: 10\nid\ndata: four\n\n")
EXPECTED = [message("one"), message("a\nb", "2", "two"), message("", "2"), message("four")]


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_ends_split_at_every_position(newline: str) -> None:
    stream = STREAM.replace("\n", newline).encode()
    assert parse(stream) == EXPECTED
    for cut in range(len(stream) + 1):
        assert parse(stream[:cut], stream[cut:]) == EXPECTED, cut
    for first in range(0, len(stream), 3):
        for second in range(first, len(stream) + 1, 2):
            chunks = stream[:first], stream[first:second], stream[second:]
            assert parse(*chunks) == EXPECTED, (first, second)
    assert parse(*[bytes([b]) for b in stream]) == EXPECTED


def test_mixed_line_ends() -> None:
    # faye's server writes "data: a\ndata: b\r\n\r\n" for "a\nb".
    stream = b"data: a\ndata: b\r\n\r\ndata: c\r\rdata: d\r\n\ndata: e\n\r\n"
    expected = [message("a\nb"), message("c"), message("d"), message("e")]
    for cut in range(len(stream) + 1):
        assert parse(stream[:cut], stream[cut:]) == expected, cut


def test_a_cr_at_the_end_of_a_chunk_dispatches_at_once() -> None:
    parser = EventStreamParser()
    # CR CR: the end of the line, then a blank line: no need to wait for a LF.
    assert parser.receive_data(b"data: now\r\r") == [message("now")]
    # The LF that follows completes the CRLF, it is not another blank line.
    assert parser.receive_data(b"\ndata: next\r") == []
    assert parser.receive_data(b"\n") == []
    assert parser.receive_data(b"\r\n") == [message("next")]
    # A CR ending a chunk followed by another CR is two line ends.
    assert parser.receive_data(b"data: x\r") == []
    assert parser.receive_data(b"\r") == [message("x")]


def test_size_limit() -> None:
    # The bytes held for one event: its data (each value and a LF), its
    # type, and the line being read, field name included.
    parser = EventStreamParser(max_size=20)
    assert parser.receive_data(b"data: 12345678901234\n\n") == [message("12345678901234")]
    with pytest.raises(EventTooLarge, match="longer than 20 bytes"):
        parser.receive_data(b"data: 1234567890123456")  # a line still incomplete
    parser = EventStreamParser(max_size=20)
    assert parser.receive_data(b"data: 12345678\n") == []  # 9 bytes held
    assert parser.receive_data(b"data: 1234\n") == []  # 9 + 10 for the line; then 14
    with pytest.raises(EventTooLarge):
        parser.receive_data(b"data: 12\n")  # 14 + 8 for the line
    parser = EventStreamParser(max_size=20)
    assert parser.receive_data(b"event: abcdefgh\n") == []  # the type holds 8
    with pytest.raises(EventTooLarge):
        parser.receive_data(b"data: 1234567\n")  # 8 + 13
    # Bytes, not characters: "\u00e9" is two of them.
    parser = EventStreamParser(max_size=12)
    assert parser.receive_data("data: \u00e9\u00e9\u00e9\n\n".encode()) == [message("\u00e9" * 3)]
    with pytest.raises(EventTooLarge):
        parser.receive_data("data: \u00e9\u00e9\u00e9\u00e9".encode())
    # Comments hold nothing, however long, whole or in pieces.
    parser = EventStreamParser(max_size=20)
    assert parser.receive_data(b":" + b"c" * 100 + b"\ndata: x\n\n") == [message("x")]
    assert parser.receive_data(b":" + b"c" * 100) == []
    assert parser.receive_data(b"c" * 100 + b"\ndata: y\n\n") == [message("y")]


def test_request_headers_and_target() -> None:
    target = parse_url("https://user:pass@example.com:8443/a b/\u00e9?x=1#frag",
                       schemes=("http", "https"))
    assert request_target(target) == b"/a%20b/%C3%A9?x=1"
    assert request_headers(target, last_event_id="42", headers=[("X-A", "1")]) == [
        ("Host", "example.com:8443"), ("Accept", "text/event-stream"),
        ("Cache-Control", "no-cache"), ("Last-Event-ID", "42"),
        ("Authorization", "Basic dXNlcjpwYXNz"), ("X-A", "1")]
    plain = parse_url("http://example.com/", schemes=("http", "https"))
    assert [name for name, _ in request_headers(plain)] == ["Host", "Accept", "Cache-Control"]
    # IDs no header can carry are left out rather than mangled.
    for unsafe in ["a\x01b", " a", "a\t", "\x7f"]:
        names = [name for name, _ in request_headers(plain, last_event_id=unsafe)]
        assert "Last-Event-ID" not in names, unsafe
    assert ("Last-Event-ID", "\u00e9 x\ty") in request_headers(plain, last_event_id="\u00e9 x\ty")


@pytest.mark.parametrize(("status", "content_type", "verdict"), [
    (200, "text/event-stream", "open"),
    (200, "Text/Event-Stream; charset=utf-8", "open"),
    (204, None, "stop"),
    (200, "text/plain", "Content-Type is 'text/plain', not text/event-stream"),
    (200, None, "Content-Type is missing, not text/event-stream"),
    (201, "text/event-stream", "unexpected response code: 201"),
    (500, "text/event-stream", "unexpected response code: 500"),
])
def test_check_response(status: int, content_type: str | None, verdict: str) -> None:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    assert check_response(status, headers) == verdict


def test_the_parser_never_imports_anyio() -> None:
    code = ("import sys, types, importlib.util; "
            "spec = importlib.util.find_spec('faye_websocket'); "
            "pkg = types.ModuleType('faye_websocket'); "
            "pkg.__path__ = list(spec.submodule_search_locations); "
            "sys.modules['faye_websocket'] = pkg; "
            "import faye_websocket._core.sse; "
            "assert 'anyio' not in sys.modules and 'trio' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- against our server -------------------------------------------------------------------

Handler = Callable[[Request, Response], Awaitable[None]]


@dataclass
class Peer:
    """Our server; the n-th request goes to the n-th handler (the last repeats)."""

    handlers: tuple[Handler, ...]
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    #: ``anyio.current_time()`` of each request's arrival.
    times: list[float] = field(default_factory=list)
    secure: bool = False

    async def on_request(self, request: Request, response: Response) -> None:
        self.requests.append(request)
        self.times.append(anyio.current_time())
        handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
        await handler(request, response)

    def url(self, path: str = "/events") -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serving(*handlers: Handler, ssl_context: ssl.SSLContext | None = None
                  ) -> AsyncIterator[Peer]:
    peer = Peer(handlers, secure=ssl_context is not None)
    async with running(Server(on_request=peer.on_request), ssl_context=ssl_context) as port:
        peer.port = port
        yield peer


def events(*sends: tuple[str, dict[str, str]], then: str = "end", retry: float = RETRY,
           raw: bytes = b"", dropped: list[float] | None = None) -> Handler:
    """A handler: an EventSource sending ``sends``, then ``raw`` bytes as they
    are, then: ``"end"`` (the response ends), ``"abort"`` (the connection is
    cut mid-stream; its time goes to ``dropped``) or ``"wait"`` (until the
    client leaves)."""

    async def handler(request: Request, response: Response) -> None:
        async with EventSource(request, response, retry=retry, ping=None) as es:
            for data, options in sends:
                assert await es.send(data, **options)
            if raw or then == "abort":
                await es.ping()  # writes the events queued by send() first
            if raw:
                await response.write(raw)
            if then == "abort":
                if dropped is not None:
                    dropped.append(anyio.current_time())
                await anyio.aclose_forcefully(response.stream)
            elif then == "wait":
                await es.wait_closed()

    return handler


def refuse(status: int, body: bytes = b"", content_type: str = "text/plain") -> Handler:
    async def handler(request: Request, response: Response) -> None:
        response.write_head(status, {"Content-Type": content_type, "X-Why": "testing"})
        await response.end(body)

    return handler


async def abort(request: Request, response: Response) -> None:
    """Cut the connection before any response."""
    await anyio.aclose_forcefully(response.stream)


async def hang(request: Request, response: Response) -> None:
    """Never answer (until the client gives up)."""
    with anyio.move_on_after(TIMEOUT):
        await response.stream.receive()


def data_of(items: list[ServerSentEvent]) -> list[str]:
    return [event.data for event in items]


async def take(source: EventSource.Client, count: int) -> list[ServerSentEvent]:
    return [await source.receive() for _ in range(count)]


async def test_events_with_ids_and_types() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("hello", {"id": "1"}),
                                  ("line 1\nline 2", {"event": "update", "id": "2"}),
                                  ("no id", {}),
                                  ("\u00e9 \u2603", {"id": "\u00e9"}), then="wait")) as peer:
            source = EventSource.Client(peer.url("/events?x=1"), headers={"X-Test": "yes"})
            assert source.ready_state is EventSource.CONNECTING
            assert source.retry == 3.0  # until the server says otherwise
            async with source:
                assert source.ready_state is EventSource.OPEN
                assert source.status_code == 200
                assert header(source.headers, "content-type") == "text/event-stream"
                received = await take(source, 4)
                assert source.retry == RETRY
                assert source.last_event_id == "\u00e9"
            assert source.ready_state is EventSource.CLOSED
            with pytest.raises(anyio.EndOfStream):
                await source.receive()
    origin = f"http://127.0.0.1:{peer.port}"
    assert received == [
        ServerSentEvent("message", "hello", "1", origin),
        ServerSentEvent("update", "line 1\nline 2", "2", origin),
        ServerSentEvent("message", "no id", "2", origin),
        ServerSentEvent("message", "\u00e9 \u2603", "\u00e9", origin)]
    [request] = peer.requests
    assert request.target == "/events?x=1"
    assert request.header("accept") == "text/event-stream"
    assert request.header("cache-control") == "no-cache"
    assert request.header("last-event-id") is None
    assert request.header("x-test") == "yes"
    assert request.header("host") == f"127.0.0.1:{peer.port}"


async def test_reconnects_after_a_forced_disconnect_with_last_event_id() -> None:
    dropped: list[float] = []
    with anyio.fail_after(TIMEOUT):
        async with serving(
                # The unfinished event (and its id) after the cut is discarded.
                events(("a", {"id": "1"}), ("b", {"id": "2"}), raw=b"id: 99\ndata: cut",
                       then="abort", dropped=dropped),
                events(("c", {"id": "3"}), then="wait")) as peer:
            async with EventSource.Client(peer.url()) as source:
                received = await take(source, 3)
    assert [(e.data, e.id) for e in received] == [("a", "1"), ("b", "2"), ("c", "3")]
    assert [r.header("last-event-id") for r in peer.requests] == [None, "2"]
    # The client waited the server's retry delay before reconnecting.
    assert peer.times[1] - dropped[0] >= RETRY


async def test_reconnects_when_the_response_ends() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("one", {"id": "1"})), events(("two", {})),
                           events(("three", {"id": "3"}), then="wait")) as peer:
            async with EventSource.Client(peer.url(), last_event_id="0") as source:
                received = await take(source, 3)
    assert [(e.data, e.id) for e in received] == [("one", "1"), ("two", "1"),
                                                  ("three", "3")]
    assert [r.header("last-event-id") for r in peer.requests] == ["0", "1", "1"]
    assert all(b - a >= RETRY for a, b in zip(peer.times, peer.times[1:], strict=False))


async def test_204_stops() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(refuse(204)) as peer:
            async with EventSource.Client(peer.url()) as source:
                assert source.status_code == 204
                assert source.ready_state is EventSource.CLOSED
                assert [event async for event in source] == []
        # Also when reconnecting: the iteration ends after what was sent.
        async with serving(events(("one", {})), refuse(204)) as peer:
            async with EventSource.Client(peer.url()) as source:
                assert data_of([event async for event in source]) == ["one"]
                assert source.status_code == 204
    assert len(peer.requests) == 2


@pytest.mark.parametrize(("handler", "status", "reason"), [
    (refuse(500, b"boom"), 500, "unexpected response code: 500"),
    (refuse(404, b"nope"), 404, "unexpected response code: 404"),
    (refuse(302, b""), 302, "unexpected response code: 302"),  # redirects are not followed
    (refuse(200, b"<html>", "text/html"), 200,
     "Content-Type is 'text/html', not text/event-stream"),
], ids=["500", "404", "302", "text/html"])
async def test_refusals_raise_handshake_error(handler: Handler, status: int,
                                              reason: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(handler) as peer:
            source = EventSource.Client(peer.url())
            with pytest.raises(HandshakeError) as caught:
                async with source:
                    pytest.fail("entered")
    error = caught.value
    assert str(error) == f"Error connecting to EventSource at {peer.url()}: {reason}"
    assert error.status_code == status
    assert header(error.headers, "x-why") == "testing"
    assert error.body == {500: b"boom", 404: b"nope", 302: b"", 200: b"<html>"}[status]
    assert source.ready_state is EventSource.CLOSED
    assert len(peer.requests) == 1


async def test_a_refused_reconnection_raises_from_the_iteration() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("one", {"id": "1"})), refuse(503, b"busy")) as peer:
            async with EventSource.Client(peer.url()) as source:
                assert (await source.receive()).data == "one"
                with pytest.raises(HandshakeError) as caught:
                    await source.receive()
                assert source.ready_state is EventSource.CLOSED
    assert (caught.value.status_code, caught.value.body) == (503, b"busy")
    assert peer.requests[1].header("last-event-id") == "1"


async def test_network_errors_while_reconnecting_are_retried() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("one", {})), abort, hang,
                           events(("two", {}), then="wait")) as peer:
            async with EventSource.Client(peer.url(), open_timeout=0.2) as source:
                assert data_of(await take(source, 2)) == ["one", "two"]
    assert len(peer.requests) == 4


async def test_the_first_connection_failing_raises(free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        source = EventSource.Client(f"http://127.0.0.1:{free_tcp_port}/")
        with pytest.raises(OSError):
            async with source:
                pytest.fail("entered")
        assert source.ready_state is EventSource.CLOSED
        # Without the block, the first receive() opens the stream.
        with pytest.raises(OSError):
            await EventSource.Client(f"http://127.0.0.1:{free_tcp_port}/").receive()


async def test_a_response_that_is_not_http_is_a_handshake_error() -> None:
    async def garbage(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"SSH-2.0-OpenSSH\r\n\r\n")

    with anyio.fail_after(TIMEOUT):
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, \
                anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, garbage)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            with pytest.raises(HandshakeError, match="invalid HTTP response") as caught:
                await EventSource.Client(f"http://127.0.0.1:{port}/").__aenter__()
            tg.cancel_scope.cancel()
    assert caught.value.status_code == 0


async def consume(source: EventSource.Client, into: list[ServerSentEvent]) -> None:
    async for event in source:
        into.append(event)  # noqa: PERF401 (seen one by one, as they come)


async def test_close_wakes_a_waiting_receive() -> None:
    received: list[ServerSentEvent] = []
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("one", {}), then="wait")) as peer:
            async with EventSource.Client(peer.url()) as source, \
                    anyio.create_task_group() as tg:
                tg.start_soon(consume, source, received)
                while not received:  # noqa: ASYNC110 (polling a list)
                    await anyio.sleep(0.005)
                await anyio.wait_all_tasks_blocked()
                await source.close()  # consume() returns: its loop just ends
    assert data_of(received) == ["one"]
    assert source.ready_state is EventSource.CLOSED


async def test_close_stops_reconnection() -> None:
    received: list[ServerSentEvent] = []
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("one", {}), retry=0.2)) as peer:
            async with EventSource.Client(peer.url()) as source, \
                    anyio.create_task_group() as tg:
                tg.start_soon(consume, source, received)
                # The response ended: consume() waits to reconnect.
                while not received or source.ready_state is not EventSource.CONNECTING:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
                await source.aclose()
            await anyio.sleep(0.4)  # twice the delay: no reconnection came
    assert data_of(received) == ["one"]
    assert len(peer.requests) == 1
    with pytest.raises(anyio.EndOfStream):
        await source.receive()


async def test_events_are_pulled_not_buffered() -> None:
    count, size = 400, 65536  # 26 MB: more than the socket buffers hold
    written = 0

    async def flood(request: Request, response: Response) -> None:
        nonlocal written
        async with EventSource(request, response, ping=None) as es:
            for number in range(count):
                if not await es.send(str(number) * (size // len(str(number))), id=str(number)):
                    return
                written += 1

    with anyio.fail_after(TIMEOUT * 2):
        async with serving(flood) as peer:
            async with EventSource.Client(peer.url()) as source:
                first = await source.receive()
                await anyio.sleep(0.2)  # the server writes what the sockets take...
                assert written < count  # ...and then waits for us
                rest = await take(source, count - 1)
    assert [e.id for e in [first, *rest]] == [str(n) for n in range(count)]
    assert all(size - 3 <= len(e.data) <= size for e in [first, *rest])


async def test_cancellation_keeps_the_source_usable_and_leaks_nothing() -> None:
    release = anyio.Event()

    async def slow(request: Request, response: Response) -> None:
        async with EventSource(request, response, retry=RETRY, ping=None) as es:
            await es.send("first")
            await release.wait()
            await es.send("second")

    before = open_fds()
    with anyio.fail_after(TIMEOUT):
        async with serving(hang, slow) as peer:
            # Cancelled while connecting: the attempt's socket is closed.
            with anyio.move_on_after(0.2):
                async with EventSource.Client(peer.url()):
                    pytest.fail("entered")
            async with EventSource.Client(peer.url()) as source:
                assert (await source.receive()).data == "first"
                # Cancelled while reading: nothing is lost, it goes on.
                with anyio.move_on_after(0.1) as scope:
                    await source.receive()
                assert scope.cancelled_caught
                release.set()
                assert (await source.receive()).data == "second"
    with anyio.fail_after(5):
        while open_fds() > before:  # noqa: ASYNC110 (no event for fds)
            await anyio.sleep(0.01)


async def test_an_event_too_large_is_a_protocol_error() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("small", {}), ("x" * 100, {}), then="wait")) as peer:
            async with EventSource.Client(peer.url(), max_event_size=50) as source:
                assert (await source.receive()).data == "small"
                with pytest.raises(ProtocolError, match="longer than 50"):
                    await source.receive()
                assert source.ready_state is EventSource.CLOSED


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="not a valid EventSource URL"):
        EventSource.Client("ws://example.com/")
    with pytest.raises(ValueError, match="not a valid EventSource URL") as caught:
        EventSource.Client("ftp://user:secret@example.com/")
    assert "secret" not in str(caught.value)
    for name in ("Accept", "Last-Event-ID", "Host", "Cache-Control"):
        with pytest.raises(ValueError):
            EventSource.Client("http://example.com/", headers={name: "x"})
    with pytest.raises(ValueError):
        EventSource.Client("http://example.com/", headers={"X-A": "a\r\nb"})
    with pytest.raises(ValueError):
        EventSource.Client("http://example.com/", last_event_id="a\nb")
    with pytest.raises(ValueError):
        EventSource.Client("http://example.com/", retry=-1)
    with pytest.raises(ValueError, match="either tls or ca"):
        EventSource.Client("https://example.com/", tls=ssl.create_default_context(),
                           ca="ca.pem")
    source = EventSource.Client("https://user:pw@Example.COM:443/x")
    assert (source.url, source.origin) == ("https://Example.COM:443/x", "https://example.com")


# -- TLS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["ca", "tls"])
async def test_tls(option: str, ca: trustme.CA, server_context: ssl.SSLContext,
                   client_context: ssl.SSLContext, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    options: dict[str, Any] = {"ca": str(pem)} if option == "ca" else {"tls": client_context}
    with anyio.fail_after(TIMEOUT):
        async with serving(events(("secure", {"id": "1"}), then="abort"),
                           events(("again", {}), then="wait"),
                           ssl_context=server_context) as peer:
            url = f"https://localhost:{peer.port}/secure"
            async with EventSource.Client(url, **options) as source:
                received = await take(source, 2)
            # Certificates are checked by default.
            with pytest.raises(ConnectError) as info:
                async with EventSource.Client(url):
                    pytest.fail("entered")
            assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert [(e.data, e.id, e.origin) for e in received] == [
        ("secure", "1", f"https://localhost:{peer.port}"),
        ("again", "1", f"https://localhost:{peer.port}")]
    assert peer.requests[1].header("last-event-id") == "1"


# -- proxies -----------------------------------------------------------------------------------


@dataclass
class ConnectProxy:
    """A tiny HTTP CONNECT proxy (or one that refuses with ``refuse``)."""

    refuse: int | None = None
    port: int = 0
    connects: list[h11.Request] = field(default_factory=list)

    async def handle(self, client: anyio.abc.ByteStream) -> None:
        async with client:
            try:
                await self._tunnel(client)
            except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                pass

    async def _tunnel(self, client: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(event := conn.next_event(), h11.Request):
            conn.receive_data(await client.receive())
        self.connects.append(event)
        if self.refuse is not None:
            await client.send(conn.send(h11.Response(status_code=self.refuse, headers=[
                ("Content-Length", "0"), ("Proxy-Authenticate", 'Basic realm="x"')])) or b"")
            return
        host, _, port = event.target.decode().rpartition(":")
        async with await anyio.connect_tcp(host.strip("[]"), int(port)) as upstream:
            await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            async with anyio.create_task_group() as tg:
                tg.start_soon(pipe, client, upstream, tg.cancel_scope)
                tg.start_soon(pipe, upstream, client, tg.cancel_scope)


@asynccontextmanager
async def connect_proxy(refuse: int | None = None) -> AsyncIterator[ConnectProxy]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy = ConnectProxy(refuse, listener.extra(anyio.abc.SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy.handle, tg)
        yield proxy
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_through_a_proxy(scheme: str, server_context: ssl.SSLContext,
                               client_context: ssl.SSLContext) -> None:
    context = server_context if scheme == "https" else None
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy() as proxy, \
                serving(events(("one", {"id": "1"}), then="abort"),
                        events(("two", {}), then="wait"), ssl_context=context) as peer:
            async with EventSource.Client(
                    f"{scheme}://127.0.0.1:{peer.port}/proxied", tls=client_context,
                    proxy={"origin": f"http://user:pw@127.0.0.1:{proxy.port}",
                           "headers": {"X-Via": "test"}}) as source:
                assert data_of(await take(source, 2)) == ["one", "two"]
    # Reconnection goes through the proxy again.
    assert [c.target for c in proxy.connects] == [f"127.0.0.1:{peer.port}".encode()] * 2
    assert (b"proxy-authorization", b"Basic dXNlcjpwdw==") in proxy.connects[0].headers
    assert (b"x-via", b"test") in proxy.connects[0].headers
    assert [r.target for r in peer.requests] == ["/proxied"] * 2
    assert peer.requests[0].header("proxy-authorization") is None


async def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy() as proxy, serving(events(("hi", {}), then="wait")) as peer:
            monkeypatch.setenv("http_proxy", f"127.0.0.1:{proxy.port}")
            async with EventSource.Client(peer.url(), proxy="env") as source:
                assert (await source.receive()).data == "hi"
    assert len(proxy.connects) == 1


async def test_a_refused_connect_is_a_proxy_error() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy(refuse=407) as proxy:
            with pytest.raises(ProxyError) as caught:
                async with EventSource.Client("http://127.0.0.1:1/",
                                              proxy=f"http://127.0.0.1:{proxy.port}"):
                    pytest.fail("entered")
    assert caught.value.status_code == 407
    assert header(caught.value.headers, "proxy-authenticate") == 'Basic realm="x"'


# -- interop with Node ------------------------------------------------------------------------


def node_command(*packages: str) -> str:
    """Path of ``node``, failing the test with instructions when a peer is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("interop tests need Node.js: install `node`, then run "
                    "`npm ci --prefix tests/interop`", pytrace=False)
    for package in packages:
        if not (INTEROP / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"tests/interop/node_modules/{package} is missing: "
                        "run `npm ci --prefix tests/interop`", pytrace=False)
    return node


async def test_our_client_reads_the_node_reference_server() -> None:
    node = node_command("faye-websocket")
    with anyio.fail_after(TIMEOUT):
        async with await anyio.open_process(
                [node, str(INTEROP / "es_server.js"), "0"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            try:
                ready = await lines.receive_until(b"\n", 1024)
            except (anyio.IncompleteRead, anyio.EndOfStream):
                assert process.stderr is not None
                raise AssertionError((await process.stderr.receive()).decode()) from None
            port = int(ready.split()[1])
            url = f"http://127.0.0.1:{port}/news?x=1"
            async with EventSource.Client(url) as source:
                # The server ends each stream after three events: the client
                # reconnects (after the 50 ms the server asks for).
                received = await take(source, 6)
                assert source.retry == 0.05
            opened = [json.loads(await lines.receive_until(b"\n", 1 << 16)) for _ in range(2)]
            process.terminate()
    origin = f"http://127.0.0.1:{port}"
    assert received == [
        ServerSentEvent("message", "event 1", "1", origin),
        ServerSentEvent("update", "line one of 2\nline two", "2", origin),
        ServerSentEvent("message", "event 3 \u2713", "3", origin),
        ServerSentEvent("message", "event 4", "4", origin),
        ServerSentEvent("update", "line one of 5\nline two", "5", origin),
        ServerSentEvent("message", "event 6 \u2713", "6", origin)]
    assert opened == [{"open": url, "lastEventId": ""}, {"open": url, "lastEventId": "3"}]


async def test_node_eventsource_package_reads_our_server() -> None:
    node = node_command("eventsource")

    async def first(request: Request, response: Response) -> None:
        async with EventSource(request, response, retry=RETRY, ping=None) as es:
            await es.send("hello", id="1")
            await es.send("line 1\nline 2", event="update", id="2")
            await es.send("\u00e9 \u2603 \U0001f680", id="3")
        # The stream ends: the client reconnects.

    async def second(request: Request, response: Response) -> None:
        async with EventSource(request, response, retry=RETRY, ping=0.01) as es:
            await anyio.sleep(0.05)  # a few pings, which the client ignores
            # With an id: the eventsource package (4.1.1, and 5.1.5 too) gives
            # an event without one lastEventId "" (WHATWG: the last ID, "3"),
            # though it does send the last ID as Last-Event-ID.
            await es.send("welcome back", id="4")
            await es.wait_closed()

    with anyio.fail_after(TIMEOUT):
        async with serving(first, second) as peer:
            result = await anyio.run_process(
                [node, str(INTEROP / "es_client.js"), peer.url("/node"), "4", "update"],
                check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert lines == [
        {"type": "message", "data": "hello", "lastEventId": "1"},
        {"type": "update", "data": "line 1\nline 2", "lastEventId": "2"},
        {"type": "message", "data": "\u00e9 \u2603 \U0001f680", "lastEventId": "3"},
        {"type": "message", "data": "welcome back", "lastEventId": "4"}]
    assert [r.header("last-event-id") for r in peer.requests] == [None, "3"]
    assert peer.requests[0].header("accept") == "text/event-stream"
