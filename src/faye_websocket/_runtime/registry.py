"""Which WebSockets and EventSource streams are open under which server.

The HTTP helper sets the context variable for the handlers it runs; a
WebSocket or EventSource opened there registers itself with :func:`track`,
so the server's ``shutdown()`` can close it (WebSockets with 1001). The
objects import this module, not the server's, which imports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["Closable", "Registry", "current", "track"]


class Closable(Protocol):
    def _shutdown_nowait(self, code: int, reason: str) -> None:
        """Start closing because the server shuts down (never waits)."""


class Registry:
    """WebSockets and EventSource streams opened under one server, so
    shutdown can close them (WebSockets with 1001)."""

    def __init__(self) -> None:
        self.sockets: set[Closable] = set()
        self.shutdown_code: tuple[int, str] | None = None


#: The registry of the server whose handler runs in this context.
current: ContextVar[Registry | None] = ContextVar("faye_websocket_server", default=None)


@contextmanager
def track(connection: Closable) -> Iterator[None]:
    """Register an open WebSocket or EventSource with the server whose
    handler runs it."""
    registry = current.get()
    if registry is None:
        yield
        return
    registry.sockets.add(connection)
    try:
        if registry.shutdown_code is not None:
            connection._shutdown_nowait(*registry.shutdown_code)
        yield
    finally:
        registry.sockets.discard(connection)
