"""faye-websocket's callback style, in Python (docs/migrate-node.md).

The Node program this follows::

    const server = http.createServer();
    server.on('upgrade', (request, socket, body) => {
      if (!WebSocket.isWebSocket(request)) return;
      let ws = new WebSocket(request, socket, body, ['irc'], {ping: 30});
      ws.on('message', (event) => ws.send(event.data));
      ws.on('close', (event) => { console.log('close', event.code, event.reason); });
    });
    server.listen(7000);

    let client = new WebSocket.Client('ws://localhost:7000/', ['irc']);
    client.on('open', () => client.send('Hello, world!'));
    client.on('message', (event) => { console.log('message', event.data); client.close(); });

Run it with ``python from_node.py``.
"""

import anyio

from faye_websocket import WebSocket
from faye_websocket.http import Server


async def on_upgrade(request, stream, body):
    if not WebSocket.is_websocket(request):
        return
    ws = WebSocket(request, stream, body, ["irc"], ping=30)
    ws.on("message", lambda event: ws.send_nowait(event.data))
    ws.on("close", lambda event: print("server: close", event.code, event.reason))
    async with ws:  # answers the handshake; the listeners run while it is open
        await ws.wait_closed()


async def main():
    server = Server(on_upgrade=on_upgrade)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)

        client = WebSocket.Client(f"ws://127.0.0.1:{port}/", ["irc"])
        client.on("open", lambda event: client.send_nowait("Hello, world!"))

        @client.on("message")
        def message(event):
            print("client: message", event.data)
            client.close_nowait()

        client.onclose = lambda event: print("client: close", event.code, event.reason)
        async with client:
            await client.wait_closed()
        await server.shutdown()


if __name__ == "__main__":
    anyio.run(main)
