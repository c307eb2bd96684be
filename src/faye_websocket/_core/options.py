"""Checks for the numeric options (timeouts and limits) of the public objects.

Each raises ``ValueError`` naming the option, so a typo such as
``close_timeout=-1`` or ``max_queue=0`` fails at construction, not later in
a background task. NaN is refused everywhere (every comparison with it is
false, so a ``< 0`` check alone would let it through).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["check_count", "check_seconds", "protocol_list", "unique_extensions"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_E = TypeVar("_E", bound=_Named)


def check_seconds(name: str, value: float | None, *, positive: bool = False,
                  optional: bool = False) -> None:
    """A duration in seconds: ``>= 0`` (``> 0`` if ``positive``), ``math.inf``
    allowed, ``None`` allowed if ``optional``.

    Raises:
        ValueError: anything else.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        extra = ", or None" if optional else ""
        raise ValueError(f"{name} must be a number of seconds {bound}{extra}, not {value!r}")


def check_count(name: str, value: int | None, *, minimum: int = 0,
                optional: bool = False) -> None:
    """A whole number (bytes, messages, connections) ``>= minimum``;
    ``None`` allowed if ``optional``.

    Raises:
        ValueError: anything else.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = ", or None" if optional else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, not {value!r}")


def protocol_list(protocols: Sequence[str] | str | None) -> list[str]:
    """The ``protocols`` argument as a list: a comma-separated string works
    too (S-11)."""
    if isinstance(protocols, str):
        return [p.strip() for p in protocols.split(",") if p.strip()]
    return list(protocols or [])


def unique_extensions(extensions: Sequence[_E]) -> list[_E]:
    """The ``extensions`` argument as a list.

    Raises:
        ValueError: two extensions have the same name.
    """
    names = [ext.name for ext in extensions]
    if len(set(names)) != len(names):
        raise ValueError(f"extension registered twice: {names}")
    return list(extensions)
