"""The fixed echo server for the client scenarios: ``python -m bench.servers.bare_echo``.

A bare asyncio BufferedProtocol that does only what an echo needs: the
opening handshake, then every complete frame in the buffer is unmasked
(with websockets' C ``apply_mask`` when available) and echoed, the replies
to one read in one write. Reads go straight into one growing buffer. It
is not a library under test; it is there to be faster than any client
measured against it. It also serves
``/broadcast``, so that ``python -m bench --only bare`` shows the ceiling of
the load generator in every WebSocket scenario.
"""

from __future__ import annotations

import asyncio
import struct

from .._wire import OP_CLOSE, accept_for, server_frame, xor_mask
from ._common import HOST, announce, prepare

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets is installed with the bench

    def apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
        return xor_mask(bytes(data), bytes(mask))

OP_PING = 0x9
OP_PONG = 0xA
READ_SIZE = 1 << 18


class Echo(asyncio.BufferedProtocol):
    broadcast_group: set[Echo] = set()

    def __init__(self) -> None:
        self.buf = bytearray(READ_SIZE)
        self.start = 0  # unprocessed bytes are buf[start:end]
        self.end = 0
        self.need = 0  # bytes the incomplete frame at ``start`` needs in all
        self.open = False
        self.broadcast = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.broadcast_group.discard(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        buf = self.buf
        if len(buf) - self.end < READ_SIZE or self.start + self.need > len(buf):
            pending = self.end - self.start
            if self.start:
                buf[:pending] = buf[self.start : self.end]
                self.start, self.end = 0, pending
            want = max(self.need, pending) + READ_SIZE
            if len(buf) < want:
                buf.extend(bytes(want - len(buf)))
        return memoryview(buf)[self.end :]

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        if not self.open and not self._handshake():
            return
        self._frames()
        if self.start == self.end:
            self.start = self.end = 0

    def _handshake(self) -> bool:
        buf = self.buf
        stop = buf.find(b"\r\n\r\n", self.start, self.end)
        if stop < 0:
            return False
        key = b""
        lines = bytes(buf[self.start : stop]).split(b"\r\n")
        if lines[0].split(b" ")[1:2] == [b"/broadcast"]:
            self.broadcast = True
            self.broadcast_group.add(self)
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n"
        )
        self.start = stop + 4
        self.open = True
        return True

    def _frames(self) -> None:
        transport = self.transport
        assert transport is not None
        buf = self.buf
        out: list[bytes] = []
        pos = self.start
        size = self.end
        self.need = 0
        view = memoryview(buf)
        try:
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
                    self.need = end - pos
                    break
                mask = bytes(view[pos + head : pos + head + 4])
                payload = apply_mask(view[pos + head + 4 : end], mask)
                pos = end
                opcode = b0 & 0x0F
                if opcode == OP_CLOSE:
                    out.append(server_frame(OP_CLOSE, payload[:2]))
                    transport.write(b"".join(out))
                    transport.close()
                    pos = size
                    return
                if opcode == OP_PING:
                    out.append(server_frame(OP_PONG, payload))
                elif self.broadcast:
                    frame = server_frame(opcode, payload)
                    for other in self.broadcast_group:
                        if other.transport is not None:
                            other.transport.write(frame)
                elif opcode != OP_PONG:
                    # Same FIN bit and opcode: fragments are echoed as fragments.
                    if length < 126:
                        out.append(struct.pack("!BB", b0, length) + payload)
                        continue
                    if length < 1 << 16:
                        out.append(struct.pack("!BBH", b0, 126, length))
                    else:
                        out.append(struct.pack("!BBQ", b0, 127, length))
                    out.append(payload)  # large: no copy into a joined buffer
        finally:
            view.release()
            self.start = pos
        if len(out) == 1:
            transport.write(out[0])
        elif len(out) == 2 and len(out[1]) > 65536:
            transport.write(out[0])
            transport.write(out[1])
        elif out:
            transport.write(b"".join(out))


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, HOST, 0)
    announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


if __name__ == "__main__":
    prepare()
    asyncio.run(main())
