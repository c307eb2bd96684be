"""The HTTP helper, ``faye_websocket.http.Server``, over real loopback sockets.

The client side speaks HTTP with h11 (or plain bytes where the request has
to be malformed), so the server is checked against an independent parser.
"""

from __future__ import annotations

import gc
import logging
import math
import warnings
import weakref
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import h11
import pytest
from wsproto.events import CloseConnection

from faye_websocket import EventSource, WebSocket
from faye_websocket.http import Request, Response, Server

from .helpers import SECOND, read_to_eof, running
from .wsclient import raw_connect

if TYPE_CHECKING:
    import ssl

pytestmark = pytest.mark.anyio

#: Absolute bound on every test's I/O.
TIMEOUT = 5 * SECOND


# -- helpers -----------------------------------------------------------------


async def connect(port: int, ssl_context: ssl.SSLContext | None = None,
                  ) -> anyio.abc.ByteStream:
    if ssl_context is None:
        return await anyio.connect_tcp("127.0.0.1", port)
    return await anyio.connect_tcp("127.0.0.1", port, tls=True, ssl_context=ssl_context,
                                   tls_hostname="localhost")


class HTTPClient:
    """An h11 client connection over an anyio stream."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str,
                      headers: list[tuple[str, str]] | None = None,
                      body: bytes = b"") -> tuple[h11.Response, bytes]:
        """Send one request and read the whole response."""
        head = [("Host", "localhost"), *(headers or [])]
        if body:
            head.append(("Content-Length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=head)) or b""
        if body:
            data += self.conn.send(h11.Data(data=body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        await self.stream.send(data)
        return await self.response()

    async def response(self) -> tuple[h11.Response, bytes]:
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive()
                except anyio.EndOfStream:
                    data = b""
                self.conn.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, b"".join(chunks)
            else:
                raise AssertionError(f"unexpected h11 event {event!r}")


def header(response: h11.Response, name: str) -> str | None:
    values = [v.decode("latin-1") for k, v in response.headers
              if k.decode("latin-1").lower() == name.lower()]
    return ", ".join(values) if values else None


async def read_status_line(stream: anyio.abc.ByteStream) -> bytes:
    """The response's bytes up to the end of its status line (or EOF)."""
    raw = b""
    try:
        while b"\r\n" not in raw:
            raw += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        pass
    return raw


def status_of(raw: bytes) -> int:
    """The status code of a raw response (``HTTP/1.1 NNN ...``)."""
    assert raw.startswith(b"HTTP/1.1 "), raw[:80]
    return int(raw[9:12])


async def hello(request: Request, response: Response) -> None:
    response.write_head(200, {"Content-Type": "text/plain"})
    await response.end(f"hello {request.method} {request.path}")


async def assert_still_serving(port: int) -> None:
    """A fresh, well-formed request on a new connection gets its answer."""
    async with await connect(port) as stream:
        response, body = await HTTPClient(stream).request("GET", "/after")
    assert response.status_code == 200
    assert body == b"hello GET /after"


# -- plain requests ----------------------------------------------------------


async def test_get_answered_by_on_request() -> None:
    seen: list[Request] = []

    async def on_request(request: Request, response: Response) -> None:
        seen.append(request)
        response.write_head(200, {"Content-Type": "text/plain; charset=utf-8",
                                  "X-Answer": "42"})
        await response.end("héllo")

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port, \
                await connect(port) as stream:
            response, body = await HTTPClient(stream).request(
                "GET", "/some/path?x=1", [("X-Custom", "Value")])

    assert response.status_code == 200
    assert response.reason == b"OK"
    assert header(response, "content-type") == "text/plain; charset=utf-8"
    assert header(response, "x-answer") == "42"
    assert body == "héllo".encode()
    assert header(response, "content-length") == str(len(body))
    assert header(response, "transfer-encoding") is None
    [request] = seen
    assert request.method == "GET"
    assert request.target == "/some/path?x=1"
    assert request.path == "/some/path"
    assert request.header("x-custom") == "Value"
    assert request.header("host") == "localhost"


