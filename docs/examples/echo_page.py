"""An echo server and a browser page (docs/tutorial-echo.md).

Run it with ``python echo_page.py`` (or ``python echo_page.py 7001`` for
another port; ``0`` picks a free one) and open http://127.0.0.1:7000/.
"""

import sys

import anyio

from faye_websocket import WebSocket
from faye_websocket.http import Server

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Echo</title>
<p id="state">connecting</p>
<form id="form"><input id="text" autocomplete="off"> <button>Send</button></form>
<ul id="log"></ul>
<script>
  const log = (line) => {
    const item = document.createElement("li");
    item.textContent = line;
    document.getElementById("log").append(item);
  };
  const ws = new WebSocket(`ws://${location.host}/echo`);
  ws.onopen = () => { document.getElementById("state").textContent = "open"; };
  ws.onmessage = (event) => log(`< ${event.data}`);
  ws.onclose = (event) => {
    document.getElementById("state").textContent = `closed (${event.code})`;
  };
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("text");
    ws.send(text.value);
    log(`> ${text.value}`);
    text.value = "";
  };
</script>
"""


async def on_request(request, response):
    """Plain HTTP requests: the page at /, 404 for anything else."""
    if request.path == "/":
        response.write_head(200, {"Content-Type": "text/html; charset=utf-8"})
        await response.end(PAGE)
    else:
        response.write_head(404, {"Content-Type": "text/plain; charset=utf-8"})
        await response.end("Not found\n")


async def on_upgrade(request, stream, body):
    """Upgrade requests: a WebSocket at /echo that sends every message back."""
    ws = WebSocket(request, stream, body)
    if request.path != "/echo":
        await ws.reject(404, body="no WebSocket here\n")
        return
    async with ws:
        async for message in ws:
            await ws.send(message)


async def main(port):
    server = Server(on_request=on_request, on_upgrade=on_upgrade)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", port)
        print(f"open http://127.0.0.1:{port}/", flush=True)


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 7000)
