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

from faye_websocket import ConnectionClosedError, Event, HandshakeError, WebSocket  # noqa: E402
from faye_websocket._demo import demo_server  # noqa: E402
from faye_websocket.http import Request, Server  # noqa: E402

from .helpers import read_to_eof, running  # noqa: E402

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
        ws = WebSocket(request, stream, body, drafts=True,
                       **options)  # type: ignore[arg-type]
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
        async with WebSocket(request, stream, body, drafts=True) as ws:
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


# -- hostile draft clients (issue 14) -------------------------------------------


def test_a_length_prefix_past_max_length_closes_with_1009() -> None:
    # Each length byte with the high bit set used to grow an ever larger
    # integer (quadratic time); now the frame is refused once its length
    # passes max_length, after a few bytes.
    core = HixieProtocol("hixie-75", max_length=1000)
    core.receive_data(b"\x80" + b"\xff" * 4096)
    assert (core.state, core.close_code) == (ReadyState.CLOSED, 1009)
    assert core.events_received() == []
    # A skipped frame of exactly max_length bytes is still fine.
    core = HixieProtocol("hixie-75", max_length=200)
    core.receive_data(b"\x80\x81\x48" + b"x" * 200 + b"\x00ok\xff")
    assert core.events_received() == [MessageReceived("ok")]


def test_fail_records_its_code_and_sends_the_closing_frame() -> None:
    core = HixieProtocol("hixie-76", keys=challenge_keys(KEY1, KEY2))
    core.receive_data(KEY3)
    core.data_to_send()
    core.fail(1011, "idle")
    assert core.data_to_send() == b"\xff\x00"
    assert (core.state, core.close_code, core.close_reason) == (ReadyState.CLOSED, 1011, "idle")


def hybi_request() -> bytes:
    return (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n")


async def read_head(stream: anyio.abc.ByteStream) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive(1)
    return head


@pytest.mark.anyio
async def test_endless_length_prefix_leaves_other_clients_served() -> None:
    # 256 KiB of length bytes from one draft client froze the whole server
    # for about 9 s; it is now closed with 1009 after a few bytes, and
    # another client's handshake and echo go on meanwhile.
    seen = Seen()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        ws = WebSocket(request, stream, body, drafts=True, max_length=2**20)
        if ws.request.header("sec-websocket-key") is None:
            seen.ws = ws
            ws.on("close", lambda event: seen.events.append(("close", event.code)))
        try:
            async with ws:
                async for message in ws:
                    await ws.send(message)
        except ConnectionClosedError:
            pass  # the attacker: closed with 1009
        finally:
            if ws is seen.ws:
                seen.done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            attacker = await anyio.connect_tcp("127.0.0.1", port)
            async with attacker:
                await attacker.send(HIXIE75_REQUEST)
                await read_exactly(attacker, len(HIXIE75_RESPONSE))
                await attacker.send(b"\x80" + b"\xff" * (256 * 1024))
                other = await anyio.connect_tcp("127.0.0.1", port)
                async with other:
                    with anyio.fail_after(2):  # was ~9 s
                        await other.send(hybi_request())
                        assert (await read_head(other)).startswith(b"HTTP/1.1 101")
                        await other.send(b"\x81\x82\x00\x00\x00\x00hi")  # masked, zero key
                        assert await read_exactly(other, 4) == b"\x81\x02hi"
                await seen.done.wait()
                assert await read_to_eof(attacker) == b""
    assert seen.events == [("close", 1009)]


@pytest.mark.anyio
async def test_hixie76_sends_before_the_challenge_wait_past_write_limit() -> None:
    # Messages sent before the 8 challenge bytes are held; send() used to
    # return at once however many were held (187 MiB in one test).
    sent = 0
    buffered: list[int] = []
    done = anyio.Event()
    opened: list[WebSocket] = []

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        nonlocal sent
        async with WebSocket(request, stream, body, drafts=True, write_limit=65536) as ws:
            opened.append(ws)
            for _ in range(20):
                await ws.send("x" * 65536)
                sent += 1
                buffered.append(ws.buffered_amount)
        done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE76_REQUEST)  # no challenge bytes yet
                await read_exactly(stream, len(HIXIE76_RESPONSE))
                await anyio.sleep(0.3)  # room for the handler to run ahead
                assert opened and opened[0].ready_state is WebSocket.CONNECTING
                assert sent <= 1
                assert opened[0].buffered_amount <= 2 * (65536 + 2)
                await stream.send(KEY3)
                assert await read_exactly(stream, 16) == ANSWER
                received = await read_exactly(stream, 20 * (65536 + 2))
                assert received == b"\x00" + b"x" * 65536 + b"\xff" + received[65538:]
                await stream.send(b"\xff\x00")
            await done.wait()
    assert sent == 20
    assert max(buffered) <= 2 * (65536 + 2)


