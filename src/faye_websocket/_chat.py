"""The chat server behind ``python -m faye_websocket chat`` (DESIGN.md,
"Fan-out"): a page at ``/``, a WebSocket at ``/chat`` and an EventSource at
``/chat/events``, all on one hub channel (shared through Redis with
``--redis``)."""

from __future__ import annotations

import socket
import ssl
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

from ._core.http import Request
from ._eventsource import EventSource
from ._hub import Hub
from ._runtime.server import Response, Server
from ._websocket import WebSocket

__all__ = ["CHANNEL", "ChatServer", "redis_problem"]

CHANNEL = "chat"
#: Text messages over this are refused (Close 1009): it is a chat.
MAX_MESSAGE = 64 * 1024


class ChatServer(Server):
    """The HTTP helper serving the chat, with its hub running while it serves."""

    def __init__(self, *, redis: str | None = None, history: int = 1000,
                 drafts: bool = True) -> None:
        super().__init__(on_request=self._on_request, on_upgrade=self._on_upgrade)
        self.hub = Hub(redis=redis, history=history)
        self._drafts = drafts

    async def serve(self, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None, *, reuse_port: bool = False,
                    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self.hub:
            await super().serve(host, port, ssl_context, reuse_port=reuse_port,
                                task_status=task_status)

    async def serve_listener(self, listener: anyio.abc.Listener[anyio.abc.ByteStream], *,
                             task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
                             port: int = 0) -> None:
        async with self.hub:
            await super().serve_listener(listener, task_status=task_status, port=port)

    async def _on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                          body: bytes) -> None:
        ws = WebSocket(request, stream, body, max_length=MAX_MESSAGE, ping=30,
                       drafts=self._drafts)
        if request.path != "/chat":
            await ws.reject(404, body=b"Not found\n")
            return
        async with ws, self.hub.subscribe(ws, CHANNEL):
            async for message in ws:
                if isinstance(message, str):  # text goes out verbatim; binary is ignored
                    await self.hub.publish(CHANNEL, message)

    async def _on_request(self, request: Request, response: Response) -> None:
        if request.path == "/chat/events" and EventSource.is_eventsource(request):
            async with EventSource(request, response, ping=15, retry=1) as es, \
                    self.hub.subscribe(es, CHANNEL):  # resumes after its Last-Event-ID
                await es.wait_closed()
            return
        if request.method in ("GET", "HEAD") and request.path == "/":
            page = resources.files("faye_websocket").joinpath("chat.html").read_bytes()
            response.write_head(200, {"Content-Type": "text/html; charset=utf-8"})
            await response.end(page)
            return
        response.write_head(404, {"Content-Type": "text/plain; charset=utf-8"})
        await response.end("Not found\n")


def redis_problem(url: str) -> str | None:
    """Why ``url`` is not a Redis we can reach (one line), or None.

    A check before listening, so a typo is an error at once; once running,
    the hub rides out Redis going away and coming back.
    """
    try:
        import coredis  # noqa: F401
    except ImportError:
        return "--redis needs coredis: pip install 'faye-websocket[redis]'"
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"--redis {url!r}: not a redis://, rediss:// or unix:// URL"
    if parts.scheme == "unix":
        return None
    host, port = parts.hostname or "localhost", _port(parts) or 6379
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as exc:
        return f"can't reach Redis at {host}:{port}: {exc.strerror or exc}"


def _port(parts: Any) -> int | None:
    try:
        return int(parts.port) if parts.port else None
    except ValueError:
        return None
