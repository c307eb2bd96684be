"""The docs match the code: every program in docs/examples/ is shown on a
page and run here (on both backends where it is not written for one), every
other Python block in the pages is a marked fragment that fits the API, and
the API reference pages have an entry for every public name.

The Sphinx build itself is ``nox -s docs`` (it needs the ``docs`` extra);
these tests only read the pages' source.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import faye_websocket
import faye_websocket.http
from faye_websocket import Client, EventSource, Hub, PerMessageDeflate, WebSocket
from faye_websocket._demo import demo_server, echo_server
from faye_websocket.exceptions import HandshakeError
from faye_websocket.http import Server

from .helpers import running, stop_process
from .hub_helpers import RedisServer, redis_server, wait_for
from .test_cli import http_get
from .test_client_proxy import pproxy

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).parent.parent / "docs"
EXAMPLES = DOCS / "examples"

# Every ```python block in docs/*.md is accounted for. A program is a file
# docs/examples/NAME.py, shown with ```{literalinclude} examples/NAME.py``` and
# run by a test below (run_example("NAME"): its name in quotes in a
# tests/test_docs*.py file, so a program nobody runs fails the check). What
# stays a ```python block is a fragment: a line or a handler that needs more
# around it (a server, a certificate, a proxy). It says so, and why, on the
# line before the fence:
#
#     <!-- fragment: needs a TLS server and its CA file -->
#     ```python
#
# A fragment must still compile, and every call it makes into the package must
# fit the signature (a renamed option breaks the page's test).

FENCE = re.compile(r"^(?P<indent>[ ]*)```python\n(?P<code>.*?)^(?P=indent)```", re.S | re.M)
FRAGMENT = re.compile(r"<!-- fragment: (?P<reason>\S.*?) -->")
INCLUDE = re.compile(r"```\{literalinclude\} examples/(\w+)\.py")


def python_blocks() -> list[tuple[str, str, str]]:
    """(id, the line before the fence, code) for each ```python block."""
    blocks = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for number, match in enumerate(FENCE.finditer(text)):
            before = text[:match.start()].rstrip("\n").rpartition("\n")[2]
            blocks.append((f"{page.stem}-{number}", before.strip(),
                           textwrap.dedent(match["code"])))
    return blocks


def _fragments() -> list[pytest.ParameterSet]:
    return [pytest.param(code, id=block_id) for block_id, before, code in python_blocks()
            if FRAGMENT.fullmatch(before)]


def unmarked_blocks() -> list[str]:
    return [block_id for block_id, before, _ in python_blocks()
            if not FRAGMENT.fullmatch(before)]


def test_every_python_block_is_a_marked_fragment() -> None:
    """A program belongs in docs/examples/, where a test runs it."""
    assert unmarked_blocks() == []


#: The package's public names, as a fragment that imports nothing sees them.
PUBLIC_NAMESPACE: dict[str, object] = {
    **{name: getattr(faye_websocket, name) for name in faye_websocket.__all__},
    **{name: getattr(faye_websocket.http, name) for name in faye_websocket.http.__all__},
}


def api_misuse(code: str) -> list[str]:
    """The calls and attributes in ``code`` that do not fit the package's API:
    a missing attribute, or arguments the signature does not take."""
    tree = ast.parse(code)
    names = dict(PUBLIC_NAMESPACE)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                bound = alias.asname or alias.name
                if node.module.split(".")[0] == "faye_websocket":
                    names[bound] = getattr(importlib.import_module(node.module), alias.name)
                else:
                    names.pop(bound, None)          # fastapi's WebSocket is not ours

    problems: list[str] = []

    def resolve(node: ast.expr) -> object:
        if isinstance(node, ast.Name):
            return names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = resolve(node.value)
            if base is None:
                return None
            if not hasattr(base, node.attr):
                problems.append(f"{ast.unparse(node)}: no such attribute")
                return None
            return getattr(base, node.attr)
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            resolve(node)
        if isinstance(node, ast.Call) and callable(target := resolve(node.func)):
            if any(isinstance(arg, ast.Starred) for arg in node.args) or any(
                    keyword.arg is None for keyword in node.keywords):
                continue
            try:
                signature = inspect.signature(target)
            except (TypeError, ValueError):
                continue
            try:
                signature.bind_partial(*node.args, **{k.arg: k.value for k in node.keywords
                                                      if k.arg is not None})
            except TypeError as exc:
                problems.append(f"{ast.unparse(node)}: {exc}")
    return sorted(set(problems))


@pytest.mark.parametrize("code", _fragments())
def test_fragment_fits_the_api(code: str) -> None:
    compile(code, "<fragment>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert api_misuse(code) == []


def test_the_fragment_check_sees_a_wrong_option() -> None:
    assert api_misuse('WebSocket.Client("ws://x/", pingg=5)') != []
    assert api_misuse("EventSource.Clientt") != []
    assert api_misuse('from fastapi import WebSocket\nWebSocket(1, 2, 3, 4, 5, 6, 7)') == []
    assert api_misuse('WebSocket.Client("ws://x/", ping=5)') == []


# The programs in docs/examples/, included into the pages with literalinclude.


def included_examples() -> set[str]:
    return {name for page in DOCS.glob("*.md") for name in INCLUDE.findall(page.read_text())}


def examples_run_by_tests() -> set[str]:
    source = "".join(path.read_text() for path in Path(__file__).parent.glob("test_docs*.py"))
    return set(re.findall(r"\"(\w+)\"", source))    # run_example("NAME"), a parameter...


def test_every_example_is_included_and_tested() -> None:
    programs = {path.stem for path in EXAMPLES.glob("*.py")}
    assert programs - included_examples() == set(), "not shown on any page"
    assert programs - examples_run_by_tests() == set(), "not run by any test"
    assert included_examples() - programs == set(), "included but missing"


def load_example(name: str) -> ModuleType:
    """docs/examples/NAME.py as a module (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run_example(name: str, *args: object, within: float = 20) -> None:
    """Await the example's ``main(*args)`` on this test's backend."""
    with anyio.fail_after(within):
        await load_example(name).main(*args)


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


# The tutorials' programs.


async def start_program(name: str, *args: str) -> tuple[anyio.abc.Process, int]:
    """``python docs/examples/NAME.py ARGS`` as a user runs it, once it has
    printed ``open http://127.0.0.1:PORT/``; the caller closes the process."""
    process = await anyio.open_process(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with anyio.fail_after(15):
            assert process.stdout is not None
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 200)
        match = re.fullmatch(rb"open http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        return process, int(match[1])
    except BaseException:
        await stop_process(process)
        raise


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_tutorial_chat_across_two_processes(redis: RedisServer) -> None:
    """One chat process as a user starts it, one in this test on its backend,
    both on one redis-server: what is said on either reaches both."""
    example = load_example("chat")
    process, other_port = await start_program("chat", "0", redis.url)
    try:
        hub = Hub(redis=redis.url)
        async with hub, running(example.chat_server(hub)) as port:
            response, page = await http_get(port, "/")
            assert response.status_code == 200
            assert b"new WebSocket(`ws://${location.host}/chat`)" in page
            with anyio.fail_after(20):
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/chat") as here:
                    await wait_for(lambda: hub.subscriber_count("chat") == 1)
                    async with WebSocket.Client(f"ws://127.0.0.1:{other_port}/chat") as there:
                        await there.send("hello from there")
                        assert await there.receive() == "hello from there"   # to the sender too
                        assert await here.receive() == "hello from there"
                        await here.send(b"binary is ignored")
                        await here.send("hello from here")
                        assert await there.receive() == "hello from here"
                        assert await here.receive() == "hello from here"
    finally:
        await stop_process(process)


