"""A bounded message queue between the reader task and ``receive()``."""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any, Generic, TypeVar

import anyio

__all__ = ["MessageQueue"]

T = TypeVar("T", bound="str | bytes")


class MessageQueue(Generic[T]):
    """A bounded FIFO: :meth:`put` waits while it is full, which is how the
    reader stops reading the socket (backpressure).

    It is full at ``maxsize`` items, or once the items take ``max_bytes`` of
    memory: the length of ``bytes`` and ASCII text, what :func:`sys.getsizeof`
    says for other text (CPython stores a ``str`` at 1, 2 or 4 bytes per
    character, so one character outside the BMP makes a text message take
    four times its length). An item is always taken when the queue is
    empty, however large.

    Unlike a memory object stream it needs no closing by its consumer: the
    producer :meth:`close`\\ s it (consumers then drain it and get
    ``EndOfStream``) and the consumer side may :meth:`discard` it (producers
    then drop what they put).
    """

    __slots__ = ("_bytes", "_closed", "_discarding", "_items", "_max_bytes", "_maxsize",
                 "_ready", "_space")

    def __init__(self, maxsize: int, max_bytes: float = math.inf) -> None:
        if maxsize < 1:
            raise ValueError("max_queue must be at least 1")
        # A list, not a deque: an empty deque takes 600 bytes, and most
        # connections sit idle with nothing queued (take() from the front
        # moves at most max_queue pointers).
        self._items: list[T] = []
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._bytes = 0
        self._closed = False
        self._discarding = False
        # Consumers parked in get(), see _Parked. Producers wait on an event
        # created only while the queue is full (an event costs about a
        # kilobyte; most connections never need one).
        self._ready: _Parked | None = None
        self._space: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def consumer_waiting(self) -> bool:
        """The queue is empty and a consumer waits in :meth:`get`."""
        return self._ready is not None

    async def put(self, item: T) -> None:
        while not self.put_nowait(item):
            await self._wait_for_space()

    def put_nowait(self, item: T) -> bool:
        """Add ``item`` if there is room (or drop it while discarding);
        False if the queue is full."""
        if self._discarding:
            return True
        items = self._items
        if len(items) >= self._maxsize:
            return False
        # (Inlined _size: this runs for every message.)
        size = len(item) if type(item) is bytes or item.isascii() else sys.getsizeof(item)
        if items and self._bytes + size > self._max_bytes:
            return False
        self._bytes += size
        items.append(item)
        if self._ready is not None:
            self._ready.set()
            self._ready = None
        return True

    async def get(self) -> T:
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            if self._ready is None:
                self._ready = _Parked()
            await self._ready.wait()
        return self._take()

    def get_nowait(self) -> T:
        if self._items:
            return self._take()
        if self._closed:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def drained(self) -> None:
        """Wait until consumers have taken every queued item."""
        while self._items:
            await self._wait_for_space()

    async def _wait_for_space(self) -> None:
        if self._space is None:
            self._space = anyio.Event()
        await self._space.wait()

    def _wake_producers(self) -> None:
        if self._space is not None:
            self._space.set()
            self._space = None

    def _take(self) -> T:
        item = self._items.pop(0)
        self._bytes -= len(item) if type(item) is bytes or item.isascii() \
            else sys.getsizeof(item)
        self._wake_producers()
        return item

    def close(self) -> None:
        """No more items will come; consumers drain, then get ``EndOfStream``."""
        self._closed = True
        if self._ready is not None:
            self._ready.set()
            self._ready = None

    def discard(self) -> None:
        """Nobody will consume any more: drop queued items and future puts."""
        self._discarding = True
        self._items.clear()
        self._bytes = 0
        self._wake_producers()


class _Parked:
    """Tasks waiting in :meth:`MessageQueue.get` until :meth:`set`: an
    ``anyio.Event`` that costs a list and, on asyncio, a future per waiter,
    where an event holds a deque (asyncio) or a parking lot (trio), about a
    kilobyte, on every idle connection whose application waits for a
    message."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Any] = []

    async def wait(self) -> None:
        trio = sys.modules.get("trio")
        if trio is not None and trio.lowlevel.in_trio_task():
            await self._wait_trio(trio)
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:  # cancelled (set() empties the list)
                self._waiters.remove(future)

    async def _wait_trio(self, trio: Any) -> None:
        task = trio.lowlevel.current_task()
        self._waiters.append(task)

        def abort(_raise_cancel: object) -> object:
            self._waiters.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def set(self) -> None:
        """Wake every waiter (the queue then forgets this object)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result(None)
            else:
                sys.modules["trio"].lowlevel.reschedule(waiter)
