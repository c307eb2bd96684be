"""The Redis hub when Redis restarts under it: a real redis-server of the
test's own, stopped and started again (without persistence, so it comes back
empty), on both anyio backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
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
