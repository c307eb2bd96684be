"""A chat that every process sharing one Redis takes part in
(docs/tutorial-chat.md).

Run ``python chat.py 7001 redis://127.0.0.1:6379/0`` and, in another
terminal, ``python chat.py 7002 redis://127.0.0.1:6379/0``; open
http://127.0.0.1:7001/ and http://127.0.0.1:7002/. Without the Redis URL the
chat stays in its one process.
"""

import sys

import anyio

from faye_websocket import Hub, WebSocket
from faye_websocket.http import Server

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Chat</title>
<p id="state">connecting</p>
<form id="form"><input id="text" autocomplete="off"> <button>Send</button></form>
<ul id="log"></ul>
<script>
  const ws = new WebSocket(`ws://${location.host}/chat`);
  ws.onopen = () => { document.getElementById("state").textContent = "open"; };
  ws.onclose = (event) => {
    document.getElementById("state").textContent = `closed (${event.code})`;
  };
  ws.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("log").append(item);
  };
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("text");
    ws.send(text.value);
    text.value = "";
  };
</script>
"""


def chat_server(hub):
    """An HTTP server with the page at / and the chat's WebSocket at /chat."""

    async def on_request(request, response):
        if request.path == "/":
            response.write_head(200, {"Content-Type": "text/html; charset=utf-8"})
            await response.end(PAGE)
        else:
            response.write_head(404, {"Content-Type": "text/plain; charset=utf-8"})
            await response.end("Not found\n")

    async def on_upgrade(request, stream, body):
        ws = WebSocket(request, stream, body, max_length=4096)
        if request.path != "/chat":
            await ws.reject(404, body="no WebSocket here\n")
            return
        async with ws, hub.subscribe(ws, "chat"):
            async for message in ws:
                if isinstance(message, str):        # a chat is text: bytes are ignored
                    await hub.publish("chat", message)

    return Server(on_request=on_request, on_upgrade=on_upgrade)


async def main(port, redis_url=None):
    hub = Hub(redis=redis_url)
    server = chat_server(hub)
    async with hub, anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", port)
        print(f"open http://127.0.0.1:{port}/", flush=True)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
