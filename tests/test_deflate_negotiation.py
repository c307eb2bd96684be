"""permessage-deflate negotiation matrix (RFC 7692 section 7.1).

Every window-bits offer and answer, with and without context takeover each
way, between:

* our client core and our server core (sans-IO, through the real handshake
  code), window bits 8-15;
* our server and websockets' client, and our client and websockets' server,
  over loopback sockets on both backends. websockets' side is its sans-IO
  protocol (``ClientProtocol``/``ServerProtocol``) driven over an anyio
  stream, so it runs on trio as on asyncio; websockets cannot build an 8-bit
  compressor, so its values stay in 9-15;
* our server and the Node reference's client (faye-websocket 0.11.4 with
  permessage-deflate 0.1.7), window bits 9-15;
* our client and the Node reference's server (``interop/deflate_server.js``,
  one process per server configuration): each of its options alone (window
  bits 8-15) and all at once, against each of our client's options alone.
  The offer and the answer are checked against RFC 7692 and
  permessage-deflate's source. It leaves ``server_max_window_bits`` out of
  its answer when it would be 15, even when asked for it, so a client
  asking for 15 must fail the connection: RFC 7692 section 7.1.2.1 says a
  server accepts that parameter only by including it.

Each connection echoes messages that refer back further than a 13-bit
window (8 KiB) into the previous message, and messages that only compress
against the previous one, so a side compressing with a larger window than
its peer inflates with, or keeping context the other side dropped, fails
the exchange. Against the Node server it also echoes empty messages, text
past ASCII and 200 KiB of JSON twice, compared byte for byte.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from faye_websocket import HandshakeError, PerMessageDeflate, WebSocket
from faye_websocket._core.client_handshake import ClientHandshake
from faye_websocket._core.deflate import DeflateSession
from faye_websocket._core.http import Headers, Request, parse_extension_header
from faye_websocket._core.server_handshake import Accepted, server_handshake
from faye_websocket._core.url import Target
from faye_websocket._core.websocket import MessageReceived, WebSocketProtocol
from faye_websocket.http import Server

from .helpers import SECOND, running, stop_process
from .test_interop import INTEROP, node_command

TIMEOUT = 20 * SECOND
#: The window our default PerMessageDeflate() compresses with and grants a
#: client that offers client_max_window_bits (docs/compression.md).
DEFAULT_BITS = 12
_rng = random.Random(19)
#: Base64 of random bytes: compressible (64 byte values; random bytes would
#: be sent uncompressed, see skip_incompressible), but only to about 3/4.
_BLOCK = base64.b64encode(_rng.randbytes(7_500))
#: Repeats 10,000 bytes apart: only a window over 13 bits finds them.
FAR = _BLOCK + _BLOCK
#: Text that compresses against itself only through context takeover.
CHAT = '{"type":"message","room":"general","user":{"id":1042,"name":"alice"},' \
       '"text":"' + " ".join(_rng.choice(["ship", "it", "today", "ok"]) for _ in range(30)) + '"}'
MESSAGES: list[str | bytes] = [FAR, CHAT, CHAT, "tiny", FAR[:9000] + _BLOCK[:9000]]


def _bits_or(params: dict[str, str | None], key: str, default: int) -> int:
    value = params.get(key)
    return int(value) if value else default


def expected_answer(offer: dict[str, str | None]) -> dict[str, str | None]:
    """What our server answers, with its default ``PerMessageDeflate()``."""
    answer: dict[str, str | None] = {}
    for key in ("server_no_context_takeover", "client_no_context_takeover"):
        if key in offer:
            answer[key] = None
    for key in ("server_max_window_bits", "client_max_window_bits"):
        if key in offer:
            answer[key] = str(min(DEFAULT_BITS, _bits_or(offer, key, 15)))
    return answer


def header_params(header: str) -> dict[str, str | None]:
    [(name, params)] = parse_extension_header(header)
    assert name == "permessage-deflate"
    return params or {}


# -- sans-IO: our client core and our server core ------------------------------

OUR_CLIENTS = [
    PerMessageDeflate(max_window_bits=own, request_max_window_bits=peer,
                      no_context_takeover=own_reset, request_no_context_takeover=peer_reset)
    for own, peer, own_reset, peer_reset in itertools.product(
        [None, *range(8, 16)], [None, *range(8, 16)], [False, True], [False, True])
]


def negotiate(client: PerMessageDeflate, server: PerMessageDeflate,
              ) -> tuple[WebSocketProtocol, WebSocketProtocol, str, DeflateSession]:
    handshake = ClientHandshake(Target(secure=False, host="example.com", port=80),
                                extensions=[client])
    request = Request.build("GET", "/", handshake.request_headers())
    result = server_handshake(request, extensions=[server])
    assert isinstance(result, Accepted)
    lines = result.response.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines)]
    _protocol, extensions, sessions = handshake.check_response(101, headers)
    return (WebSocketProtocol(client=True, extensions=sessions),
            WebSocketProtocol(client=False, extensions=result.sessions),
            extensions, result.sessions[0])


@pytest.mark.parametrize("client", OUR_CLIENTS, ids=repr)
def test_our_cores_negotiate_every_offer(client: PerMessageDeflate) -> None:
    client_core, server_core, extensions, session = negotiate(client, PerMessageDeflate())
    offer = client.offer()
    if client.no_context_takeover:
        offer["client_no_context_takeover"] = None
    answer = header_params(extensions)
    assert answer == expected_answer(offer)
    # The server inflates with the window it granted, not always 15 bits.
    assert session.params.inbound_bits == _bits_or(answer, "client_max_window_bits", 15)
    assert session.params.outbound_bits == _bits_or(answer, "server_max_window_bits", DEFAULT_BITS)
    for sender, receiver in ((client_core, server_core), (server_core, client_core)):
        for message in MESSAGES:
            sender.send_message(message)
        receiver.receive_data(sender.data_to_send())
        assert receiver.events_received() == [MessageReceived(m) for m in MESSAGES]


@pytest.mark.parametrize("server", [
    PerMessageDeflate(max_window_bits=own, request_max_window_bits=peer,
                      no_context_takeover=own_reset, request_no_context_takeover=peer_reset)
    for own, peer, own_reset, peer_reset in itertools.product(
        [None, 8, 12, 15], [None, 8, 12, 15], [False, True], [False, True])
], ids=repr)
def test_our_server_configs_against_our_default_client(server: PerMessageDeflate) -> None:
    client_core, server_core, extensions, session = negotiate(PerMessageDeflate(), server)
    answer = header_params(extensions)
    # The default client offers a bare client_max_window_bits only.
    granted = server.request_max_window_bits or DEFAULT_BITS
    assert answer.get("client_max_window_bits") == str(granted)
    assert "server_max_window_bits" not in answer
    assert ("server_no_context_takeover" in answer) == server.no_context_takeover
    assert ("client_no_context_takeover" in answer) == server.request_no_context_takeover
    for sender, receiver in ((client_core, server_core), (server_core, client_core)):
        for message in MESSAGES:
            sender.send_message(message)
        receiver.receive_data(sender.data_to_send())
        assert receiver.events_received() == [MessageReceived(m) for m in MESSAGES]


# -- websockets' sans-IO protocol over anyio streams ---------------------------


async def _flush(stream: anyio.abc.ByteStream, proto: ClientProtocol | ServerProtocol) -> None:
    for data in proto.data_to_send():
        if data:
            await stream.send(data)
        else:
            await stream.send_eof()


async def _events(stream: anyio.abc.ByteStream, proto: ClientProtocol | ServerProtocol,
                  ) -> list[Any]:
    """Read until websockets has events (or the stream ended)."""
    while True:
        events = proto.events_received()
        if events:
            return events
        try:
            data = await stream.receive()
        except anyio.EndOfStream:
            proto.receive_eof()
            return proto.events_received()
        proto.receive_data(data)
        await _flush(stream, proto)


def _message(frame: Frame) -> str | bytes:
    assert frame.fin
    data = bytes(frame.data)
    return data.decode() if frame.opcode is Opcode.TEXT else data


async def websockets_client_exchange(port: int, factory: ClientPerMessageDeflateFactory,
                                     messages: list[str | bytes] = MESSAGES) -> str | None:
    """Connect with websockets' client, echo ``messages``; returns the
    negotiated extensions header (``None``: no compression)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"), extensions=[factory],
                               max_size=None)
        proto.send_request(proto.connect())
        await _flush(stream, proto)
        [response] = await _events(stream, proto)
        assert isinstance(response, WsResponse) and response.status_code == 101, response
        assert proto.handshake_exc is None, proto.handshake_exc
        for message in messages:
            if isinstance(message, str):
                proto.send_text(message.encode())
            else:
                proto.send_binary(message)
        await _flush(stream, proto)
        echoed: list[str | bytes] = []
        while len(echoed) < len(messages):
            echoed += [_message(f) for f in await _events(stream, proto)]
        assert echoed == messages
        proto.send_close(1000)
        await _flush(stream, proto)
        while not proto.close_expected():
            await _events(stream, proto)
        header = response.headers.get("Sec-WebSocket-Extensions")
        return header


