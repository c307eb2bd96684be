"""Helpers for testing code that uses faye_websocket without sockets."""

from __future__ import annotations

import anyio
from anyio.streams.stapled import StapledObjectStream

__all__ = ["memory_stream_pair"]


def memory_stream_pair(
    max_buffer_size: float = 16,
) -> tuple[StapledObjectStream[bytes], StapledObjectStream[bytes]]:
    """Two connected in-memory byte streams: what one sends, the other receives.

    Works on every anyio backend; pass either end where a WebSocket expects
    a stream.
    """
    a_send, b_receive = anyio.create_memory_object_stream[bytes](max_buffer_size)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](max_buffer_size)
    return StapledObjectStream(a_send, a_receive), StapledObjectStream(b_send, b_receive)
