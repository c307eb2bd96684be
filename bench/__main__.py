"""``python -m bench [--quick] [--only PEERS] [--scenario NAMES]``."""

from __future__ import annotations

import sys

from .runner import main

sys.exit(main())