@pytest.mark.anyio
async def test_hixie76_without_its_challenge_is_dropped_after_open_timeout() -> None:
    seen = Seen()
    async with running(hixie_server(seen, open_timeout=0.3)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE76_REQUEST)
                await read_exactly(stream, len(HIXIE76_RESPONSE))
                assert await read_to_eof(stream) == b""
            await seen.done.wait()
    assert seen.events == [("close", 1006)]  # never opened


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["hixie-75", "hixie-76"])
async def test_a_silent_draft_peer_is_dropped_by_the_idle_timeout(version: str) -> None:
    # The drafts have no ping: with ping=0.2 (ping_timeout defaulting to it),
    # a peer that sends nothing for 0.4 s is taken for gone.
    seen = Seen()
    errors: list[str] = []
    request, response = ((HIXIE76_REQUEST + KEY3, HIXIE76_RESPONSE + ANSWER)
                         if version == "hixie-76" else (HIXIE75_REQUEST, HIXIE75_RESPONSE))

    async def on_upgrade(req: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        ws = WebSocket(req, stream, body, drafts=True, ping=0.2)
        ws.on("error", lambda event: errors.append(event.message))
        ws.on("close", lambda event: seen.events.append(("close", event.code)))
        try:
            async with ws:
                async for message in ws:
                    await ws.send(message)
        except ConnectionClosedError as exc:
            seen.errors.append(exc)
        finally:
            seen.done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(request)
                await read_exactly(stream, len(response))
                # A peer that talks stays open past the idle timeout...
                for _ in range(6):
                    await anyio.sleep(0.1)
                    await stream.send(b"\x00hi\xff")
                    assert await read_exactly(stream, 4) == b"\x00hi\xff"
                assert seen.events == []
                # ...and one that goes quiet is dropped.
                received = await read_to_eof(stream)
            await seen.done.wait()
    assert received == (b"\xff\x00" if version == "hixie-76" else b"")
    assert seen.events == [("close", 1011)]
    assert errors == ["idle timeout: nothing received for 0.4 s"]
    assert len(seen.errors) == 1  # async for raised ConnectionClosedError(1011)


@pytest.mark.anyio
@pytest.mark.parametrize(("request_bytes", "version"), [
    (HIXIE75_REQUEST, "hixie-75"), (HIXIE76_REQUEST + KEY3, "hixie-76")])
async def test_drafts_are_refused_by_default_with_426(request_bytes: bytes,
                                                      version: str) -> None:
    errors: list[BaseException] = []
    done = anyio.Event()

    async def on_upgrade(request: Request, stream: anyio.abc.ByteStream, body: bytes) -> None:
        try:
            async with WebSocket(request, stream, body):
                pass
        except Exception as exc:
            errors.append(exc)
        finally:
            done.set()

    async with running(Server(on_upgrade=on_upgrade)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(request_bytes)
                response = await read_to_eof(stream)
            await done.wait()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13" in head
    assert body.decode() == (f"{version} is not accepted here; this server speaks RFC 6455 "
                             "(Sec-WebSocket-Version: 13)")
    assert len(errors) == 1 and isinstance(errors[0], HandshakeError)
    assert errors[0].status_code == 426


@pytest.mark.anyio
async def test_the_demo_refuses_drafts_when_asked() -> None:
    async with running(demo_server(drafts=False)) as port:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(HIXIE75_REQUEST)
                assert (await read_head(stream)).startswith(b"HTTP/1.1 426 ")
