"""WebSocket.Client.reconnecting: connecting again, with backoff.

Against our server on loopback, which follows a plan (accept and echo,
accept and drop, refuse with a status...). The backoff is checked on the
delays the iterator logs (with ``jitter=0`` they are exact), never on the
clock; the sleeps are a few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from faye_websocket import (
    ConnectError,
    ConnectionClosed,
    Event,
    HandshakeError,
    ProxyError,
    ReconnectingClient,
    WebSocket,
)
from faye_websocket.http import Request, Server

from .helpers import SECOND, running

pytestmark = pytest.mark.anyio

#: Bound on each I/O test.
TIMEOUT = 15 * SECOND
#: Small, exact backoff: 10, 20, 40, 50, 50... ms.
FAST: dict[str, Any] = {"initial_delay": 0.01, "backoff_factor": 2, "max_delay": 0.05, "jitter": 0}

#: What the server does with the n-th upgrade: "echo" (until the client
#: closes), "hello" (send "hello N", then close with 1000), "drop" (cut
#: the TCP connection, no Close frame), a status to refuse with, or a
#: status and headers.
Step = str | int | tuple[int, dict[str, str]]


@dataclass
class Peer:
    plan: list[Step] = field(default_factory=list)
    port: int = 0
    #: Each connection's close code, as the server saw it.
    closes: list[int | None] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    closed: anyio.Event = field(default_factory=anyio.Event)

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        self.requests.append(request)
        step = self.plan.pop(0) if self.plan else "echo"
        ws = WebSocket(request, stream, body)
        if isinstance(step, int):
            await ws.reject(step)
            return
        if isinstance(step, tuple):
            await ws.reject(step[0], step[1])
            return

        def on_close(event: Event) -> None:
            self.closes.append(event.code)
            self.closed.set()
            self.closed = anyio.Event()

        ws.on("close", on_close)
        async with ws:
            if step == "hello":
                await ws.send(f"hello {len(self.requests)}")
                await ws.close()
            elif step == "drop":
                await anyio.aclose_forcefully(stream)
            else:
                with contextlib.suppress(ConnectionClosed):
                    async for message in ws:
                        await ws.send(message)


@asynccontextmanager
async def serving(*plan: Step, ssl_context: ssl.SSLContext | None = None,
                  ) -> AsyncIterator[Peer]:
    peer = Peer(list(plan))
    async with running(Server(on_upgrade=peer.on_upgrade), ssl_context=ssl_context) as port:
        peer.port = port
        yield peer


def delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the iterator chose, from its log, in order."""
    return [round(float(record.args[1]), 6)  # type: ignore[index, arg-type]
            for record in caplog.records
            if record.name == "faye_websocket.client"
            and record.msg.startswith("reconnecting")]


async def read_all(clients: AsyncIterator[WebSocket.Client]) -> None:
    """The bare form: only the iterator raising ends this loop."""
    async for ws in clients:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass


@pytest.fixture(autouse=True)
def _log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faye_websocket.client")


# -- reconnecting ---------------------------------------------------------------------------


async def test_a_dropped_connection_gives_a_new_client(caplog: pytest.LogCaptureFixture,
                                                       ) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving("drop", "hello", "echo") as peer:
            seen: list[WebSocket.Client] = []
            got: list[str] = []
            async with WebSocket.Client.reconnecting(peer.url(), **FAST) as clients:
                async for ws in clients:
                    assert ws.ready_state == WebSocket.OPEN and ws not in seen
                    seen.append(ws)
                    if len(seen) == 3:
                        await ws.send("echo me")
                        got.append(str(await ws.receive()))
                        break
                    try:
                        got.extend([str(message) async for message in ws])
                    except ConnectionClosed:
                        continue  # the drop: 1006
            assert got == ["hello 2", "echo me"]
            assert [ws.close_code for ws in seen] == [1006, 1000, 1000]
            # Both connections lasted less than reset_after (10 s): failures.
            assert delays(caplog) == [0.01, 0.02]
            with anyio.fail_after(TIMEOUT):
                while len(peer.closes) < 3:
                    await peer.closed.wait()
            assert peer.closes[2] == 1000  # the break


