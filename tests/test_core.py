"""The sans-IO core: bytes in, events out, no sockets and no tasks."""

from __future__ import annotations

import base64
import os
import struct
import subprocess
import sys
import zlib

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from faye_websocket import PerMessageDeflate
from faye_websocket._core.http import Headers, Request, parse_extension_header
from faye_websocket._core.server_handshake import Accepted, Rejected, accept_key, server_handshake
from faye_websocket._core.websocket import (
    CloseReceived,
    Failed,
    MessageReceived,
    PingReceived,
    PongReceived,
    ReadyState,
    WebSocketProtocol,
)

from .wsclient import raw_frame

KEY = base64.b64encode(b"0123456789abcdef").decode()


def upgrade(**headers: str) -> Request:
    base = {"Host": "example.com", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return Request.build("GET", "/chat?x=1", {k: v for k, v in base.items() if v})


def server(**options: int) -> WebSocketProtocol:
    return WebSocketProtocol(client=False, **options)  # type: ignore[arg-type]


# -- handshake ---------------------------------------------------------------


def test_accept_key_matches_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_handshake_response() -> None:
    result = server_handshake(upgrade(), protocols=["xmpp"])
    assert isinstance(result, Accepted)
    head = result.response.decode()
    assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert "Upgrade: websocket\r\n" in head
    assert "Connection: Upgrade\r\n" in head
    assert f"Sec-WebSocket-Accept: {accept_key(KEY)}\r\n" in head
    assert "Sec-WebSocket-Protocol" not in head
    assert head.endswith("\r\n\r\n")


def test_missing_key_is_400_with_plain_text_reason() -> None:
    result = server_handshake(upgrade(Sec_WebSocket_Key=""))
    assert isinstance(result, Rejected)
    assert result.status == 400
    head, _, body = result.response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"Content-Type: text/plain" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"Sec-WebSocket-Key" in body


def test_invalid_key_is_400() -> None:
    result = server_handshake(upgrade(Sec_WebSocket_Key="not base64!"))
    assert isinstance(result, Rejected) and result.status == 400


def test_wrong_version_is_426_naming_13() -> None:
    result = server_handshake(upgrade(Sec_WebSocket_Version="8"))
    assert isinstance(result, Rejected)
    assert result.status == 426
    assert b"Sec-WebSocket-Version: 13\r\n" in result.response
    assert result.response.endswith(b"Unsupported WebSocket version: 8")


def test_not_an_upgrade_is_400() -> None:
    result = server_handshake(Request.build("GET", "/", {"Host": "x"}))
    assert isinstance(result, Rejected) and result.status == 400
    post = Request.build("POST", "/", dict(upgrade().headers))
    assert isinstance(server_handshake(post), Rejected)


@pytest.mark.parametrize(
    ("offered", "supported", "chosen"),
    [
        ("irc, xmpp", ["xmpp", "irc"], "irc"),  # the client's order decides
        ("soap,xmpp", ["irc", "xmpp"], "xmpp"),
        ("soap", ["irc"], ""),
        ("", ["irc"], ""),
    ],
)
def test_subprotocol_choice(offered: str, supported: list[str], chosen: str) -> None:
    result = server_handshake(upgrade(Sec_WebSocket_Protocol=offered), protocols=supported)
    assert isinstance(result, Accepted)
    assert result.protocol == chosen
    if chosen:
        assert f"Sec-WebSocket-Protocol: {chosen}\r\n".encode() in result.response
    else:
        assert b"Sec-WebSocket-Protocol" not in result.response


def test_extension_header_grammar() -> None:
    offers = parse_extension_header(
        'permessage-deflate; client_max_window_bits, permessage-deflate;'
        ' server_max_window_bits="10" , x-foo;a=1;a=2, ,')
    assert offers == [
        ("permessage-deflate", {"client_max_window_bits": None}),
        ("permessage-deflate", {"server_max_window_bits": "10"}),
        ("x-foo", None),  # a repeated parameter invalidates the offer
    ]
    with pytest.raises(ValueError):
        parse_extension_header("permessage-deflate; =3")


@pytest.mark.parametrize(
    ("offer", "config", "response"),
    [
        ("permessage-deflate", PerMessageDeflate(), "permessage-deflate"),
        # The client's window is bounded (to 12 bits) when it says it can take it.
        ("permessage-deflate; client_max_window_bits", PerMessageDeflate(),
         "permessage-deflate; client_max_window_bits=12"),
        ("permessage-deflate; server_no_context_takeover", PerMessageDeflate(),
         "permessage-deflate; server_no_context_takeover"),
        ("permessage-deflate; server_max_window_bits=10", PerMessageDeflate(),
         "permessage-deflate; server_max_window_bits=10"),
        ("permessage-deflate; server_max_window_bits=12",
         PerMessageDeflate(max_window_bits=9), "permessage-deflate; server_max_window_bits=9"),
        ("permessage-deflate; client_max_window_bits",
         PerMessageDeflate(request_max_window_bits=11, request_no_context_takeover=True),
         "permessage-deflate; client_no_context_takeover; client_max_window_bits=11"),
        # An invalid first offer is skipped for the next one (RFC 7692 section 5).
        ("permessage-deflate; server_max_window_bits=7, permessage-deflate",
         PerMessageDeflate(), "permessage-deflate"),
        ("permessage-deflate; foo=1", PerMessageDeflate(), ""),
        ("x-webkit-deflate-frame", PerMessageDeflate(), ""),
    ],
)
def test_deflate_negotiation(offer: str, config: PerMessageDeflate, response: str) -> None:
    result = server_handshake(upgrade(Sec_WebSocket_Extensions=offer), extensions=[config])
    assert isinstance(result, Accepted)
    assert result.extensions == response
    assert len(result.sessions) == (1 if response else 0)


def test_deflate_options_are_validated() -> None:
    with pytest.raises(ValueError):
        PerMessageDeflate(level=10)
    with pytest.raises(ValueError):
        PerMessageDeflate(max_window_bits=16)
    with pytest.raises(ValueError):
        PerMessageDeflate(mem_level=0)
    with pytest.raises(ValueError):
        PerMessageDeflate(threshold=-1)


def test_client_side_deflate_activation() -> None:
    config = PerMessageDeflate(request_no_context_takeover=True, request_max_window_bits=10)
    assert config.offer() == {"server_no_context_takeover": None,
                              "client_max_window_bits": None, "server_max_window_bits": "10"}
    agreed = config.activate({"server_no_context_takeover": None,
                              "server_max_window_bits": "10"})
    assert agreed.inbound_no_context_takeover
    from faye_websocket._core.deflate import NegotiationError
    with pytest.raises(NegotiationError):
        config.activate({"server_max_window_bits": "10"})  # takeover not granted


# -- messages ----------------------------------------------------------------


def test_text_and_binary_messages() -> None:
    core = server()
    core.receive_data(raw_frame(0x1, "héllo".encode()) + raw_frame(0x2, b"\x00\xff"))
    assert core.events_received() == [MessageReceived("héllo"), MessageReceived(b"\x00\xff")]


def test_fragments_are_reassembled_around_control_frames() -> None:
    core = server()
    data = (raw_frame(0x1, b"he", fin=False) + raw_frame(0x9, b"p") +
            raw_frame(0x0, b"ll", fin=False) + raw_frame(0x0, b"o"))
    for i in range(len(data)):  # byte by byte: splits never matter
        core.receive_data(data[i : i + 1])
    assert core.events_received() == [PingReceived(b"p"), MessageReceived("hello")]
    assert core.data_to_send() == b"\x8a\x01p"  # the pong, queued by the core


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 1 << 20])
def test_sizes_round_trip_through_a_client_core(size: int) -> None:
    client = WebSocketProtocol(client=True)
    core = server()
    payload = os.urandom(size)
    client.send_message(payload)
    client.send_message("x" * size)
    core.receive_data(client.data_to_send())
    assert core.events_received() == [MessageReceived(payload), MessageReceived("x" * size)]


