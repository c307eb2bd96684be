"""``python -m faye_websocket client`` as a real subprocess.

The server (and, where needed, an HTTP CONNECT proxy) runs in the test's own
event loop; the client runs with ``--backend asyncio`` and ``--backend
trio``. Every wait is bounded and the subprocess is killed, whatever
happens, when the test ends.
"""

from __future__ import annotations

import base64
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import h11
import pytest
import trustme

from faye_websocket import PerMessageDeflate, WebSocket
from faye_websocket.http import Request, Server

from .helpers import SECOND, running, stop_process

pytestmark = pytest.mark.anyio

#: Bound on each test (the subprocess has to import the package first).
TIMEOUT = 30 * SECOND


@pytest.fixture(params=["asyncio", "trio"])
def cli_backend(request: pytest.FixtureRequest) -> str:
    """The client's ``--backend`` (independent of the test's own)."""
    return str(request.param)


# -- the server ----------------------------------------------------------------


@dataclass
class Seen:
    """What the server saw."""

    requests: list[Request] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    opened: anyio.Event = field(default_factory=anyio.Event)
    closes: list[tuple[int | None, str | None]] = field(default_factory=list)
    closed: anyio.Event = field(default_factory=anyio.Event)


Handler = Callable[[WebSocket], Awaitable[None]]


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@asynccontextmanager
async def serving(handler: Handler = echo, *, ssl_context: ssl.SSLContext | None = None,
                  refuse: int | None = None) -> AsyncIterator[tuple[int, Seen]]:
    """A WebSocket server (subprotocols irc, xmpp; permessage-deflate) that
    runs ``handler``, or refuses every upgrade with HTTP ``refuse``."""
    seen = Seen()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        seen.requests.append(request)
        if refuse is not None:
            await stream.send(f"HTTP/1.1 {refuse} Nope\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n".encode())
            await stream.aclose()
            return
        ws = WebSocket(request, stream, body, ["irc", "xmpp"],
                       extensions=[PerMessageDeflate()])
        try:
            async with ws:
                seen.protocols.append(ws.protocol)
                seen.opened.set()
                await handler(ws)
        finally:
            seen.closes.append((ws.close_code, ws.close_reason))
            seen.closed.set()

    async with running(Server(on_upgrade=on_upgrade), ssl_context=ssl_context) as port:
        yield port, seen


# -- the client subprocess -----------------------------------------------------


@dataclass
class ClientRun:
    process: anyio.abc.Process
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)

    @property
    def lines(self) -> list[str]:
        return self.stdout.decode().splitlines()

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.decode().splitlines()

    async def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def wait(self) -> int:
        return await self.process.wait()

    def __str__(self) -> str:
        return (f"exit {self.process.returncode}; stdout: {self.stdout.decode(errors='replace')!r}"
                f"; stderr: {self.stderr.decode(errors='replace')!r}")


async def _drain(stream: anyio.abc.ByteReceiveStream | None, into: bytearray) -> None:
    assert stream is not None
    async for chunk in stream:
        into += chunk


@asynccontextmanager
async def client(backend: str, url: str, *args: str) -> AsyncIterator[ClientRun]:
    """Start ``python -m faye_websocket client URL ARGS``; always killed at the end.

    Leaving the block waits until stdout and stderr are closed (the process
    has exited), within the test's timeout.
    """
    process = await anyio.open_process(
        [sys.executable, "-m", "faye_websocket", "client", url, "--backend", backend, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run = ClientRun(process)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stdout, run.stdout)
            tg.start_soon(_drain, process.stderr, run.stderr)
            yield run
    finally:
        await stop_process(process)


async def run_client(backend: str, url: str, *args: str, stdin: bytes = b"") -> ClientRun:
    """Run the client with ``stdin`` as its whole input until it exits."""
    async with client(backend, url, *args) as run:
        await run.write(stdin)
        await run.close_stdin()
        await run.wait()
    return run


def assert_one_error_line(run: ClientRun, *fragments: str) -> str:
    assert run.process.returncode not in (0, None), run
    assert "Traceback" not in run.stderr.decode(), run
    lines = run.error_lines
    assert len(lines) == 1, run
    for fragment in fragments:
        assert fragment in lines[0], run
    return lines[0]


# -- echo, options -------------------------------------------------------------


async def test_piped_lines_are_echoed_in_order_and_exit_0(cli_backend: str) -> None:
    lines = [f"line {i}" for i in range(50)] + ["héllo, ünïcode ✓", "", "x" * 100_000, "last"]
    with anyio.fail_after(TIMEOUT):
        async with serving() as (port, seen):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/chat",
                                   stdin="\n".join(lines).encode() + b"\n")
            await seen.closed.wait()
    assert run.process.returncode == 0, run
    assert run.lines == lines, run
    assert run.stderr == b"", run
    assert seen.closes == [(1000, "")]
    # permessage-deflate is offered by default.
    assert "permessage-deflate" in (seen.requests[0].header("sec-websocket-extensions") or "")


