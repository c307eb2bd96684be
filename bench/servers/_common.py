"""What every server script shares: readiness line, exit on stdin EOF."""

from __future__ import annotations

import os
import sys
import threading
from urllib.parse import parse_qs, urlsplit

from .._proc import raise_nofile

HOST = "127.0.0.1"
MAX_SIZE = 4 * 2**20  # >= 2 MiB: the 1 MiB echo must fit
EVENT_DATA = "0123456789abcdef0123456789abcdef"  # 32 bytes per event


def _exit_on_eof() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def prepare() -> None:
    """Raise the open-files limit and exit as soon as the runner goes away."""
    raise_nofile()
    threading.Thread(target=_exit_on_eof, name="exit-on-eof", daemon=True).start()


def announce(port: int) -> None:
    """Tell the runner we are listening."""
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


def event_count(target: str) -> int:
    """``n`` from ``/events?n=N`` (0 when absent)."""
    values = parse_qs(urlsplit(target).query).get("n", ["0"])
    return int(values[0])


# --- the fan-out scenarios (bench/loadgen.py ``fanout``) ------------------------------------

#: The text every fan-out message starts with (chat-like, so that
#: permessage-deflate has something to do), cut to the size asked for.
_CHAT = ('{"user":"alice","room":"general","text":"hello, everyone! '
         + "the quick brown fox jumps over the lazy dog; " * 200)


def fanout_message(size: int) -> str:
    """The message a fan-out burst publishes: ``size`` bytes of ASCII text."""
    return _CHAT[:size]


def parse_burst(text: str) -> tuple[int, int, int] | None:
    """``"burst M N SIZE"`` (publish M messages of SIZE bytes once N clients
    are subscribed) as (M, N, SIZE); None for anything else."""
    parts = text.split()
    if len(parts) != 4 or parts[0] != "burst" or not all(p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2]), int(parts[3])


SUBSCRIBE_LIMIT = 60.0  # seconds a burst waits for its subscribers
