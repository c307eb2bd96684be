"""``python -m bench.compression codec|servers [--quick]``: the compression benchmark.

``codec``
    zlib alone, across window bits 9-15, memory levels 1-9 and levels 1-9
    (see :mod:`bench.compression.codec`).
``skip``
    what ``skip_incompressible``'s sample decides on several kinds of data,
    and its CPU against deflate's (see :mod:`bench.compression.skip`).
``servers``
    echo servers with permessage-deflate negotiated by websockets' asyncio
    client (as browsers would): memory per connection idle, after one small
    JSON message, and under the mixed soak of issue 19 (see
    :mod:`bench.compression.servers`).

Results go to ``bench/results/compression-<what>-<time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from . import report

HERE = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compression")
    parser.add_argument("what", choices=("codec", "skip", "servers"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peers", default="ours-asyncio,ours-trio,websockets",
                        help="servers: comma-separated peers (also ours-asyncio+zlib, "
                             "ours-trio+zlib: zlib's defaults)")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--abort", type=float, default=0.1,
                        help="servers: fraction of clients that abort TCP mid-run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=16,
                        help="servers: our WebSocket's max_queue (default 16, as websockets')")
    parser.add_argument("--no-deflate", action="store_true",
                        help="servers: the clients offer no compression (a baseline)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.what == "codec":
        from .codec import matrix

        result = matrix(args.quick)
        text = report.codec_markdown(result)
    elif args.what == "skip":
        from . import skip

        result = skip.run()
        text = skip.markdown(result)
    else:
        from .servers import run_all

        result = run_all(args)
        text = report.servers_markdown(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"compression-{args.what}-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(result, indent=1))
    base.with_suffix(".md").write_text(text)
    print(text)
    print(f"written: {base}.md, {base}.json")
    ok = result.get("ok", True) if isinstance(result, dict) else True
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