async def test_end_of_input_waits_for_replies_in_flight(cli_backend: str) -> None:
    # A server whose replies lag (as the Node reference's, while it is still
    # compressing them): the client used to close after one ping round trip,
    # and the replies that came after its Close were lost.
    async def slow_echo(ws: WebSocket) -> None:
        async for message in ws:
            await anyio.sleep(0.3)
            await ws.send(message)

    with anyio.fail_after(TIMEOUT):
        async with serving(slow_echo) as (port, seen):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/", stdin=b"a\nb\nc\n")
            await seen.closed.wait()
    assert run.lines == ["a", "b", "c"], run
    assert run.process.returncode == 0, run


async def test_end_of_input_stops_waiting_once_the_line_is_quiet(cli_backend: str) -> None:
    async def silent(ws: WebSocket) -> None:
        async for _ in ws:
            pass  # never replies

    with anyio.fail_after(TIMEOUT):
        async with serving(silent) as (port, seen):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/", "--linger", "0.2",
                                   stdin=b"a\nb\n")
            await seen.closed.wait()
    assert run.lines == [], run
    assert run.process.returncode == 0, run
    assert seen.closes == [(1000, "")]


async def test_crlf_and_missing_final_newline(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as (port, _):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/",
                                   stdin=b"one\r\ntwo\r\nthree")
    assert run.process.returncode == 0, run
    assert run.lines == ["one", "two", "three"], run


async def test_protocol_and_headers_reach_the_server(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as (port, seen):
            run = await run_client(
                cli_backend, f"ws://127.0.0.1:{port}/", "--protocol", "nope",
                "--protocol", "xmpp", "--header", "X-Test: yes, really",
                "--header", "Origin:https://example.com", stdin=b"hi\n")
    assert run.process.returncode == 0, run
    assert run.lines == ["hi"], run
    request = seen.requests[0]
    assert request.header("sec-websocket-protocol") == "nope, xmpp"
    assert request.header("x-test") == "yes, really"
    assert request.header("origin") == "https://example.com"
    assert seen.protocols == ["xmpp"]


async def test_binary_messages_are_printed_as_hex(cli_backend: str) -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.send(b"\x00\x01\xfe\xff")
        await echo(ws)

    with anyio.fail_after(TIMEOUT):
        async with serving(handler) as (port, _):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/", stdin=b"text\n")
    assert run.process.returncode == 0, run
    assert run.lines == ["(binary) 0001feff", "text"], run


@pytest.mark.parametrize("header", ["Authorization Basic c2VjcmV0", ": empty name",
                                    "Bad Name: c2VjcmV0", "Sec-WebSocket-Key: c2VjcmV0"])
async def test_malformed_header_is_a_usage_error(header: str) -> None:
    # Refused by the argument parser, before any event loop runs.
    with anyio.fail_after(TIMEOUT):
        run = await run_client("asyncio", "ws://127.0.0.1:1/", "--header", header)
    assert run.process.returncode == 2, run
    assert "--header" in run.stderr.decode(), run
    assert "Traceback" not in run.stderr.decode(), run
    assert "c2VjcmV0" not in run.stderr.decode(), run  # values may be credentials


@pytest.mark.parametrize("value", ["Bearer c2VjcmV0\x0bx", "Bearer c2VjcmV0\x0c",
                                   "\x1bc2VjcmV0"], ids=["VT", "FF", "ESC"])
async def test_control_character_in_a_header_is_refused_without_echo(value: str) -> None:
    # Before: accepted, then h11 refused the request with a 66-line traceback
    # that repeated the value (the server has to be there to get that far).
    with anyio.fail_after(TIMEOUT):
        async with serving() as (port, seen):
            run = await run_client("asyncio", f"ws://127.0.0.1:{port}/",
                                   "--header", f"Authorization: {value}")
    assert run.process.returncode == 2, run
    stderr = run.stderr.decode()
    assert "--header" in stderr and "control character" in stderr, run
    assert "Traceback" not in stderr and "c2VjcmV0" not in stderr, run
    assert seen.requests == []


@pytest.mark.parametrize(("url", "proxy", "kind"), [
    ("ws://c2VjcmV0@127.0.0.1:99999/", None, "WebSocket"),
    ("ws://user:c2Vj/cmV0@127.0.0.1:1/", None, "WebSocket"),
    # urlsplit raises on these ("Invalid IPv6 URL"): before, a traceback.
    ("ws://c2VjcmV0@[::1/", None, "WebSocket"),
    ("ws://127.0.0.1:1/", "http://user:c2VjcmV0@[::1", "proxy"),
], ids=["user-only-bad-port", "slash-in-password", "broken-ipv6", "broken-ipv6-proxy"])
async def test_an_invalid_url_is_one_line_without_credentials(
        cli_backend: str, url: str, proxy: str | None, kind: str) -> None:
    with anyio.fail_after(TIMEOUT):
        run = await run_client(cli_backend, url, *(["--proxy", proxy] if proxy else []))
    assert run.process.returncode == 2, run
    line = assert_one_error_line(run, f"not a valid {kind} URL", "***@")
    assert "c2Vj" not in line and "cmV0" not in line, run


async def test_path_with_spaces_and_non_ascii_is_percent_encoded(cli_backend: str) -> None:
    # Before: h11's "Illegal target characters" as a traceback, or
    # "'ascii' codec can't encode character".
    with anyio.fail_after(TIMEOUT):
        async with serving() as (port, seen):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/a b/\u00e9?q=\u00fc",
                                   stdin=b"hi\n")
    assert run.process.returncode == 0, run
    assert run.lines == ["hi"], run
    assert seen.requests[0].target == "/a%20b/%C3%A9?q=%C3%BC"


