"""Helpers for the byte streams connections run on."""

from __future__ import annotations

import contextlib
import ssl
import weakref

import anyio
import anyio.abc

__all__ = ["STREAM_ERRORS", "TRANSPORT_ERRORS", "close_stream"]

#: Streams close_stream() has closed (a WebSocket closes its stream, then the
#: HTTP helper closes the connection it handed over).
_closed: weakref.WeakSet[anyio.abc.AnyByteStream] = weakref.WeakSet()

#: Errors that mean the transport is gone (reset, closed, TLS torn down), as
#: a stream's own methods raise them: catch these around our I/O only.
TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream,
                    OSError, ssl.SSLError)
#: What reaches an application when its connection is gone: anyio's stream
#: errors (our ConnectionClosed errors are among them). Around application
#: code, catch these, not OSError, which may be the application's own.
STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


async def close_stream(stream: anyio.abc.AnyByteStream, grace: float = 1) -> None:
    """Close gracefully (TLS close_notify included) within ``grace`` seconds,
    then forcefully; shielded, so it also runs in cancelled code. Closing
    a stream this function closed already costs nothing."""
    if stream in _closed:
        return
    with contextlib.suppress(TypeError):  # a stream that cannot be weakly referenced
        _closed.add(stream)
    if isinstance(stream, anyio.abc.SocketStream):
        # A plain socket closes without waiting for the peer (no timeout
        # scope needed, which is most of the cost of closing).
        with anyio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except TRANSPORT_ERRORS:
                pass
        return
    forcefully = False
    with anyio.move_on_after(grace, shield=True) as scope:
        try:
            await stream.aclose()
        except TRANSPORT_ERRORS:
            pass
        except anyio.BusyResourceError:
            # Another task is blocked writing (the peer stopped reading), so
            # TLS cannot send its close_notify now: drop the connection.
            forcefully = True
    if forcefully or scope.cancelled_caught:
        await anyio.aclose_forcefully(stream)