async def test_chunked_body_from_write_then_end() -> None:
    async def on_request(request: Request, response: Response) -> None:
        response.write_head(200, {"Content-Type": "text/plain"})
        await response.write(b"hello ")
        await response.write("wor")
        await response.end(b"ld")

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port, \
                await connect(port) as stream:
            client = HTTPClient(stream)
            response, body = await client.request("GET", "/")
            # The chunked framing ended the message, so the connection is
            # still usable for a second request.
            client.conn.start_next_cycle()
            response2, body2 = await client.request("GET", "/")

    assert response.status_code == 200
    assert header(response, "transfer-encoding") == "chunked"
    assert header(response, "content-length") is None
    assert body == b"hello world"
    assert (response2.status_code, body2) == (200, b"hello world")


async def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    streams: list[object] = []

    async def on_request(request: Request, response: Response) -> None:
        streams.append(response.stream)
        response.write_head(200, {"Content-Type": "application/octet-stream"})
        await response.end(request.method.encode() + b":" + request.body)

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port, \
                await connect(port) as stream:
            client = HTTPClient(stream)
            first, body1 = await client.request("GET", "/one")
            assert client.conn.our_state is h11.DONE
            client.conn.start_next_cycle()
            second, body2 = await client.request("POST", "/two", body=b"payload")

    assert (first.status_code, body1) == (200, b"GET:")
    assert (second.status_code, body2) == (200, b"POST:payload")
    assert header(first, "connection") != "close"
    assert len(streams) == 2
    assert streams[0] is streams[1]


async def test_head_request_has_length_but_no_body() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello)) as port, \
                await connect(port) as stream:
            client = HTTPClient(stream)
            response, body = await client.request("HEAD", "/x")
            client.conn.start_next_cycle()
            after, after_body = await client.request("GET", "/x")

    assert response.status_code == 200
    assert body == b""
    assert header(response, "content-length") == str(len(b"hello HEAD /x"))
    assert (after.status_code, after_body) == (200, b"hello GET /x")


async def test_client_connection_close_ends_the_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello)) as port, \
                await connect(port) as stream:
            client = HTTPClient(stream)
            response, body = await client.request("GET", "/", [("Connection", "close")])
            assert (response.status_code, body) == (200, b"hello GET /")
            assert await read_to_eof(stream) == b""


async def test_no_on_request_gives_404() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server()) as port, await connect(port) as stream:
            client = HTTPClient(stream)
            response, body = await client.request("GET", "/anything")
            client.conn.start_next_cycle()
            again, _ = await client.request("GET", "/else")

    assert response.status_code == 404
    assert body
    assert header(response, "content-length") == str(len(body))
    assert again.status_code == 404


async def test_upgrade_without_on_upgrade_is_a_plain_request() -> None:
    seen: list[Request] = []

    async def on_request(request: Request, response: Response) -> None:
        seen.append(request)
        await hello(request, response)

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port, \
                await connect(port) as stream:
            response, body = await HTTPClient(stream).request(
                "GET", "/up", [("Connection", "Upgrade"), ("Upgrade", "foo")])

    assert (response.status_code, body) == (200, b"hello GET /up")
    assert seen[0].header("upgrade") == "foo"


# -- errors ------------------------------------------------------------------


async def test_malformed_request_line_gets_400_and_server_keeps_serving() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello)) as port:
            async with await connect(port) as stream:
                await stream.send(b"THIS IS NOT HTTP\r\n\r\n")
                raw = await read_to_eof(stream)
            assert status_of(raw) == 400
            await assert_still_serving(port)


async def test_malformed_header_gets_400() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello)) as port:
            async with await connect(port) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
                raw = await read_to_eof(stream)
            assert status_of(raw) == 400
            await assert_still_serving(port)


@pytest.mark.parametrize("error", [RuntimeError, FileNotFoundError, TimeoutError])
async def test_handler_that_raises_gets_500_and_server_keeps_serving(
        error: type[Exception], caplog: pytest.LogCaptureFixture) -> None:
    # OSError subclasses too (a missing file, a timeout of the handler's own):
    # they are the application's errors, not a lost connection.
    async def on_request(request: Request, response: Response) -> None:
        if request.path == "/boom":
            raise error("handler failure")
        await hello(request, response)

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port:
            async with await connect(port) as stream:
                response, body = await HTTPClient(stream).request("GET", "/boom")
            assert response.status_code == 500
            assert b"handler failure" not in body  # no traceback leaks to the client
            await assert_still_serving(port)

    assert any(r.levelno == logging.ERROR and r.exc_info is not None
               and isinstance(r.exc_info[1], error) for r in caplog.records)


