"""Refusing and authenticating WebSocket upgrades (docs/howto-authenticate.md).

Run it with ``python authenticate.py``: it serves ``/chat`` on a free port,
tries a few clients against it and prints what each one got.
"""

from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

import anyio

from faye_websocket import WebSocket
from faye_websocket.exceptions import HandshakeError
from faye_websocket.http import Server

# Stand-ins for your session store and your site's origins.
SESSIONS = {"s3cret-token": "alice"}
ORIGINS = ["https://example.com"]
# Our subprotocols, best first: the server's preference decides.
SUPPORTED = ["chat.v2", "chat.v1"]


def user_for(request):
    """The user named by ``?token=...`` or by the ``session`` cookie, or None."""
    token = parse_qs(urlsplit(request.target).query).get("token", [""])[0]
    if not token:
        cookies = SimpleCookie()
        try:
            cookies.load(request.header("cookie") or "")
        except CookieError:
            return None
        token = cookies["session"].value if "session" in cookies else ""
    return SESSIONS.get(token)


def choose_protocol(request):
    """Our first subprotocol that the client offers, or None."""
    offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",")]
    return next((p for p in SUPPORTED if p in offered), None)


async def on_upgrade(request, stream, body):
    protocol = choose_protocol(request)
    ws = WebSocket(request, stream, body, [protocol] if protocol else None,
                   allowed_origins=ORIGINS)
    if request.path != "/chat":
        await ws.reject(404, body="no WebSocket here\n")
        return
    user = user_for(request)
    if user is None:
        await ws.reject(401, {"WWW-Authenticate": 'Bearer realm="chat"'}, "log in first\n")
        return
    if protocol is None:
        await ws.reject(400, body=f"offer one of {', '.join(SUPPORTED)}\n")
        return
    # Entering answers 403 to an Origin that is not in ORIGINS (the handler
    # then raises HandshakeError, which the server logs at debug level).
    async with ws:
        await ws.send(f"hello {user}, we speak {ws.protocol}")
        async for message in ws:
            await ws.send(message)


async def attempt(url, protocols=None, headers=None):
    """One client: print the greeting, or the refusal's status and body."""
    try:
        async with WebSocket.Client(url, protocols, headers=headers) as ws:
            print(await ws.receive())
    except HandshakeError as refused:
        body = refused.body.decode().strip()
        print(f"refused: {refused.status_code} {body}".strip())


async def main():
    server = Server(on_upgrade=on_upgrade)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        chat = f"ws://127.0.0.1:{port}/chat"
        site = {"Origin": "https://example.com"}
        await attempt(chat, ["chat.v1"], site)
        await attempt(f"{chat}?token=s3cret-token", ["chat.v1"], site)
        await attempt(chat, ["chat.v1", "chat.v2"], {**site, "Cookie": "session=s3cret-token"})
        await attempt(chat, ["irc"], {**site, "Cookie": "session=s3cret-token"})
        await attempt(f"{chat}?token=s3cret-token", ["chat.v1"],
                      {"Origin": "https://evil.example"})
        await server.shutdown()


if __name__ == "__main__":
    anyio.run(main)
