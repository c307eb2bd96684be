"""``python -m faye_websocket demo | echo`` as real subprocesses.

Each test starts the command on a free port with ``--backend asyncio`` and
``--backend trio``, talks to it over loopback sockets and stops it with
SIGTERM (or kills it, whatever happens, when the test ends).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import h11
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from wsproto.events import CloseConnection

from .helpers import SECOND, stop_process
from .wsclient import RawClient, raw_connect

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

#: Bound on each test (the subprocess has to import the package first).
TIMEOUT = 30 * SECOND
#: How long the server may take to exit after SIGTERM.
EXIT_TIMEOUT = 5


@pytest.fixture(params=["asyncio", "trio"])
def cli_backend(request: pytest.FixtureRequest) -> str:
    """The ``--backend`` the command runs on (independent of the test's own)."""
    return str(request.param)


class CLI:
    """A running ``python -m faye_websocket`` process."""

    def __init__(self, process: anyio.abc.Process, port: int) -> None:
        self.process = process
        self.port = port
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        #: Every stdout line read so far, and all of stderr (for failure messages).
        self.lines: list[str] = []
        self.stderr = bytearray()
        self.stderr_closed = anyio.Event()

    async def readline(self) -> str:
        try:
            raw = await self._stdout.receive_until(b"\n", 65536)
        except (anyio.IncompleteRead, anyio.EndOfStream):
            raise AssertionError(f"stdout ended; lines so far: {self.lines}; "
                                 f"stderr: {self.stderr.decode(errors='replace')}") from None
        line = raw.decode().rstrip("\r")
        self.lines.append(line)
        return line

    async def expect_line(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix`` and return it."""
        while True:
            line = await self.readline()
            if line.startswith(prefix):
                return line

    async def drain_stderr(self) -> None:
        assert self.process.stderr is not None
        try:
            async for chunk in self.process.stderr:
                self.stderr += chunk
        finally:
            self.stderr_closed.set()

    async def wait_exit(self) -> int:
        with anyio.fail_after(EXIT_TIMEOUT):
            return await self.process.wait()


@asynccontextmanager
async def run_cli(command: str, backend: str, port: int, *extra: str,
                  scheme: str = "http") -> AsyncIterator[CLI]:
    """Start the command, wait for its ``listening on`` line; always kill it."""
    process = await anyio.open_process(
        [sys.executable, "-m", "faye_websocket", command, "--port", str(port),
         "--backend", backend, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with anyio.create_task_group() as tg:
            cli = CLI(process, port)
            tg.start_soon(cli.drain_stderr)
            line = await cli.readline()
            assert line == f"listening on {scheme}://127.0.0.1:{port}/", cli.lines
            yield cli
            tg.cancel_scope.cancel()
    finally:
        await stop_process(process)


async def http_get(port: int, target: str) -> tuple[h11.Response, bytes]:
    """One ``GET`` on a fresh connection (``Connection: close``)."""
    conn = h11.Connection(h11.CLIENT)
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send((conn.send(h11.Request(
            method="GET", target=target,
            headers=[("Host", f"127.0.0.1:{port}"), ("Connection", "close")])) or b"")
            + (conn.send(h11.EndOfMessage()) or b""))
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    conn.receive_data(b"")
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, bytes(body)
            else:
                raise AssertionError(f"unexpected h11 event {event!r}")


def header(response: h11.Response, name: str) -> str:
    return b", ".join(v for k, v in response.headers if k == name.encode()).decode()


async def ws_connect(stream: anyio.abc.ByteStream, port: int, path: str = "/", **kwargs: object,
                     ) -> RawClient:
    client = await raw_connect(stream, path, host=f"127.0.0.1:{port}", **kwargs)  # type: ignore[arg-type]
    assert client.accepted is not None, (client.rejected, client.reject_body)
    return client


async def answer_close(client: RawClient) -> CloseConnection:
    """Wait for the server's Close, answer it, and wait for the TCP close."""
    event = await client.next_event()
    while event is not None and not isinstance(event, CloseConnection):
        event = await client.next_event()
    assert isinstance(event, CloseConnection), event
    await client.send_event(event.response())
    while await client.next_event() is not None:
        pass
    return event


# -- demo --------------------------------------------------------------------


async def test_demo_serves_page_and_404(cli_backend: str, free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, free_tcp_port) as cli:
            page, body = await http_get(cli.port, "/")
            missing, _ = await http_get(cli.port, "/no/such/page")

    assert page.status_code == 200
    assert header(page, "content-type").startswith("text/html")
    assert b"WebSocket" in body
    assert header(page, "content-length") == str(len(body))
    assert missing.status_code == 404


async def test_demo_echoes_with_subprotocol_and_logs(cli_backend: str,
                                                     free_tcp_port: int) -> None:
    port = free_tcp_port
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, port) as cli:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = await ws_connect(stream, port, "/chat", subprotocols=["irc", "xmpp"],
                                          deflate=True)
                assert client.accepted is not None
                assert client.accepted.subprotocol == "irc"
                assert any(ext.name == "permessage-deflate"
                           for ext in client.accepted.extensions)
                assert await cli.expect_line("open ") == \
                    f"open ws://127.0.0.1:{port}/chat hybi-13 irc"

                await client.send("hello, ünïcode")
                assert await client.receive() == "hello, ünïcode"
                await client.send(b"\x00\x01\xfe\xff")
                assert await client.receive() == b"\x00\x01\xfe\xff"
                big = "x" * 200_000
                await client.send(big)
                assert await client.receive() == big

                closed = await client.close(1000, "done here")
                assert closed is not None
                assert closed.code == 1000
            assert await cli.expect_line("close ") == "close 1000 done here"

            cli.process.send_signal(signal.SIGTERM)
            assert await cli.wait_exit() == 0


async def test_demo_sigterm_exits_0(cli_backend: str, free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, free_tcp_port) as cli:
            page, _ = await http_get(cli.port, "/")
            assert page.status_code == 200
            cli.process.send_signal(signal.SIGTERM)
            assert await cli.wait_exit() == 0
    with anyio.fail_after(TIMEOUT), pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", free_tcp_port)


async def test_demo_sigterm_closes_open_websocket_with_1001(cli_backend: str,
                                                            free_tcp_port: int) -> None:
    port = free_tcp_port
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, port) as cli:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = await ws_connect(stream, port, "/", subprotocols=["xmpp"])
                assert client.accepted is not None
                assert client.accepted.subprotocol == "xmpp"
                await cli.expect_line("open ")
                await client.send("still here")
                assert await client.receive() == "still here"

                cli.process.send_signal(signal.SIGTERM)
                closing = await answer_close(client)
                assert closing.code == 1001
            assert (await cli.expect_line("close ")).startswith("close 1001")
            assert await cli.wait_exit() == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_right_after_ready_line_exits_0(cli_backend: str, free_tcp_port: int,
                                                      signum: signal.Signals) -> None:
    # A supervisor may signal as soon as the "listening on" line appears:
    # the signal must already be handled then (clean shutdown, exit 0).
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, free_tcp_port) as cli:
            cli.process.send_signal(signum)
            returncode = await cli.wait_exit()
            await cli.stderr_closed.wait()
            assert returncode == 0, cli.stderr.decode(errors="replace")