async def test_invalid_response_header_from_handler_gets_500() -> None:
    async def on_request(request: Request, response: Response) -> None:
        response.write_head(200, {"X-Injected": "a\r\nSet-Cookie: evil=1"})
        await response.end("unreachable")

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port, \
                await connect(port) as stream:
            response, _ = await HTTPClient(stream).request("GET", "/")

    assert response.status_code == 500
    assert header(response, "set-cookie") is None


async def test_response_header_values_are_trimmed_and_sent_as_utf8() -> None:
    async def on_request(request: Request, response: Response) -> None:
        response.write_head(200, {"X-Token": "secret ", "X-Name": "\tcafé Ā"})
        await response.end("ok")

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port, \
                await connect(port) as stream:
            response, body = await HTTPClient(stream).request("GET", "/")
    assert response.status_code == 200 and body == b"ok"
    assert header(response, "x-token") == "secret"
    assert header(response, "x-name") == "café Ā".encode().decode("latin-1")


def test_a_control_character_in_a_response_header_is_refused_without_echoing_it() -> None:
    response = Response(h11.Connection(h11.SERVER), None,  # type: ignore[arg-type]
                        Request.build("GET", "/", {"Host": "x"}))
    with pytest.raises(ValueError, match="X-Token") as info:
        response.write_head(200, {"X-Token": "tok\x0cen"})
    assert "tok" not in str(info.value)


async def test_oversized_incomplete_head_gets_431() -> None:
    # Header lines past max_head_size and never the blank line: the server
    # must stop buffering and refuse rather than wait for the end of the head.
    partial = b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-More: " + b"b" * 100 + b"\r\n") * 20
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello, max_head_size=1024)) as port:
            async with await connect(port) as stream:
                await stream.send(partial)
                raw = await read_to_eof(stream)
            assert status_of(raw) in (431, 400)
            await assert_still_serving(port)


async def test_oversized_complete_head_gets_431() -> None:
    # The whole (too large) head in one write: it must be refused even
    # though the parser could complete it from a single read.
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello, max_head_size=1024)) as port:
            async with await connect(port) as stream:
                await stream.send(big)
                raw = await read_status_line(stream)
            assert status_of(raw) in (431, 400)
            await assert_still_serving(port)


async def test_body_over_max_body_size_gets_413() -> None:
    called = False

    async def on_request(request: Request, response: Response) -> None:
        nonlocal called
        called = True
        await hello(request, response)

    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request, max_body_size=100)) as port:
            async with await connect(port) as stream:
                # More than the limit, far less than announced: the server has
                # seen enough to refuse, and has read all we sent.
                await stream.send(head + b"x" * 300)
                raw = await read_to_eof(stream)
            assert status_of(raw) == 413
            assert not called
            await assert_still_serving(port)


async def test_chunked_body_over_max_body_size_gets_413() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (200, b"y" * 200)
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello, max_body_size=100)) as port, \
                await connect(port) as stream:
            await stream.send(head + chunk)
            raw = await read_to_eof(stream)
    assert status_of(raw) == 413


async def test_body_within_max_body_size_reaches_handler() -> None:
    async def on_request(request: Request, response: Response) -> None:
        response.write_head(200, {"Content-Type": "text/plain"})
        await response.end(str(len(request.body)))

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request, max_body_size=100)) as port, \
                await connect(port) as stream:
            response, body = await HTTPClient(stream).request("POST", "/", body=b"z" * 100)
    assert (response.status_code, body) == (200, b"100")


# -- upgrades ----------------------------------------------------------------


