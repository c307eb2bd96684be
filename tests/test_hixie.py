"""hixie-75 and hixie-76: the sans-IO state machine."""

from __future__ import annotations

import pytest

from faye_websocket._core.hixie import HixieProtocol, challenge_keys
from faye_websocket._core.websocket import CloseReceived, MessageReceived, ReadyState

# The example from draft-hixie-thewebsocketprotocol-76, section 1.3.
KEY1 = "18x 6]8vM;54 *(5:  {   U1]8  z [  8"
KEY2 = "1_ tx7X d  <  nw  334J702) 7]o}` 0"
KEY3 = b"Tm[K T2u"
ANSWER = b"fQJ,fN/4F4!~K~MH"


def test_challenge_from_the_draft() -> None:
    keys = challenge_keys(KEY1, KEY2)
    assert keys == (155712099, 173347027)
    core = HixieProtocol("hixie-76", keys=keys)
    assert core.state is ReadyState.CONNECTING
    core.receive_data(KEY3)
    assert core.data_to_send() == ANSWER
    assert core.state is ReadyState.OPEN  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(("key1", "key2"), [
    ("12 3", "no digits here "),  # no digits
    ("123", KEY2),  # no spaces
    ("1 0 1", KEY2),  # 101 is not a multiple of 2 spaces
])
def test_invalid_keys_are_refused(key1: str, key2: str) -> None:
    with pytest.raises(ValueError, match="invalid Sec-WebSocket-Key"):
        challenge_keys(key1, key2)


@pytest.mark.parametrize("split", [1, 3, 7])
def test_late_and_split_key3_holds_messages_until_the_answer(split: int) -> None:
    core = HixieProtocol("hixie-76", keys=challenge_keys(KEY1, KEY2))
    core.send_message("first")
    core.send_message("second")
    assert core.data_to_send() == b""  # held: the challenge is not answered yet
    core.receive_data(KEY3[:split])
    assert core.data_to_send() == b""
    assert core.state is ReadyState.CONNECTING
    core.receive_data(KEY3[split:] + b"\x00hel")
    assert core.data_to_send() == ANSWER + b"\x00first\xff\x00second\xff"
    core.receive_data(b"lo\xff")
    assert core.events_received() == [MessageReceived("hello")]


def test_hixie75_text_frames_and_skipped_binary_frames() -> None:
    core = HixieProtocol("hixie-75")
    assert core.state is ReadyState.OPEN
    # A length-prefixed frame (type 0x80, length 0x81 0x00 = 128) is skipped.
    data = b"\x00caf\xc3\xa9\xff" + b"\x80\x81\x00" + b"x" * 128 + b"\x00second\xff"
    for i in range(len(data)):  # any split gives the same messages
        core.receive_data(data[i : i + 1])
    assert core.events_received() == [MessageReceived("café"), MessageReceived("second")]


def test_garbage_between_frames_is_tolerated_as_the_reference_does() -> None:
    core = HixieProtocol("hixie-75")
    core.receive_data(b"\x00a\xff\x85\x02zz\x00b\xff")  # 0x85: a 2-byte skipped frame
    assert core.events_received() == [MessageReceived("a"), MessageReceived("b")]


def test_max_length_closes_while_the_frame_grows() -> None:
    core = HixieProtocol("hixie-75", max_length=5)
    core.receive_data(b"\x00abcde\xff")
    assert core.events_received() == [MessageReceived("abcde")]
    core.receive_data(b"\x00abc")
    core.receive_data(b"def")  # six bytes and still no 0xFF
    assert core.state is ReadyState.CLOSED
    assert core.close_code == 1009
    assert core.events_received() == []


def test_hixie76_closing_frame_is_answered() -> None:
    core = HixieProtocol("hixie-76", keys=challenge_keys(KEY1, KEY2))
    core.receive_data(KEY3 + b"\x00bye\xff\xff\x00")
    assert core.events_received() == [MessageReceived("bye"), CloseReceived(1000, "")]
    assert core.data_to_send() == ANSWER + b"\xff\x00"
    assert core.close_expected()


