"""The fixed echo server for the client scenarios: ``python -m bench.servers.bare_echo``.

A bare asyncio Protocol that does only what an echo needs: the opening
handshake, then every complete frame in the buffer is unmasked (with
websockets' C ``apply_mask`` when available) and echoed, all replies of one
``data_received`` in one write. It is not a library under test; it is
there to be faster than any client measured against it.
"""

from __future__ import annotations

import asyncio
import struct

from .._wire import OP_CLOSE, accept_for, server_frame, xor_mask
from ._common import HOST, announce, prepare

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets is installed with the bench
    apply_mask = xor_mask

OP_PING = 0x9
OP_PONG = 0xA


class Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def _handshake(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        key = b""
        for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n"
        )
        del self.buf[: end + 4]
        self.open = True
        return True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open and not self._handshake():
            return
        transport = self.transport
        assert transport is not None
        out: list[bytes] = []
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, pos + 2)
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            end = pos + head + 4 + length
            if end > size:
                break
            mask = bytes(buf[pos + head : pos + head + 4])
            payload = apply_mask(bytes(buf[pos + head + 4 : end]), mask)
            pos = end
            opcode = b0 & 0x0F
            if opcode == OP_CLOSE:
                out.append(server_frame(OP_CLOSE, payload[:2]))
                transport.write(b"".join(out))
                transport.close()
                return
            if opcode == OP_PING:
                out.append(server_frame(OP_PONG, payload))
            elif opcode != OP_PONG:
                # Same FIN bit and opcode: fragments are echoed as fragments.
                if length < 126:
                    out.append(struct.pack("!BB", b0, length) + payload)
                elif length < 1 << 16:
                    out.append(struct.pack("!BBH", b0, 126, length) + payload)
                else:
                    out.append(struct.pack("!BBQ", b0, 127, length) + payload)
        del buf[:pos]
        if out:
            transport.write(b"".join(out))


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, HOST, 0)
    announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


if __name__ == "__main__":
    prepare()
    asyncio.run(main())