async def test_upgrade_goes_to_on_upgrade_with_trailing_bytes_as_body() -> None:
    seen: list[tuple[Request, bytes]] = []
    plain_calls: list[Request] = []

    async def on_request(request: Request, response: Response) -> None:
        plain_calls.append(request)
        await hello(request, response)

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        seen.append((request, body))
        await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: echo\r\n\r\n" + b"body=" + body + b";")
        # The stream now carries the new protocol: echo it.
        while True:
            try:
                data = await stream.receive()
            except anyio.EndOfStream:
                return
            await stream.send(data)

    head = (b"GET /chat?room=1 HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, Upgrade\r\n"
            b"Upgrade: echo\r\n\r\n")
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request, on_upgrade=on_upgrade)) as port, \
                await connect(port) as stream:
            await stream.send(head + b"EARLY-BYTES")
            received = b""
            expected_head_end = b"body=EARLY-BYTES;"
            while expected_head_end not in received:
                received += await stream.receive()
            await stream.send(b"ping-pong")
            echoed = received.partition(expected_head_end)[2]
            while len(echoed) < len(b"ping-pong"):
                echoed += await stream.receive()

    assert received.startswith(b"HTTP/1.1 101 ")
    assert echoed == b"ping-pong"
    [(request, body)] = seen
    assert body == b"EARLY-BYTES"
    assert request.method == "GET"
    assert request.target == "/chat?room=1"
    assert request.header("upgrade") == "echo"
    assert plain_calls == []


async def test_websocket_through_on_upgrade() -> None:
    done = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body, ["irc"]) as ws:
            await ws.send(ws.url)
            async for message in ws:
                await ws.send(message)
        done.set()

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_upgrade=on_upgrade)) as port:
            async with await connect(port) as stream:
                client = await raw_connect(stream, "/ws?a=b", subprotocols=["irc"])
                assert client.accepted is not None
                assert client.accepted.subprotocol == "irc"
                assert await client.receive() == "ws://localhost/ws?a=b"
                await client.send("hi")
                assert await client.receive() == "hi"
                closed = await client.close(1000, "bye")
            await done.wait()  # the handler's block ends with the connection
    assert closed is not None
    assert closed.code == 1000


async def test_cancelling_serve_after_a_websocket_closed_leaks_nothing() -> None:
    # A handler still inside its ``async with WebSocket`` block after the
    # connection closed is cancelled when serve() is: every resource of the
    # WebSocket must still be released (no ResourceWarning at collection).
    sockets: list[WebSocket] = []
    closed = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body) as ws:
            sockets.append(ws)
            ws.on("close", lambda event: closed.set())
            await ws.wait_closed()
            await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_upgrade=on_upgrade)) as port:
            async with await connect(port) as stream:
                client = await raw_connect(stream)
                assert client.accepted is not None
                await client.close()
            await closed.wait()

    ref = weakref.ref(sockets[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sockets.clear()
        gc.collect()
    assert ref() is None  # really collected, so a leak would have warned
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


# -- request framing (issue 14) ----------------------------------------------


UPGRADE_HEAD = (b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                b"Upgrade: echo\r\n")


class Recorder:
    """Handlers that record the targets they are given."""

    def __init__(self) -> None:
        self.targets: list[str] = []

    async def on_request(self, request: Request, response: Response) -> None:
        self.targets.append(request.target)
        await hello(request, response)

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        self.targets.append(request.target)
        await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: echo\r\n\r\n")


@pytest.mark.parametrize("upgrade", [False, True], ids=["plain", "upgrade"])
async def test_content_length_with_transfer_encoding_gets_400_and_closes(upgrade: bool) -> None:
    # RFC 9112 section 6.1: a request with both is a smuggling attempt (a
    # front end that frames by Content-Length sees one request, we would see
    # two); the server must at least close after answering. It refuses it.
    head = UPGRADE_HEAD if upgrade else b"POST / HTTP/1.1\r\nHost: localhost\r\n"
    packet = (head + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
              b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n")
    recorder = Recorder()
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=recorder.on_request,
                                  on_upgrade=recorder.on_upgrade)) as port:
            async with await connect(port) as stream:
                await stream.send(packet)
                raw = await read_to_eof(stream)
            assert status_of(raw) == 400
            assert raw.count(b"HTTP/1.1 ") == 1
            assert recorder.targets == []
            await assert_still_serving(port)


@pytest.mark.parametrize("framing", [b"Content-Length: 1000000000", b"Content-Length: 5",
                                     b"Transfer-Encoding: chunked"])
async def test_upgrade_request_announcing_a_body_gets_400_at_once(framing: bytes) -> None:
    # A WebSocket handshake is a GET without a body, and every byte after an
    # upgrade request's head belongs to the new protocol: a body would be
    # read (h11 frames it first) and then thrown away, so it is refused
    # without reading any.
    recorder = Recorder()
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=recorder.on_request,
                                  on_upgrade=recorder.on_upgrade)) as port:
            async with await connect(port) as stream:
                await stream.send(UPGRADE_HEAD + framing + b"\r\n\r\n")
                raw = await read_to_eof(stream)
            assert status_of(raw) == 400
            assert recorder.targets == []
            await assert_still_serving(port)


