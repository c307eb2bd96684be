"""Command line: ``python -m faye_websocket demo | echo | chat | client | serve``."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

import anyio

from . import __version__
from ._cli_client import add_client_parser, run_client
from ._demo import demo_server, echo_server
from ._runtime.server import Server
from .exceptions import LifespanError

if TYPE_CHECKING:
    from ._runtime.asgi_host import ASGIApp


def version() -> str:
    """The version line: the package's version and whether the optional C
    accelerator is in use."""
    from ._core.frames import c_mask

    accelerator = "in use" if c_mask is not None else (
        "off (FAYE_WEBSOCKET_NO_SPEEDUPS)" if os.environ.get("FAYE_WEBSOCKET_NO_SPEEDUPS")
        else "not built")
    return f"faye-websocket {__version__} (C accelerator: {accelerator})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m faye_websocket",
                                     description="faye-websocket for Python")
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", required=True)

    def add_server(name: str, help: str, port: int, *,
                   drafts: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help,
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sub.add_argument("--host", default="127.0.0.1", help="address to listen on")
        sub.add_argument("--port", type=int, default=port, help="port to listen on")
        sub.add_argument("--certfile", help="PEM certificate chain: serve over TLS")
        sub.add_argument("--keyfile", help="PEM private key for --certfile")
        sub.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                         help="the event loop anyio runs on")
        if drafts:
            sub.add_argument("--drafts", action=argparse.BooleanOptionalAction, default=True,
                             help="serve the pre-standard drafts hixie-75/76, as the "
                                  "reference does (--no-drafts: refuse them with HTTP 426)")
        return sub

    demo = add_server("demo", "WebSocket echo + EventSource demo with a page at /", 7000)
    demo.add_argument("--interval", type=float, default=2.0,
                      help="seconds between EventSource messages")
    add_server("echo", "bare WebSocket echo server (for conformance runs)", 9001)
    serve = add_server("serve", "serve an ASGI application (Starlette, FastAPI...)", 8000,
                       drafts=False)
    serve.add_argument("app", metavar="MODULE:ATTR",
                       help="the application, e.g. main:app (the current directory is "
                            "importable)")
    serve.add_argument("--root-path", default="",
                       help="the path the application is mounted at behind a proxy")
    serve.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto",
                       help="run the ASGI lifespan protocol (auto: if the application "
                            "supports it)")
    serve.add_argument("--max-body-size", type=int, default=1 << 20,
                       help="largest request body, in bytes (larger: 413)")
    serve.add_argument("--ws-max-length", type=int, default=2**26 - 1,
                       help="largest WebSocket message, in bytes (larger: close 1009)")
    serve.add_argument("--ws-ping", type=float, default=20.0,
                       help="seconds between WebSocket keep-alive pings (0: off)")
    serve.add_argument("--ws-ping-timeout", type=float, default=20.0,
                       help="seconds to wait for a pong before closing with 1011")
    serve.add_argument("--ws-deflate", action=argparse.BooleanOptionalAction, default=True,
                       help="negotiate permessage-deflate on WebSockets")
    serve.add_argument("--shutdown-timeout", type=float, default=5.0,
                       help="seconds SIGTERM/SIGINT waits for open connections to finish")
    add_server("chat", "chat page at /, WebSocket /chat, EventSource /chat/events", 7000) \
        .add_argument("--redis", metavar="URL", help="share the chat through this Redis")
    add_client_parser(commands)
    return parser


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile:
        if args.keyfile:
            raise SystemExit("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except ssl.SSLError as exc:  # not PEM, or a key that does not match
        reason = f"not a PEM certificate chain with its private key ({exc})"
        _fail(f"can't load the certificate {args.certfile}"
              + (f" and key {args.keyfile}" if args.keyfile else "") + f": {reason}")
    except OSError as exc:  # missing, unreadable
        reason = exc.strerror or str(exc)
        _fail(f"can't load the certificate {args.certfile}"
              + (f" and key {args.keyfile}" if args.keyfile else "") + f": {reason}")
    return context


class _Failure(Exception):
    """An error the user can fix: one line on stderr, exit status 1."""


def _fail(message: str) -> NoReturn:
    raise _Failure(message)


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
    try:
        context = _tls(args)
        if args.command == "demo":
            server = demo_server(interval=args.interval, drafts=args.drafts)
        elif args.command == "serve":
            server = _app_server(args)
        elif args.command == "chat":
            from ._chat import ChatServer, redis_problem

            if args.redis and (problem := redis_problem(args.redis)):
                _fail(problem)
            server = ChatServer(redis=args.redis, drafts=args.drafts)
        else:
            server = echo_server(drafts=args.drafts)
        try:
            anyio.run(_serve, server, args.host, args.port, context, backend=args.backend)
        except OSError as exc:  # binding: the port is in use, the address is not ours
            _fail(f"can't listen on {args.host}:{args.port}: {exc.strerror or exc}")
        except LifespanError as exc:
            _fail(f"application startup failed: {exc}")
        except BaseExceptionGroup as group:
            startup = [e for e in _leaves(group) if isinstance(e, LifespanError)]
            if startup:
                _fail(f"application startup failed: {startup[0]}")
            bind = _bind_error(group)
            if bind is None:
                raise
            _fail(f"can't listen on {args.host}:{args.port}: {bind.strerror or bind}")
    except _Failure as failure:
        sys.stderr.write(f"error: {failure}\n")
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130
    return 0


def _load_app(spec: str) -> ASGIApp:
    """The object ``MODULE:ATTR`` names (``ATTR`` may be dotted), importing
    from the current directory first, as uvicorn does."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        _fail(f"the application is given as MODULE:ATTR (e.g. main:app), not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name
                                    or module_name.startswith(exc.name + ".")):
            raise  # a module the application imports is missing: its traceback
        _fail(f"can't import {module_name!r}: no such module (looked in {os.getcwd()} "
              "and sys.path)")
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            _fail(f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(app):
        _fail(f"{spec} is not an ASGI application (not callable)")
    return app  # type: ignore[no-any-return]


def _app_server(args: argparse.Namespace) -> Server:
    from ._core.deflate import PerMessageDeflate

    app = _load_app(args.app)
    try:
        return Server(app=app, root_path=args.root_path, lifespan=args.lifespan,
                      max_body_size=args.max_body_size, ws_max_length=args.ws_max_length,
                      ws_ping=args.ws_ping or None, ws_ping_timeout=args.ws_ping_timeout,
                      ws_extensions=[PerMessageDeflate()] if args.ws_deflate else [],
                      shutdown_timeout=args.shutdown_timeout)
    except ValueError as exc:
        _fail(str(exc))


def _bind_error(group: BaseExceptionGroup[BaseException]) -> OSError | None:
    """The OSError that made listening fail, if that is all the group holds."""
    # (Cancellations, asyncio's and trio's, are BaseExceptions only.)
    errors = [e for e in _leaves(group) if isinstance(e, Exception)]
    if len(errors) == 1 and isinstance(errors[0], OSError):
        return errors[0]
    return None


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for child in error.exceptions for leaf in _leaves(child)]
    return [error]


if __name__ == "__main__":
    sys.exit(main())
