"""A task outside the caller's cancel scopes, for a connection that must
outlive the call that opened it.

anyio has no such task: every task it starts belongs to a task group, whose
cancel scope sits in the task that entered it. An async iterator that hands
out open connections (``WebSocket.Client.reconnecting``) cannot leave a task
group entered in its caller's task between two steps, since the caller may
leave the loop (``break``, an exception, a cancellation) without telling it.
So the connection's task group lives in a task of its own: a trio system task,
or an asyncio task the module keeps a strong reference to. The task is tiny
and never raises; everything under it is an ordinary anyio task group.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable

__all__ = ["spawn_host"]

#: asyncio keeps only weak references to tasks: these stay alive until done.
_tasks: set[asyncio.Task[None]] = set()


def spawn_host(fn: Callable[[], Awaitable[None]], *, name: str,
               ) -> Callable[[Callable[[], object]], None]:
    """Start ``fn()`` in a task of its own, in the caller's event loop and
    with a copy of its context variables, but in none of its cancel scopes.

    ``fn`` must not raise (a trio system task that raises crashes the run);
    it is cancelled only when the event loop shuts down.

    Returns:
        ``call_soon(callback)``: runs ``callback()`` in that event loop, soon;
        it may be called from any thread, or from ``__del__``, and raises
        :class:`RuntimeError` once the loop has ended.
    """
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_task():
        context = contextvars.copy_context()
        trio.lowlevel.spawn_system_task(fn, name=name, context=context)
        token = trio.lowlevel.current_trio_token()

        def trio_call_soon(callback: Callable[[], object]) -> None:
            token.run_sync_soon(callback)  # RunFinishedError is a RuntimeError

        return trio_call_soon
    loop = asyncio.get_running_loop()
    task = loop.create_task(_run(fn), name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)

    def asyncio_call_soon(callback: Callable[[], object]) -> None:
        loop.call_soon_threadsafe(callback)  # RuntimeError once the loop is closed

    return asyncio_call_soon


async def _run(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()
