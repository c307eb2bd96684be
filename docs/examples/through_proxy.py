"""A WebSocket client through an HTTP or SOCKS proxy (docs/howto-proxies.md).

Run an echo server and a proxy, then this program::

    python -m faye_websocket demo &
    python -m pproxy -l http+socks5://127.0.0.1:8080 &
    python through_proxy.py http://127.0.0.1:8080 ws://127.0.0.1:7000/
    python through_proxy.py socks5h://127.0.0.1:8080 ws://127.0.0.1:7000/
    https_proxy=http://127.0.0.1:8080 python through_proxy.py env wss://example.com/

The first argument is a proxy URL (``http://``, ``https://``, ``socks5://``,
``socks5h://``, ``socks4://``, ``socks4a://``, with ``user:password@`` if the
proxy wants credentials) or ``env``; the second, the server's URL.
"""

import sys

import anyio

from faye_websocket import WebSocket
from faye_websocket.exceptions import ConnectError, ProxyError


async def main(proxy, url):
    try:
        async with WebSocket.Client(url, proxy=proxy) as ws:
            await ws.send("hello through the proxy")
            print(await ws.receive())
    except ProxyError as refused:
        # The proxy answered, and said no: 407 for credentials, 403 for a
        # destination it does not allow (status 0 from a SOCKS proxy).
        print(f"the proxy refused: {refused.status_code} {refused}", file=sys.stderr)
        return 1
    except ConnectError as error:
        # The proxy (or, through it, the server) could not be reached.
        print(f"cannot connect: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2]))
