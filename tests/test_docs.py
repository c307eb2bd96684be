"""The docs match the code: the runnable examples in docs/ run (against a
live echo server), the programs in docs/examples/ run, and the API reference
pages have an entry for every public name.

The Sphinx build itself is ``nox -s docs`` (it needs the ``docs`` extra);
these tests only read the pages' source.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import faye_websocket
from faye_websocket import Client, EventSource, Hub, PerMessageDeflate, WebSocket
from faye_websocket._demo import demo_server, echo_server
from faye_websocket.exceptions import HandshakeError
from faye_websocket.http import Server

from .conftest import running
from .test_cli import http_get
from .hub_helpers import redis_server
from .test_client import pproxy

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def runnable_examples() -> list[pytest.ParameterSet]:
    examples = []
    for page in sorted(DOCS.glob("*.md")):
        for number, code in enumerate(BLOCK.findall(page.read_text())):
            if re.search(r"^(anyio|trio)\.run\(main", code, re.M):
                examples.append(pytest.param(code, id=f"{page.stem}-{number}"))
    return examples


@pytest.mark.parametrize("code", runnable_examples())
async def test_example_runs(code: str) -> None:
    async with running(demo_server()) as port:
        source = code.replace("127.0.0.1:7000", f"127.0.0.1:{port}")
        with anyio.fail_after(30):
            result = await anyio.run_process([sys.executable, "-c", source], check=False,
                                             stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout.decode(errors="replace")


def test_there_are_runnable_examples() -> None:
    assert len(runnable_examples()) >= 3


# The programs in docs/examples/, included into the pages with literalinclude.

EXAMPLES = DOCS / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def check_echo_page(port: int) -> None:
    response, page = await http_get(port, "/")
    assert response.status_code == 200
    assert b"new WebSocket(`ws://${location.host}/echo`)" in page
    response, _ = await http_get(port, "/elsewhere")
    assert response.status_code == 404
    async with WebSocket.Client(f"ws://127.0.0.1:{port}/echo") as ws:
        await ws.send("hello")
        assert await ws.receive() == "hello"
        await ws.send(b"\x00\xff")
        assert await ws.receive() == b"\x00\xff"
    with pytest.raises(HandshakeError) as refused:
        async with WebSocket.Client(f"ws://127.0.0.1:{port}/elsewhere"):
            pass
    assert refused.value.status_code == 404


async def test_tutorial_echo_page_handlers() -> None:
    """The tutorial's handlers, served on this test's backend."""
    example = load_example("echo_page")
    with anyio.fail_after(10):
        server = Server(on_request=example.on_request, on_upgrade=example.on_upgrade)
        async with running(server) as port:
            await check_echo_page(port)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tutorial_echo_page_program() -> None:
    """The tutorial's program as a user runs it: ``python echo_page.py 0``."""
    process = await anyio.open_process(
        [sys.executable, str(EXAMPLES / "echo_page.py"), "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with anyio.fail_after(15):
            assert process.stdout is not None
            line = (await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 200))
            match = re.fullmatch(rb"open http://127\.0\.0\.1:(\d+)/", line)
            assert match, line
            await check_echo_page(int(match[1]))
    finally:
        with anyio.CancelScope(shield=True):
            process.kill()
            await process.aclose()


# The API reference: autodoc directives in the pages' source, not a Sphinx run.

REFERENCE_PAGES = sorted(DOCS.glob("api*.md"))
PUBLIC_MODULES = ("faye_websocket", "faye_websocket.http", "faye_websocket.exceptions",
                  "faye_websocket.hub")
DIRECTIVE = re.compile(
    r"^\s*(?:\.\. |```\{)auto(module|class|exception|data|function)(?:::|\})\s+([\w.]+)", re.M)


def documented_names() -> set[str]:
    """Dotted names with an autodoc entry; an ``automodule`` documents its ``__all__``."""
    names: set[str] = set()
    for page in REFERENCE_PAGES:
        for kind, name in DIRECTIVE.findall(page.read_text()):
            names.add(name)
            if kind == "module":
                names.update(f"{name}.{member}"
                             for member in importlib.import_module(name).__all__)
    return names


def missing_from_reference(module_name: str) -> list[str]:
    """Names in the module's ``__all__`` with no entry under any public path
    that reaches the same object (``faye_websocket.HandshakeError`` is
    documented as ``faye_websocket.exceptions.HandshakeError``)."""
    documented = documented_names()
    module = importlib.import_module(module_name)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        paths = [f"{public}.{name}" for public in PUBLIC_MODULES
                 if getattr(importlib.import_module(public), name, None) is obj]
        if not documented.intersection(paths):
            missing.append(name)
    return missing


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_reference_entry(module_name: str) -> None:
    assert missing_from_reference(module_name) == []


def test_the_reference_check_sees_a_missing_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faye_websocket, "__all__", [*faye_websocket.__all__, "__version__"])
    assert missing_from_reference("faye_websocket") == ["__version__"]


