"""Developer sessions: ``nox -s tests tests_pure lint typecheck``; by hand,
``autobahn``, ``bench``, ``soak`` and ``fuzz``."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests", "tests_pure", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = False

AUTOBAHN = os.path.join(os.path.dirname(__file__), "..", "shared", "tools", "autobahn")


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    """The test suite on both anyio backends, on each supported Python."""
    session.install("-e", ".[test]")
    session.run("npm", "ci", "--prefix", "tests/interop", external=True)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def tests_pure(session: nox.Session) -> None:
    """The suite again with the optional C accelerator turned off, so the
    pure-Python fallback passes the same tests."""
    session.install("-e", ".[test]")
    session.run("npm", "ci", "--prefix", "tests/interop", external=True)
    session.run("python", "-m", "pytest", *session.posargs,
                env={"FAYE_WEBSOCKET_NO_SPEEDUPS": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def autobahn(session: nox.Session) -> None:
    """Autobahn|Testsuite on both backends: the fuzzingclient against
    ``python -m faye_websocket echo`` (reports/autobahn-<backend>) and the
    fuzzingserver against tests/autobahn/client.py
    (reports/autobahn-client-<backend>); about 25 minutes per run.
    ``nox -s autobahn -- trio`` runs one backend."""
    session.install("-e", ".")
    server_runner = os.path.abspath(os.path.join(AUTOBAHN, "run_server_suite.sh"))
    client_runner = os.path.abspath(os.path.join(AUTOBAHN, "run_client_suite.sh"))
    client = os.path.abspath(os.path.join("tests", "autobahn", "client.py"))
    session.run("bash", os.path.join(AUTOBAHN, "setup.sh"), external=True)
    backends = session.posargs or ["asyncio", "trio"]
    if "trio" in backends:
        session.install("trio")
    for backend in backends:
        out = os.path.abspath(f"reports/autobahn-{backend}")
        session.run(
            server_runner, "9001", "--", "python", "-m", "faye_websocket", "echo",
            "--port", "9001", "--backend", backend,
            env={"AB_OUT": out, "AB_TIMEOUT": "3600"}, external=True,
        )
    for backend in backends:
        out = os.path.abspath(f"reports/autobahn-client-{backend}")
        session.run(
            client_runner, "9002", "--", "python", client, "--backend", backend,
            env={"AB_OUT": out, "AB_TIMEOUT": "3600", "AB_AGENT": "faye_websocket"},
            external=True,
        )


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite against the peers (docs/performance.md); about
    12 minutes. ``nox -s bench -- --quick`` is a smoke run (under 2 minutes);
    ``-- --only ours-asyncio,websockets --scenario small_echo`` narrows it."""
    session.install("-e", ".[bench]")
    if shutil.which("node") and shutil.which("npm"):
        session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix", "bench/node",
                    external=True)
    else:
        session.log("node/npm not found: the Node faye-websocket peer will be skipped")
    session.run("python", "-m", "bench", *session.posargs)


FUZZ_TARGETS = {"handshake": 4096, "frames": 4096, "hixie": 4096,
                "sse_client": 4096}  # target: -max_len


@nox.session(python="3.11")
def fuzz(session: nox.Session) -> None:
    """The atheris targets in fuzz/, each for a bounded time.

    ``nox -s fuzz`` runs every target for 600 s; ``nox -s fuzz -- 60`` for
    60 s; ``nox -s fuzz -- 60 frames`` one target. New inputs go to
    fuzz/work/<target>/ (the committed seeds in fuzz/corpus/<target>/ stay
    as they are), crashes to fuzz/crashes/<target>/; both are gitignored.
    A crash fails the session. Python 3.11: atheris ships wheels for it.
    """
    seconds = session.posargs[0] if session.posargs else "600"
    targets = session.posargs[1:] or list(FUZZ_TARGETS)
    session.install("-e", ".[fuzz]")
    for target in targets:
        work, crashes = f"fuzz/work/{target}", f"fuzz/crashes/{target}"
        os.makedirs(work, exist_ok=True)
        os.makedirs(crashes, exist_ok=True)
        session.run(
            "python", f"fuzz/fuzz_{target}.py", f"-max_total_time={seconds}",
            f"-max_len={FUZZ_TARGETS[target]}", "-timeout=10", "-rss_limit_mb=2048",
            f"-artifact_prefix={crashes}/", "-print_final_stats=1", work,
            f"fuzz/corpus/{target}",
        )


@nox.session
def soak(session: nox.Session) -> None:
    """Soak and load run (bench/soak.py): 1,000 echo clients x 100 messages,
    slow readers and broadcast, on both backends, the echo run also through
    TLS; results in bench/results/. ``nox -s soak -- --quick`` for small
    sizes; other arguments go to bench/soak.py (see its ``--help``)."""
    session.install("-e", ".", "trio", "trustme")
    session.run("python", "bench/soak.py", *session.posargs)