def test_max_length_is_checked_on_the_frame_header() -> None:
    core = server(max_length=100)
    core.receive_data(raw_frame(0x2, b"", length=101)[:8])  # header only, no payload
    [event] = core.events_received()
    assert event == Failed(1009, "message larger than 100 bytes")
    assert core.data_to_send() == b""  # the runtime decides when to act
    core.fail(event.code, event.reason)
    assert core.close_code == 1009
    assert core.data_to_send()[:4] == b"\x88\x1f\x03\xf1"  # Close 1009
    assert core.close_expected()


def failure(core: WebSocketProtocol) -> Failed:
    """The core's last event, which must be a failure; acts on it."""
    event = core.events_received()[-1]
    assert isinstance(event, Failed)
    core.fail(event.code, event.reason)
    return event


def test_max_length_counts_every_fragment() -> None:
    core = server(max_length=10)
    core.receive_data(raw_frame(0x1, b"x" * 6, fin=False) + raw_frame(0x0, b"x" * 5))
    assert failure(core).code == core.close_code == 1009


def test_exactly_max_length_is_accepted() -> None:
    core = server(max_length=10)
    core.receive_data(raw_frame(0x1, b"x" * 10))
    assert core.events_received() == [MessageReceived("x" * 10)]


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def deflate_server(max_length: int = 2**26 - 1) -> WebSocketProtocol:
    session = PerMessageDeflate().session(
        PerMessageDeflate().accept({})[1], max_length=max_length)
    return WebSocketProtocol(client=False, extensions=[session], max_length=max_length)


