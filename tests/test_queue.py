"""The bounded message queue's waiting consumers (``MessageQueue.get``)."""

from __future__ import annotations

import anyio
import pytest

from faye_websocket._runtime.queue import MessageQueue

pytestmark = pytest.mark.anyio

TIMEOUT = 10


async def test_every_waiting_consumer_wakes_and_each_item_goes_to_one() -> None:
    queue: MessageQueue[str] = MessageQueue(4)
    got: list[str] = []

    async def consume() -> None:
        got.append(await queue.get())

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            assert queue.consumer_waiting
            for item in ("a", "b", "c"):
                assert queue.put_nowait(item)
                await anyio.wait_all_tasks_blocked()
    assert sorted(got) == ["a", "b", "c"]
    assert not queue.consumer_waiting


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    # A receive() under a timeout, again and again: each cancelled wait is
    # forgotten, and a later item still reaches a later consumer.
    queue: MessageQueue[str] = MessageQueue(4)
    with anyio.fail_after(TIMEOUT):
        for _ in range(50):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await queue.get()
            with anyio.move_on_after(0):
                await queue.get()
        assert queue._ready is None or not queue._ready._waiters
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.get)
            await anyio.wait_all_tasks_blocked()
            assert queue._ready is not None and len(queue._ready._waiters) == 1
            assert queue.put_nowait("x")
    assert len(queue) == 0


async def test_close_wakes_waiting_consumers_with_end_of_stream() -> None:
    queue: MessageQueue[bytes] = MessageQueue(2)
    ended = 0

    async def consume() -> None:
        nonlocal ended
        with pytest.raises(anyio.EndOfStream):
            await queue.get()
        ended += 1

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            queue.close()
    assert ended == 2


async def test_items_come_out_in_order_past_a_full_queue() -> None:
    queue: MessageQueue[bytes] = MessageQueue(3)
    items = [bytes([n]) for n in range(20)]
    got: list[bytes] = []

    async def produce() -> None:
        for item in items:
            await queue.put(item)
        queue.close()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            while True:
                try:
                    got.append(await queue.get())
                except anyio.EndOfStream:
                    break
    assert got == items