async def test_upgrade_request_with_content_length_0_is_upgraded() -> None:
    recorder = Recorder()
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=recorder.on_request,
                                  on_upgrade=recorder.on_upgrade)) as port, \
                await connect(port) as stream:
            await stream.send(UPGRADE_HEAD + b"Content-Length: 0\r\n\r\n")
            raw = await read_to_eof(stream)
    assert status_of(raw) == 101
    assert recorder.targets == ["/chat"]


async def trickle(stream: anyio.abc.ByteStream, data: bytes, interval: float) -> None:
    """Send ``data`` in one-byte pieces ``interval`` seconds apart, until
    the server hangs up."""
    for index in range(len(data)):
        try:
            await stream.send(data[index:index + 1])
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        await anyio.sleep(interval)


async def dropped_after(stream: anyio.abc.ByteStream, data: bytes, interval: float,
                        ) -> tuple[float, bytes]:
    """Trickle ``data`` until the server hangs up: how long that took, and
    what it answered."""
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(trickle, stream, data, interval)
        raw = await read_to_eof(stream)
        tg.cancel_scope.cancel()
    return anyio.current_time() - start, raw


async def test_trickled_upgrade_body_is_dropped_within_request_timeout() -> None:
    # One byte a 0.1 s of a 1 GB body: every read is quick, the request never
    # ends. Each read used to get its own request_timeout, for ever.
    recorder = Recorder()
    server = Server(on_request=recorder.on_request, on_upgrade=recorder.on_upgrade,
                    request_timeout=1)
    with anyio.fail_after(TIMEOUT):
        async with running(server) as port:
            async with await connect(port) as stream:
                await stream.send(UPGRADE_HEAD + b"Content-Length: 1000000000\r\n\r\n")
                elapsed, raw = await dropped_after(stream, b"x" * 1000, 0.1)
            assert elapsed < server.request_timeout + 0.5
            assert raw == b"" or status_of(raw) == 400
            assert recorder.targets == []
            await assert_still_serving(port)


async def test_request_timeout_bounds_head_and_body_together() -> None:
    # The head takes 90% of request_timeout, then the body trickles: the
    # deadline is the request's, not the head's and then the body's.
    server = Server(on_request=hello, request_timeout=1)
    head = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"
    with anyio.fail_after(TIMEOUT):
        async with running(server) as port, await connect(port) as stream:
            start = anyio.current_time()
            for index in range(0, len(head), len(head) // 9 + 1):
                await stream.send(head[index:index + len(head) // 9 + 1])
                await anyio.sleep(0.1)
            _, raw = await dropped_after(stream, b"x" * 1000, 0.1)
            elapsed = anyio.current_time() - start
    assert raw == b""
    assert elapsed < 1.5  # it used to be request_timeout for each: 0.9 + 1 s


async def test_request_timeout_bounds_a_kept_alive_request() -> None:
    # keep_alive_timeout bounds the wait for the next request's first byte;
    # from there the request has request_timeout to arrive whole.
    server = Server(on_request=hello, request_timeout=0.5, keep_alive_timeout=math.inf)
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 1000
    with anyio.fail_after(TIMEOUT):
        async with running(server) as port, await connect(port) as stream:
            response, _ = await HTTPClient(stream).request("GET", "/")
            assert response.status_code == 200
            await anyio.sleep(0.6)  # idle for longer than request_timeout: fine
            elapsed, raw = await dropped_after(stream, head, 0.05)
    assert raw == b""
    assert elapsed < 1.2


# -- TLS ---------------------------------------------------------------------


async def tls_connect(port: int, client_context: ssl.SSLContext) -> anyio.abc.ByteStream:
    """A TLS client that, like browsers, tolerates a close without close_notify.

    (Whether the server sends close_notify is checked on its own below.)
    """
    return await anyio.connect_tcp("127.0.0.1", port, tls=True, ssl_context=client_context,
                                   tls_hostname="localhost", tls_standard_compatible=False)


async def test_tls_plain_request(server_context: ssl.SSLContext,
                                 client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello), ssl_context=server_context) as port, \
                await tls_connect(port, client_context) as stream:
            client = HTTPClient(stream)
            response, body = await client.request("GET", "/secure")
            client.conn.start_next_cycle()
            again, body2 = await client.request("GET", "/again")

    assert (response.status_code, body) == (200, b"hello GET /secure")
    assert (again.status_code, body2) == (200, b"hello GET /again")


async def test_tls_websocket_url_is_wss(server_context: ssl.SSLContext,
                                        client_context: ssl.SSLContext) -> None:
    done = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body) as ws:
            await ws.send(ws.url)
            async for message in ws:
                await ws.send(message)
        done.set()

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_upgrade=on_upgrade), ssl_context=server_context) as port:
            async with await tls_connect(port, client_context) as stream:
                client = await raw_connect(stream, "/tls")
                assert client.accepted is not None
                assert await client.receive() == "wss://localhost/tls"
                await client.send(b"\x00\xff" * 1000)
                assert await client.receive() == b"\x00\xff" * 1000
                closed = await client.close()
            await done.wait()
    assert closed is not None
    assert closed.code == 1000