def test_close_sends_the_drafts_closing_frame() -> None:
    hixie76 = HixieProtocol("hixie-76", keys=challenge_keys(KEY1, KEY2))
    hixie76.receive_data(KEY3)
    hixie76.data_to_send()
    hixie76.send_close()
    assert hixie76.data_to_send() == b"\xff\x00"
    assert (hixie76.state, hixie76.close_code) == (ReadyState.CLOSED, 1000)
    hixie75 = HixieProtocol("hixie-75")
    hixie75.send_close()
    assert hixie75.data_to_send() == b""  # hixie-75 has no closing frame
    assert hixie75.close_expected()


def test_binary_and_ping_are_refused_clearly() -> None:
    core = HixieProtocol("hixie-75")
    with pytest.raises(TypeError, match="text only"):
        core.send_message(b"bytes")
    with pytest.raises(NotImplementedError, match="not supported on hixie-75"):
        core.send_ping(b"")


def test_eof_is_1006() -> None:
    core = HixieProtocol("hixie-75")
    core.receive_eof()
    assert core.close_code == 1006


# -- over real sockets, through the HTTP helper (both backends) -----------------

import anyio  # noqa: E402
import anyio.abc  # noqa: E402

from faye_websocket import Event, WebSocket  # noqa: E402
from faye_websocket._demo import demo_server  # noqa: E402
from faye_websocket.http import Request, Server  # noqa: E402

from .conftest import running  # noqa: E402

HIXIE76_REQUEST = (
    "GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key2: {KEY2}\r\nUpgrade: WebSocket\r\n"
    f"Sec-WebSocket-Key1: {KEY1}\r\nOrigin: http://example.com\r\n\r\n").encode()
HIXIE76_RESPONSE = (
    b"HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Origin: http://example.com\r\n"
    b"Sec-WebSocket-Location: ws://example.com/demo\r\n\r\n")
HIXIE75_REQUEST = (
    b"GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
    b"Host: example.com\r\nOrigin: http://example.com\r\n\r\n")
HIXIE75_RESPONSE = (
    b"HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
    b"Connection: Upgrade\r\nWebSocket-Origin: http://example.com\r\n"
    b"WebSocket-Location: ws://example.com/demo\r\n\r\n")


class Seen:
    def __init__(self) -> None:
        self.ws: WebSocket | None = None
        self.events: list[tuple[str, object]] = []
        self.done = anyio.Event()
        self.errors: list[BaseException] = []


def hixie_server(seen: Seen, **options: object) -> Server:
    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        ws = WebSocket(request, stream, body, **options)  # type: ignore[arg-type]
        seen.ws = ws

        def record(event: Event) -> None:
            seen.events.append((event.type, event.data if event.type == "message"
                                else event.code))

        for type in ("open", "close"):
            ws.on(type, record)
        try:
            async with ws:
                ws.send_nowait("welcome")  # before hixie-76 opens: held, then flushed
                with pytest.raises(TypeError, match="text only"):
                    await ws.send(b"binary")
                with pytest.raises(NotImplementedError, match="not supported"):
                    await ws.ping()
                await seen_open(ws)
                async for message in ws:
                    assert isinstance(message, str)  # the drafts carry text only
                    seen.events.append(("message", message))
                    await ws.send(f"echo {message}")
        except BaseException as exc:
            seen.errors.append(exc)
            raise
        finally:
            seen.done.set()

    return Server(on_upgrade=on_upgrade)


async def seen_open(ws: WebSocket) -> None:
    # A plain check: the object is usable before the challenge is answered.
    assert ws.version in ("hixie-75", "hixie-76")
    assert ws.protocol == "" and ws.extensions == ""


