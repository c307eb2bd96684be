"""Checks for the numeric options (timeouts and limits) of the public objects.

Each raises ``ValueError`` naming the option, so a typo such as
``close_timeout=-1`` or ``max_queue=0`` fails at construction, not later in
a background task. NaN is refused everywhere (every comparison with it is
false, so a ``< 0`` check alone would let it through).
"""

from __future__ import annotations

import math

__all__ = ["check_count", "check_seconds"]


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
