"""The server side of the soak tool (``bench/soak.py`` starts it as its own
process, so its memory can be measured on its own).

Built on the public API only: :class:`faye_websocket.http.Server` and
:class:`faye_websocket.WebSocket`. Endpoints, chosen by path:

``/echo``
    echoes every message (text stays text, binary stays binary).
``/broadcast``
    every message a client sends here goes to every client connected to
    ``/broadcast`` (the sender included), once.
``/push``
    once the client sends its first message, the server writes messages of
    ``--push-size`` bytes to it without end, as fast as the client (or the
    kernel) takes them; the slow-reader scenario connects clients that then
    never read.
``GET /stats``
    a JSON snapshot of the counters below; ``GET /stats?trim=1`` first runs
    the garbage collector and glibc's ``malloc_trim(0)``.

Run ``python bench/soak_server.py --help``. Once listening it prints one
line, ``listening <port>``, on stdout; SIGTERM or SIGINT shuts it down
(open WebSockets are closed with 1001).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import gc
import json
import resource
import signal
import ssl
import sys
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from faye_websocket import ConnectionClosed, PerMessageDeflate, WebSocket
from faye_websocket.http import Request, Response, Server


@dataclass
class Stats:
    """Counters served at ``GET /stats``."""

    opened: int = 0
    closed: int = 0
    echo: int = 0
    broadcast: int = 0
    push: int = 0
    #: Connections that ended with a code other than 1000/1001 (as seen here).
    abnormal_closes: int = 0
    #: Exceptions a handler did not expect (a bug in the library or here).
    handler_errors: int = 0
    echoed: int = 0
    broadcasts: int = 0
    #: Broadcast deliveries that did not fit under write_limit and were
    #: sent with ``await send()`` instead of ``send_nowait()``.
    broadcast_slow_path: int = 0
    pushed_messages: int = 0
    pushed_bytes: int = 0
    #: ``send_nowait`` refusals (``anyio.WouldBlock``) on /push.
    push_would_block: int = 0


class SoakServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        self.peers: set[WebSocket] = set()
        self.pushers: set[WebSocket] = set()
        self.server = Server(on_request=self.on_request, on_upgrade=self.on_upgrade,
                             request_timeout=args.request_timeout)
        self.push_payload = b"\x5a" * args.push_size
        #: Every WebSocket this server created and that is still alive.
        self.alive: weakref.WeakSet[WebSocket] = weakref.WeakSet()
        options: dict[str, Any] = {}
        for name in ("max_length", "max_queue", "write_limit"):
            value = getattr(args, name)
            if value is not None:
                options[name] = value
        if args.deflate:
            options["extensions"] = [PerMessageDeflate()]
        self.options = options

    # -- plain HTTP -------------------------------------------------------

    async def on_request(self, request: Request, response: Response) -> None:
        if request.path == "/stats":
            if request.target.endswith("?trim=1"):
                # Collect garbage and hand free heap pages back to the OS, so
                # that RSS shows what is still in use (not what the allocator
                # keeps for later).
                gc.collect()
                _malloc_trim()
            snapshot = asdict(self.stats)
            snapshot["push_buffered"] = [ws.buffered_amount for ws in self.pushers]
            snapshot["alive_websockets"] = len(self.alive)
            body = json.dumps(snapshot).encode()
            response.write_head(200, {"Content-Type": "application/json"})
            await response.end(body)
            return
        response.write_head(404, {"Content-Type": "text/plain"})
        await response.end("not found\n")

    # -- WebSocket --------------------------------------------------------

    async def on_upgrade(self, request: Request, stream: anyio.abc.ByteStream,
                         body: bytes) -> None:
        handlers: dict[str, Callable[[WebSocket], Any]] = {
            "/echo": self.echo, "/broadcast": self.broadcast, "/push": self.push,
        }
        handler = handlers.get(request.path)
        if handler is None or not WebSocket.is_websocket(request):
            await stream.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
            return
        name = request.path[1:]
        ws = WebSocket(request, stream, body, **self.options)
        self.alive.add(ws)
        stats = self.stats

        def on_close(event: Any) -> None:
            stats.closed += 1
            if event.code not in (1000, 1001):
                stats.abnormal_closes += 1

        ws.on("close", on_close)
        setattr(stats, name, getattr(stats, name) + 1)
        stats.opened += 1
        try:
            async with ws:
                await handler(ws)
        except ConnectionClosed:
            pass  # counted by on_close
        except Exception:
            stats.handler_errors += 1
            raise
        finally:
            setattr(stats, name, getattr(stats, name) - 1)

    async def echo(self, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)
            self.stats.echoed += 1

    async def broadcast(self, ws: WebSocket) -> None:
        self.peers.add(ws)
        try:
            async for message in ws:
                self.stats.broadcasts += 1
                for peer in list(self.peers):
                    try:
                        try:
                            peer.send_nowait(message)
                        except anyio.WouldBlock:
                            self.stats.broadcast_slow_path += 1
                            await peer.send(message)
                    except ConnectionClosed:
                        pass  # that peer is leaving
        finally:
            self.peers.discard(ws)

    async def push(self, ws: WebSocket) -> None:
        await ws.receive()  # the client says when to start
        self.pushers.add(ws)
        payload, stats = self.push_payload, self.stats
        try:
            if self.args.push_mode == "await":
                while True:
                    await ws.send(payload)
                    stats.pushed_messages += 1
                    stats.pushed_bytes += len(payload)
            while True:
                try:
                    ws.send_nowait(payload)
                except anyio.WouldBlock:
                    stats.push_would_block += 1
                    await anyio.sleep(self.args.push_retry)
                    continue
                stats.pushed_messages += 1
                stats.pushed_bytes += len(payload)
                await anyio.lowlevel.checkpoint()
        finally:
            self.pushers.discard(ws)


def _malloc_trim() -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "malloc_trim"):  # glibc
        libc.malloc_trim(0)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def serve(app: SoakServer, context: ssl.SSLContext | None) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            start = functools.partial(app.server.serve, app.args.host, app.args.port,
                                      ssl_context=context)
            port = await tg.start(start)
            print(f"listening {port}", flush=True)
            async for _signum in signals:
                await app.server.shutdown()
                tg.cancel_scope.cancel()
                break


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--tls", nargs=2, metavar=("CERTFILE", "KEYFILE"),
                        help="serve wss:// with this PEM certificate chain and key")
    parser.add_argument("--max-length", type=int, help="WebSocket max_length (bytes)")
    parser.add_argument("--max-queue", type=int, help="WebSocket max_queue (messages)")
    parser.add_argument("--write-limit", type=int, help="WebSocket write_limit (bytes)")
    parser.add_argument("--deflate", action="store_true", help="accept permessage-deflate")
    parser.add_argument("--request-timeout", type=float, default=30,
                        help="HTTP request_timeout (s); generous, as clients arrive in bulk")
    parser.add_argument("--push-size", type=int, default=16384,
                        help="bytes per message on /push")
    parser.add_argument("--push-mode", choices=("nowait", "await"), default="nowait",
                        help="/push writes with send_nowait (retrying after WouldBlock) "
                             "or with await send()")
    parser.add_argument("--push-retry", type=float, default=0.05,
                        help="seconds /push waits after WouldBlock")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
    anyio.run(serve, SoakServer(args), context, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