def test_compressed_messages_inflate() -> None:
    core = deflate_server()
    body = deflated(b"hello " * 1000)
    core.receive_data(raw_frame(0x1, body[:10], fin=False, rsv=4) + raw_frame(0x0, body[10:]))
    assert core.events_received() == [MessageReceived("hello " * 1000)]
    core.receive_data(raw_frame(0x2, b"raw"))  # RSV1 clear: passed through
    assert core.events_received() == [MessageReceived(b"raw")]


def test_control_frames_inside_a_compressed_message_are_not_inflated() -> None:
    # Found by tests/test_properties.py: a Ping between the fragments of a
    # compressed message was fed to the inflater (its payload came out as
    # garbage, a long one made the pong raise ValueError) and its end reset
    # the message, so the last fragment went through still compressed.
    core = deflate_server()
    body = deflated(b"hello hello hello")
    core.receive_data(raw_frame(0x1, body[:3], fin=False, rsv=4) + raw_frame(0x9, b"p")
                      + raw_frame(0xA, b"Z0\x02") + raw_frame(0x0, body[3:]))
    assert core.events_received() == [PingReceived(b"p"), PongReceived(b"Z0\x02"),
                                      MessageReceived("hello hello hello")]
    assert core.data_to_send() == b"\x8a\x01p"
    core.receive_data(raw_frame(0x1, b"", fin=False, rsv=4) + raw_frame(0x9, b"Z0\x02")
                      + raw_frame(0x0, deflated(b"")))
    assert core.events_received() == [PingReceived(b"Z0\x02"), MessageReceived("")]


def test_deflate_bomb_closes_1009_without_inflating_it_all(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    limit = 1 << 20
    bomb = deflated(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < limit
    largest = 0
    real = zlib.decompressobj

    class Spy:
        def __init__(self, wbits: int) -> None:
            self._d = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            nonlocal largest
            out = self._d.decompress(data, max_length)
            largest = max(largest, len(out))
            return out

    monkeypatch.setattr(zlib, "decompressobj", Spy)
    core = deflate_server(max_length=limit)
    core.receive_data(raw_frame(0x2, bomb, rsv=4))
    assert failure(core).code == 1009
    assert largest <= limit + 1  # never more than the limit was allocated


def test_compress_false_skips_compression_for_one_message() -> None:
    session = PerMessageDeflate().session(PerMessageDeflate().accept({})[1], max_length=1000)
    core = WebSocketProtocol(client=False, extensions=[session])
    core.send_message("a" * 100, compress=False)
    plain = core.data_to_send()
    assert plain[0] == 0x81 and plain[2:] == b"a" * 100  # RSV1 clear, raw payload
    core.send_message("a" * 100)
    packed = core.data_to_send()
    assert packed[0] == 0xC1 and len(packed) < 50  # RSV1 set, compressed


def test_rsv1_without_deflate_is_1002() -> None:
    core = server()
    core.receive_data(raw_frame(0x1, b"x", rsv=4))
    assert failure(core).code == 1002


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (raw_frame(0x1, b"\xff\xfe"), 1007),  # invalid UTF-8
        (raw_frame(0x1, b"ok", mask=False), 1002),  # unmasked client frame (S-33 says 1003)
        (raw_frame(0x3, b""), 1002),  # reserved opcode
        (raw_frame(0x9, b"", fin=False), 1002),  # fragmented control frame
        (raw_frame(0x9, b"x" * 126), 1002),  # control frame over 125 bytes
        (raw_frame(0x0, b"x"), 1002),  # continuation with nothing to continue
        (raw_frame(0x1, b"a", fin=False) + raw_frame(0x1, b"b"), 1002),  # new message mid-message
        (raw_frame(0x8, b"\x03"), 1002),  # 1-byte close payload
        (raw_frame(0x8, struct.pack("!H", 1005)), 1002),  # local-only code
        (raw_frame(0x8, struct.pack("!H", 2000)), 1002),  # reserved range
        (raw_frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),  # invalid UTF-8 reason
    ],
)
def test_protocol_errors_fail_with_the_right_code(data: bytes, code: int) -> None:
    core = server()
    core.receive_data(data)
    assert failure(core).code == code
    assert core.close_code == code
    assert core.close_expected()
    out = core.data_to_send()
    assert out[0] == 0x88 and struct.unpack("!H", out[2:4])[0] == code
    core.receive_data(raw_frame(0x1, b"ignored"))  # nothing after a failure
    assert core.events_received() == []


