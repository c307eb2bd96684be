"""What a user sees of a connection's life: repr() and the DEBUG/INFO log lines."""

from __future__ import annotations

import logging
import re

import anyio
import anyio.abc
import pytest

from faye_websocket import EventSource, WebSocket
from faye_websocket._demo import echo_server
from faye_websocket.http import Request, Response, Server

from .helpers import SECOND, running

pytestmark = pytest.mark.anyio

TIMEOUT = 10 * SECOND


async def test_websocket_reprs_and_lifecycle_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="faye_websocket")
    server_sides: list[str] = []
    server_done = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        ws = WebSocket(request, stream, body, ["chat"])
        server_sides.append(repr(ws))  # before the handshake
        try:
            async with ws:
                server_sides.append(repr(ws))
                async for message in ws:
                    await ws.send(message)
        finally:
            server_done.set()

    server = Server(on_upgrade=on_upgrade)
    assert repr(server) == "<Server not serving, 0 connections>"
    async with running(server) as port:
        assert re.fullmatch(rf"<Server listening on http://127\.0\.0\.1:{port}, \d+ connections>",
                            repr(server))
        with anyio.fail_after(TIMEOUT):
            client = WebSocket.Client(f"ws://user:secret@127.0.0.1:{port}/room?x=1", ["chat"])
            assert repr(client) == \
                f"<WebSocket.Client CONNECTING ws://127.0.0.1:{port}/room?x=1>"  # no userinfo
            async with client:
                await client.send("hi")
                assert await client.receive() == "hi"
                assert re.fullmatch(rf"<WebSocket.Client OPEN ws://127\.0\.0\.1:"
                                    rf"{port}/room\?x=1 peer=127\.0\.0\.1:{port}>", repr(client))
            assert repr(client).startswith("<WebSocket.Client CLOSED ")
            await server_done.wait()

    assert server_sides[0] == f"<WebSocket CONNECTING ws://127.0.0.1:{port}/room?x=1>" or \
        re.fullmatch(rf"<WebSocket CONNECTING ws://127\.0\.0\.1:{port}/room\?x=1 "
                     r"peer=127\.0\.0\.1:\d+>", server_sides[0])
    assert re.fullmatch(rf"<WebSocket OPEN ws://127\.0\.0\.1:{port}/room\?x=1 "
                        r"peer=127\.0\.0\.1:\d+>", server_sides[1])
    lines = [r.getMessage() for r in caplog.records
             if r.name == "faye_websocket" and r.levelno == logging.DEBUG]
    opens = [line for line in lines if line.startswith("open ")]
    closes = [line for line in lines if line.startswith("close ")]
    assert any(re.fullmatch(rf"open ws://127\.0\.0\.1:{port}/room\?x=1 peer=127\.0\.0\.1:\d+ "
                            r"version=hybi-13 protocol='chat' extensions=''", line)
               for line in opens), opens
    assert any(re.fullmatch(rf"close ws://127\.0\.0\.1:{port}/room\?x=1 peer=127\.0\.0\.1:{port} "
                            r"code=1000 reason='' closed by us "
                            r"after \d+\.\d{3} s", line) for line in closes), closes
    assert any(re.fullmatch(rf"close ws://127\.0\.0\.1:{port}/room\?x=1 peer=127\.0\.0\.1:\d+ "
                            r"code=1000 reason='' closed by the peer "
                            r"after \d+\.\d{3} s", line) for line in closes), closes
    assert "secret" not in caplog.text


async def test_server_logs_its_address_and_shutdown_at_info(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faye_websocket")
    server = echo_server()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        with anyio.fail_after(TIMEOUT):
            await server.shutdown()
        assert repr(server) == "<Server shutting down, 0 connections>"
    messages = [(r.levelno, r.getMessage()) for r in caplog.records
                if r.name == "faye_websocket.http"]
    assert (logging.INFO, f"listening on http://127.0.0.1:{port}") in messages
    assert (logging.INFO, f"shutting down http://127.0.0.1:{port}: 0 connections open") \
        in messages


async def test_nothing_is_logged_above_debug_for_a_normal_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(echo_server()) as port:
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("x")
                await ws.receive()
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("faye_websocket") and r.levelno > logging.INFO] == []


async def test_eventsource_reprs() -> None:
    opened = anyio.Event()
    finish = anyio.Event()
    seen: list[str] = []

    async def on_request(request: Request, response: Response) -> None:
        es = EventSource(request, response)
        seen.append(repr(es))
        async with es:
            seen.append(repr(es))
            await es.send("hello")
            opened.set()
            await finish.wait()

    async with running(Server(on_request=on_request)) as port:
        with anyio.fail_after(TIMEOUT):
            client = EventSource.Client(f"http://127.0.0.1:{port}/feed")
            assert repr(client) == f"<EventSource.Client CONNECTING http://127.0.0.1:{port}/feed>"
            async with client:
                await client.receive()
                await opened.wait()
                assert repr(client) == f"<EventSource.Client OPEN http://127.0.0.1:{port}/feed>"
                finish.set()
    assert re.fullmatch(rf"<EventSource CONNECTING http://127\.0\.0\.1:{port}/feed "
                        r"peer=127\.0\.0\.1:\d+>", seen[0])
    assert seen[1].startswith("<EventSource OPEN ")
