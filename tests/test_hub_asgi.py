"""Hub subscribers that are ASGI adapters (``WebSocket.from_asgi``,
``EventSource.from_asgi``) in a Starlette app, served in-process by our
ASGI host on real loopback sockets, on both anyio backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from faye_websocket import EventSource, Hub, WebSocket
from faye_websocket.http import Server

from .helpers import running
from .hub_helpers import wait_for

pytestmark = pytest.mark.anyio

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def hub_app(hub: Hub) -> Starlette:
    """``/ws``: a WebSocket subscribed to ``room``, whose text messages are
    published there; ``/es/``: an EventSource subscribed to it (resuming
    after its Last-Event-ID)."""

    async def ws_endpoint(websocket: StarletteWebSocket) -> None:
        async with WebSocket.from_asgi(websocket.scope, websocket.receive,
                                       websocket.send) as ws, hub.subscribe(ws, "room"):
            async for message in ws:
                await hub.publish("room", message)

    async def es_app(scope: Scope, receive: Receive, send: Send) -> None:
        async with EventSource.from_asgi(scope, receive, send, ping=None, retry=0.1) as es, \
                hub.subscribe(es, "room"):
            await es.wait_closed()

    return Starlette(routes=[WebSocketRoute("/ws", ws_endpoint), Mount("/es", app=es_app)])


async def test_asgi_subscribers_get_every_message_and_resume() -> None:
    hub = Hub()
    texts = [f"message {i}" for i in range(20)]
    async with hub, running(Server(app=hub_app(hub))) as port, \
            anyio.create_task_group() as tg:
        ws_got: dict[int, list[str]] = {}
        es_got: dict[int, list[tuple[str, str]]] = {}

        async def ws_reader(index: int) -> None:
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws") as ws:
                ws_got[index] = []
                for _ in texts:
                    ws_got[index].append(str(await ws.receive()))

        async def es_reader(index: int) -> None:
            async with EventSource.Client(f"http://127.0.0.1:{port}/es/") as es:
                es_got[index] = []
                for _ in texts:
                    event = await es.receive()
                    es_got[index].append((event.id, event.data))

        with anyio.fail_after(20):
            for index in range(3):
                tg.start_soon(ws_reader, index)
                tg.start_soon(es_reader, index)
            # One more WebSocket that leaves before anything is published.
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws"):
                await wait_for(lambda: hub.subscriber_count("room") == 7)
            await wait_for(lambda: hub.subscriber_count("room") == 6)
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws") as publisher:
                await wait_for(lambda: hub.subscriber_count("room") == 7)
                for text in texts:
                    await publisher.send(text)
                for _ in texts:  # the publisher is a subscriber too
                    await publisher.receive()
        assert ws_got == dict.fromkeys(range(3), texts)
        assert [[data for _, data in got] for got in es_got.values()] == [texts] * 3
        ids = [event_id for event_id, _ in es_got[0]]
        assert es_got[1] == es_got[2] == es_got[0] and len(set(ids)) == len(texts)

        # An ASGI EventSource that comes back after the 10th gets the rest.
        with anyio.fail_after(10):
            async with EventSource.Client(f"http://127.0.0.1:{port}/es/",
                                          last_event_id=ids[9]) as es:
                resumed = [(event.id, event.data) for event in
                           [await es.receive() for _ in texts[10:]]]
        assert resumed == es_got[0][10:]
    assert hub.subscriber_count("room") == 0