@asynccontextmanager
async def our_echo_server(config: PerMessageDeflate) -> AsyncIterator[int]:
    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body, extensions=[config]) as ws:
            async for message in ws:
                await ws.send(message)

    async with running(Server(on_upgrade=on_upgrade)) as port:
        yield port


WEBSOCKETS_OFFERS = list(itertools.product(
    [False, True], [False, True], [None, *range(9, 16)], [None, True, *range(9, 16)]))


@pytest.mark.anyio
async def test_our_server_against_every_websockets_client_offer() -> None:
    with anyio.fail_after(TIMEOUT * 3):
        async with our_echo_server(PerMessageDeflate()) as port:
            for server_reset, client_reset, server_bits, client_bits in WEBSOCKETS_OFFERS:
                factory = ClientPerMessageDeflateFactory(
                    server_no_context_takeover=server_reset,
                    client_no_context_takeover=client_reset,
                    server_max_window_bits=server_bits, client_max_window_bits=client_bits)
                header = await websockets_client_exchange(port, factory)
                assert header is not None
                offer = dict(factory.get_request_params())
                assert header_params(header) == expected_answer(offer), offer


@asynccontextmanager
async def websockets_echo_server(factory: ServerPerMessageDeflateFactory,
                                 ) -> AsyncIterator[int]:
    """websockets' server protocol, echoing, one connection at a time."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            proto = ServerProtocol(extensions=[factory], max_size=None)
            [request] = await _events(stream, proto)
            assert isinstance(request, WsRequest)
            proto.send_response(proto.accept(request))
            await _flush(stream, proto)
            while not proto.close_expected():
                for frame in await _events(stream, proto):
                    if frame.opcode is Opcode.TEXT:
                        proto.send_text(frame.data)
                    elif frame.opcode is Opcode.BINARY:
                        proto.send_binary(frame.data)
                await _flush(stream, proto)
                if proto.state.name == "CLOSED":
                    break

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, \
            anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


async def our_client_exchange(port: int, config: PerMessageDeflate) -> str:
    async with WebSocket.Client(f"ws://127.0.0.1:{port}/", extensions=[config]) as ws:
        for message in MESSAGES:
            await ws.send(message)
        echoed = [await ws.receive() for _ in MESSAGES]
        assert echoed == MESSAGES
        return ws.extensions


WEBSOCKETS_SERVERS = [
    ServerPerMessageDeflateFactory(server_no_context_takeover=server_reset,
                                   client_no_context_takeover=client_reset,
                                   server_max_window_bits=server_bits,
                                   client_max_window_bits=client_bits)
    for server_reset, client_reset, server_bits, client_bits in itertools.product(
        [False, True], [False, True], [None, 9, 12, 15], [None, 9, 13, 15])
]


#: Our client configurations tried against other servers: each option alone.
CLIENT_CONFIGS = [
    PerMessageDeflate(),
    *[PerMessageDeflate(max_window_bits=b) for b in range(9, 16)],
    *[PerMessageDeflate(request_max_window_bits=b) for b in range(9, 16)],
    PerMessageDeflate(no_context_takeover=True),
    PerMessageDeflate(request_no_context_takeover=True),
]


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENT_CONFIGS, ids=repr)
async def test_our_client_against_websockets_servers(client: PerMessageDeflate) -> None:
    servers = WEBSOCKETS_SERVERS if client == PerMessageDeflate() else WEBSOCKETS_SERVERS[:1]
    with anyio.fail_after(TIMEOUT * 2):
        for factory in servers:
            async with websockets_echo_server(factory) as port:
                header = await our_client_exchange(port, client)
            assert header.startswith("permessage-deflate"), (factory, header)
            answer = header_params(header)
            if client.request_max_window_bits is not None:
                assert int(answer["server_max_window_bits"] or 0) <= client.request_max_window_bits
            if client.request_no_context_takeover:
                assert "server_no_context_takeover" in answer


# -- the Node reference --------------------------------------------------------

NODE_SCRIPT = Path(__file__).parent / "interop" / "deflate_matrix.js"
NODE_CONFIGS = [
    {"maxWindowBits": own, "requestMaxWindowBits": peer, "noContextTakeover": own_reset,
     "requestNoContextTakeover": peer_reset}
    for own, peer, own_reset, peer_reset in itertools.product(
        [None, 9, 13, 15], [None, 9, 12, 15], [False, True], [False, True])
]


@pytest.mark.anyio
async def test_our_server_against_the_node_client_offers() -> None:
    node = node_command()
    assert INTEROP.is_dir()
    messages = [{"text": m} if isinstance(m, str) else {"hex": m.hex()} for m in MESSAGES]
    with anyio.fail_after(TIMEOUT * 3):
        async with our_echo_server(PerMessageDeflate()) as port:
            configs = [{k: v for k, v in c.items() if v is not None} for c in NODE_CONFIGS]
            spec = json.dumps({"url": f"ws://127.0.0.1:{port}/", "configs": configs,
                               "messages": messages})
            result = await anyio.run_process([node, str(NODE_SCRIPT)], input=spec.encode(),
                                             stderr=subprocess.STDOUT, check=False)
    assert result.returncode == 0, result.stdout.decode(errors="replace")
    reports = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(reports) == len(configs)
    for config, report in zip(configs, reports, strict=True):
        assert report["ok"], (config, report)
        answer = header_params(report["extensions"])
        if "requestMaxWindowBits" in config:  # Node offers server_max_window_bits
            asked = config["requestMaxWindowBits"]
            assert answer["server_max_window_bits"] == str(min(DEFAULT_BITS, asked))
        # Node always offers client_max_window_bits (with its own limit, if any).
        own = config.get("maxWindowBits", 15)
        assert answer["client_max_window_bits"] == str(min(DEFAULT_BITS, own))


# -- our client against the Node reference server ------------------------------

NODE_SERVER_JS = Path(__file__).parent / "interop" / "deflate_server.js"
#: The Node server's permessage-deflate options, each alone, then all at once.
#: permessage-deflate takes maxWindowBits 8 and compresses with 9 (zlib's
#: smallest raw window), as we do.
NODE_SERVERS: list[dict[str, int | bool]] = [
    {},
    *[{"maxWindowBits": b} for b in range(8, 16)],
    {"noContextTakeover": True},
    {"requestNoContextTakeover": True},
    *[{"requestMaxWindowBits": b} for b in range(8, 16)],
    {"maxWindowBits": 10, "requestMaxWindowBits": 11, "noContextTakeover": True,
     "requestNoContextTakeover": True},
]
#: 200 KiB of chat JSON: compressible, and long enough to span many windows.
BIG = "\n".join(CHAT.replace("1042", str(i)) for i in range(1200))[:200 * 1024]
#: MESSAGES, then empty ones, text past ASCII, and BIG twice in a row.
NODE_MESSAGES: list[str | bytes] = [
    *MESSAGES, "", b"", "héllo wörld ✓ — 日本語 🚀", BIG, CHAT, BIG, bytes(range(256)) * 4,
]


def _config_id(config: dict[str, int | bool]) -> str:
    return ",".join(k if v is True else f"{k}={v}" for k, v in config.items()) or "default"


def our_offer(client: PerMessageDeflate) -> dict[str, str | None]:
    """The offer :class:`PerMessageDeflate`'s options stand for (RFC 7692
    section 7.1), written from its docstring."""
    offer: dict[str, str | None] = {}
    if client.no_context_takeover:
        offer["client_no_context_takeover"] = None
    if client.request_no_context_takeover:
        offer["server_no_context_takeover"] = None
    # Always sent: a client can honour any cap on its own window.
    offer["client_max_window_bits"] = (None if client.max_window_bits is None
                                       else str(client.max_window_bits))
    if client.request_max_window_bits is not None:
        offer["server_max_window_bits"] = str(client.request_max_window_bits)
    return offer


def node_answer(server: dict[str, int | bool], offer: dict[str, str | None],
                ) -> dict[str, str | None]:
    """What permessage-deflate 0.1.7 answers ``offer`` with, configured with
    ``server`` (``ServerSession.generateResponse`` in
    ``node_modules/permessage-deflate/lib/server_session.js``)."""
    answer: dict[str, str | None] = {}
    # 7.1.1.1 and 7.1.1.2: no context takeover when either side wants it.
    if server.get("noContextTakeover") or "server_no_context_takeover" in offer:
        answer["server_no_context_takeover"] = None
    if server.get("requestNoContextTakeover") or "client_no_context_takeover" in offer:
        answer["client_no_context_takeover"] = None
    # 7.1.2.1: its own window, capped by the offer. Node names it only when
    # asked *and* below 15, so an offer of 15 gets no answer at all, which
    # RFC 7692 does not allow ("A server accepts ... by including").
    own = min(int(server.get("maxWindowBits", 15)), _bits_or(offer, "server_max_window_bits", 15))
    if "server_max_window_bits" in offer and own < 15:
        answer["server_max_window_bits"] = str(own)
    # 7.1.2.2: the client's window, capped by the offer (a bare
    # client_max_window_bits means 15), named only below 15.
    peer = min(int(server.get("requestMaxWindowBits", 15)),
               _bits_or(offer, "client_max_window_bits", 15))
    if peer < 15:
        answer["client_max_window_bits"] = str(peer)
    return answer


def refusal(client: PerMessageDeflate, answer: dict[str, str | None]) -> str | None:
    """Why our client must fail a connection with ``answer`` (RFC 7692
    section 7.1: the response breaks a request of the offer), or ``None``."""
    if client.request_no_context_takeover and "server_no_context_takeover" not in answer:
        return "server did not accept server_no_context_takeover"
    if client.request_max_window_bits is not None:
        if "server_max_window_bits" not in answer:
            return "server did not accept server_max_window_bits"
        if _bits_or(answer, "server_max_window_bits", 15) > client.request_max_window_bits:
            return "server_max_window_bits above the requested value"
    return None


@asynccontextmanager
async def node_deflate_server(config: dict[str, int | bool]) -> AsyncIterator[int]:
    """``deflate_server.js`` with ``config``, for the block; yields its port."""
    node = node_command()
    process = await anyio.open_process([node, str(NODE_SERVER_JS), json.dumps(config)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        try:
            line = await stdout.receive_until(b"\n", 4096)
        except (anyio.IncompleteRead, anyio.EndOfStream):
            line = bytes(stdout.buffer)
        assert line.startswith(b"listening "), line.decode(errors="replace")
        yield int(line.split()[1])
    finally:
        await stop_process(process)


@pytest.mark.anyio
@pytest.mark.parametrize("server", NODE_SERVERS, ids=_config_id)
async def test_our_client_against_the_node_server(server: dict[str, int | bool]) -> None:
    with anyio.fail_after(TIMEOUT):
        async with node_deflate_server(server) as port:
            url = f"ws://127.0.0.1:{port}/"
            for client in CLIENT_CONFIGS:
                offer = our_offer(client)
                answer = node_answer(server, offer)
                why = refusal(client, answer)
                if why is not None:
                    with pytest.raises(HandshakeError, match=why) as failed:
                        async with WebSocket.Client(url, extensions=[client]):
                            pass
                    headers = Headers(failed.value.headers)
                else:
                    async with WebSocket.Client(url, extensions=[client]) as ws:
                        headers = ws.headers
                        for message in NODE_MESSAGES:
                            await ws.send(message)
                        for message in NODE_MESSAGES:
                            echoed = await ws.receive()
                            assert type(echoed) is type(message), (client, message[:20])
                            assert echoed == message, (client, message[:20])
                        assert ws.extensions == headers["Sec-WebSocket-Extensions"]
                assert header_params(headers["X-Offer"]) == offer, client
                assert header_params(headers["Sec-WebSocket-Extensions"]) == answer, client
