"""An independent WebSocket client for tests: wsproto's own state machine
over an anyio stream, so our server is checked against a third party."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate


@dataclass
class RawClient:
    stream: anyio.abc.AnyByteStream
    ws: WSConnection
    accepted: AcceptConnection | None = None
    rejected: RejectConnection | None = None
    reject_body: bytes = b""
    pending: list[Event] = field(default_factory=list)
    closed: CloseConnection | None = None

    async def send_event(self, event: Event) -> None:
        await self.stream.send(self.ws.send(event))

    async def send(self, data: str | bytes) -> None:
        event: Message[Any] = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        await self.send_event(event)

    async def next_event(self) -> Event | None:
        while not self.pending:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return None
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    async def receive(self) -> str | bytes:
        """The next whole message (ping events are answered)."""
        parts: list[str | bytes] = []
        while True:
            event = await self.next_event()
            if event is None:
                raise anyio.EndOfStream
            if isinstance(event, Ping):
                await self.send_event(event.response())
            elif isinstance(event, (TextMessage, BytesMessage)):
                parts.append(bytes(event.data) if isinstance(event, BytesMessage)
                             else event.data)
                if event.message_finished:
                    return "".join(parts) if isinstance(parts[0], str) else b"".join(parts)  # type: ignore[arg-type]
            elif isinstance(event, CloseConnection):
                self.closed = event
                raise anyio.EndOfStream
            elif isinstance(event, Pong):
                continue

    async def close(self, code: int = 1000, reason: str = "") -> CloseConnection | None:
        await self.send_event(CloseConnection(code=code, reason=reason))
        while True:
            event = await self.next_event()
            if event is None or isinstance(event, CloseConnection):
                if isinstance(event, CloseConnection):
                    self.closed = event
                return self.closed


async def raw_connect(stream: anyio.abc.AnyByteStream, path: str = "/", *,
                      subprotocols: list[str] | None = None, deflate: bool = False,
                      extra_headers: list[tuple[bytes, bytes]] | None = None,
                      host: str = "localhost") -> RawClient:
    ws = WSConnection(ConnectionType.CLIENT)
    client = RawClient(stream, ws)
    await stream.send(ws.send(Request(
        host=host, target=path, subprotocols=subprotocols or [],
        extensions=[PerMessageDeflate()] if deflate else [],
        extra_headers=extra_headers or [])))
    while True:
        event = await client.next_event()
        if isinstance(event, AcceptConnection):
            client.accepted = event
            return client
        if isinstance(event, RejectConnection):
            client.rejected = event
        elif isinstance(event, RejectData):
            client.reject_body += event.data
            if event.body_finished:
                return client
        elif event is None:
            return client


def client_frame(data: str | bytes) -> bytes:
    """A masked client data frame, whatever state a connection is in."""
    from wsproto.frame_protocol import FrameProtocol

    return bytes(FrameProtocol(client=True, extensions=[]).send_data(data))


def xor_mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 masking, written out independently of the library's."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
              mask: bytes | bool | None = True, wide: int = 0,
              length: int | None = None) -> bytes:
    """Any frame, valid or not, built by hand so tests can break the rules.

    ``mask``: a 4-byte key, True for a random one, False or None for none.
    ``wide`` forces a 16-bit (1) or 64-bit (2) length field even where it is
    not the minimal encoding; ``length`` puts another value in it.
    """
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if mask else 0
    if size < 126 and not wide:
        head += bytes([bit | size])
    elif size < 0x10000 and wide != 2:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4) if mask is True else mask
    return head + key + xor_mask(payload, key)
