"""A client with subprotocols, compression and headers (docs/client.md),
for ``python -m faye_websocket demo``."""

import anyio

from faye_websocket import PerMessageDeflate, WebSocket


async def main(url="ws://127.0.0.1:7000/chat"):
    async with WebSocket.Client(url, ["irc", "xmpp"],
                                extensions=[PerMessageDeflate()],
                                headers={"Origin": "http://127.0.0.1:7000"}) as ws:
        print(ws.status_code, ws.protocol, ws.extensions)
        await ws.send("hello")
        print(await ws.receive())


if __name__ == "__main__":
    anyio.run(main)                 # or anyio.run(main, backend="trio")