async def test_tutorial_chat_alone() -> None:
    """Without Redis, the same program is a chat in one process; a WebSocket
    anywhere but /chat is refused."""
    example = load_example("chat")
    hub = Hub()
    with anyio.fail_after(20):
        async with hub, running(example.chat_server(hub)) as port:
            async with WebSocket.Client(f"ws://127.0.0.1:{port}/chat") as one, \
                    WebSocket.Client(f"ws://127.0.0.1:{port}/chat") as two:
                await wait_for(lambda: hub.subscriber_count("chat") == 2)
                await one.send("hi")
                assert await two.receive() == "hi"
                assert await one.receive() == "hi"
            with pytest.raises(HandshakeError) as refused:
                async with WebSocket.Client(f"ws://127.0.0.1:{port}/elsewhere"):
                    pass
            assert refused.value.status_code == 404


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_tutorial_nursery_of_clients(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(demo_server()) as port:
        await run_example("nursery_clients", f"ws://127.0.0.1:{port}/", 4)
    lines = [line for line in printed(capsys) if line.startswith("client ")]
    assert sorted(lines) == sorted(f"client {n}, message {m}"
                                   for n in range(1, 5) for m in range(1, 4))
    for n in range(1, 5):       # each client's replies in its own order
        mine = [line for line in lines if line.startswith(f"client {n},")]
        assert mine == [f"client {n}, message {m}" for m in range(1, 4)]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_tutorial_nursery_one_failure_cancels_all() -> None:
    """What the tutorial says of a failure: the nursery cancels the other
    clients and main raises the error, in an exception group."""
    example = load_example("echo_page")
    server = Server(on_request=example.on_request, on_upgrade=example.on_upgrade)
    async with running(server) as port:
        with pytest.raises(BaseExceptionGroup) as raised:
            await run_example("nursery_clients", f"ws://127.0.0.1:{port}/elsewhere", 3)
    refused = raised.value.subgroup(HandshakeError)
    assert refused is not None


async def test_tutorial_feed_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    """Streams cut every 0.3 s, events every 0.05 s: the client gets every
    event once, in order, across the reconnections."""
    example = load_example("feed_server")
    feed = example.Feed()
    async with anyio.create_task_group() as tg:
        tg.start_soon(example.produce, feed, 0.05)
        async with running(example.feed_server(feed, 0.3)) as port:
            response, page = await http_get(port, "/")
            assert b'new EventSource("/feed")' in page
            await run_example("feed_client", f"http://127.0.0.1:{port}/feed", 40)
        tg.cancel_scope.cancel()
    lines = printed(capsys)
    events = [line for line in lines if not line.startswith("stream opened")]
    assert events == [f"{n} tick {n}" for n in range(1, 41)]
    resumed = [line for line in lines if line.startswith("stream opened after event ")]
    assert resumed[0] == "stream opened after event 0"
    assert len(resumed) >= 2                    # it was cut, and resumed
    assert all(line != "stream opened after event 0" for line in resumed[1:])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tutorial_feed_programs() -> None:
    """The feed's server and client as a user runs them."""
    process, port = await start_program("feed_server", "0")
    try:
        with anyio.fail_after(20):
            result = await anyio.run_process(
                [sys.executable, "-c", "import anyio, feed_client; "
                 f"anyio.run(feed_client.main, 'http://127.0.0.1:{port}/feed', 2)"],
                cwd=EXAMPLES)
        assert result.stdout.decode().splitlines() == ["1 tick 1", "2 tick 2"]
    finally:
        await stop_process(process)


# The programs of the reference pages, against the demo server or their own.


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


async def test_echo_client(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("echo_page")
    async with running(Server(on_request=example.on_request,
                              on_upgrade=example.on_upgrade)) as port:
        await run_example("echo_client", f"ws://127.0.0.1:{port}/echo")
    assert printed(capsys) == ["hello"]


@pytest.mark.parametrize("name", ["client_reconnecting", "client_task_group"])
async def test_client_programs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with running(demo_server()) as port:
        await run_example(name, f"ws://127.0.0.1:{port}/")
    assert "hello" in printed(capsys)


async def test_client_options(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(demo_server()) as port:
        await run_example("client_options", f"ws://127.0.0.1:{port}/chat")
    mine = [line for line in printed(capsys)     # the demo server prints "open ..."
            if not line.startswith(("open ", "close "))]
    assert mine[0].startswith("101 irc permessage-deflate")
    assert mine[1:] == ["hello"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_client_nursery_trio(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(demo_server()) as port:
        await run_example("client_nursery_trio", f"ws://127.0.0.1:{port}/")
    assert "got hello" in printed(capsys)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_eventsource_ticks_trio(capsys: pytest.CaptureFixture[str]) -> None:
    await run_example("eventsource_ticks_trio")
    assert printed(capsys) == ["tick tick 1 1", "tick tick 2 2", "tick tick 3 3"]


async def test_eventsource_client(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(demo_server(interval=0.1)) as port:
        await run_example("eventsource_client", f"http://127.0.0.1:{port}/updates")
    lines = [line for line in printed(capsys) if line.startswith("message")]
    assert lines[0].startswith("message 'Welcome!")
    assert lines[-1] == f"message 'Time: 1' '' http://127.0.0.1:{port}"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_eventsource_resume_trio(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(demo_server(interval=0.1)) as port:
        await run_example("eventsource_resume_trio", f"http://127.0.0.1:{port}/")
    output = "\n".join(printed(capsys))
    assert f"open http://127.0.0.1:{port}/ 5" in output     # the server saw the Last-Event-ID
    assert "Time: 6" in output


async def test_http_server(capsys: pytest.CaptureFixture[str]) -> None:
    await run_example("http_server")
    assert re.fullmatch(r"listening on \d+", printed(capsys)[0])


@pytest.mark.parametrize(("name", "line"), [("broadcast_room", "hello, everyone"),
                                            ("production_close_policy", "hello, everyone")])
async def test_hub_programs(name: str, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    await run_example(name)
    assert printed(capsys)[-1].endswith(line)


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


# The performance page's charts: bench/plot.py turns a run's JSON into SVG.


def test_bench_plot_draws_each_metric(tmp_path: Path) -> None:
    from bench.plot import main as plot

    def run(peer: str, round_: int, msgs: float, cpu: float) -> dict[str, object]:
        return {"round": round_, "scenario": "small_echo", "peer": peer,
                "result": {"msgs_per_s": msgs, "cpu_us_per_msg": cpu}}

    results = {"meta": {}, "runs": [
        run("ours-asyncio", 1, 100_000, 8.0), run("ours-asyncio", 2, 120_000, 7.0),
        run("websockets-asyncio", 1, 50_000, 14.0), run("websockets-asyncio", 2, 60_000, 14.0),
        {"round": 1, "scenario": "small_echo", "peer": "aiohttp", "result": {"error": "x"}},
    ]}
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    assert plot([str(source), str(tmp_path / "svg")]) == 0
    charts = sorted(path.name for path in (tmp_path / "svg").iterdir())
    assert charts == ["small_echo-cpu_us_per_msg.svg", "small_echo-msgs_per_s.svg"]
    tree = ElementTree.parse(tmp_path / "svg" / "small_echo-msgs_per_s.svg")
    texts = [element.text for element in tree.iter("{http://www.w3.org/2000/svg}text")]
    assert "110,000 (2.00)" in texts        # the median, and its ratio to the baseline
    assert "55,000" in texts                # the baseline, without a ratio to itself
    assert "aiohttp" not in texts           # a failed measurement is left out
    bars = [rect for rect in tree.iter("{http://www.w3.org/2000/svg}rect")
            if rect.get("height") == "14"]
    assert len(bars) == 2
    assert float(bars[0].get("width", 0)) > float(bars[1].get("width", 0))


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
    name = "test_wss_trustme"
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(EXAMPLES / (name + ".py"))], check=False,
            stderr=subprocess.STDOUT)
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


def wrong_defaults(heading: str, section: str) -> list[str]:
    """Rows whose default column starts with a Python literal (`16384`,
    `2**26 - 1`, `None`, `"close"`...) that is not the signature's default."""
    wrong = []
    for name, cell in re.findall(r"^\| `(\w+)`[^|]*\| `([^`]*)`", section, re.M):
        value = eval(cell, {"__builtins__": {}})  # literals and arithmetic only
        for function in OPTION_SECTIONS[heading]:
            parameter = inspect.signature(function).parameters.get(name)
            if parameter is not None and parameter.default is not parameter.empty \
                    and parameter.default != value:
                wrong.append(f"{name}: {cell} != {parameter.default!r}")
    return wrong


@pytest.mark.parametrize("heading", OPTION_SECTIONS)
def test_the_options_page_gives_the_real_defaults(heading: str) -> None:
    assert wrong_defaults(heading, option_sections()[heading]) == []


def test_the_defaults_check_sees_a_wrong_default() -> None:
    section = option_sections()["`Hub`"].replace("| `1000` |", "| `100` |")
    assert wrong_defaults("`Hub`", section) == ["history: 100 != 1000"]


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
    missing = [f"{path}::{test}" for path, test in citations
               if not (root / path).is_file() or test is not None and not re.search(
                   rf"^(async )?def {test}\(", (root / path).read_text(), re.M)]
    assert missing == []


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
                await wait_for(lambda: hub1.subscriber_count("room") == 1
                               and hub2.subscriber_count("room") == 1)
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
    process, port = await start_program("serve_app", "0")
    try:
        with anyio.fail_after(20):
            await check_main_app(port)
            process.terminate()
            assert await process.wait() == 0
    finally:
        await stop_process(process)
