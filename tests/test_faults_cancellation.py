"""Callers that cancel at each await point of open, send, receive and
close, over real loopback sockets, on both anyio backends: the
cancellation reaches the caller, the connection is closed, and nothing
leaks (:func:`~tests.fault_helpers.no_leaks`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.abc
import anyio.lowlevel
import h11
import pytest
from wsproto import WSConnection
from wsproto.events import CloseConnection, TextMessage

from faye_websocket import ConnectionClosedError, EventSource, ReadyState, WebSocket
from faye_websocket.http import Request, Response, Server
from faye_websocket.testing import memory_stream_pair

from .fault_helpers import (
    CHUNK,
    TIMEOUT,
    Conn,
    Peer,
    Sender,
    assert_echo,
    cancel_entering,
    echo,
    just_read,
    no_leaks,
    read_nothing,
    serving,
    slow_reader,
    small_send_buffer,
    tcp,
    ws_peer,
    ws_server,
)
from .helpers import kinds, open_fds, raw_server, read_to_eof, recorded
from .wsclient import raw_connect

pytestmark = pytest.mark.anyio


# -- cancellation at each await point ------------------------------------------------------


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose listener has a full backlog: a new connect waits for ever
    (Linux drops its SYNs), so the client stays in TCP connect."""
    listener = socket.socket()
    filler = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.settimeout(TIMEOUT)
        filler.connect(listener.getsockname())  # takes the one backlog slot
        yield listener.getsockname()[1]
    finally:
        filler.close()
        listener.close()


async def test_client_cancelled_while_connecting() -> None:
    async with no_leaks():
        with unanswered_port() as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/")
            events = recorded(ws)
            with anyio.fail_after(TIMEOUT):
                await cancel_entering(ws)
            assert ws.ready_state is ReadyState.CLOSED
            assert kinds(events) == [("close", 1006)]  # documented: no ``error``
            await ws.wait_closed()
            with pytest.raises(ConnectionClosedError):
                await ws.send("never")