# -- echo --------------------------------------------------------------------


async def test_echo_server_echoes_and_exits_on_sigterm(cli_backend: str,
                                                       free_tcp_port: int) -> None:
    port = free_tcp_port
    with anyio.fail_after(TIMEOUT):
        async with run_cli("echo", cli_backend, port) as cli:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = await ws_connect(stream, port, "/", subprotocols=["irc"],
                                          deflate=True)
                assert client.accepted is not None
                assert client.accepted.subprotocol is None  # echo speaks none
                assert any(ext.name == "permessage-deflate"
                           for ext in client.accepted.extensions)
                await client.send("text ✓")
                assert await client.receive() == "text ✓"
                await client.send(b"\xff" * 1000)
                assert await client.receive() == b"\xff" * 1000
                big = bytes(range(256)) * 4096  # 1 MiB
                await client.send(big)
                assert await client.receive() == big
                closed = await client.close(1000)
                assert closed is not None
                assert closed.code == 1000

            missing, _ = await http_get(port, "/")
            assert missing.status_code == 404

            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = await ws_connect(stream, port)
                await client.send("one more")
                assert await client.receive() == "one more"
                cli.process.send_signal(signal.SIGTERM)
                assert (await answer_close(client)).code == 1001
            assert await cli.wait_exit() == 0


