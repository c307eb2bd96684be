"""``python -m faye_websocket chat`` as real subprocesses: alone (memory hub),
and two processes (one asyncio, one trio) sharing a redis-server of the
tests' own, which is also restarted under them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from faye_websocket import EventSource, WebSocket
from faye_websocket.exceptions import HandshakeError

from .hub_helpers import RedisServer, free_port, redis_server
from .test_cli import TIMEOUT, http_get, run_cli, run_to_exit

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def cli_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def _event(source: EventSource.Client) -> Any:
    """The next event that is not a ``lost`` report."""
    while (event := await source.receive()).type == "lost":
        pass
    return event


async def test_chat_serves_its_page_and_fans_out(cli_backend: str) -> None:
    port = free_port()
    async with run_cli("chat", cli_backend, port) as cli:
        with anyio.fail_after(TIMEOUT):
            response, page = await http_get(port, "/")
            assert response.status_code == 200 and b"/chat/events" in page
            assert (await http_get(port, "/nope"))[0].status_code == 404
            with pytest.raises(HandshakeError) as refused:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/elsewhere"):
                    pass
            assert refused.value.status_code == 404
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/chat") as a, \
                    WebSocket.Client(f"ws://127.0.0.1:{port}/chat") as b, \
                    EventSource.Client(f"http://127.0.0.1:{port}/chat/events") as es:
                await anyio.sleep(0.2)  # the server subscribes them once they are open
                await a.send("hello, chat")
                await a.send(b"binary is not chat")
                assert await a.receive() == "hello, chat"
                await b.send("second\nline")
                assert await a.receive() == "second\nline"
                assert [await b.receive(), await b.receive()] == ["hello, chat", "second\nline"]
                first, second = await es.receive(), await es.receive()
                assert (first.data, second.data) == ("hello, chat", "second\nline")
                assert first.id and second.id and first.id != second.id
            # Coming back after the first id: exactly the second message.
            async with EventSource.Client(f"http://127.0.0.1:{port}/chat/events",
                                          last_event_id=first.id) as es:
                event = await es.receive()
                assert (event.data, event.id) == ("second\nline", second.id)
    assert cli.process.returncode is not None


async def test_an_unreachable_redis_is_one_line_and_exit_1() -> None:
    port = free_port()
    status, _, err = await run_to_exit("chat", "--port", str(port), "--redis",
                                       f"redis://127.0.0.1:{port}/0")
    assert status == 1
    assert err == f"error: can't reach Redis at 127.0.0.1:{port}: Connection refused\n"


async def test_two_processes_share_the_chat_through_redis(redis: RedisServer) -> None:
    port_a, port_b = free_port(), free_port()
    async with run_cli("chat", "asyncio", port_a, "--redis", redis.url), \
            run_cli("chat", "trio", port_b, "--redis", redis.url):
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{port_a}/chat") as ws_a, \
                    WebSocket.Client(f"ws://127.0.0.1:{port_b}/chat") as ws_b, \
                    EventSource.Client(f"http://127.0.0.1:{port_a}/chat/events") as es_a, \
                    EventSource.Client(f"http://127.0.0.1:{port_b}/chat/events") as es_b:
                await anyio.sleep(0.3)
                await ws_a.send("from a")
                assert await ws_a.receive() == "from a"
                assert await ws_b.receive() == "from a"
                await ws_b.send("from b")
                assert await ws_a.receive() == "from b"
                assert await ws_b.receive() == "from b"
                events_a = [await es_a.receive() for _ in range(2)]
                events_b = [await es_b.receive() for _ in range(2)]
                assert [e.data for e in events_a] == ["from a", "from b"]
                assert [(e.data, e.id) for e in events_a] == [(e.data, e.id) for e in events_b]
            # Resume on the other process, after an id the first one handed out.
            async with EventSource.Client(f"http://127.0.0.1:{port_b}/chat/events",
                                          last_event_id=events_a[0].id) as es:
                event = await es.receive()
                assert (event.data, event.id) == ("from b", events_a[1].id)


async def test_the_chat_rides_out_a_redis_restart(redis: RedisServer) -> None:
    port_a, port_b = free_port(), free_port()
    async with run_cli("chat", "asyncio", port_a, "--redis", redis.url), \
            run_cli("chat", "trio", port_b, "--redis", redis.url):
        with anyio.fail_after(TIMEOUT):
            async with WebSocket.Client(f"ws://127.0.0.1:{port_a}/chat") as ws_a, \
                    EventSource.Client(f"http://127.0.0.1:{port_b}/chat/events") as es_b:
                await anyio.sleep(0.3)
                await ws_a.send("before")
                assert await ws_a.receive() == "before"
                assert (await es_b.receive()).data == "before"
                # Redis goes away (and comes back empty: no persistence).
                redis.stop()
                await anyio.sleep(0.5)
                await ws_a.send("during")  # published once Redis is back
                await anyio.sleep(0.5)
                await anyio.to_thread.run_sync(redis.start)
                assert await ws_a.receive() == "during"
                # The stream the process read from is gone: it cannot know
                # what was published in between, and says so before going on.
                lost = await es_b.receive()
                assert lost.type == "lost"
                assert json.loads(lost.data)["reason"] == "backend"
                assert (await _event(es_b)).data == "during"
                await ws_a.send("after")
                assert await ws_a.receive() == "after"
                assert (await _event(es_b)).data == "after"