async def test_tls_server_close_sends_close_notify(server_context: ssl.SSLContext,
                                                   client_context: ssl.SSLContext) -> None:
    # RFC 8446 section 6.1: each party MUST send close_notify before closing
    # its write side. A standard TLS client (anyio's default) otherwise sees
    # a truncation (BrokenResourceError) instead of a clean end of stream.
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello), ssl_context=server_context) as port:
            stream = await connect(port, client_context)
            try:
                client = HTTPClient(stream)
                response, _ = await client.request("GET", "/", [("Connection", "close")])
                assert response.status_code == 200
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
            finally:
                await anyio.aclose_forcefully(stream)


async def test_tls_garbage_handshake_does_not_stop_server(
        server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello), ssl_context=server_context) as port:
            async with await anyio.connect_tcp("127.0.0.1", port) as raw:
                await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to TLS
                await read_to_eof(raw)
            async with await tls_connect(port, client_context) as stream:
                response, _ = await HTTPClient(stream).request("GET", "/")
    assert response.status_code == 200


# -- shutdown and timeouts ---------------------------------------------------


async def test_shutdown_closes_open_websocket_with_1001_and_serve_returns() -> None:
    opened = anyio.Event()
    server_closes: list[tuple[int | None, str]] = []

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body) as ws:
            ws.on("close", lambda event: server_closes.append((event.code, event.reason)))
            opened.set()
            async for message in ws:
                await ws.send(message)

    server = Server(on_upgrade=on_upgrade, shutdown_timeout=30)
    served = anyio.Event()

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await server.serve("127.0.0.1", 0, task_status=task_status)
        served.set()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(serve)
            async with await connect(port) as stream:
                client = await raw_connect(stream, "/")
                assert client.accepted is not None
                await opened.wait()
                await client.send("before")
                assert await client.receive() == "before"

                tg.start_soon(server.shutdown)
                event = await client.next_event()
                assert isinstance(event, CloseConnection), event
                assert event.code == 1001
                await client.send_event(event.response())
                assert await client.next_event() is None  # the server hangs up
            await served.wait()

    assert [code for code, _ in server_closes] == [1001]
    with anyio.fail_after(TIMEOUT), pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


