"""WebSocket extensions: ``extensions=[PerMessageDeflate(...)]``."""

from __future__ import annotations

from ._core.deflate import PerMessageDeflate as PerMessageDeflate

__all__ = ["PerMessageDeflate"]
