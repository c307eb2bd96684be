"""The public surface: what is exported, and where it says it lives."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import faye_websocket
import faye_websocket.exceptions
import faye_websocket.extensions
import faye_websocket.http
import faye_websocket.hub
from faye_websocket._emitter import Event, EventEmitter


def test_all_is_sorted_and_complete() -> None:
    for module in (faye_websocket, faye_websocket.http, faye_websocket.exceptions,
                   faye_websocket.extensions, faye_websocket.hub):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    public = {name for name in dir(faye_websocket)
              if not name.startswith("_") and name[0].isupper()}
    assert public <= set(faye_websocket.__all__)


def test_public_objects_name_their_public_module() -> None:
    assert faye_websocket.WebSocket.__module__ == "faye_websocket"
    assert faye_websocket.PerMessageDeflate.__module__ == "faye_websocket"
    assert faye_websocket.http.Server.__module__ == "faye_websocket.http"
    assert faye_websocket.extensions.PerMessageDeflate is faye_websocket.PerMessageDeflate


def test_ready_state_constants_match_the_browser_api() -> None:
    ws = faye_websocket.WebSocket
    assert (ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED) == (0, 1, 2, 3)


def test_event_object_has_the_dom_shape() -> None:
    event = faye_websocket.Event("close", None, code=1000, reason="bye")
    assert (event.type, event.code, event.reason) == ("close", 1000, "bye")
    assert event.event_phase == faye_websocket.Event.AT_TARGET
    assert not event.bubbles and not event.cancelable
    event.stop_propagation()
    event.prevent_default()


def test_emitter_rejects_unknown_events_and_supports_decorators() -> None:
    import pytest

    from faye_websocket._emitter import EventEmitter

    emitter = EventEmitter()
    with pytest.raises(ValueError):
        emitter.on("nope", print)

    @emitter.on("message")
    def listener(event: faye_websocket.Event) -> None: ...

    emitter.onmessage = print
    assert emitter.listener_count("message") == 2
    emitter.off("message", listener)
    emitter.onmessage = None
    assert emitter.listener_count("message") == 0


@pytest.mark.anyio
async def test_on_properties_run_in_registration_order_with_listeners() -> None:
    # As in the DOM: an on<type> property takes its place among the listeners
    # when first set, keeps it when replaced, and leaves it when set to None.
    emitter = EventEmitter()
    calls: list[str] = []
    emitter.on("message", lambda event: calls.append("first"))
    emitter.onmessage = lambda event: calls.append("property")
    emitter.on("message", lambda event: calls.append("last"))
    await emitter._emit(Event("message", emitter, data="x"))
    assert calls == ["first", "property", "last"]

    calls.clear()
    emitter.onmessage = lambda event: calls.append("replaced")
    await emitter._emit(Event("message", emitter, data="x"))
    assert calls == ["first", "replaced", "last"]
    assert emitter.listener_count("message") == 3

    calls.clear()
    emitter.off("message")  # the listeners, not the property
    await emitter._emit(Event("message", emitter, data="x"))
    assert calls == ["replaced"]
    emitter.onmessage = None
    assert emitter.onmessage is None and emitter.listener_count("message") == 0


def test_no_import_cycle_in_the_package() -> None:
    # Every import counts: at module level, in functions and under
    # TYPE_CHECKING (a cycle there is still two modules that need each
    # other). The message names the cycle, with the line of each import.
    root = Path(faye_websocket.__file__).parent
    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts)
               .removesuffix(".__init__"): p for p in root.rglob("*.py")}
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    dependency = f"{target}.{alias.name}"
                    targets.append(dependency if dependency in modules else target)
            else:
                continue
            for dependency in targets:
                if dependency in modules and dependency != name:
                    graph[name].setdefault(dependency, node.lineno)
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for dependency in graph[name]:
            if dependency in path:
                cycle = [*path[path.index(dependency):], dependency]
                steps = [f"{a}:{graph[a][b]}" for a, b in itertools.pairwise(cycle)]
                pytest.fail("import cycle (module:line of the import): "
                            + " -> ".join([*steps, dependency]))
            if dependency not in done:
                visit(dependency, [*path, dependency])
        done.add(name)

    for name in graph:
        visit(name, [name])


def test_the_architecture_page_names_every_module() -> None:
    # docs/architecture.md is the map of src/: every module (and the C
    # accelerator) is named there by its path under the package, in
    # backquotes ("`_core/http.py`"; a package by its "__init__.py").
    root = Path(faye_websocket.__file__).parent
    page = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    modules = sorted(str(path.relative_to(root)) for pattern in ("*.py", "*.c")
                     for path in root.rglob(pattern))
    missing = [name for name in modules if f"`{name}`" not in page]
    assert missing == [], f"docs/architecture.md does not name {missing}"