async def test_the_backoff_grows_to_max_delay_and_resets(caplog: pytest.LogCaptureFixture,
                                                         ) -> None:
    with anyio.fail_after(TIMEOUT):
        # Five refusals, a connection (closed by the server), two more refusals.
        async with serving(503, 503, 503, 503, 503, "hello", 503, 503, "echo") as peer:
            for reset_after, after_connection in [(math.inf, [0.05, 0.05, 0.05]),
                                                  (0, [0.01, 0.01, 0.02])]:
                caplog.clear()
                peer.plan = [503, 503, 503, 503, 503, "hello", 503, 503, "echo"]
                count = 0
                async with WebSocket.Client.reconnecting(
                        peer.url(), **{**FAST, "reset_after": reset_after}) as clients:
                    async for ws in clients:
                        count += 1
                        if count == 2:
                            break
                        with contextlib.suppress(ConnectionClosed):
                            await ws.receive()
                            await ws.receive()
                # 10, 20, 40, 50 (max_delay), 50 ms; then after the connection
                # that closed: still failures in a row, or a fresh start.
                assert delays(caplog) == [0.01, 0.02, 0.04, 0.05, 0.05, *after_connection]


async def test_jitter_takes_off_at_most_its_share(caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(*[503] * 6) as peer:
            options = {**FAST, "jitter": 0.5, "reset_after": math.inf}
            async with WebSocket.Client.reconnecting(peer.url(), **options) as clients:
                async for _ in clients:
                    break
            nominal = [0.01, 0.02, 0.04, 0.05, 0.05, 0.05]
            chosen = delays(caplog)
            assert len(chosen) == 6
            assert all(n / 2 <= d <= n for n, d in zip(nominal, chosen, strict=True))
            assert len(set(chosen)) > 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_a_4xx_refusal_is_raised_without_retrying(status: int,
                                                        caplog: pytest.LogCaptureFixture,
                                                        ) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving("drop", status) as peer:
            clients = WebSocket.Client.reconnecting(peer.url(), **FAST)
            with pytest.raises(HandshakeError) as info:
                await read_all(clients)
            assert info.value.status_code == status
            assert len(peer.requests) == 2
            assert delays(caplog) == [0.01]
            with pytest.raises(StopAsyncIteration):
                await clients.__anext__()  # it stays finished


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_429_and_5xx_are_retried(status: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(status, status, "echo") as peer:
            async with WebSocket.Client.reconnecting(peer.url(), **FAST) as clients:
                async for ws in clients:
                    await ws.send("finally")
                    assert await ws.receive() == "finally"
                    break
            assert len(peer.requests) == 3


async def test_retry_after_is_honoured_up_to_max_delay(caplog: pytest.LogCaptureFixture,
                                                       ) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving((503, {"Retry-After": "0"}), (429, {"Retry-After": "120"}),
                           (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
                           "echo") as peer:
            async with WebSocket.Client.reconnecting(peer.url(), **FAST) as clients:
                async for _ in clients:
                    break
            # 0 s asks for no more than the backoff; 120 s is capped at 50 ms;
            # a date is not honoured.
            assert delays(caplog) == [0.01, 0.05, 0.04]


async def test_a_redirect_loop_is_not_retried() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            peer.plan = [(302, {"Location": "/b"}), (302, {"Location": "/"})]
            with pytest.raises(HandshakeError, match="redirect loop"):
                async for _ in WebSocket.Client.reconnecting(peer.url(), **FAST):
                    pass
            assert len(peer.requests) == 2


async def test_a_certificate_that_fails_verification_is_raised(
        server_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(ssl_context=server_context) as peer:
            untrusting = ssl.create_default_context()  # not trustme's CA
            untrusting.load_verify_locations(cadata=_self_signed_ca())
            with pytest.raises(ConnectError) as info:
                async for _ in WebSocket.Client.reconnecting(peer.url(scheme="wss"),
                                                             tls=untrusting, **FAST):
                    pass
            assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
            assert peer.requests == [] and delays(caplog) == []


async def test_a_refused_connection_is_retried_until_aclose(caplog: pytest.LogCaptureFixture,
                                                            ) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clients = WebSocket.Client.reconnecting(f"ws://127.0.0.1:{port}/", **FAST)
    got: list[WebSocket.Client] = []

    async def iterate() -> None:
        got.extend([ws async for ws in clients])

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(iterate)
            while len(delays(caplog)) < 4:  # noqa: ASYNC110 (no event for log records)
                await anyio.sleep(0.01)
            await clients.aclose()  # from another task: the loop ends
    assert got == []
    assert delays(caplog)[:4] == [0.01, 0.02, 0.04, 0.05]
    assert "ConnectError" in str(caplog.records[0].args)
    assert "closed" in repr(clients)


@asynccontextmanager
async def socks5_proxy(*plan: str) -> AsyncIterator[tuple[int, list[str]]]:
    """A SOCKS5 proxy that only refuses: "credentials" (the user name and
    password), or a CONNECT reply code ("5": connection refused, "2": not
    allowed by the ruleset). Yields its port, and the steps taken so far."""
    steps = list(plan)
    taken: list[str] = []

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            step = steps.pop(0)
            taken.append(step)
            reader = BufferedByteReceiveStream(stream)
            _, count = await reader.receive_exactly(2)
            await reader.receive_exactly(count)
            if step == "credentials":
                await stream.send(b"\x05\x02")  # user name and password, please
                _, size = await reader.receive_exactly(2)
                await reader.receive_exactly(size)
                size = (await reader.receive_exactly(1))[0]
                await reader.receive_exactly(size)
                await stream.send(b"\x01\x01")  # refused
                return
            await stream.send(b"\x05\x00")
            *_, kind = await reader.receive_exactly(4)
            size = {1: 4, 4: 16}.get(kind) or (await reader.receive_exactly(1))[0]
            await reader.receive_exactly(size + 2)
            await stream.send(bytes([5, int(step), 0, 1, 0, 0, 0, 0, 0, 0]))

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, \
            anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield listener.extra(anyio.abc.SocketAttribute.local_port), taken
        tg.cancel_scope.cancel()


async def test_socks_credentials_refused_are_raised_without_retrying(
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("python_socks")
    with anyio.fail_after(TIMEOUT):
        async with socks5_proxy("credentials") as (port, taken):
            proxy = f"socks5://user:wrong@127.0.0.1:{port}"
            with pytest.raises(ProxyError, match="authentication failure"):
                async for _ in WebSocket.Client.reconnecting("ws://127.0.0.1:9/", proxy=proxy,
                                                             **FAST):
                    pass
            assert taken == ["credentials"] and delays(caplog) == []


async def test_socks_refusals_that_may_change_are_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("python_socks")
    with anyio.fail_after(TIMEOUT):
        async with socks5_proxy("5", "5", "2") as (port, taken):
            with pytest.raises(ProxyError, match="not allowed"):
                async for _ in WebSocket.Client.reconnecting(
                        "ws://127.0.0.1:9/", proxy=f"socks5://127.0.0.1:{port}", **FAST):
                    pass
            # Connection refused (by the target) twice, then a ruleset: final.
            assert taken == ["5", "5", "2"] and delays(caplog) == [0.01, 0.02]


# -- leaving the loop ---------------------------------------------------------------------------


async def test_break_closes_with_1000() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            async with WebSocket.Client.reconnecting(peer.url(), **FAST) as clients:
                async for ws in clients:
                    await ws.send("one")
                    assert await ws.receive() == "one"
                    break
                assert ws.ready_state == WebSocket.OPEN  # until the block ends
            assert ws.ready_state == WebSocket.CLOSED and ws.close_code == 1000
            while not peer.closes:
                await peer.closed.wait()
            assert peer.closes == [1000]


async def test_aclosing_works_as_well() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            async with contextlib.aclosing(
                    WebSocket.Client.reconnecting(peer.url(), **FAST)) as clients:
                async for ws in clients:
                    handed = ws
                    break
            assert handed.close_code == 1000
            with pytest.raises(StopAsyncIteration):
                await clients.__anext__()


async def test_an_exception_in_the_body_closes_with_1011_and_propagates() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            handed: list[WebSocket.Client] = []

            async def fail() -> None:
                async with WebSocket.Client.reconnecting(peer.url(), **FAST) as clients:
                    async for ws in clients:
                        handed.append(ws)
                        raise KeyError("boom")

            with pytest.raises(KeyError, match="boom"):
                await fail()
            assert handed[0].ready_state == WebSocket.CLOSED
            while not peer.closes:
                await peer.closed.wait()
            assert peer.closes == [1011]


async def test_cancelling_the_task_group_ends_the_loop_cleanly() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            before = len(anyio.get_running_tasks())
            opened = anyio.Event()
            handed: list[WebSocket.Client] = []

            async def consume() -> None:
                async with WebSocket.Client.reconnecting(peer.url(), **FAST) as clients:
                    async for ws in clients:
                        handed.append(ws)
                        opened.set()
                        async for message in ws:
                            await ws.send(message)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await opened.wait()
                tg.cancel_scope.cancel()
            assert handed[0].ready_state == WebSocket.CLOSED
            while not peer.closes:
                await peer.closed.wait()
            assert peer.closes == [1001]
            # The client's tasks ended with its task group; the server's
            # handler for that connection ends soon after the close.
            while len(anyio.get_running_tasks()) > before:  # noqa: ASYNC110 (no event for it)
                await anyio.sleep(0.01)


async def test_cancelling_during_the_backoff_ends_the_loop() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving(*[503] * 100) as peer:
            before = len(anyio.get_running_tasks())
            with anyio.move_on_after(0.2) as scope:
                async with WebSocket.Client.reconnecting(peer.url(), initial_delay=60,
                                                         jitter=0) as clients:
                    async for _ in clients:
                        pytest.fail("the server refuses")
            assert scope.cancelled_caught
            assert len(peer.requests) == 1  # then waiting 60 s, cancelled
            assert len(anyio.get_running_tasks()) == before


# -- the bare form ------------------------------------------------------------------------------
#
# ``async for ws in WebSocket.Client.reconnecting(url):`` with no block around
# it: each client's connection runs in a task of the iterator's, so leaving
# the loop leaves nothing entered in the test's task; the iterator, dropped,
# closes the client with 1000 and its task finishes the closing handshake.


async def closes(peer: Peer, count: int) -> list[int | None]:
    """The server's close codes, once it has seen ``count`` closes."""
    while len(peer.closes) < count:
        await peer.closed.wait()
    return peer.closes


def hosts() -> list[str]:
    """The iterator's tasks still running (both backends list them)."""
    return [task.name for task in anyio.get_running_tasks()
            if task.name and task.name.startswith("faye_websocket.reconnecting")]


async def no_task_left(anyio_backend: str, before: set[object]) -> None:
    """Wait until the iterator's task has ended (and, on asyncio, until no
    task started since ``before`` is left: the server's handler ends once
    it has seen the close)."""
    while hosts():  # noqa: ASYNC110 (no event for a task's end)
        await anyio.sleep(0.01)
    if anyio_backend == "asyncio":
        while set(asyncio.all_tasks()) - before:  # noqa: ASYNC110
            await anyio.sleep(0.01)


def all_tasks(anyio_backend: str) -> set[object]:
    return set(asyncio.all_tasks()) if anyio_backend == "asyncio" else set()


async def test_a_bare_loop_left_by_break_closes_with_1000(anyio_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            before = all_tasks(anyio_backend)
            async with anyio.create_task_group():  # its scope must still be on top
                async for ws in WebSocket.Client.reconnecting(peer.url(), **FAST):
                    await ws.send("one")
                    assert await ws.receive() == "one"
                    break
            assert await closes(peer, 1) == [1000]
            await ws.wait_closed()
            assert ws.close_code == 1000
            await no_task_left(anyio_backend, before)


async def test_an_exception_out_of_a_bare_loop_propagates_unchanged(anyio_backend: str,
                                                                     ) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            before = all_tasks(anyio_backend)
            boom = KeyError("boom")
            handed: list[WebSocket.Client] = []

            async def fail() -> None:
                async for ws in WebSocket.Client.reconnecting(peer.url(), **FAST):
                    handed.append(ws)
                    await ws.send("one")
                    raise boom

            with pytest.raises(KeyError) as info:
                await fail()
            assert info.value is boom
            # The bare form cannot tell why it was left: 1000, as for break.
            assert await closes(peer, 1) == [1000]
            await handed[0].wait_closed()
            await no_task_left(anyio_backend, before)


async def test_cancelling_a_bare_loop_leaves_nothing_behind(anyio_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            before = all_tasks(anyio_backend)
            handed: list[WebSocket.Client] = []
            with anyio.CancelScope() as scope:
                async for ws in WebSocket.Client.reconnecting(peer.url(), **FAST):
                    handed.append(ws)
                    scope.cancel()
                    await ws.receive()  # cancelled
            assert scope.cancelled_caught
            assert await closes(peer, 1) == [1000]
            await handed[0].wait_closed()
            await no_task_left(anyio_backend, before)


async def test_cancelling_the_task_group_around_a_bare_loop(anyio_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving() as peer:
            before = all_tasks(anyio_backend)
            opened = anyio.Event()

            async def consume() -> None:
                async for ws in WebSocket.Client.reconnecting(peer.url(), **FAST):
                    opened.set()
                    async for message in ws:
                        await ws.send(message)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await opened.wait()
                tg.cancel_scope.cancel()
            assert await closes(peer, 1) == [1000]
            await no_task_left(anyio_backend, before)


async def test_a_timeout_around_one_step(anyio_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serving("hello", "echo") as peer:
            before = all_tasks(anyio_backend)
            clients = WebSocket.Client.reconnecting(peer.url(), **FAST)
            with anyio.move_on_after(TIMEOUT):
                ws = await anext(clients)
            assert ws.ready_state == WebSocket.OPEN
            assert await ws.receive() == "hello 1"
            with anyio.move_on_after(TIMEOUT):
                ws = await anext(clients)
            await ws.send("two")
            assert await ws.receive() == "two"
            await clients.aclose()
            assert ws.close_code == 1000
            assert await closes(peer, 2) == [1000, 1000]
            await no_task_left(anyio_backend, before)


async def test_a_step_cut_short_while_connecting(anyio_backend: str) -> None:
    with anyio.fail_after(TIMEOUT):
        # A listener that never answers the upgrade.
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            clients = WebSocket.Client.reconnecting(f"ws://127.0.0.1:{port}/", **FAST)
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, _hold)
                with anyio.move_on_after(0.05) as scope:
                    await anext(clients)
                assert scope.cancelled_caught
                await clients.aclose()
                with pytest.raises(StopAsyncIteration):
                    await anext(clients)
                tg.cancel_scope.cancel()


async def _hold(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await anyio.sleep_forever()


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [
    ("initial_delay", -1), ("max_delay", math.nan), ("max_delay", math.inf),
    ("backoff_factor", 0.5), ("jitter", 2), ("reset_after", -1), ("open_timeout", 0),
])
async def test_bad_options_raise_at_once(name: str, value: float) -> None:
    options: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match=name):
        WebSocket.Client.reconnecting("ws://127.0.0.1/", **options)


async def test_a_bad_url_raises_at_once() -> None:
    with pytest.raises(ValueError, match="not a valid WebSocket URL"):
        WebSocket.Client.reconnecting("http://127.0.0.1/")


async def test_repr_shows_the_state_and_the_url() -> None:
    clients = WebSocket.Client.reconnecting("ws://user:secret@127.0.0.1:9/x")
    assert repr(clients) == "<WebSocket.Client.reconnecting connecting ws://127.0.0.1:9/x>"


async def test_it_may_be_built_without_an_event_loop() -> None:
    def build(url: str, **options: Any) -> ReconnectingClient:
        # As at import time, or before anyio.run: a thread, and a context,
        # with no event loop.
        return contextvars.Context().run(
            functools.partial(WebSocket.Client.reconnecting, url, **options))

    with anyio.fail_after(TIMEOUT):
        with pytest.raises(ValueError, match="not a valid WebSocket URL"):
            await anyio.to_thread.run_sync(build, "http://127.0.0.1/")
        async with serving("hello") as peer:
            clients = await anyio.to_thread.run_sync(functools.partial(build, peer.url(), **FAST))
            assert repr(clients) == f"<WebSocket.Client.reconnecting connecting {peer.url()}>"
            async for ws in clients:
                assert await ws.receive() == "hello 1"
                break
            assert await closes(peer, 1) == [1000]
            # The options are checked by the first step, then.
            lazy = await anyio.to_thread.run_sync(
                functools.partial(build, peer.url(), open_timeout=0))
            with pytest.raises(ValueError, match="open_timeout"):
                await anext(lazy)


def _self_signed_ca() -> str:
    import trustme

    return trustme.CA().cert_pem.bytes().decode()
