"""Runs the scenarios over the peers, interleaved, and reports medians and ratios."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from . import _proc
from .peers import (
    CLIENT,
    ES,
    FAN,
    FIXED_SERVER,
    PEER_NAMES,
    PEERS,
    SCENARIO_NAMES,
    SCENARIOS,
    WS,
    Metric,
    Peer,
    Scenario,
    node_package_version,
    unavailable,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STARTUP_LIMIT = 30.0


@dataclass(frozen=True)
class Settings:
    rounds: int
    duration: float  # measured window of the throughput scenarios, seconds
    warmup: float
    rtt_count: int
    idle_connections: int
    broadcast_clients: int
    broadcast_repeat: int
    events: int
    events_repeat: int
    fanout_deliveries: int  # per burst: messages x subscribers
    fanout_repeat: int


FULL = Settings(rounds=3, duration=2.0, warmup=0.5, rtt_count=5000, idle_connections=2000,
                broadcast_clients=1000, broadcast_repeat=20, events=50000, events_repeat=3,
                fanout_deliveries=150_000, fanout_repeat=3)
QUICK = Settings(rounds=1, duration=0.5, warmup=0.2, rtt_count=500, idle_connections=300,
                 broadcast_clients=1000, broadcast_repeat=3, events=10000, events_repeat=1,
                 fanout_deliveries=100_000, fanout_repeat=1)


# --- processes ---------------------------------------------------------------------------

_live: set[subprocess.Popen[bytes]] = set()


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server: close its stdin (it exits on EOF), then SIGTERM, then SIGKILL."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait(5)
    # Anything the server left in its process group goes too.
    _kill_group(proc, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()
    _live.discard(proc)


def _stop_all() -> None:
    for proc in list(_live):
        stop(proc)


def _on_signal(signum: int, _frame: object) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def _command(args: tuple[str, ...], node: bool) -> list[str]:
    return ["node", *args] if node else [sys.executable, *args]


@contextlib.contextmanager
def server(args: tuple[str, ...], node: bool, log: IO[bytes]) -> Iterator[tuple[int, int]]:
    """Start a server script, wait for its ``PORT`` line; yield (port, pid)."""
    proc = subprocess.Popen(_command(args, node), cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    _live.add(proc)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(STARTUP_LIMIT):
                raise RuntimeError(f"no PORT line within {STARTUP_LIMIT} s")
        line = proc.stdout.readline().decode(errors="replace").split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError(f"server did not start (exit {proc.poll()}): {line}")
        yield int(line[1]), proc.pid
    finally:
        stop(proc)


def _run_json(argv: list[str], timeout: float, log: IO[bytes]) -> dict[str, Any]:
    try:
        done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"exit status {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def _tail(log: IO[bytes], limit: int = 600) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return text[-limit:]


def measure(peer: Peer, scenario: Scenario, s: Settings) -> dict[str, Any]:
    """One measurement of one peer in one scenario, with fresh processes."""
    with tempfile.TemporaryFile() as log:
        try:
            if scenario.kind == CLIENT:
                with server(FIXED_SERVER, False, log) as (port, pid):
                    c0 = _proc.cpu_seconds(pid)
                    t0 = time.perf_counter()
                    argv = [sys.executable, *peer.client, scenario.name, "--port", str(port),
                            "--duration", str(s.duration), "--warmup", str(s.warmup)]
                    result = _run_json(argv, s.warmup + s.duration + 60, log)
                    result["fixed_server_cpu_pct"] = (
                        100 * (_proc.cpu_seconds(pid) - c0) / (time.perf_counter() - t0))
                    return result
            with server(peer.server, peer.node, log) as (port, pid):
                argv = [sys.executable, "-m", "bench.loadgen", scenario.name, "--port",
                        str(port), "--pid", str(pid), "--duration", str(s.duration),
                        "--warmup", str(s.warmup)]
                if scenario.name == "rtt":
                    argv += ["--count", str(s.rtt_count)]
                elif scenario.name == "idle_memory":
                    argv += ["--count", str(s.idle_connections)]
                elif scenario.name == "broadcast":
                    argv += ["--count", str(s.broadcast_clients),
                             "--repeat", str(s.broadcast_repeat)]
                elif scenario.name == "events":
                    argv += ["--count", str(s.events), "--repeat", str(s.events_repeat)]
                elif scenario.kind == FAN:
                    argv[3] = "fanout"
                    argv += ["--count", str(scenario.clients), "--repeat", str(s.fanout_repeat),
                             "--messages", str(max(1, s.fanout_deliveries // scenario.clients)),
                             "--size", str(scenario.size)]
                    if scenario.deflate:
                        argv.append("--deflate")
                return _run_json(argv, s.warmup + s.duration * 5 + 120, log)
        except Exception as exc:  # reported, and the run goes on
            return {"error": f"{exc}; output: {_tail(log)}"}


# --- reporting ---------------------------------------------------------------------------


def _baseline(peer: Peer, scenario: Scenario, present: set[str]) -> str | None:
    if scenario.kind == ES:
        wanted = [peer.es_baseline]
    else:
        wanted = [peer.baseline, "websockets-asyncio"]
    for name in wanted:
        if name in present:
            return name
    return None


def medians(runs: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        if "error" in run["result"]:
            continue
        scenario = next(s for s in SCENARIOS if s.name == run["scenario"])
        for metric in scenario.metrics:
            if metric.key in run["result"]:
                values.setdefault((run["peer"], _key(scenario, metric)), []).append(
                    float(run["result"][metric.key]))
    return {key: statistics.median(v) for key, v in values.items()}


def _table(med: dict[tuple[str, str], float], peers: list[Peer],
           columns: list[tuple[Scenario, Metric]], what: str) -> list[str]:
    present = {p.name for p in peers for s, m in columns if (p.name, _key(s, m)) in med}
    out = [f"| {what} | ratio vs | " + " | ".join(
        f"{m.title} {'↑' if m.higher_is_better else '↓'}" for _, m in columns) + " |",
        "|---|---|" + "---:|" * len(columns)]
    for peer in peers:
        cells = []
        bases = set()
        for s, m in columns:
            value = med.get((peer.name, _key(s, m)))
            if value is None:
                cells.append("–")
                continue
            base_name = _baseline(peer, s, present)
            base = med.get((base_name, _key(s, m))) if base_name else None
            cell = m.fmt.format(value)
            if base:
                cell += f" ({value / base:.2f})"
                bases.add(base_name)
            cells.append(cell)
        vs = ", ".join(sorted(b for b in bases if b)) or "–"
        out.append(f"| {peer.name} | {vs} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _key(scenario: Scenario, metric: Metric) -> str:
    return metric.key + "@" + scenario.name


def tables(runs: list[dict[str, Any]], peers: list[Peer],
           scenarios: list[Scenario]) -> str:
    """The results as markdown: WebSocket servers (figures, then CPU time per
    unit of work), EventSource servers, clients (idem)."""
    med = medians(runs)
    out: list[str] = []
    for kind, heading, what in (
        (WS, "WebSocket servers", "server"),
        (ES, "EventSource servers", "server"),
        (FAN, "Broadcast servers (fan-out)", "server"),
        (CLIENT, "WebSocket clients (against the fixed echo server)", "client"),
    ):
        rows = [p for p in peers if kind in p.kinds]
        group = [s for s in scenarios if s.kind == kind]
        split = kind != ES  # EventSource has two columns: one table
        figures = [(s, m) for s in group for m in s.metrics if not (split and m.cpu)]
        costs = [(s, m) for s in group for m in s.metrics if split and m.cpu]
        if rows and figures:
            out.append(f"**{heading}**\n")
            out += _table(med, rows, figures, what)
        if rows and costs:
            out.append(f"**{heading}: {what} CPU time per unit of work**\n")
            out += _table(med, rows, costs, what)
    out.append("Medians over the rounds; in parentheses the ratio to the peer named in "
               "*ratio vs* (value / baseline: above 1 is better for ↑ columns, below 1 "
               "for ↓ columns).")
    return "\n".join(out) + "\n"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out


def machine() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    return {"cores": os.cpu_count(), "cpu": model, "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "implementation": platform.python_implementation()}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        name: _version(name)
        for name in ("faye-websocket", "anyio", "wsproto", "h11", "trio", "websockets",
                     "trio-websocket", "aiohttp", "sse-starlette", "starlette", "uvicorn",
                     "hypercorn")
    }
    found["git"] = _git("describe", "--always", "--dirty")
    found["src commit"] = _git("log", "-1", "--format=%h", "--", "src")
    node = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    found["node"] = node
    found["node faye-websocket"] = node_package_version("faye-websocket")
    return found


# --- main --------------------------------------------------------------------------------


def _pick(names: str | None, known: tuple[str, ...], what: str,
          default: tuple[str, ...] | None = None) -> list[str]:
    if not names:
        return list(known if default is None else default)
    chosen = []
    for raw in names.split(","):
        name = raw.strip()
        # "websockets" picks both of its implementations, "ours" both backends.
        matches = [k for k in known if k == name or k.startswith(name + "-")]
        if not matches:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _summary(result: dict[str, Any], scenario: Scenario) -> str:
    if "error" in result:
        return "FAILED: " + str(result["error"])
    parts = [f"{m.fmt.format(result[m.key])} {m.title.split()[-1]}" for m in scenario.metrics]
    for key, name in (("server_cpu_pct", "server CPU"), ("loadgen_cpu_pct", "loadgen CPU"),
                      ("cpu_pct", "client CPU"), ("fixed_server_cpu_pct", "echo server CPU")):
        if key in result:
            parts.append(f"{name} {result[key]:.0f}%")
    parts += [f"{k} {result[k]}" for k in ("close_timeouts", "missing_close") if result.get(k)]
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="one short round: a smoke run (under 2 minutes)")
    p.add_argument("--rounds", type=int, help="rounds (default: 3, or 1 with --quick)")
    p.add_argument("--duration", type=float, help="seconds measured per throughput scenario")
    p.add_argument("--only", help="comma-separated peers (a prefix such as 'ours' or "
                   f"'websockets' picks all its variants): {', '.join(PEER_NAMES)}; "
                   "'bare' (the load generator's ceiling) runs only when named")
    p.add_argument("--scenario", help=f"comma-separated: {', '.join(SCENARIO_NAMES)}")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for JSON and markdown")
    a = p.parse_args(argv)

    settings = QUICK if a.quick else FULL
    changes: dict[str, Any] = {}
    if a.rounds:
        changes["rounds"] = a.rounds
    if a.duration:
        changes["duration"] = a.duration
    settings = Settings(**{**asdict(settings), **changes})
    wanted = set(_pick(a.only, PEER_NAMES, "peer",
                       tuple(pe.name for pe in PEERS if pe.default)))
    scenarios = [s for s in SCENARIOS if s.name in _pick(a.scenario, SCENARIO_NAMES,
                                                          "scenario")]
    peers = []
    for peer in PEERS:
        if peer.name not in wanted:
            continue
        reason = unavailable(peer)
        if reason:
            print(f"skipping {peer.name}: {reason}")
        else:
            peers.append(peer)

    _proc.raise_nofile()
    load_before = os.getloadavg()
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    failures = 0
    for rnd in range(settings.rounds):
        for scenario in scenarios:
            todo = [pe for pe in peers if scenario.kind in pe.kinds
                    and (pe.scenarios is None or scenario.name in pe.scenarios)]
            if not todo:
                continue
            shift = rnd % len(todo)  # interleave: each round starts with another peer
            for peer in todo[shift:] + todo[:shift]:
                result = measure(peer, scenario, settings)
                failures += "error" in result
                runs.append({"round": rnd + 1, "scenario": scenario.name,
                             "peer": peer.name, "result": result})
                print(f"[{rnd + 1}/{settings.rounds} {time.monotonic() - started:5.0f}s] "
                      f"{scenario.name:12} {peer.name:19} {_summary(result, scenario)}",
                      flush=True)
    elapsed = time.monotonic() - started

    report = tables(runs, peers, scenarios)
    print()
    print(report)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command.strip(), "elapsed_s": round(elapsed, 1),
        "settings": asdict(settings), "machine": machine(), "versions": versions(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        # What each metric is, so that a reader of the JSON (bench/plot.py)
        # needs no checkout of this version of bench/peers.py.
        "scenarios": [{"name": s.name, "kind": s.kind, "title": s.title,
                       "metrics": [asdict(m) for m in s.metrics]} for s in scenarios],
    }
    a.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = a.out / f"{stamp}-{'quick' if a.quick else 'full'}"
    base.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "runs": runs,
         "medians": {f"{k[0]} {k[1]}": v for k, v in medians(runs).items()}}, indent=1))
    versions_line = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    base.with_suffix(".md").write_text(
        f"`{meta['command']}` on {meta['date']}, {elapsed:.0f} s; "
        f"{meta['machine']['cores']} cores, {meta['machine']['cpu']}, "
        f"Python {meta['machine']['python']}\n\n{versions_line}\n\n{report}")
    print(f"{len(runs)} measurements in {elapsed:.0f} s ({failures} failed); "
          f"wrote {base}.json and .md")
    return 1 if failures else 0
