"""The zlib side of permessage-deflate, without any WebSocket around it.

For each setting (window bits, memory level, compression level) this
measures, per corpus:

* the compression ratio, messages compressed one after the other with
  context takeover (or without), as RFC 7692 frames them (sync flush, the
  four-byte tail stripped);
* CPU per MB of input, to compress and to inflate (CPU time, best of a few
  repeats; noisy on a shared machine, compare within one run);
* memory of one connection's pair of codecs: what zlib allocates
  (``tracemalloc`` sees zlib's allocator) and what becomes resident (RSS of a
  child process holding many pairs, after the first message and after the
  whole corpus): zlib allocates its tables up front but touches pages as it
  uses them, so RSS is what a server pays.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from dataclasses import dataclass

from .._proc import rss_bytes
from .corpora import CORPORA

TAIL = b"\x00\x00\xff\xff"
MB = 1_000_000


@dataclass
class Setting:
    wbits: int
    mem_level: int
    level: int = 6
    takeover: bool = True

    def compressor(self) -> zlib._Compress:
        return zlib.compressobj(self.level, zlib.DEFLATED, -self.wbits, self.mem_level)


def compress_all(setting: Setting, corpus: list[bytes], threshold: int = 0) -> list[bytes]:
    """Each message as its frame's payload (raw below ``threshold``)."""
    comp = setting.compressor()
    out = []
    for message in corpus:
        if len(message) < threshold:
            out.append(message)
            continue
        data = comp.compress(message) + comp.flush(zlib.Z_SYNC_FLUSH)
        out.append(data[:-4] if data.endswith(TAIL) else data)
        if not setting.takeover:
            comp = setting.compressor()
    return out


def inflate_all(setting: Setting, payloads: list[bytes]) -> int:
    dec = zlib.decompressobj(-setting.wbits)
    total = 0
    for payload in payloads:
        total += len(dec.decompress(payload + TAIL))
        if not setting.takeover:
            dec = zlib.decompressobj(-setting.wbits)
    return total


def _cpu(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - t)
    return best


def ratio_cpu(setting: Setting, corpus: list[bytes], repeat: int = 3,
              threshold: int = 0) -> dict[str, float]:
    raw = sum(map(len, corpus))
    payloads = compress_all(setting, corpus, threshold)
    wire = sum(map(len, payloads))
    # Time whole passes; a pass is short, so repeat it to reach ~20 ms.
    passes = max(1, int(200_000 / max(raw, 1)))
    c = _cpu(lambda: [compress_all(setting, corpus, threshold) for _ in range(passes)], repeat)
    compressed_only = [p for p, m in zip(payloads, corpus, strict=True) if len(m) >= threshold]
    d = _cpu(lambda: [inflate_all(setting, compressed_only) for _ in range(passes)], repeat)
    return {"ratio": wire / raw, "deflate_ms_per_mb": c / passes / raw * MB * 1000,
            "inflate_ms_per_mb": d / passes / raw * MB * 1000}


