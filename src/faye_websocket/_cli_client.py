"""``python -m faye_websocket client``: an interactive WebSocket client.

Each stdin line is sent as a text message and each received message is
printed on its own line of stdout. At the end of stdin the client sends
Close (1000) and keeps printing until the server's Close. Failures print one
line on stderr, never a traceback, and never the credentials of a URL.

Exit status: 0 when the connection ends with 1000 or 1001; 1 when it ends
with another code or cannot be opened; 2 for bad arguments; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import codecs
import os
import re
import signal
import ssl
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._core.client_handshake import CLIENT_RESERVED
from ._core.deflate import PerMessageDeflate
from ._core.http import validate_header
from ._core.url import public_url
from ._websocket_client import Client
from .exceptions import ConnectError, ConnectionClosed, HandshakeError

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

__all__ = ["add_client_parser", "run_client"]

#: Exit statuses.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Connect to a ws:// or wss:// URL. Every line read from stdin is sent as a
text message; every message received is printed on its own line of stdout:
text as it is (UTF-8), binary as '(binary) ' followed by its bytes in
lowercase hex. At the end of stdin the client sends Close (1000), prints what
still arrives and exits when the server's Close comes. The permessage-deflate
extension is offered.

Exit status: 0 when the connection ends with 1000 or 1001; 1 when the server
closes with another code (printed on stderr) or the connection cannot be
opened (one line on stderr); 2 for invalid arguments; 130 on Ctrl-C.
"""

BINARY_PREFIX = "(binary) "
#: Seconds to wait for the pong that ends the input before sending Close.
END_BARRIER_TIMEOUT = 2.0
#: Seconds of quiet after which the end of input stops waiting for replies.
DEFAULT_LINGER = 1.0


