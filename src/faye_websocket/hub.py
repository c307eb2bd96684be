"""The fan-out hub: ``from faye_websocket.hub import Hub, Subscription, Lost``.

See docs/broadcast.md.
"""

from __future__ import annotations

from ._core.hub import HubMessage as HubMessage
from ._core.hub import Lost as Lost
from ._hub import Hub as Hub
from ._hub import Policy as Policy
from ._hub import Subscription as Subscription
from .exceptions import HubUnavailableError as HubUnavailableError

__all__ = ["Hub", "HubMessage", "HubUnavailableError", "Lost", "Policy", "Subscription"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("faye_websocket._"):
        _obj.__module__ = "faye_websocket.hub"
del _name, _obj