async def test_invalid_subprotocol_is_one_line(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        run = await run_client(cli_backend, "ws://127.0.0.1:1/", "--protocol", "a b")
    assert run.process.returncode == 2, run
    assert_one_error_line(run, "invalid subprotocol")


# -- endings -------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), [(4001, 1), (1001, 0)])
async def test_server_initiated_close(cli_backend: str, code: int, status: int) -> None:
    async def handler(ws: WebSocket) -> None:
        message = await ws.receive()
        await ws.send(message)
        await ws.close(code, "bye now")

    with anyio.fail_after(TIMEOUT):
        async with serving(handler) as (port, seen), \
                client(cli_backend, f"ws://127.0.0.1:{port}/") as run:
            # stdin stays open: the client must leave on the server's Close.
            await run.write(b"first\n")
            assert await run.wait() == status, run
            await seen.closed.wait()
    assert run.lines == ["first"], run
    assert seen.closes == [(code, "bye now")]
    if status:
        line = assert_one_error_line(run, str(code))
        assert "bye now" in line
    else:
        assert run.stderr == b"", run


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_exits_130_quietly_and_says_goodbye(cli_backend: str) -> None:
    echoed = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)
            echoed.set()

    with anyio.fail_after(TIMEOUT):
        async with serving(handler) as (port, seen), \
                client(cli_backend, f"ws://127.0.0.1:{port}/") as run:
            await run.write(b"ping\n")
            await echoed.wait()
            run.process.send_signal(signal.SIGINT)
            assert await run.wait() == 130, run
            await seen.closed.wait()
    assert run.lines == ["ping"], run
    assert run.stderr == b"", run
    assert seen.closes[0][0] == 1001


# -- connection failures -------------------------------------------------------


