"""The Redis hub when Redis restarts under it: a real redis-server of the
test's own, stopped and started again (without persistence, so it comes back
empty), on both anyio backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.abc
import coredis
import pytest

from faye_websocket import EventSource, Hub

from .helpers import running
from .hub_helpers import RedisServer, StalledClient, hub_server, redis_server, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:  # each test its own: they restart it
        yield server


async def test_a_restart_between_two_reads_is_reported_where_the_gap_is(
        redis: RedisServer) -> None:
    """The reader is not reading while Redis restarts (a ``wait`` subscriber
    holds it up), so it sees no broken connection: the message published
    just before the restart, which it never read, must still not vanish in
    silence."""
    hub = Hub(redis=redis.url, policy="wait", max_pending=1, wait_timeout=30)
    async with hub, running(hub_server(hub, write_limit=1024)) as port:
        with anyio.fail_after(30):
            async with EventSource.Client(f"http://127.0.0.1:{port}/es/r") as es:
                events: list[Any] = []

                async def read() -> None:
                    while True:  # (cancelled once "after" is in)
                        events.append(await es.receive())

                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    stalled = await StalledClient.connect(port, "/ws/r")
                    try:
                        await wait_for(lambda: hub.subscriber_count("r") == 2)
                        [held] = [s for s in hub._channels["r"].subscriptions
                                  if not isinstance(s.subscriber, EventSource)]
                        # Fill the stalled subscriber until the reader waits for it.
                        count = 0
                        while held._room is None:
                            await hub.publish("r", f"fill {count} " + "f" * 8192)
                            count += 1
                            assert count < 500, "the reader never waited"
                            await anyio.sleep(0.01)
                        await hub.publish("r", "gone with the restart")
                        await anyio.to_thread.run_sync(redis.stop)
                        await anyio.to_thread.run_sync(redis.start)
                        await hub.publish("r", "after")
                        held.cancel()  # the reader goes on
                        await wait_for(lambda: any(e.data == "after" for e in events))
                    finally:
                        stalled.close()
                    tg.cancel_scope.cancel()
    kinds = [e.type if e.type == "lost" else e.data.split(" ")[0] for e in events]
    assert "gone" not in kinds  # it was never read: the restart took it
    assert kinds[-2:] == ["lost", "after"], kinds
    assert kinds[:-2] == ["fill"] * (len(kinds) - 2)
    lost = json.loads(events[-2].data)
    assert lost["reason"] == "backend"
    assert lost["after"] == events[-3].id  # the last one it did get


class _CutAfterXadd:
    """A TCP proxy to Redis that, once, lets an XADD through and then cuts
    the connection before Redis's answer gets back: the entry is stored,
    and the publisher cannot know it."""

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis
        self.armed = True
        self.cut = 0

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._relay)

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.redis.port) as server, \
                anyio.create_task_group() as tg:

            cutting = False

            async def up() -> None:
                nonlocal cutting
                async for chunk in client:
                    if self.armed and b"XADD" in chunk.upper():
                        self.armed, cutting = False, True
                        await server.send(chunk)
                        await anyio.sleep(0.2)  # Redis stores it meanwhile
                        self.cut += 1
                        break  # both ends closed, and no answer
                    await server.send(chunk)
                tg.cancel_scope.cancel()

            async def down() -> None:
                async for chunk in server:
                    if not cutting:  # (the answer to that XADD is dropped)
                        await client.send(chunk)
                tg.cancel_scope.cancel()

            tg.start_soon(up)
            tg.start_soon(down)


async def test_a_publish_retried_after_a_lost_answer_is_stored_once(
        redis: RedisServer) -> None:
    proxy = _CutAfterXadd(redis)
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        url = f"redis://127.0.0.1:{port}/0"
        with anyio.fail_after(20):
            async with Hub(redis=url) as hub:
                first = await hub.publish("once", "exactly once")
                assert proxy.cut == 1  # the answer to the first XADD was lost
                second = await hub.publish("once", "and then")
            # What is in the stream: each message once, under the id publish returned.
            async with Hub(redis=redis.url) as reader:
                replay = await reader._backend.replay("once", "0-0")
        tg.cancel_scope.cancel()
    assert [(m.id, m.data) for m in replay.messages] == [
        (first, "exactly once"), (second, "and then")]


async def test_history_age_trims_the_stream_in_redis(redis: RedisServer) -> None:
    """Entries older than history_age leave the stream itself (not only the
    replay), so a quiet channel's history does not stay in Redis."""
    with anyio.fail_after(20):
        async with Hub(redis=redis.url, history_age=0.5) as hub:
            await hub.publish("aged", "old")
            await anyio.sleep(1.1)  # older than history_age, and a trim is due
            kept = await hub.publish("aged", "new")
        client: coredis.Redis[bytes] = coredis.Redis.from_url(redis.url)
        async with client:
            entries = await client.xrange("faye:hub:aged", "-", "+")
    assert [str(entry.identifier, "ascii") if isinstance(entry.identifier, bytes)
            else entry.identifier for entry in entries] == [kept]
