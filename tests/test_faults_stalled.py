"""Peers that stop reading, over real loopback sockets, on both anyio
backends: the sender's memory stays bounded, and the connection ends
cleanly when the stall does (or when the sender gives up).
"""

from __future__ import annotations

import socket
import tracemalloc

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from wsproto import WSConnection

from faye_websocket import ConnectionClosedError, EventSource, ReadyState, WebSocket
from faye_websocket.http import Request, Response, Server

from .fault_helpers import (
    CHUNK,
    TIMEOUT,
    Conn,
    Peer,
    Sender,
    assert_echo,
    no_leaks,
    reset,
    serving,
    slow_reader,
    small_send_buffer,
    upgrade_request,
    ws_peer,
    ws_server,
)
from .helpers import kinds, open_fds, read_to_eof, recorded

pytestmark = pytest.mark.anyio


# -- readers that stop reading --------------------------------------------------------------

#: What a stalled sender may have pushed into the kernel: the server's send
#: buffer (set to 64 KiB, which Linux doubles) plus the reader's receive
#: buffer (at most 256 KiB here) plus the one message being written, with room.
STALL_BOUND = 1 << 20


@pytest.mark.parametrize("leave", ["close", "half-close"])
async def test_eventsource_reader_that_stops_reading(leave: str) -> None:
    sender = Sender()
    sources: list[EventSource] = []
    closes: list[str] = []
    data = "x" * CHUNK

    async def on_request(request: Request, response: Response) -> None:
        small_send_buffer(response.stream)
        async with EventSource(request, response, ping=None) as es:
            sources.append(es)
            es.on("close", lambda event: closes.append("close"))
            while True:
                sender.in_send = True
                ok = await es.send(data)
                sender.in_send = False
                if not ok:
                    sender.result = ok
                    break
                sender.sent += 1
        sender.done.set()

    async with no_leaks(), serving(Server(on_request=on_request)) as port:
        with anyio.fail_after(TIMEOUT):
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                reader, head = await slow_reader(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                                 b"Accept: text/event-stream\r\n\r\n")
                await sender.stalled()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            # ``await es.send`` blocks: the server pushed what the socket
            # buffers hold and no more, and kept nothing of it in memory.
            assert sender.sent * CHUNK <= STALL_BOUND
            assert peak < 32 * CHUNK
            assert closes == []
            if leave == "close":
                await reader.aclose()  # unread data: the kernel sends a reset
            else:
                fds = open_fds()
                await reader.send_eof()  # gone, as far as it cares, but never reads
            await sender.done.wait()
            assert sender.result is False  # the documented result once closed
            assert closes == ["close"]
            assert sources[0].ready_state is EventSource.CLOSED
            assert sender.sent * CHUNK <= STALL_BOUND  # over the whole stall
            if leave == "half-close":
                # The server closed its socket, although this reader still
                # reads nothing (a blocked final chunk would hold it).
                while open_fds() >= fds:  # noqa: ASYNC110 (no event for fds)
                    await anyio.sleep(0.01)
                await reader.aclose()


def autotuned_send_bound() -> int:
    """What a stalled sender whose send buffer autotunes may have pushed: the
    kernel's largest send buffer, the reader's receive buffer, one message."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2])
    return wmem_max + STALL_BOUND


@pytest.mark.parametrize("leave", ["reset", "half-close"])
async def test_server_websocket_reader_that_stops_reading(leave: str) -> None:
    sender = Sender()

    async def handler(conn: Conn) -> None:
        small_send_buffer(conn.stream)
        while True:
            sender.in_send = True
            await conn.ws.send(b"x" * CHUNK)
            sender.in_send = False
            sender.sent += 1

    async with no_leaks(), ws_server(handler) as (port, server):
        with anyio.fail_after(TIMEOUT):
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                reader, head = await slow_reader(port, upgrade_request())
                await sender.stalled()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            conn = await server.conn(0)
            ws = conn.ws
            assert sender.sent * CHUNK <= STALL_BOUND
            assert peak < 32 * CHUNK
            # The blocked message counts as buffered: past write_limit
            # (64 KiB), send_nowait refuses rather than queueing.
            assert ws.buffered_amount > CHUNK
            with pytest.raises(anyio.WouldBlock):
                ws.send_nowait(b"one more")
            assert ws.close_code is None  # a stalled peer is not a lost one
            if leave == "reset":
                await reset(reader)
            else:
                await reader.send_eof()
            await conn.done.wait()
            # The waiting send ended with the connection.
            assert isinstance(conn.error, ConnectionClosedError) and conn.error.code == 1006
            assert sender.in_send
            assert conn.closes() == [1006]
            assert ws.ready_state is ReadyState.CLOSED
            if leave == "half-close":
                await read_to_eof(reader)  # the server closed its end
                await reader.aclose()
            await assert_echo(port)


@pytest.mark.parametrize("leave", ["reset", "half-close"])
async def test_client_websocket_peer_that_stops_reading(leave: str) -> None:
    sender = Sender()

    async def stall(peer: Peer, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
        await peer.release.wait()
        if leave == "reset":
            await reset(stream)
        else:
            await stream.send_eof()

    async with no_leaks(), ws_peer(stall) as peer:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{peer.port}/") as ws:
                events = recorded(ws)

                async def send_forever() -> None:
                    try:
                        while True:
                            sender.in_send = True
                            await ws.send(b"x" * CHUNK)
                            sender.in_send = False
                            sender.sent += 1
                    except ConnectionClosedError as exc:
                        sender.result = exc
                    sender.done.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(send_forever)
                    await sender.stalled()
                    assert sender.sent * CHUNK <= autotuned_send_bound()
                    assert ws.buffered_amount > CHUNK
                    with pytest.raises(anyio.WouldBlock):
                        ws.send_nowait("one more")
                    peer.release.set()
                await sender.done.wait()
                # The waiting send ended with the connection.
                assert isinstance(sender.result, ConnectionClosedError)
                assert sender.result.code == 1006 and sender.in_send
                await ws.wait_closed()
                assert kinds(events) == [("close", 1006)]
                assert ws.ready_state is ReadyState.CLOSED
            await peer.hung_up.wait()
