"""Helpers for the byte streams connections run on."""

from __future__ import annotations

import ssl

import anyio
import anyio.abc

__all__ = ["TRANSPORT_ERRORS", "close_stream"]

#: Errors that mean the transport is gone (reset, closed, TLS torn down).
TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream,
                    OSError, ssl.SSLError)


async def close_stream(stream: anyio.abc.AnyByteStream, grace: float = 1) -> None:
    """Close gracefully (TLS close_notify included) within ``grace`` seconds,
    then forcefully; shielded, so it also runs in cancelled code."""
    with anyio.move_on_after(grace, shield=True) as scope:
        try:
            await stream.aclose()
        except TRANSPORT_ERRORS:
            pass
    if scope.cancelled_caught:
        await anyio.aclose_forcefully(stream)