async def read_exactly(stream: anyio.abc.ByteStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return data


@pytest.mark.anyio
@pytest.mark.parametrize("delay", [False, True])
async def test_hixie76_handshake_echo_and_close(delay: bool) -> None:
    seen = Seen()
    async with running(hixie_server(seen)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                if delay:  # the 8 bytes come late, as through some proxies
                    await stream.send(HIXIE76_REQUEST + KEY3[:3])
                    assert await read_exactly(stream, len(HIXIE76_RESPONSE)) == \
                        HIXIE76_RESPONSE
                    assert seen.ws is not None and seen.ws.ready_state == WebSocket.CONNECTING
                    await stream.send(KEY3[3:])
                else:
                    await stream.send(HIXIE76_REQUEST + KEY3)
                    assert await read_exactly(stream, len(HIXIE76_RESPONSE)) == \
                        HIXIE76_RESPONSE
                assert await read_exactly(stream, 16) == ANSWER
                assert await read_exactly(stream, 9) == b"\x00welcome\xff"
                await stream.send(b"\x00hi \xc3\xa9\xff")
                assert await read_exactly(stream, 12) == b"\x00echo hi \xc3\xa9\xff"
                await stream.send(b"\xff\x00")
                assert await read_exactly(stream, 2) == b"\xff\x00"
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
            await seen.done.wait()
    assert seen.ws is not None and seen.ws.version == "hixie-76"
    assert seen.ws.url == "ws://example.com/demo"
    assert seen.events == [("open", None), ("message", "hi é"), ("close", 1000)]
    assert seen.errors == []


@pytest.mark.anyio
async def test_hixie76_server_close_sends_the_closing_frame() -> None:
    seen = Seen()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        async with WebSocket(request, stream, body) as ws:
            seen.ws = ws
            await ws.close()
            assert ws.close_code == 1000
        seen.done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE76_REQUEST + KEY3)
                await read_exactly(stream, len(HIXIE76_RESPONSE) + 16)
                assert await read_exactly(stream, 2) == b"\xff\x00"
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
            await seen.done.wait()


@pytest.mark.anyio
async def test_hixie76_bad_keys_get_400() -> None:
    seen = Seen()
    async with running(hixie_server(seen)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE76_REQUEST.replace(KEY1.encode(), b"1 0 1") + KEY3)
                response = b""
                try:
                    while True:
                        response += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
            await seen.done.wait()
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert response.endswith(b"Client sent invalid Sec-WebSocket-Key headers")


@pytest.mark.anyio
async def test_hixie75_echo_oversize_and_abrupt_disconnect() -> None:
    seen = Seen()
    async with running(hixie_server(seen, max_length=10)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE75_REQUEST)
                assert await read_exactly(stream, len(HIXIE75_RESPONSE)) == HIXIE75_RESPONSE
                assert await read_exactly(stream, 9) == b"\x00welcome\xff"
                await stream.send(b"\x80\x02zz\x00ok\xff")  # a skipped frame, then text
                assert await read_exactly(stream, 9) == b"\x00echo ok\xff"
                await stream.send(b"\x00" + b"x" * 11)  # grows past max_length
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
            await seen.done.wait()
    assert seen.events[-1] == ("close", 1009)

    seen = Seen()
    async with running(hixie_server(seen)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE75_REQUEST)
                await read_exactly(stream, len(HIXIE75_RESPONSE) + 9)
            await seen.done.wait()  # the client vanished
    assert seen.events[-1] == ("close", 1006)


@pytest.mark.anyio
async def test_the_demo_answers_a_hixie76_client() -> None:
    async with running(demo_server()) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE76_REQUEST + KEY3 + b"\x00hello demo\xff")
                assert await read_exactly(stream, len(HIXIE76_RESPONSE) + 16) == \
                    HIXIE76_RESPONSE + ANSWER
                assert await read_exactly(stream, 12) == b"\x00hello demo\xff"
                await stream.send(b"\xff\x00")
                assert await read_exactly(stream, 2) == b"\xff\x00"
