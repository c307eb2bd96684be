"""Command line: ``python -m faye_websocket demo | echo | client``."""

from __future__ import annotations

import argparse
import functools
import signal
import ssl
import sys
from collections.abc import Sequence

import anyio

from ._cli_client import add_client_parser, run_client
from ._demo import demo_server, echo_server
from ._runtime.server import Server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m faye_websocket",
                                     description="faye-websocket for Python")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_server(name: str, help: str, port: int) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=port)
        sub.add_argument("--certfile", help="PEM certificate chain: serve over TLS")
        sub.add_argument("--keyfile", help="PEM private key for --certfile")
        sub.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
        sub.add_argument("--no-drafts", dest="drafts", action="store_false",
                         help="refuse the pre-standard drafts hixie-75/76 (HTTP 426), "
                              "which this command serves by default, as the reference does")
        return sub

    demo = add_server("demo", "WebSocket echo + EventSource demo with a page at /", 7000)
    demo.add_argument("--interval", type=float, default=2.0,
                      help="seconds between EventSource messages")
    add_server("echo", "bare WebSocket echo server (for conformance runs)", 9001)
    add_client_parser(commands)
    return parser


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile:
        if args.keyfile:
            raise SystemExit("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.certfile, args.keyfile)
    return context


async def _serve(server: Server, host: str, port: int, context: ssl.SSLContext | None) -> None:
    # Signals are caught before the ready line, so a supervisor may send
    # SIGTERM as soon as it reads it; Ctrl-C and SIGTERM close open sockets
    # with 1001 and exit 0.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            serve = functools.partial(server.serve, host, port, ssl_context=context)
            bound = await tg.start(serve)
            scheme = "https" if context else "http"
            print(f"listening on {scheme}://{host}:{bound}/", flush=True)
            async for _signum in signals:
                print("shutting down", flush=True)
                await server.shutdown()
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "client":
        return run_client(args)
    context = _tls(args)
    if args.command == "demo":
        server = demo_server(interval=args.interval, drafts=args.drafts)
    else:
        server = echo_server(drafts=args.drafts)
    try:
        anyio.run(_serve, server, args.host, args.port, context, backend=args.backend)
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
