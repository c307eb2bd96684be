"""The HTTP/1.1 helper: the server that hands upgrades to a WebSocket.

::

    from faye_websocket.http import Server

    server = Server(on_request=on_request, on_upgrade=on_upgrade)
    await server.serve("127.0.0.1", 7000)
"""

from __future__ import annotations

from ._core.http import Headers as Headers
from ._core.http import Request as Request
from ._runtime.server import Response as Response
from ._runtime.server import Server as Server

__all__ = ["Headers", "Request", "Response", "Server"]

for _cls in (Headers, Request, Response, Server):
    _cls.__module__ = "faye_websocket.http"
del _cls