def test_peer_close_is_echoed_and_ends_the_connection() -> None:
    core = server()
    core.receive_data(raw_frame(0x8, struct.pack("!H", 4001) + b"bye"))
    assert core.events_received() == [CloseReceived(4001, "bye")]
    assert core.data_to_send() == b"\x88\x05\x0f\xa1bye"
    assert core.state is ReadyState.CLOSED and core.close_expected()


@pytest.mark.parametrize("code", [1000, 1001, 1012, 1013, 1014, 3000, 4999])
def test_registered_and_private_close_codes_are_accepted(code: int) -> None:
    core = server()
    core.receive_data(raw_frame(0x8, struct.pack("!H", code)))
    assert core.events_received() == [CloseReceived(code, "")]


def test_empty_close_reports_1000_and_echoes_empty() -> None:
    core = server()
    core.receive_data(raw_frame(0x8, b""))
    assert core.events_received() == [CloseReceived(1000, "")]
    assert core.data_to_send() == b"\x88\x00"


def test_messages_before_a_failure_can_still_be_answered() -> None:
    core = server()
    core.receive_data(raw_frame(0x1, b"echo me") + raw_frame(0x3, b""))
    message, failed = core.events_received()
    assert message == MessageReceived("echo me") and isinstance(failed, Failed)
    core.send_message("echo me")
    core.fail(failed.code, failed.reason)
    out = core.data_to_send()
    assert out.startswith(b"\x81\x07echo me\x88")


def test_messages_after_our_close_are_still_delivered() -> None:
    core = server()
    core.send_close(1000, "done")
    assert core.state is ReadyState.CLOSING
    core.receive_data(raw_frame(0x1, b"late") + raw_frame(0x8, struct.pack("!H", 1000)))
    assert core.events_received() == [MessageReceived("late"), CloseReceived(1000, "")]
    assert core.state is ReadyState.CLOSED  # type: ignore[comparison-overlap]
    assert core.data_to_send() == b"\x88\x06\x03\xe8done"  # one Close only


def test_eof_without_close_is_1006() -> None:
    core = server()
    core.receive_eof()
    assert core.state is ReadyState.CLOSED and core.close_code == 1006


def test_pong_events() -> None:
    core = server()
    core.send_ping(b"abc")
    assert core.data_to_send() == b"\x89\x03abc"
    core.receive_data(raw_frame(0xA, b"abc"))
    assert core.events_received() == [PongReceived(b"abc")]


def test_send_after_close_is_refused() -> None:
    core = server()
    core.send_close()
    with pytest.raises(RuntimeError):
        core.send_message("x")


def test_the_core_never_imports_anyio() -> None:
    code = ("import sys, faye_websocket._core.websocket, faye_websocket._core.server_handshake, "
            "faye_websocket._core.deflate, faye_websocket._core.http; "
            "assert 'anyio' not in sys.modules, 'anyio imported'; "
            "assert 'trio' not in sys.modules")
    # Importing the subpackage runs faye_websocket/__init__.py, which imports
    # the runtime; block it to see the core's own imports.
    code = ("import sys, types, pathlib, importlib.util; "
            "spec = importlib.util.find_spec('faye_websocket'); "
            "pkg = types.ModuleType('faye_websocket'); "
            "pkg.__path__ = list(spec.submodule_search_locations); "
            "sys.modules['faye_websocket'] = pkg; " + code)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_wsproto_agrees_on_our_frames() -> None:
    # Our output parsed by wsproto's own client-side decoder.
    core = server()
    core.send_message("hi")
    core.send_message(b"\x01" * 70000)
    decoder = FrameProtocol(client=True, extensions=[])
    decoder.receive_bytes(core.data_to_send())
    frames = list(decoder.received_frames())
    assert [(f.opcode, f.payload) for f in frames] == [
        (Opcode.TEXT, "hi"), (Opcode.BINARY, b"\x01" * 70000)]


def test_headers_are_pairs_and_a_case_insensitive_multi_mapping() -> None:
    headers = Headers([("Host", "example.com"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    assert list(headers) == [("Host", "example.com"), ("Set-Cookie", "a=1"),
                             ("set-cookie", "b=2")]
    assert headers[0] == ("Host", "example.com") and len(headers) == 3
    assert headers["host"] == "example.com" and headers["SET-COOKIE"] == "a=1, b=2"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers.get("Origin") is None and headers.get("Origin", "") == ""
    name: object = "HOST"  # (a str is not a pair: mypy's strict equality would object)
    assert name in headers and ("Host", "example.com") in headers
    assert headers.get("origin") is None
    assert headers.keys() == ["Host", "Set-Cookie", "set-cookie"]
    with pytest.raises(KeyError):
        headers["origin"]
    assert Headers({"A": "1"}) == (("A", "1"),)
    request = Request.build("GET", "/", {"Upgrade": "websocket"})
    assert isinstance(request.headers, Headers) and request.headers["UPGRADE"] == "websocket"
