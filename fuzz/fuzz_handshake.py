"""atheris target: the opening handshake, server and client side.

Input layout: byte 0 picks the mode (its two low bits) and options (the
rest); the other bytes are what the peer sent.

* mode 0 (and 3), server: the bytes are a request, read by h11 as the HTTP
  helper reads it (``max_incomplete_event_size`` 16 KiB), then
  ``Request.from_h11``, ``is_websocket``/``is_eventsource``/``request_url``
  and ``server_handshake`` (options: permessage-deflate offered, with
  which settings, subprotocols, ``allowed_origins``, the drafts accepted).
  The answer must be a
  response h11 can read with the status the result claims (101, or 400, 403,
  426); an accepted hybi-13 answer carries the right ``Sec-WebSocket-Accept``
  and only a protocol we support. The bytes after the head then go to the
  connection's core (hybi-13 or hixie), which must not raise.
* mode 1, client: the bytes are the server's response to our upgrade
  request (fixed key), read by h11 as the client runtime does, then
  ``ClientHandshake.check_response``, which may only raise
  ``HandshakeFailure``; on success the rest goes to a client core. The SSE
  client's ``check_response`` sees the same head.
* mode 2, an extension header value (Latin-1, as h11 decodes it):
  ``parse_extension_header`` raises only ``ValueError``; each offer goes
  through permessage-deflate's server ``accept`` and client ``activate``,
  which raise only ``NegotiationError``.

Only h11's ``RemoteProtocolError`` (a 4xx or 5xx status for the server, a
handshake error for the client) is expected from h11 itself.

Run: ``python fuzz/fuzz_handshake.py [libFuzzer options] CORPUS_DIR...`` or
``nox -s fuzz``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["faye_websocket", "h11", "wsproto"]):
    import h11

    from faye_websocket._core import sse
    from faye_websocket._core.client_handshake import ClientHandshake, HandshakeFailure
    from faye_websocket._core.deflate import NegotiationError, PerMessageDeflate
    from faye_websocket._core.hixie import HixieProtocol
    from faye_websocket._core.http import Request, parse_extension_header
    from faye_websocket._core.server_handshake import (
        Accepted,
        Rejected,
        accept_key,
        detect_version,
        is_websocket,
        server_handshake,
    )
    from faye_websocket._core.sse import is_eventsource
    from faye_websocket._core.url import Target, request_url
    from faye_websocket._core.websocket import WebSocketProtocol

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key, so seeds can answer it
MAX_HEAD = 16384
PROTOCOLS = ["chat", "superchat"]
ORIGINS = ["http://example.com"]
DEFLATES = [PerMessageDeflate(),
            PerMessageDeflate(max_window_bits=10, request_max_window_bits=9,
                              no_context_takeover=True, request_no_context_takeover=True)]


def next_event(conn: h11.Connection) -> object:
    """The next h11 event; at NEED_DATA the peer has hung up (all input was fed)."""
    event = conn.next_event()
    if event is h11.NEED_DATA:
        conn.receive_data(b"")
        event = conn.next_event()
    return event


def read_response(raw: bytes) -> h11.Response | h11.InformationalResponse:
    """Our own answer, read back by an h11 client that asked to upgrade."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[
        ("Host", "example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]))
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, (h11.Response, h11.InformationalResponse)), event
    return event


def serve(options: int, data: bytes) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(data)
    try:
        event = next_event(conn)
    except h11.RemoteProtocolError as exc:
        # The helper answers with this status (4xx, or 501 for an unknown
        # Transfer-Encoding).
        if not 400 <= exc.error_status_hint < 600:
            raise AssertionError(f"status hint {exc.error_status_hint}") from exc
        return
    if not isinstance(event, h11.Request):
        return
    request = Request.from_h11(event)
    is_eventsource(request)
    request_url(request, secure=bool(options & 8))
    version = detect_version(request)

    extensions = [DEFLATES[(options >> 1) & 1]] if options & 1 else []
    protocols = PROTOCOLS if options & 4 else []
    origins = ORIGINS if options & 16 else None
    result = server_handshake(request, protocols=protocols, extensions=extensions,
                              allowed_origins=origins, max_length=1000,
                              drafts=bool(options & 32))
    response = read_response(result.response)
    if isinstance(result, Rejected):
        assert response.status_code == result.status in (400, 403, 426), result.status
        assert is_websocket(request) or result.status == 400
        return
    assert isinstance(result, Accepted) and is_websocket(request)
    assert response.status_code == 101 and result.version == version
    head = {k.decode().lower(): v.decode("latin-1") for k, v in response.headers}
    if version == "hybi-13":
        key = (request.header("sec-websocket-key") or "").strip()
        assert head["sec-websocket-accept"] == accept_key(key)
        assert result.protocol in ("", *protocols)
        assert len(result.sessions) <= len(extensions)
        core: WebSocketProtocol | HixieProtocol = WebSocketProtocol(
            client=False, extensions=result.sessions, max_length=1000)
    else:
        core = HixieProtocol(version, keys=result.keys, max_length=1000)

    # As the HTTP helper: let h11 pass the head; what follows is the new protocol's.
    try:
        while (event := next_event(conn)) is not h11.PAUSED:
            if isinstance(event, h11.ConnectionClosed):
                return
    except h11.RemoteProtocolError:
        return
    core.receive_data(bytes(conn.trailing_data[0]))
    core.events_received()
    core.receive_eof()


def connect(options: int, data: bytes) -> None:
    handshake = ClientHandshake(
        Target(secure=False, host="example.com", port=80),
        protocols=PROTOCOLS if options & 4 else [],
        extensions=[DEFLATES[(options >> 1) & 1]] if options & 1 else [],
        key=KEY, max_length=1000)
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=handshake.request_headers()))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    try:
        event = next_event(conn)
        while isinstance(event, h11.InformationalResponse) and event.status_code != 101:
            event = next_event(conn)
    except h11.RemoteProtocolError:
        return
    if not isinstance(event, (h11.Response, h11.InformationalResponse)):
        return
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
    verdict = sse.check_response(event.status_code, headers)
    assert isinstance(verdict, str) and verdict  # "open", "stop" or why not
    try:
        protocol, accepted, sessions = handshake.check_response(event.status_code, headers)
    except HandshakeFailure:
        return
    assert event.status_code == 101 and protocol in ("", *handshake.protocols)
    assert len(sessions) <= len(handshake.extensions)
    assert bool(accepted) == bool(sessions)
    core = WebSocketProtocol(client=True, extensions=sessions, max_length=1000)
    core.receive_data(bytes(conn.trailing_data[0]))
    core.events_received()


def extension_header(options: int, data: bytes) -> None:
    try:
        offers = parse_extension_header(data.decode("latin-1"))
    except ValueError:
        return
    config = DEFLATES[options & 1]
    for name, params in offers:
        assert name == name.lower()
        if params is None:
            continue
        try:
            config.accept(params)
        except NegotiationError:
            pass
        try:
            config.activate(params)
        except NegotiationError:
            pass


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, options, rest = data[0] & 3, data[0] >> 2, data[1:]
    if mode == 1:
        connect(options, rest)
    elif mode == 2:
        extension_header(options, rest)
    else:
        serve(options, rest)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
