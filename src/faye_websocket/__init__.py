"""WebSocket server and client, and EventSource server and client, for anyio (trio or asyncio).

The Python counterpart of Node's faye-websocket::

    from faye_websocket import WebSocket
"""

from __future__ import annotations

from ._core.deflate import PerMessageDeflate as PerMessageDeflate
from ._core.sse import ServerSentEvent as ServerSentEvent
from ._core.websocket import ReadyState as ReadyState
from ._emitter import Event as Event
from ._eventsource import EventSource as EventSource
from ._hub import Hub as Hub
from ._websocket import WebSocket as WebSocket
from ._websocket_client import Client as Client
from ._websocket_client import ReconnectingClient as ReconnectingClient
from .exceptions import ConnectError as ConnectError
from .exceptions import ConnectionClosed as ConnectionClosed
from .exceptions import ConnectionClosedError as ConnectionClosedError
from .exceptions import ConnectionClosedOK as ConnectionClosedOK
from .exceptions import FayeWebSocketError as FayeWebSocketError
from .exceptions import HandshakeError as HandshakeError
from .exceptions import HubUnavailableError as HubUnavailableError
from .exceptions import ProtocolError as ProtocolError
from .exceptions import ProxyError as ProxyError

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Event",
    "EventSource",
    "FayeWebSocketError",
    "HandshakeError",
    "Hub",
    "HubUnavailableError",
    "PerMessageDeflate",
    "ProtocolError",
    "ProxyError",
    "ReadyState",
    "ReconnectingClient",
    "ServerSentEvent",
    "WebSocket",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("faye_websocket._"):
        _obj.__module__ = "faye_websocket"
del _name, _obj