async def test_demo_over_tls_with_certfile_and_keyfile(
        cli_backend: str, free_tcp_port: int, ca: Any, client_context: Any,
        tmp_path: Path) -> None:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    with anyio.fail_after(TIMEOUT):
        async with run_cli("demo", cli_backend, free_tcp_port, "--certfile", str(certfile),
                           "--keyfile", str(keyfile), scheme="https") as cli:
            stream = await anyio.connect_tcp("127.0.0.1", cli.port, tls=True,
                                             ssl_context=client_context,
                                             tls_hostname="localhost")
            async with stream:
                client = await ws_connect(stream, cli.port, subprotocols=["xmpp"])
                await client.send("over TLS")
                assert await client.receive() == "over TLS"
                line = await cli.expect_line("open ")
                assert line == f"open wss://127.0.0.1:{cli.port}/ hybi-13 xmpp"
                await client.close()
            cli.process.send_signal(signal.SIGTERM)
            assert await cli.wait_exit() == 0


# -- errors a user can fix, --version, --help -----------------------------------


async def run_to_exit(*args: str) -> tuple[int, str, str]:
    """Run ``python -m faye_websocket ARGS`` to its end: (status, stdout, stderr)."""
    with anyio.fail_after(TIMEOUT):
        result = await anyio.run_process([sys.executable, "-m", "faye_websocket", *args],
                                         check=False, stdin=subprocess.DEVNULL)
    assert result.returncode is not None
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_version_names_the_accelerator() -> None:
    status, out, _ = await run_to_exit("--version")
    assert status == 0
    assert re.fullmatch(r"faye-websocket \d+\.\d+\.\d+\S* \(C accelerator: "
                        r"(in use|not built|off \(FAYE_WEBSOCKET_NO_SPEEDUPS\))\)\n", out)


async def test_help_shows_the_defaults() -> None:
    status, out, _ = await run_to_exit("echo", "--help")
    assert status == 0
    assert "(default: 9001)" in out and "(default: asyncio)" in out


async def test_a_port_in_use_is_one_line_and_exit_1(cli_backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        status, _, err = await run_to_exit("echo", "--port", str(port), "--backend", cli_backend)
    assert status == 1
    assert err == f"error: can't listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
async def test_a_bad_certificate_file_is_one_line_and_exit_1(content: bytes | None,
                                                             tmp_path: Path) -> None:
    certfile = tmp_path / "cert.pem"
    if content is not None:
        certfile.write_bytes(content)
    status, _, err = await run_to_exit("demo", "--port", "0", "--certfile", str(certfile))
    assert status == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: can't load the certificate {certfile}: ")
    assert ("No such file or directory" in err) == (content is None)


async def test_no_drafts_refuses_hixie_requests(cli_backend: str, free_tcp_port: int) -> None:
    request = (b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
               b"Host: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n\r\n")  # hixie-75
    with anyio.fail_after(TIMEOUT):
        async with run_cli("echo", cli_backend, free_tcp_port, "--no-drafts") as cli:
            async with await anyio.connect_tcp("127.0.0.1", cli.port) as stream:
                await stream.send(request)
                response = b""
                while b"\r\n\r\n" not in response:
                    response += await stream.receive()
            cli.process.send_signal(signal.SIGTERM)
            assert await cli.wait_exit() == 0
    assert response.startswith(b"HTTP/1.1 426 ")