async def test_client_open_timeout_while_connecting() -> None:
    async with no_leaks():
        with unanswered_port() as port:
            ws = WebSocket.Client(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
            events = recorded(ws)
            with anyio.fail_after(TIMEOUT), pytest.raises(TimeoutError):
                async with ws:
                    pytest.fail("connected")
            assert kinds(events) == [("error", None), ("close", 1006)]


#: Where the caller is when it is cancelled; and the Close codes the peer
#: then sees (none after a send cut in the middle of a frame).
CANCEL_POINTS = {"send": [], "receive": [1001], "close": [1000], "exit": [1000]}


async def at_point(ws: WebSocket | WebSocket.Client, point: str, reached: anyio.Event,
                   stream: anyio.abc.AnyByteStream | None = None) -> None:
    """Block at ``point``: a send the peer does not read, a receive with
    nothing coming, a close the peer does not answer, or the implicit close
    when the block ends (the caller's ``async with`` runs that one)."""
    reached.set()
    if point == "send":
        while True:
            await ws.send(b"x" * CHUNK)
    elif point == "receive":
        await ws.receive()
    elif point == "close":
        await ws.close()


@pytest.mark.parametrize("point", list(CANCEL_POINTS))
async def test_client_cancelled_at(point: str) -> None:
    async with no_leaks(), ws_peer(read_nothing if point == "send" else just_read) as peer:
        ws = WebSocket.Client(f"ws://127.0.0.1:{peer.port}/")
        events = recorded(ws)
        scope = anyio.CancelScope()
        reached = anyio.Event()
        after: list[str] = []

        async def run() -> None:
            with scope:
                async with ws:
                    await at_point(ws, point, reached)
                after.append(point)  # must not run: the cancel reaches our scope

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await reached.wait()
                await anyio.wait_all_tasks_blocked()
                assert ws.close_code is None
                scope.cancel()
            assert scope.cancelled_caught and after == []
            assert ws.ready_state is ReadyState.CLOSED
            assert kinds(events) == [("open", None), ("close", 1006)]
            with pytest.raises(ConnectionClosedError):
                await ws.send("after")
            peer.release.set()
            await peer.hung_up.wait()  # the client's socket is closed
        assert peer.closes() == CANCEL_POINTS[point]


@pytest.mark.parametrize("point", list(CANCEL_POINTS))
async def test_server_cancelled_at(point: str) -> None:
    async def handler(conn: Conn) -> None:
        if point == "send":
            small_send_buffer(conn.stream)
        await at_point(conn.ws, point, conn.at_point)
        if point != "exit":
            conn.after_point = True

    async with no_leaks(), ws_server(handler) as (port, server):
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                c = await raw_connect(stream)
                assert c.accepted is not None
                conn = await server.conn(0)
                await conn.at_point.wait()
                await anyio.wait_all_tasks_blocked()
                assert conn.ws.close_code is None
                conn.scope.cancel()
                await conn.done.wait()
                if point == "send":
                    await read_to_eof(stream)  # frames cut short, then the end
                else:
                    event = await c.next_event()
                    assert isinstance(event, CloseConnection)
                    assert event.code == CANCEL_POINTS[point][0]
                    assert await read_to_eof(stream) == b""  # then the server hangs up
            assert conn.scope.cancelled_caught and not conn.after_point
            assert conn.error is None  # nothing but the cancellation, caught by its scope
            assert conn.closes() == [1006]
            assert conn.ws.ready_state is ReadyState.CLOSED
            await assert_echo(port)


async def test_client_cancelled_receive_loses_nothing() -> None:
    async def late_message(peer: Peer, stream: anyio.abc.SocketStream,
                           ws: WSConnection) -> None:
        await peer.release.wait()
        await stream.send(ws.send(TextMessage("late")))
        while not peer.closes():  # answer the client's Close
            ws.receive_data(await stream.receive())
            peer.received.extend(ws.events())
        await stream.send(ws.send(CloseConnection(1000)))
        await stream.aclose()  # the server closes TCP first (RFC 6455 section 7.1.1)

    async with no_leaks(), ws_peer(late_message) as peer:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{peer.port}/") as ws:
                events = recorded(ws)
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(ws.receive)
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()
                assert scope.cancelled_caught
                assert ws.ready_state is ReadyState.OPEN  # only the receive was cancelled
                peer.release.set()
                assert await ws.receive() == "late"
            assert kinds(events) == [("close", 1000)]
            await peer.hung_up.wait()


async def test_server_cancelled_receive_loses_nothing() -> None:
    receive_scope = anyio.CancelScope()

    async def handler(conn: Conn) -> None:
        with receive_scope:
            conn.at_point.set()
            await conn.ws.receive()
        conn.after_point = True
        await echo(conn)

    async with no_leaks(), ws_server(handler) as (port, server):
        with anyio.fail_after(TIMEOUT):
            async with await tcp(port) as stream:
                c = await raw_connect(stream)
                conn = await server.conn(0)
                await conn.at_point.wait()
                await anyio.wait_all_tasks_blocked()
                receive_scope.cancel()
                await c.send("after the cancel")
                assert await c.receive() == "after the cancel"
                assert conn.ws.ready_state is ReadyState.OPEN
                closed = await c.close()
                assert closed is not None and closed.code == 1000
            await conn.done.wait()
        assert receive_scope.cancelled_caught and conn.after_point
        assert conn.closes() == [1000]


def sse_events(raw: bytes) -> tuple[list[str], bool]:
    """The complete blocks (events, the retry field) of a raw chunked
    event-stream response, and whether the body ended properly."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "localhost")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    body = bytearray()
    ended = False
    try:
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                ended = True
                break
    except h11.RemoteProtocolError:
        pass  # the body was cut short
    blocks = bytes(body).split(b"\r\n\r\n")[:-1]  # complete events only
    return [b.decode() for b in blocks], ended


@pytest.mark.parametrize("reader_then", ["stalls", "reads"])
async def test_eventsource_cancelled_while_send_is_blocked(reader_then: str) -> None:
    sender = Sender()
    closes: list[str] = []
    scope = anyio.CancelScope()
    data = "x" * CHUNK

    async def on_request(request: Request, response: Response) -> None:
        small_send_buffer(response.stream)
        with scope:
            async with EventSource(request, response, ping=None, retry=1) as es:
                es.on("close", lambda event: closes.append("close"))
                while True:
                    sender.in_send = True
                    await es.send(data)
                    sender.in_send = False
                    sender.sent += 1
        sender.done.set()

    async with no_leaks(), serving(Server(on_request=on_request)) as port:
        with anyio.fail_after(TIMEOUT):
            reader, head = await slow_reader(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                             b"Accept: text/event-stream\r\n\r\n")
            async with reader:
                await sender.stalled()
                fds = open_fds()
                scope.cancel()
                if reader_then == "reads":
                    raw = head + await read_to_eof(reader)
                await sender.done.wait()
                assert scope.cancelled_caught and sender.in_send
                assert closes == ["close"]
                # The server's socket is closed, even while this reader
                # still reads nothing.
                while open_fds() >= fds:  # noqa: ASYNC110 (no event for fds)
                    await anyio.sleep(0.01)
                if reader_then == "stalls":
                    raw = head + await read_to_eof(reader)
    # What arrived is whole events: the event cut by the cancellation is
    # not completed by the end of the body.
    events, _ = sse_events(raw)
    assert events[0] == "retry: 1000"
    assert events[1:] == [f"data: {data}"] * len(events[1:])


async def test_eventsource_cancelled_while_the_head_is_blocked() -> None:
    # A raw stream without a buffer: the head waits for a reader that never comes.
    async with no_leaks():
        client_end, server_end = memory_stream_pair(max_buffer_size=0)
        request = Request.build("GET", "/", {"Host": "test", "Accept": "text/event-stream"})
        es = EventSource(request, server_end, ping=None)
        events: list[str] = []
        es.on("open", lambda event: events.append("open"))
        es.on("close", lambda event: events.append("close"))
        async with client_end:
            with anyio.fail_after(TIMEOUT):
                entered = False
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:

                        async def enter() -> None:
                            nonlocal entered
                            async with es:
                                entered = True

                        tg.start_soon(enter)
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()
                assert scope.cancelled_caught and not entered
                assert es.ready_state is EventSource.CLOSED
                assert events == ["close"]
                await es.wait_closed()
                assert not await es.send("never")
                with pytest.raises(anyio.EndOfStream):  # the stream was closed
                    await client_end.receive()


async def test_client_connect_form_cancelled_while_waiting_for_the_101() -> None:
    # (``async with`` while waiting for the 101 is in test_client.py.)
    hung_up = anyio.Event()
    requested = anyio.Event()

    async def never_answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # the request
            requested.set()
            await read_to_eof(stream)
            hung_up.set()

    async with no_leaks(), raw_server(never_answer) as port:
        after: list[str] = []
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:

                    async def cancel_when_waiting() -> None:
                        await requested.wait()
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()

                    tg.start_soon(cancel_when_waiting)
                    await WebSocket.Client.connect(tg, f"ws://127.0.0.1:{port}/")
                    after.append("connected")
            assert scope.cancelled_caught and after == []
            await hung_up.wait()  # the client closed its socket
