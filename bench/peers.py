"""The peers (servers and clients under test) and the scenarios."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "node"

WS = "ws"  # WebSocket server scenarios
ES = "es"  # EventSource
CLIENT = "client"


@dataclass(frozen=True)
class Metric:
    key: str  # in the load generator's (or client script's) JSON
    title: str
    higher_is_better: bool
    fmt: str = "{:,.0f}"
    cpu: bool = False  # CPU time per unit of work: reported in a table of its own


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # WS, ES or CLIENT
    title: str
    metrics: tuple[Metric, ...]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("small_echo", WS, "small echo (32 B text, 64 in flight)", (
        Metric("msgs_per_s", "small echo msg/s", True),
        Metric("cpu_us_per_msg", "small echo µs/msg", False, "{:,.1f}", cpu=True),
    )),
    Scenario("rtt", WS, "1-in-flight round trip (32 B text)", (
        Metric("p50_us", "RTT p50 µs", False, "{:,.1f}"),
        Metric("p99_us", "RTT p99 µs", False, "{:,.1f}"),
    )),
    Scenario("large_echo", WS, "1 MiB binary echo, one in flight", (
        Metric("mib_per_s", "1 MiB echo MiB/s", True),
        Metric("cpu_ms_per_mib", "1 MiB echo ms/MiB", False, "{:,.2f}", cpu=True),
    )),
    Scenario("handshakes", WS, "open + close, 32 at a time", (
        Metric("per_s", "handshakes/s", True),
        Metric("cpu_us_per_handshake", "handshake µs", False, cpu=True),
    )),
    Scenario("idle_memory", WS, "server RSS growth per idle connection", (
        Metric("kib_per_conn", "idle KiB/conn", False, "{:,.1f}"),
    )),
    Scenario("broadcast", WS, "one message to every client of /broadcast", (
        Metric("ms", "broadcast ms", False, "{:,.1f}"),
        Metric("server_cpu_ms", "broadcast ms", False, "{:,.1f}", cpu=True),
    )),
    Scenario("events", ES, "EventSource events sent back to back", (
        Metric("events_per_s", "events/s", True),
        Metric("cpu_us_per_event", "server CPU µs/event", False, "{:,.1f}"),
    )),
    Scenario("client_small", CLIENT, "client: small echo (32 B text, 64 in flight)", (
        Metric("msgs_per_s", "client small msg/s", True),
        Metric("cpu_us_per_msg", "client small µs/msg", False, "{:,.1f}", cpu=True),
    )),
    Scenario("client_large", CLIENT, "client: 1 MiB binary echo", (
        Metric("mib_per_s", "client 1 MiB MiB/s", True),
        Metric("cpu_ms_per_mib", "client 1 MiB ms/MiB", False, "{:,.2f}", cpu=True),
    )),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    kinds: frozenset[str]
    server: tuple[str, ...] = ()  # arguments after ``python`` (or the program for node)
    client: tuple[str, ...] = ()
    baseline: str = "websockets-asyncio"  # WebSocket ratios are taken against this peer
    es_baseline: str = "sse-starlette"
    modules: tuple[str, ...] = ()
    node: bool = False
    default: bool = True  # measured unless --only says otherwise
    scenarios: frozenset[str] | None = None  # None: every scenario of its kinds


_HOST_SCENARIOS = frozenset({"small_echo", "rtt", "large_echo", "handshakes"})

PEERS: tuple[Peer, ...] = (
    Peer("ours-asyncio", "faye_websocket (asyncio)", frozenset({WS, ES, CLIENT}),
         server=("-m", "bench.servers.ours", "--backend", "asyncio"),
         client=("-m", "bench.clients.ours", "--backend", "asyncio"),
         modules=("faye_websocket",)),
    Peer("ours-trio", "faye_websocket (trio)", frozenset({WS, ES, CLIENT}),
         server=("-m", "bench.servers.ours", "--backend", "trio"),
         client=("-m", "bench.clients.ours", "--backend", "trio"),
         baseline="websockets-trio", modules=("faye_websocket", "trio")),
    Peer("websockets-asyncio", "websockets (asyncio)", frozenset({WS, CLIENT}),
         server=("-m", "bench.servers.websockets_asyncio",),
         client=("-m", "bench.clients.websockets_client", "--backend", "asyncio"),
         modules=("websockets",)),
    Peer("websockets-trio", "websockets (trio)", frozenset({WS, CLIENT}),
         server=("-m", "bench.servers.websockets_trio",),
         client=("-m", "bench.clients.websockets_client", "--backend", "trio"),
         modules=("websockets.trio", "trio")),
    Peer("trio-websocket", "trio-websocket", frozenset({WS}),
         server=("-m", "bench.servers.trio_websocket_server",),
         modules=("trio_websocket",)),
    Peer("aiohttp", "aiohttp", frozenset({WS}),
         server=("-m", "bench.servers.aiohttp_server",), modules=("aiohttp",)),
    Peer("sse-starlette", "sse-starlette (uvicorn)", frozenset({ES}),
         server=("-m", "bench.servers.sse_starlette_server",),
         modules=("sse_starlette", "uvicorn")),
    Peer("node-faye", "Node faye-websocket", frozenset({WS, ES}),
         server=(str(BENCH / "node" / "server.js"),), node=True),
    # ASGI servers hosting one Starlette WebSocket echo app (bench/servers/
    # asgi_starlette.py): measured with --only host, against uvicorn.
    *(Peer(f"host-{name}", label, frozenset({WS}),
           server=("-m", "bench.servers.asgi_starlette", *args),
           baseline="host-uvicorn", modules=("starlette", *modules), default=False,
           scenarios=_HOST_SCENARIOS)
      for name, label, args, modules in (
          ("ours-asyncio", "faye_websocket serve (asyncio)",
           ("--server", "ours", "--backend", "asyncio"), ("faye_websocket",)),
          ("ours-trio", "faye_websocket serve (trio)",
           ("--server", "ours", "--backend", "trio"), ("faye_websocket", "trio")),
          ("uvicorn", "uvicorn (websockets)", ("--server", "uvicorn"), ("uvicorn",)),
          ("hypercorn", "hypercorn (asyncio)", ("--server", "hypercorn"), ("hypercorn",)),
          ("hypercorn-trio", "hypercorn (trio)",
           ("--server", "hypercorn", "--backend", "trio"), ("hypercorn", "trio")),
      )),
    # Inside an ASGI app under uvicorn: our adapter against Starlette's own
    # WebSocket object, the same route otherwise (measured when asked for).
    Peer("asgi-faye", "WebSocket.from_asgi in Starlette (uvicorn)", frozenset({WS}),
         server=("-m", "bench.servers.asgi_adapter", "--impl", "faye"),
         baseline="asgi-starlette", modules=("starlette", "uvicorn"), default=False),
    Peer("asgi-starlette", "Starlette's WebSocket (uvicorn)", frozenset({WS}),
         server=("-m", "bench.servers.asgi_adapter", "--impl", "starlette"),
         modules=("starlette", "uvicorn"), default=False),
    # Not a library: the load generator's ceiling, measured only when asked for.
    Peer("bare", "bare asyncio Protocol (ceiling)", frozenset({WS}),
         server=("-m", "bench.servers.bare_echo",), default=False),
)
PEER_NAMES = tuple(p.name for p in PEERS)

# The fixed echo server the client scenarios run against.
FIXED_SERVER = ("-m", "bench.servers.bare_echo")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def unavailable(peer: Peer) -> str | None:
    """Why ``peer`` cannot run here, or None."""
    if peer.node:
        if shutil.which("node") is None:
            return "node is not installed"
        if not (NODE_DIR / "node_modules" / "faye-websocket").is_dir():
            return f"faye-websocket is not installed: run `npm ci --prefix {NODE_DIR}`"
        return None
    missing = [m for m in peer.modules if not _has_module(m)]
    if missing:
        return "not installed: " + ", ".join(missing)
    return None


def node_package_version(name: str) -> str | None:
    path = NODE_DIR / "node_modules" / name / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None