def add_client_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``client`` subcommand to ``commands`` (an argparse subparsers object)."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "client", help="interactive WebSocket client: stdin lines out, messages to stdout",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("url", metavar="URL",
                     help="ws:// or wss:// URL (userinfo is sent as Authorization: Basic)")
    sub.add_argument("--protocol", action="append", default=[], metavar="P",
                     help="offer subprotocol P (repeatable, in order of preference)")
    sub.add_argument("--header", action="append", default=[], type=parse_header,
                     metavar="'K: V'", help="extra request header (repeatable)")
    sub.add_argument("--proxy", metavar="URL",
                     help="HTTP CONNECT proxy, http://[user:pass@]host:port (or https://)")
    sub.add_argument("--cafile", metavar="F",
                     help="PEM CA bundle to verify the server (and an https proxy) with, "
                          "instead of the system's trusted CAs")
    sub.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    sub.add_argument("--linger", type=_seconds, default=DEFAULT_LINGER, metavar="S",
                     help="at the end of input, wait for as many messages as were sent, "
                          f"until the line has been quiet for S seconds "
                          f"(default: {DEFAULT_LINGER:g})")
    return sub


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")`` (an argparse ``type``).

    Error messages never repeat the value: it may be a credential.
    """
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip(" \t")
    if not colon:
        raise argparse.ArgumentTypeError("expected 'Name: value' (no ':' found)")
    if not name:
        raise argparse.ArgumentTypeError("expected 'Name: value' (empty name)")
    try:
        validate_header(name, "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name!r} is not a valid header name") from None
    try:
        validate_header(name, value)
    except ValueError:
        # A line break, NUL, or another control character (a vertical tab
        # pasted with a token): h11 would refuse it later, with a traceback
        # that repeats the value.
        raise argparse.ArgumentTypeError(
            f"the value of header {name!r} contains a control character (only tab is "
            "allowed)") from None
    if name.lower() in CLIENT_RESERVED:
        raise argparse.ArgumentTypeError(
            f"header {name!r} is set by the WebSocket handshake and cannot be overridden")
    return name, value


# -- redaction ---------------------------------------------------------------

_USERINFO = re.compile(r"(//)[^/@\s]*@")


@dataclass
class Redactor:
    """Removes the credentials of the URLs given on the command line from
    any text about to be printed."""

    secrets: list[str] = field(default_factory=list)

    def add_url(self, url: str | None) -> None:
        if not url:
            return
        try:
            netloc = urlsplit(url).netloc
        except ValueError:  # "Invalid IPv6 URL": take all up to the last "@"
            start = url.find("//") + 2 if "//" in url else 0
            netloc = url[start:]
        if "@" not in netloc:
            return
        userinfo = netloc.rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        for secret in (userinfo, unquote(userinfo), password, unquote(password)):
            if secret and secret not in self.secrets:
                self.secrets.append(secret)
        # A user name is only removed where it is long enough to be safe to
        # search for; URLs lose their whole userinfo below anyway.
        for secret in (user, unquote(user)):
            if len(secret) >= 3 and secret not in self.secrets:
                self.secrets.append(secret)
        self.secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _USERINFO.sub(r"\1***@", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# -- stdin -------------------------------------------------------------------


def _pump_stdin(fd: int, portal: BlockingPortal, send: MemoryObjectSendStream[str]) -> None:
    """Read ``fd`` in a daemon thread and hand complete lines to the loop.

    It reads the raw descriptor (not ``sys.stdin``) so that a thread still
    blocked in it when the program exits holds no lock the interpreter
    needs at shutdown; being a daemon thread, it never delays the exit.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""  # no usable stdin: treat as its end
            pending += decoder.decode(chunk, final=not chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                portal.call(send.send, line.removesuffix("\r"))
            if not chunk:
                break
        if pending:
            portal.call(send.send, pending)
    except BaseException:  # the loop is gone or no longer listening
        return
    finally:
        try:
            portal.call(send.close)
        except BaseException:  # the loop is gone
            pass


@asynccontextmanager
async def stdin_lines(fd: int) -> AsyncIterator[MemoryObjectReceiveStream[str]]:
    """The lines of ``fd`` (without their line ends); ends at end of input."""
    send, receive = anyio.create_memory_object_stream[str](16)
    async with BlockingPortal() as portal:
        thread = threading.Thread(target=_pump_stdin, args=(fd, portal, send),
                                  name="faye_websocket stdin", daemon=True)
        thread.start()
        try:
            with receive:
                yield receive
        finally:
            await portal.stop(cancel_remaining=True)


# -- stdout ------------------------------------------------------------------


def _write_message(message: str | bytes) -> bool:
    """Print one message; ``False`` once nobody reads stdout any more."""
    line = message if isinstance(message, str) else BINARY_PREFIX + message.hex()
    try:
        sys.stdout.buffer.write(line.encode("utf-8") + b"\n")
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's last flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False
    return True


# -- the client --------------------------------------------------------------


def _tls_context(cafile: str | None) -> ssl.SSLContext | None:
    if cafile is None:
        return None
    return ssl.create_default_context(cafile=cafile)


class _Traffic:
    """Messages sent and received, so the end of input can wait for replies."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self._changed = anyio.Event()

    def got_one(self) -> None:
        self.received += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def replies(self, linger: float) -> None:
        """Wait until as many messages came back as were sent, or until the
        line has been quiet for ``linger`` seconds."""
        while self.received < self.sent:
            with anyio.move_on_after(linger) as quiet:
                await self._changed.wait()
            if quiet.cancelled_caught:
                return


async def _send_lines(ws: Client, lines: MemoryObjectReceiveStream[str],
                      traffic: _Traffic, linger: float) -> None:
    try:
        async for line in lines:
            await ws.send(line)
            traffic.sent += 1
        # End of input. Replies may still be on their way (a server may drop
        # those still being compressed when our Close arrives): wait for them.
        await traffic.replies(linger)
        # A server that reads our last messages and our Close in one go may
        # answer the Close before its application has replied to them, so
        # first make it read them: a ping round trip.
        with anyio.move_on_after(END_BARRIER_TIMEOUT):
            await ws.ping(b"eof")
        ws.close_nowait(1000)
    except ConnectionClosed:
        pass  # the server closed first; the printing side reports it


async def _print_messages(ws: Client, traffic: _Traffic) -> bool:
    """Print messages until the connection closes; ``False`` if stdout went away."""
    try:
        async for message in ws:
            if not _write_message(message):
                return False
            traffic.got_one()
    except ConnectionClosed:
        pass
    return True


async def _session(args: argparse.Namespace, tls: ssl.SSLContext | None,
                   stdin_fd: int) -> tuple[int, str] | None:
    """Connect and run the loop; returns the close code and reason (``None``
    if stdout was closed)."""
    proxy: dict[str, Any] | None = None
    if args.proxy:
        proxy = {"origin": args.proxy}
        if tls is not None:
            proxy["tls"] = tls
    client = Client(args.url, args.protocol, extensions=[PerMessageDeflate()],
                    headers=args.header, tls=tls, proxy=proxy)
    async with client as ws, anyio.create_task_group() as tg:
        async with stdin_lines(stdin_fd) as lines:
            traffic = _Traffic()
            tg.start_soon(_send_lines, ws, lines, traffic, args.linger)
            stdout_open = await _print_messages(ws, traffic)
            tg.cancel_scope.cancel()
    if not stdout_open:
        return None
    await ws.wait_closed()
    return ws.close_code or 1006, ws.close_reason or ""


def _os_reason(exc: BaseException) -> str:
    """The most telling part of a connection error."""
    candidates: list[BaseException | None] = [exc, exc.__cause__, exc.__context__]
    for candidate in list(candidates):
        if isinstance(candidate, BaseExceptionGroup):
            candidates.extend(candidate.exceptions)
    for candidate in candidates:
        if isinstance(candidate, OSError):
            if isinstance(candidate.errno, int) and candidate.errno > 0:
                return os.strerror(candidate.errno)  # not "Connect call failed (...)"
            if candidate.strerror:
                return str(candidate.strerror)
    return str(exc) or type(exc).__name__


def describe_failure(exc: BaseException, url: str, proxy: str | None) -> str:
    """One line for a failure to open the connection."""
    where = url + (f" through the proxy {public_url(proxy)}" if proxy else "")
    if isinstance(exc, ConnectError) and isinstance(exc.__cause__, ssl.SSLError):
        exc = exc.__cause__  # described below, as the TLS failure it is
    if isinstance(exc, HandshakeError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return f"TLS certificate verification failed for {where}: {reason}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason.replace("_", " ").lower() if exc.reason else str(exc)
        return f"TLS error with {where}: {reason}"
    if isinstance(exc, TimeoutError):
        return f"can't connect to {where}: timed out"
    if isinstance(exc, OSError):
        return f"can't connect to {where}: {_os_reason(exc)}"
    if isinstance(exc, (anyio.BrokenResourceError, anyio.EndOfStream)):
        return f"connection to {where} lost during the handshake: {_os_reason(exc)}"
    return f"{type(exc).__name__}: {exc}"


async def _main(args: argparse.Namespace, tls: ssl.SSLContext | None, stdin_fd: int,
                redact: Redactor) -> int:
    interrupted = False
    failure: BaseException | None = None
    result: tuple[int, str] | None = None

    async def watch_sigint(scope: anyio.CancelScope, *,
                           task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                           ) -> None:
        nonlocal interrupted
        try:
            receiver = anyio.open_signal_receiver(signal.SIGINT)
        except NotImplementedError:  # no loop signal handlers (Windows asyncio)
            task_status.started()
            return
        with receiver as signals:
            task_status.started()
            async for _ in signals:
                interrupted = True
                scope.cancel()
                return

    async def session(scope: anyio.CancelScope) -> None:
        # Failures are caught here, inside the task group, so that they do
        # not reach us wrapped in an exception group.
        nonlocal failure, result
        try:
            result = await _session(args, tls, stdin_fd)
        except (ValueError, HandshakeError, OSError, anyio.BrokenResourceError,
                anyio.EndOfStream) as exc:
            failure = exc
        scope.cancel()

    async with anyio.create_task_group() as tg:
        await tg.start(watch_sigint, tg.cancel_scope)
        tg.start_soon(session, tg.cancel_scope)

    if interrupted:
        return INTERRUPTED
    if isinstance(failure, ValueError):  # an invalid URL or option
        _error(redact(str(failure)))
        return USAGE
    if failure is not None:
        _error(redact(describe_failure(failure, public_url(args.url), args.proxy)))
        return FAILED
    if result is None:  # stdout was closed
        return FAILED
    code, reason = result
    if code in (1000, 1001):
        return OK
    if code == 1006 and not reason:
        reason = "(the connection was lost without a Close frame)"
    _error(redact(f"connection closed: {code}" + (f" {_printable(reason)}" if reason else "")))
    return FAILED


def _error(line: str) -> None:
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def run_client(args: argparse.Namespace) -> int:
    """Run ``python -m faye_websocket client``; returns the exit status."""
    redact = Redactor()
    redact.add_url(args.url)
    redact.add_url(args.proxy)
    try:
        tls = _tls_context(args.cafile)
    except (OSError, ssl.SSLError) as exc:
        _error(f"can't load the CA file {args.cafile}: {_os_reason(exc)}")
        return USAGE
    try:
        stdin_fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        stdin_fd = -1  # no stdin: os.read fails, which counts as its end
    try:
        return anyio.run(_main, args, tls, stdin_fd, redact, backend=args.backend)
    except KeyboardInterrupt:
        return INTERRUPTED
    except (ImportError, LookupError):
        _error(f"the {args.backend} backend is not installed (pip install {args.backend})")
        return USAGE

