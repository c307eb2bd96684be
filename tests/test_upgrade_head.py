"""The server's fast upgrade-request parser, differential-tested against h11.

``parse_upgrade_head`` skips h11 for well-formed WebSocket openings. Its
contract: whenever it returns a request, the h11 path of the HTTP helper
(``h11.Connection`` + ``Request.from_h11`` + the helper's own checks)
returns the same request and the same bytes after the head, and refuses
nothing. Anything else it leaves to h11 (returns ``None``).
"""

from __future__ import annotations

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faye_websocket._core import http
from faye_websocket._core.http import Request, parse_upgrade_head
from faye_websocket._runtime.server import _framing_refusal, _head_size, _is_upgrade

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

Outcome = tuple[Request, bytes] | str | None


def through_h11(data: bytes, max_size: int) -> Outcome:
    """What the HTTP helper's h11 path makes of ``data`` as an upgrade:
    the request and the bytes after its head, ``"refused"`` (an answer
    of 4xx), ``"plain"`` (not an upgrade) or None (more data needed)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_size)
    conn.receive_data(data)
    try:
        event = conn.next_event()
        if not isinstance(event, h11.Request):
            return None
        request = Request.from_h11(event)
        if _head_size(event) > max_size:
            return "refused"
        if not _is_upgrade(request):
            return "plain"
        if _framing_refusal(event, upgrade=True) is not None:
            return "refused"
        while (event := conn.next_event()) is not h11.PAUSED:
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return "refused"
    return request, bytes(conn.trailing_data[0])


_GOOD = [(b"Host", b"example.com:8080"), (b"Upgrade", b"websocket"),
         (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
         (b"Sec-WebSocket-Version", b"13")]
_NAMES = [b"Host", b"host", b"HOST", b"Upgrade", b"Connection", b"Content-Length",
          b"Transfer-Encoding", b"Expect", b"Origin", b"Sec-WebSocket-Protocol",
          b"Sec-WebSocket-Extensions", b"X-Odd!#$%&'*+.^_`|~", b"", b"Bad Name", b" Host",
          b"Na\xe9me", b"Na(me)"]
_VALUES = [b"websocket", b"Upgrade", b"keep-alive, Upgrade", b"upgrade,", b",", b"", b"0",
           b"00", b"5", b"chunked", b"100-continue", b"a\tb", b"  padded\t ", b"caf\xe9",
           b"nul\x00", b"bell\x07", b"del\x7f", b"vt\x0b", b"ff\x0c", b"cr\rx", b"lf\nx",
           b"a:b", b"example.com"]
_VALUE_BYTES = st.sampled_from(list(b"aZ09 \t,;:=\"\x00\x01\x0b\x0c\x7f\x80\xff\r\n"))
_SEPARATORS = [b":", b": ", b":\t", b" :", b":  "]
_LINE_ENDS = [b"\r\n"] * 12 + [b"\n", b"\r"]
_METHODS = [b"GET"] * 12 + [b"get", b"POST", b"GET ", b"G\xe9T"]
_TARGETS = [b"/", b"/chat?room=1", b"*", b"http://example.com/x"] * 3 + [
    b"/a b", b"/caf\xe9", b"", b"/\x7f", b"/%20"]
_VERSIONS = [b"HTTP/1.1"] * 12 + [b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]


@st.composite
def heads(draw: st.DrawFn, *, valid: bool) -> bytes:
    """An upgrade request head, well-formed (``valid``) or perturbed."""
    if valid:
        target = draw(st.sampled_from(_TARGETS[:4]))
        fields = list(_GOOD)
        extra = draw(st.lists(st.tuples(
            st.sampled_from([b"Origin", b"Sec-WebSocket-Protocol", b"X-A", b"cookie"]),
            st.sampled_from([b"chat", b"a\tb", b"caf\xe9", b"", b"https://a.example"])),
            max_size=4))
        for index, field in enumerate(extra):
            fields.insert(index % (len(fields) + 1), field)
        head = b"GET " + target + b" HTTP/1.1\r\n"
        for name, value in fields:
            head += name + draw(st.sampled_from([b":", b": ", b":\t "])) + value + \
                draw(st.sampled_from([b"", b" ", b"\t"])) + b"\r\n"
        return head + b"\r\n"
    # Perturbed: each part is usually right, so that some of these still
    # skip h11 and the comparison is not vacuous.
    line = draw(st.sampled_from(_METHODS)) + b" " + draw(st.sampled_from(_TARGETS)) + b" " + \
        draw(st.sampled_from(_VERSIONS))
    parts = [(name, value, b": ", b"\r\n") for name, value in _GOOD
              if draw(st.integers(0, 9))]
    odd = draw(st.lists(st.tuples(
        st.sampled_from(_NAMES),
        st.sampled_from(_VALUES) | st.lists(_VALUE_BYTES, max_size=8).map(bytes),
        st.sampled_from(_SEPARATORS),
        st.sampled_from(_LINE_ENDS)), max_size=3))
    for part in odd:
        parts.insert(draw(st.integers(0, len(parts))), part)
    head = line + draw(st.sampled_from(_LINE_ENDS))
    for name, value, separator, end in parts:
        head += name + separator + value + end
    return head + draw(st.sampled_from([b"\r\n"] * 4 + [b"\n", b""]))


@SETTINGS
@given(head=heads(valid=True), rest=st.binary(max_size=20))
def test_well_formed_openings_skip_h11_and_agree_with_it(head: bytes, rest: bytes) -> None:
    quick = parse_upgrade_head(head + rest, 16384)
    assert quick is not None
    assert quick == through_h11(head + rest, 16384)
    assert quick[1] == rest


@SETTINGS
@given(head=heads(valid=False), rest=st.binary(max_size=20),
       max_size=st.sampled_from([16384, 120, 60]))
def test_whatever_skips_h11_is_what_h11_would_make_of_it(head: bytes, rest: bytes,
                                                         max_size: int) -> None:
    quick = parse_upgrade_head(head + rest, max_size)
    if quick is not None:
        assert quick == through_h11(head + rest, max_size)


@SETTINGS
@given(data=st.binary(max_size=300), max_size=st.sampled_from([16384, 80]))
def test_random_bytes_skip_h11_only_as_h11_would_agree(data: bytes, max_size: int) -> None:
    quick = parse_upgrade_head(data, max_size)
    if quick is not None:
        assert quick == through_h11(data, max_size)


def test_what_goes_to_h11() -> None:
    good = b"".join(name + b": " + value + b"\r\n" for name, value in _GOOD)
    opening = b"GET /chat HTTP/1.1\r\n" + good + b"\r\n"
    assert parse_upgrade_head(opening + b"\x81", 16384) is not None
    for data in [
        opening[:-2],                                       # the head is not whole yet
        opening.replace(b"GET", b"POST"),                   # not GET
        opening.replace(b"HTTP/1.1", b"HTTP/1.0"),          # not HTTP/1.1
        opening.replace(b"\r\n", b"\n"),                    # bare LF line ends
        opening.replace(b"Host: example.com:8080\r\n", b""),  # no Host
        opening.replace(b"Host:", b"Host: a\r\nHost:"),     # two
        opening.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
        opening.replace(b"Upgrade\r\n", b"keep-alive\r\n"),  # not an upgrade
        opening.replace(b"websocket", b","),                 # an empty Upgrade list
        opening.replace(b"Sec-", b" Sec-"),                  # a folded line
        opening.replace(b"13", b"1\x013"),                   # a control character
    ]:
        assert parse_upgrade_head(data, 16384) is None, data
    # The size the server measures (431 past it, from h11's path).
    assert parse_upgrade_head(opening, len(opening) - 10) is None


def test_repeated_names_and_values_are_kept_once_in_a_bounded_cache() -> None:
    def opening(origin: bytes) -> bytes:
        return b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n" \
            b"Connection: Upgrade\r\nOrigin: " + origin + b"\r\n" \
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

    first = parse_upgrade_head(opening(b"https://a.example"), 16384)
    second = parse_upgrade_head(opening(b"https://a.example"), 16384)
    assert first is not None and second is not None
    assert first == second
    for (name1, value1), (name2, value2) in zip(first[0].headers, second[0].headers, strict=True):
        assert name1 is name2
        assert (value1 is value2) == (name1 != "sec-websocket-key")
    # Values a client chooses cannot grow the cache without bound.
    for n in range(3 * http._STRINGS_MAX):
        assert parse_upgrade_head(opening(b"https://%d.example" % n), 16384) is not None
    assert len(http._STRINGS) <= http._STRINGS_MAX