async def test_refused_connection_is_one_line(cli_backend: str, free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        run = await run_client(cli_backend, f"ws://alice:s3cr3t-pw@127.0.0.1:{free_tcp_port}/")
    line = assert_one_error_line(run, f"127.0.0.1:{free_tcp_port}")
    assert "refused" in line.lower(), run
    assert "s3cr3t-pw" not in line and "alice" not in line, run
    assert run.stdout == b"", run


async def test_handshake_refusal_is_one_line_with_the_status(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(refuse=403) as (port, _):
            run = await run_client(cli_backend, f"ws://127.0.0.1:{port}/")
    assert_one_error_line(run, "403")


async def test_invalid_url_is_a_usage_error_without_credentials(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        run = await run_client(cli_backend, "http://alice:s3cr3t-pw@127.0.0.1:1/")
    assert run.process.returncode == 2, run
    line = assert_one_error_line(run)
    assert "s3cr3t-pw" not in line and "alice" not in line, run


# -- TLS -----------------------------------------------------------------------


async def test_wss_with_cafile(cli_backend: str, ca: trustme.CA,
                               server_context: ssl.SSLContext, tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    with anyio.fail_after(TIMEOUT):
        async with serving(ssl_context=server_context) as (port, seen):
            run = await run_client(cli_backend, f"wss://127.0.0.1:{port}/", "--cafile",
                                   str(cafile), stdin=b"secure\nstill secure\n")
            await seen.closed.wait()
    assert run.process.returncode == 0, run
    assert run.lines == ["secure", "still secure"], run
    assert seen.closes == [(1000, "")]


async def test_wss_without_cafile_fails_on_the_certificate(
        cli_backend: str, server_context: ssl.SSLContext) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(ssl_context=server_context) as (port, _):
            run = await run_client(cli_backend, f"wss://127.0.0.1:{port}/")
    assert_one_error_line(run, "certificate")


# -- proxy ---------------------------------------------------------------------


@dataclass
class Proxy:
    port: int
    requests: list[h11.Request] = field(default_factory=list)


async def _pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
        await sink.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


async def _tunnel(proxy: Proxy, refuse: int | None, downstream: anyio.abc.SocketStream,
                  ) -> None:
    async with downstream:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await downstream.receive())
                except anyio.EndOfStream:
                    return
            elif isinstance(event, h11.Request):
                request = event
                proxy.requests.append(event)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                break
        assert request is not None and request.method == b"CONNECT"
        if refuse is not None:
            await downstream.send(conn.send(h11.Response(
                status_code=refuse, reason=b"Go Away",
                headers=[("Content-Length", "0"), ("Connection", "close")])) or b"")
            return
        host, _, port = request.target.decode().rpartition(":")
        async with await anyio.connect_tcp(host, int(port)) as upstream:
            await downstream.send(conn.send(h11.Response(status_code=200, headers=[])) or b"")
            trailing, _closed = conn.trailing_data
            if trailing:
                await upstream.send(bytes(trailing))
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pipe, downstream, upstream)
                tg.start_soon(_pipe, upstream, downstream)


@asynccontextmanager
async def connect_proxy(*, refuse: int | None = None) -> AsyncIterator[Proxy]:
    """A minimal HTTP CONNECT proxy on loopback (or one refusing with ``refuse``)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy = Proxy(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await _tunnel(proxy, refuse, stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()


def _header(request: h11.Request, name: bytes) -> bytes | None:
    return next((v for k, v in request.headers if k == name), None)


async def test_through_a_connect_proxy_with_credentials(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as (port, seen), connect_proxy() as proxy:
            run = await run_client(
                cli_backend, f"ws://127.0.0.1:{port}/", "--proxy",
                f"http://proxyuser:pr0xy-pw@127.0.0.1:{proxy.port}",
                stdin=b"via proxy\n")
            await seen.closed.wait()
    assert run.process.returncode == 0, run
    assert run.lines == ["via proxy"], run
    [request] = proxy.requests
    assert request.target == f"127.0.0.1:{port}".encode()
    assert _header(request, b"proxy-authorization") == \
        b"Basic " + base64.b64encode(b"proxyuser:pr0xy-pw")
    assert seen.closes == [(1000, "")]


async def test_wss_through_a_connect_proxy(cli_backend: str, ca: trustme.CA,
                                           server_context: ssl.SSLContext,
                                           tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    with anyio.fail_after(TIMEOUT):
        async with serving(ssl_context=server_context) as (port, _), \
                connect_proxy() as proxy:
            run = await run_client(
                cli_backend, f"wss://127.0.0.1:{port}/", "--cafile", str(cafile),
                "--proxy", f"http://127.0.0.1:{proxy.port}", stdin=b"tunnelled\n")
    assert run.process.returncode == 0, run
    assert run.lines == ["tunnelled"], run
    assert len(proxy.requests) == 1


async def test_refused_proxy_is_one_line_without_credentials(cli_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect_proxy(refuse=407) as proxy:
            run = await run_client(
                cli_backend, "ws://user:url-pw@127.0.0.1:9/", "--proxy",
                f"http://proxyuser:pr0xy-pw@127.0.0.1:{proxy.port}")
    line = assert_one_error_line(run, "407")
    for secret in ("url-pw", "pr0xy-pw", "proxyuser"):
        assert secret not in line, run


async def test_unreachable_proxy_is_one_line(cli_backend: str, free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        run = await run_client(cli_backend, "ws://127.0.0.1:9/", "--proxy",
                               f"http://proxyuser:pr0xy-pw@127.0.0.1:{free_tcp_port}")
    line = assert_one_error_line(run, "proxy", str(free_tcp_port))
    assert "pr0xy-pw" not in line and "proxyuser" not in line, run


# -- help ----------------------------------------------------------------------


def test_help_documents_binary_output_and_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faye_websocket", "client", "--help"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result
    assert "(binary)" in result.stdout and "hex" in result.stdout
    assert "130" in result.stdout

