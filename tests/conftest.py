from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trustme

from faye_websocket.http import Server


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    # Own the backend matrix: the plugin's default would silently drop trio.
    return str(request.param)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@asynccontextmanager
async def running(server: Server, *, ssl_context: ssl.SSLContext | None = None,
                  ) -> AsyncIterator[int]:
    """Run ``server`` on a free loopback port for the block; yields the port."""
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(_serve, server, ssl_context)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


async def _serve(server: Server, ssl_context: ssl.SSLContext | None,
                 *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    await server.serve("127.0.0.1", 0, ssl_context=ssl_context, task_status=task_status)


def open_fds() -> int:
    """File descriptors this process holds (Linux): the leak checks compare
    it before and after."""
    return len(os.listdir("/proc/self/fd"))