def allocated(setting: Setting, first: bytes) -> dict[str, int]:
    """Bytes zlib holds for one compressor and one inflater after one message."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        comp = setting.compressor()
        payload = comp.compress(first) + comp.flush(zlib.Z_SYNC_FLUSH)
        deflate = tracemalloc.get_traced_memory()[0] - base - sys.getsizeof(payload)
        base = tracemalloc.get_traced_memory()[0]
        dec = zlib.decompressobj(-setting.wbits)
        out = dec.decompress(payload)
        inflate = tracemalloc.get_traced_memory()[0] - base - sys.getsizeof(out)
        del comp, dec, out, payload
    finally:
        tracemalloc.stop()
    return {"deflate_alloc": deflate, "inflate_alloc": max(inflate, 0)}


def _rss_child(wbits: int, mem_level: int, level: int, corpus_name: str, pairs: int) -> None:
    """Child process: ``pairs`` codec pairs; print RSS growth per pair."""
    setting = Setting(wbits, mem_level, level)
    corpus = CORPORA[corpus_name]()
    pid = os.getpid()
    gc.collect()
    before = rss_bytes(pid)
    codecs = [(setting.compressor(), zlib.decompressobj(-wbits)) for _ in range(pairs)]
    created = rss_bytes(pid)
    for comp, dec in codecs:
        dec.decompress(comp.compress(corpus[1]) + comp.flush(zlib.Z_SYNC_FLUSH))
    first = rss_bytes(pid)
    for comp, dec in codecs:
        for message in corpus[:60]:
            dec.decompress(comp.compress(message) + comp.flush(zlib.Z_SYNC_FLUSH))
    loaded = rss_bytes(pid)
    print(json.dumps({"created": (created - before) / pairs, "first": (first - before) / pairs,
                      "loaded": (loaded - before) / pairs}))


def resident(setting: Setting, corpus_name: str = "chat", pairs: int = 400) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.compression.codec", "_rss", str(setting.wbits),
         str(setting.mem_level), str(setting.level), corpus_name, str(pairs)],
        capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def matrix(quick: bool = False) -> dict[str, object]:
    """The whole codec table: a dict of lists ready for JSON and markdown."""
    corpora = {name: make() for name, make in CORPORA.items()}
    chat = corpora["chat"]
    repeat = 2 if quick else 3
    rows = []
    wbits_range = (9, 10, 11, 12, 13, 15) if quick else range(9, 16)
    mem_range = (1, 3, 4, 5, 8, 9) if quick else range(1, 10)
    for wbits in wbits_range:
        for mem_level in mem_range:
            s = Setting(wbits, mem_level)
            row: dict[str, object] = {"wbits": wbits, "mem_level": mem_level}
            row.update(ratio_cpu(s, chat, repeat))
            row.update(allocated(s, chat[1]))
            rss = resident(s, "chat", 200 if quick else 400)
            row.update({f"rss_{k}": v for k, v in rss.items()})
            rows.append(row)
            print(f"chat w{wbits} m{mem_level}: ratio {row['ratio']:.3f} "
                  f"deflate {row['deflate_ms_per_mb']:.1f} ms/MB inflate "
                  f"{row['inflate_ms_per_mb']:.1f} ms/MB alloc {row['deflate_alloc']}"
                  f"+{row['inflate_alloc']} B rss first {row['rss_first']:.0f} B "
                  f"loaded {row['rss_loaded']:.0f} B", flush=True)
    corpus_rows = []
    for name, corpus in corpora.items():
        for wbits, mem_level in ((15, 8), (12, 5), (13, 5), (13, 4), (11, 5), (10, 5)):
            for takeover in (True, False):
                s = Setting(wbits, mem_level, takeover=takeover)
                r = {"corpus": name, "wbits": wbits, "mem_level": mem_level,
                     "takeover": takeover, **ratio_cpu(s, corpus, repeat)}
                corpus_rows.append(r)
                print(f"{name} w{wbits} m{mem_level} takeover={takeover}: "
                      f"ratio {r['ratio']:.3f} deflate {r['deflate_ms_per_mb']:.1f} "
                      f"inflate {r['inflate_ms_per_mb']:.1f} ms/MB", flush=True)
    # Memory level against deflate's speed where it matters most: data that
    # does not compress (small levels mean small blocks, each with its own
    # Huffman trees).
    mem_rows = []
    for mem_level in range(1, 10):
        for name in ("random", "log", "chat"):
            r = {"corpus": name, "mem_level": mem_level,
                 **ratio_cpu(Setting(13, mem_level), corpora[name], repeat)}
            mem_rows.append(r)
    level_rows = []
    for level in range(1, 10):
        for name in ("chat", "log"):
            s = Setting(12, 5, level)
            r = {"corpus": name, "level": level, **ratio_cpu(s, corpora[name], repeat)}
            level_rows.append(r)
    threshold_rows = []
    for threshold in (0, 16, 32, 64, 128, 256, 512, 1024):
        for name in ("chat", "dashboard", "random"):
            s = Setting(12, 5)
            raw = sum(map(len, corpora[name]))
            payloads = compress_all(s, corpora[name], threshold)
            threshold_rows.append({"corpus": name, "threshold": threshold,
                                   "ratio": sum(map(len, payloads)) / raw,
                                   "compressed_messages": sum(
                                       1 for m in corpora[name] if len(m) >= threshold)})
    sizes = {name: {"messages": len(c), "bytes": sum(map(len, c)),
                    "median": sorted(map(len, c))[len(c) // 2]} for name, c in corpora.items()}
    return {"zlib": zlib.ZLIB_RUNTIME_VERSION, "corpora": sizes, "chat_matrix": rows,
            "corpus_rows": corpus_rows, "mem_rows": mem_rows, "level_rows": level_rows,
            "threshold_rows": threshold_rows}


if __name__ == "__main__":
    if sys.argv[1:2] == ["_rss"]:
        w, m, lv, c, n = sys.argv[2:7]
        _rss_child(int(w), int(m), int(lv), c, int(n))
