"""``python -m bench [--quick] [--only PEERS] [--scenario NAMES]``: the suite
against the peers; ``python -m bench compression codec|skip|servers ...``:
the compression benchmark (:mod:`bench.compression`)."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["compression"]:
    from .compression.__main__ import main as compression

    sys.exit(compression(sys.argv[2:]))

from .runner import main

sys.exit(main())