# The how-to guides' programs: each one's main() on this test's backend, its
# printed lines asserted.


async def run_main(name: str, capsys: pytest.CaptureFixture[str], *args: object) -> list[str]:
    example = load_example(name)
    with anyio.fail_after(20):
        result = await example.main(*args)
    assert result in (None, 0)
    return capsys.readouterr().out.splitlines()


async def test_howto_authenticate(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_main("authenticate", capsys) == [
        "refused: 401 log in first",
        "hello alice, we speak chat.v1",
        "hello alice, we speak chat.v2",
        "refused: 400 offer one of chat.v2, chat.v1",
        "refused: 403 Origin not allowed",
    ]


async def test_migrate_from_websockets(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_main("from_websockets", capsys) == [
        "subprotocol: echo",
        "text: hello",
        "binary: b'\\x01\\x02'",
        "ping answered: True",
        "closed: 1000 done",
        "receive after close: ConnectionClosedOK",
        "refused: 404",
    ]


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
async def test_howto_proxies(scheme: str, free_tcp_port: int,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Through a real proxy (pproxy, with credentials): the echo comes back;
    without the credentials, the refusal is reported and main() returns 1."""
    example = load_example("through_proxy")
    with anyio.fail_after(20):
        async with pproxy(free_tcp_port, auth="user:pass", scheme="http+socks5") as proxy, \
                running(echo_server()) as port:
            url = f"ws://127.0.0.1:{port}/"
            assert await example.main(f"{scheme}://user:pass@127.0.0.1:{proxy.port}", url) == 0
            assert capsys.readouterr().out == "hello through the proxy\n"
            assert await example.main(f"{scheme}://127.0.0.1:{proxy.port}", url) == 1
            refusal = capsys.readouterr().err
            assert refusal.startswith("the proxy refused: "
                                      + ("407" if scheme == "http" else "0")), refusal


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_howto_tls_tests() -> None:
    """The how-to's test module, run by pytest as a user runs it (it
    parametrizes both backends itself)."""
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(EXAMPLES / "test_wss_trustme.py")], check=False, stderr=subprocess.STDOUT)
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output
    assert "4 passed" in output, output


# The reference pages that list options: every keyword parameter of the
# constructors is in its section of docs/options.md, and every command-line
# option is on docs/cli.md and docs/options.md.

OPTIONS_PAGE = DOCS / "options.md"
#: Section heading of docs/options.md -> the callables whose options it lists.
OPTION_SECTIONS: dict[str, list[Callable[..., object]]] = {
    "`WebSocket` (server side)": [WebSocket.__init__, WebSocket.from_asgi],
    "`WebSocket.Client`": [Client.__init__, Client.connect],
    "`WebSocket.Client.reconnecting`": [Client.reconnecting],
    "`PerMessageDeflate`": [PerMessageDeflate.__init__],
    "`EventSource` (server side)": [EventSource.__init__, EventSource.from_asgi],
    "`EventSource.Client`": [EventSource.Client.__init__],
    "`faye_websocket.http.Server`": [Server.__init__, Server.serve, Server.serve_listener],
    "`Hub`": [Hub.__init__],
}
#: Positional arguments that are what the object is built on, not options.
NOT_OPTIONS = {"self", "request", "stream", "body", "response", "scope", "receive", "send",
               "url", "task_group", "listener", "options"}


def option_sections() -> dict[str, str]:
    """The text of each ``##``/``###`` section of docs/options.md, by heading."""
    parts = re.split(r"^#{2,3} (.+)$", OPTIONS_PAGE.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def undocumented_options(heading: str, section: str) -> list[str]:
    rows = set(re.findall(r"^\| `(\w+)`", section, re.M))
    names = []
    for function in OPTION_SECTIONS[heading]:
        names += [name for name, parameter in inspect.signature(function).parameters.items()
                  if name not in NOT_OPTIONS and parameter.kind is not parameter.VAR_KEYWORD]
    return [name for name in names if name not in rows]


@pytest.mark.parametrize("heading", OPTION_SECTIONS)
def test_every_option_is_on_the_options_page(heading: str) -> None:
    sections = option_sections()
    assert heading in sections
    assert undocumented_options(heading, sections[heading]) == []


def test_the_options_check_sees_a_missing_option() -> None:
    section = option_sections()["`Hub`"].replace("| `redis_timeout` |", "| redis timeout |")
    assert undocumented_options("`Hub`", section) == ["redis_timeout"]


def command_line_options() -> dict[str, list[str]]:
    """Every option string of every subcommand (and the top level's)."""
    from faye_websocket.__main__ import _parser

    parser = _parser()
    found = {"": [s for a in parser._actions for s in a.option_strings
                  if s.startswith("--") and s != "--help"]}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                found[command] = [s for a in sub._actions for s in a.option_strings
                                  if s.startswith("--") and s != "--help"]
    return found


@pytest.mark.parametrize("page", ["cli.md", "options.md"])
def test_every_command_line_option_is_documented(page: str) -> None:
    text = (DOCS / page).read_text()
    options = command_line_options()
    assert set(options) == {"", "demo", "echo", "serve", "chat", "client"}
    missing = sorted({f"{command} {option}" for command, names in options.items()
                      for option in names if option not in text})
    assert missing == []


# The threat model cites tests: each cited file and test exists.

CITATION = re.compile(r"`(?:(test_\w+\.py)|(fuzz/\w+\.py))?(?:::(test_\w+))?`")


def threat_model_citations() -> list[tuple[str, str | None]]:
    """``(file, test)`` for each citation. A bare ``::test_x`` names a test
    of the file cited before it in the same table row or list item, or, in
    the section on hostile servers, of tests/test_hostile_server.py."""
    citations: list[tuple[str, str | None]] = []
    default: str | None = None
    text = (DOCS / "threat-model.md").read_text()
    for unit in re.split(r"\n(?=\||\* |\n|#)", text):
        if unit.startswith("#"):
            default = ("tests/test_hostile_server.py" if "hostile server" in unit else None)
        current = default
        for test_file, fuzz_file, test in CITATION.findall(unit):
            if fuzz_file:
                citations.append((fuzz_file, None))
                continue
            if test_file:
                current = f"tests/{test_file}"
            elif not test:
                continue
            assert current is not None, f"::{test} names no file"
            citations.append((current, test or None))
    return citations


def test_the_threat_model_cites_tests_that_exist() -> None:
    root = DOCS.parent
    citations = threat_model_citations()
    assert len(citations) > 40
    for path, test in citations:
        assert (root / path).is_file(), path
        if test is not None:
            assert re.search(rf"^(async )?def {test}\(", (root / path).read_text(), re.M), \
                f"{path}::{test}"


async def test_migrate_from_node(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_main("from_node", capsys)
    assert lines[0] == "client: message Hello, world!"
    assert sorted(lines[1:]) == ["client: close 1000 ", "server: close 1000 "]


async def test_howto_redis_two_processes_share_a_chat() -> None:
    """Two servers of the how-to's program, each with its own Redis hub (as
    two processes would have), on one real Redis: a message sent to one
    reaches both; an EventSource resumes on either."""
    example = load_example("scale_out")
    with redis_server() as redis, anyio.fail_after(30):
        async with Hub(redis=redis.url) as hub1, Hub(redis=redis.url) as hub2, \
                running(example.chat_server(hub1)) as port1, \
                running(example.chat_server(hub2)) as port2:
            async with WebSocket.Client(f"ws://127.0.0.1:{port1}/chat") as ws, \
                    EventSource.Client(f"http://127.0.0.1:{port2}/events") as source:
                while not (hub1.subscriber_count("room") and hub2.subscriber_count("room")):
                    await anyio.sleep(0.01)
                await ws.send("hello from 7000")
                assert await ws.receive() == "hello from 7000"
                first = await source.receive()
                assert first.data == "hello from 7000"
                await ws.send("second")
                assert await ws.receive() == "second"
            async with EventSource.Client(f"http://127.0.0.1:{port1}/events",
                                          last_event_id=first.id) as resumed:
                assert (await resumed.receive()).data == "second"


async def test_howto_fastapi_app() -> None:
    """The FastAPI application of docs/asgi.md, served by our server."""
    example = load_example("fastapi_app")
    with anyio.fail_after(20):
        async with running(Server(app=example.app)) as port:
            response, page = await http_get(port, "/")
            assert response.status_code == 200
            assert b'"feed":"/feed"' in page
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/chat", ["chat"]) as ws:
                assert ws.protocol == "chat"
                await ws.send("hello")
                assert await ws.receive() == "hello"
            with pytest.raises(HandshakeError) as refused:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/private"):
                    pass
            assert refused.value.status_code == 401
            assert refused.value.body == b"log in first"
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/private",
                                        headers={"Authorization": "Bearer secret"}) as ws:
                assert await ws.receive() == "welcome"
            async with EventSource.Client(f"http://127.0.0.1:{port}/feed",
                                          last_event_id="41") as source:
                event = await source.receive()
                assert (event.type, event.data, event.id) == ("tick", "tick 42", "42")


async def test_howto_plain_asgi_app() -> None:
    """The plain ASGI application of docs/asgi.md, served by our server."""
    example = load_example("plain_asgi")
    with anyio.fail_after(20):
        async with running(Server(app=example.app)) as port:
            response, _ = await http_get(port, "/")
            assert response.status_code == 404
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/", ["chat"]) as ws:
                await ws.send(b"\x00")
                assert await ws.receive() == b"\x00"
            async with EventSource.Client(f"http://127.0.0.1:{port}/?last_event_id=6") as source:
                event = await source.receive()
                assert (event.data, event.id) == ("hello", "7")


async def check_main_app(port: int) -> None:
    response, body = await http_get(port, "/items/5?q=x")
    assert response.status_code == 200
    assert body == b'{"item_id":5,"q":"x"}'
    async with WebSocket.Client(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("unchanged")
        assert await ws.receive() == "unchanged"


async def test_serving_asgi_the_fastapi_app() -> None:
    """docs/asgi-serving.md's FastAPI application, on this test's backend."""
    with anyio.fail_after(20):
        async with running(Server(app=load_example("main").app)) as port:
            await check_main_app(port)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_serving_asgi_from_a_program() -> None:
    """``python serve_app.py 0`` serves main.py's app, and SIGTERM ends it
    with status 0."""
    process = await anyio.open_process(
        [sys.executable, "serve_app.py", "0"], cwd=EXAMPLES,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with anyio.fail_after(20):
            assert process.stdout is not None
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 200)
            match = re.fullmatch(rb"listening on http://127\.0\.0\.1:(\d+)/", line)
            assert match, line
            await check_main_app(int(match[1]))
            process.terminate()
            assert await process.wait() == 0
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()