async def test_shutdown_ends_eventsource_streams_at_once(
        server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    # An EventSource handler streams until its stream closes; shutdown()
    # closes it at once rather than waiting out shutdown_timeout (30 s here).
    opened = anyio.Event()
    closed: list[str] = []

    async def on_request(request: Request, response: Response) -> None:
        async with EventSource(request, response, ping=None) as es:
            es.on("close", lambda event: closed.append(event.type))
            opened.set()
            for _ in range(1000):  # bounded: shutdown() ends it long before
                if not await es.send("tick"):
                    break
                await anyio.sleep(0.05)

    server = Server(on_request=on_request, shutdown_timeout=30)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            # ssl_context may be passed positionally, as tg.start passes arguments
            port: int = await tg.start(server.serve, "127.0.0.1", 0, server_context)
            url = f"https://localhost:{port}/events"
            async with EventSource.Client(url, tls=client_context) as source:
                assert (await source.receive()).data == "tick"
                await opened.wait()
                with anyio.fail_after(2):  # not shutdown_timeout
                    await server.shutdown()
                assert closed == ["close"]


async def test_shutdown_drops_idle_keep_alive_connections_promptly() -> None:
    server = Server(on_request=hello, keep_alive_timeout=60, shutdown_timeout=60)
    served = anyio.Event()

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await server.serve("127.0.0.1", 0, task_status=task_status)
        served.set()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(serve)
            async with await connect(port) as stream:
                response, _ = await HTTPClient(stream).request("GET", "/")
                assert response.status_code == 200
                # Let the server go back to waiting for the next request:
                # the connection is now idle between requests.
                await anyio.wait_all_tasks_blocked()
                await server.shutdown()
                await served.wait()
                assert await read_to_eof(stream) == b""


async def test_shutdown_lets_an_in_flight_request_finish_then_closes() -> None:
    # shutdown() arrives while a keep-alive request is being answered: the
    # response is completed, and then the connection is closed at once
    # (not kept waiting for a next request until a timeout).
    entered = anyio.Event()
    release = anyio.Event()

    async def on_request(request: Request, response: Response) -> None:
        entered.set()
        await release.wait()
        await hello(request, response)

    server = Server(on_request=on_request, keep_alive_timeout=60, shutdown_timeout=60)
    served = anyio.Event()

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await server.serve("127.0.0.1", 0, task_status=task_status)
        served.set()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(serve)
            async with await connect(port) as stream:
                client = HTTPClient(stream)
                await stream.send(client.conn.send(h11.Request(
                    method="GET", target="/slow", headers=[("Host", "localhost")])) or b"")
                await stream.send(client.conn.send(h11.EndOfMessage()) or b"")
                await entered.wait()
                tg.start_soon(server.shutdown)
                await anyio.wait_all_tasks_blocked()
                release.set()
                response, body = await client.response()
                assert (response.status_code, body) == (200, b"hello GET /slow")
                assert await read_to_eof(stream) == b""
            await served.wait()


async def test_shutdown_cancels_a_pending_tls_handshake(server_context: ssl.SSLContext) -> None:
    # A connection still in its TLS handshake has sent no request: shutdown
    # drops it at once, as an idle one, instead of serve() waiting for the
    # handshake timeout (request_timeout).
    server = Server(on_request=hello, request_timeout=60, shutdown_timeout=0.5)
    served = anyio.Event()

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await server.serve("127.0.0.1", 0, ssl_context=server_context, task_status=task_status)
        served.set()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(serve)
            async with await connect(port) as silent:  # never sends a ClientHello
                await anyio.wait_all_tasks_blocked()
                start = anyio.current_time()
                await server.shutdown()
                await served.wait()
                assert anyio.current_time() - start < 1.5
                assert await read_to_eof(silent) == b""


async def test_request_timeout_drops_a_stalled_client() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello, request_timeout=0.2)) as port:
            async with await connect(port) as stalled:
                await stalled.send(b"GET / HTTP/1.1\r\nHost: loc")
                # Meanwhile other clients are served.
                await assert_still_serving(port)
                raw = await read_to_eof(stalled)
            assert raw == b"" or status_of(raw) == 408
            await assert_still_serving(port)


async def test_keep_alive_timeout_closes_an_idle_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=hello, keep_alive_timeout=0.2)) as port, \
                await connect(port) as stream:
            response, _ = await HTTPClient(stream).request("GET", "/")
            assert response.status_code == 200
            assert await read_to_eof(stream) == b""


async def test_cancelling_serve_closes_connections() -> None:
    entered = anyio.Event()

    async def on_request(request: Request, response: Response) -> None:
        entered.set()
        await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with running(Server(on_request=on_request)) as port:
            stream = await connect(port)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await entered.wait()
        # Leaving ``running`` cancelled serve(): the handler's connection
        # is closed rather than leaked.
        async with stream:
            assert await read_to_eof(stream) == b""
