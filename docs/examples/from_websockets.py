"""A `websockets` echo server and client, rewritten (docs/migrate-websockets.md).

Run it with ``python from_websockets.py`` (``python from_websockets.py trio``
runs it on trio). The comments give the `websockets` call each line replaces.
"""

import sys

import anyio

from faye_websocket import WebSocket
from faye_websocket.exceptions import ConnectionClosed, ConnectionClosedOK, HandshakeError
from faye_websocket.http import Server


async def on_upgrade(request, stream, body):  # handler(websocket)
    if request.path != "/echo":  # process_request returning a Response
        await WebSocket(request, stream, body).reject(404, body="not here\n")
        return
    async with WebSocket(request, stream, body, ["echo"], ping=20) as ws:  # ping_interval=20
        try:
            async for message in ws:  # async for message in websocket
                await ws.send(message)  # await websocket.send(message)
        except ConnectionClosed as closed:  # websockets.ConnectionClosedError
            print(f"server: lost the client ({closed.code})")


async def main():
    server = Server(on_upgrade=on_upgrade)
    async with anyio.create_task_group() as tg:
        # async with serve(handler, "127.0.0.1", 0) as server:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}/echo"
        # async with connect(url, subprotocols=["echo"]) as websocket:
        async with WebSocket.Client(url, ["echo"]) as ws:
            print("subprotocol:", ws.protocol)  # websocket.subprotocol
            await ws.send("hello")  # await websocket.send("hello")
            print("text:", await ws.receive())  # await websocket.recv()
            await ws.send(b"\x01\x02")
            print("binary:", await ws.receive())
            rtt = await ws.ping()  # pong_waiter = await websocket.ping(); await pong_waiter
            print("ping answered:", rtt >= 0)
            await ws.close(1000, "done")  # await websocket.close(1000, "done")
            print("closed:", ws.close_code, ws.close_reason)
            try:
                await ws.receive()
            except ConnectionClosedOK:  # websockets.ConnectionClosedOK
                print("receive after close: ConnectionClosedOK")
        try:
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/nowhere"):
                pass
        except HandshakeError as refused:  # websockets.InvalidStatus
            print("refused:", refused.status_code)
        await server.shutdown()  # server.close(); await server.wait_closed()


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
