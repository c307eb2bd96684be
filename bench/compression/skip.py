"""What ``skip_incompressible`` decides, and what it saves.

For seeded messages of several kinds (1 KiB - 64 KiB), the number the
sample (:func:`faye_websocket._core.deflate.looks_incompressible`) sends
uncompressed, the deflate ratio of those (``zlib.compress`` at level 6,
whole message), and the CPU of the sample against that of deflating the
message with our defaults (12 bits, memory level 5, sync flush).
"""

from __future__ import annotations

import base64
import json
import math
import random
import struct
import time
import zlib
from collections.abc import Callable

from faye_websocket._core.deflate import looks_incompressible

from .corpora import CORPORA


def _sizes(rng: random.Random) -> int:
    return int(2 ** rng.uniform(10, 16))


def kinds(seed: int = 19, count: int = 200) -> dict[str, list[bytes]]:
    rng = random.Random(seed)

    def many(make: Callable[[], bytes]) -> list[bytes]:
        return [make() for _ in range(count)]

    def floats64() -> bytes:
        n = _sizes(rng) // 8
        return struct.pack(f"<{n}d", *(math.sin(i / 50) + rng.gauss(0, 0.01) for i in range(n)))

    def floats32() -> bytes:
        n = _sizes(rng) // 4
        return struct.pack(f"<{n}f", *(math.sin(i / 50) * 100 for i in range(n)))

    def counters() -> bytes:
        n = _sizes(rng) // 4
        return struct.pack(f"<{n}i", *(i * 3 + rng.randint(0, 100) for i in range(n)))

    def gzipped_json() -> bytes:
        rows = [{"id": i, "value": rng.random(), "tag": f"t{i % 13}"}
                for i in range(_sizes(rng) // 20)]
        return zlib.compress(json.dumps(rows).encode())

    out = {
        "random bytes": many(lambda: rng.randbytes(_sizes(rng))),
        "zlib output of JSON": many(gzipped_json),
        "float64 samples of a noisy sine": many(floats64),
        "float32 samples of a sine": many(floats32),
        "int32 counters": many(counters),
        "CJK text": many(lambda: "".join(chr(rng.randint(0x4E00, 0x9FFF))
                                         for _ in range(_sizes(rng) // 3)).encode()),
        "emoji text": many(lambda: "".join(rng.choice(["🎉", "ok ", "мир ", "世界", "hello "])
                                           for _ in range(_sizes(rng) // 6)).encode()),
        "base64": many(lambda: base64.b64encode(rng.randbytes(_sizes(rng) * 3 // 4))),
    }
    for name, make in CORPORA.items():
        if name != "random":
            out[f"{name} corpus (messages of 1 KiB or more)"] = [
                m for m in make() if len(m) >= 1024]
    return out


def _seconds(fn: Callable[[], object], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def run() -> dict[str, object]:
    rows = []
    for name, messages in kinds().items():
        skipped = [m for m in messages if looks_incompressible(m)]
        ratios = [len(zlib.compress(m, 6)) / len(m) for m in skipped]

        def deflate_all(messages: list[bytes] = messages) -> None:
            c = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
            for m in messages:
                c.compress(m)
                c.flush(zlib.Z_SYNC_FLUSH)

        def sample_all(messages: list[bytes] = messages) -> None:
            for m in messages:
                looks_incompressible(m)

        count = len(messages)
        rows.append({"kind": name, "messages": count, "skipped": len(skipped),
                     "ratio_min": min(ratios, default=None),
                     "ratio_max": max(ratios, default=None),
                     "deflate_us": _seconds(deflate_all) / count * 1e6,
                     "sample_us": _seconds(sample_all) / count * 1e6})
        print(f"{name}: {len(skipped)}/{count} skipped", flush=True)
    return {"rows": rows}


def markdown(r: dict[str, object]) -> str:
    lines = ["# Compression: skip_incompressible's sample", "",
             "| data | messages | sent uncompressed | their deflate ratio | deflate µs/msg"
             " | sample µs/msg |", "|---|---:|---:|---|---:|---:|"]
    rows = r["rows"]
    assert isinstance(rows, list)
    for row in rows:
        ratio = ("" if row["ratio_min"] is None
                 else f"{row['ratio_min']:.3f}-{row['ratio_max']:.3f}")
        lines.append(f"| {row['kind']} | {row['messages']} | {row['skipped']} | {ratio} | "
                     f"{row['deflate_us']:.0f} | {row['sample_us']:.1f} |")
    return "\n".join(lines) + "\n"
