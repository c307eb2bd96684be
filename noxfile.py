"""Developer sessions: ``nox -s tests tests_pure lint typecheck``; by hand,
``docs`` (the documentation site), ``autobahn``, ``bench``, ``compression``,
``soak``, ``fuzz`` and ``dist`` (before a release, docs/releasing.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

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


#: Tracked files that stay out of the sdist: CI and git configuration.
NOT_IN_SDIST = (".ci/", ".github/", ".gitignore", "tests/interop/.gitignore")

#: Written into the unpacked sdist by ``dist``: pytest loads it before the
#: tests, so the run itself proves it imports the installed wheel.
DIST_CONFTEST = """\
# Written by `nox -s dist`: the suite runs against the installed wheel.
import sysconfig
from pathlib import Path

import faye_websocket
from faye_websocket._core.frames import c_mask

_SITE = Path(sysconfig.get_paths()["platlib"]).resolve()
_FILE = Path(faye_websocket.__file__).resolve()
assert _SITE in _FILE.parents, f"faye_websocket imported from {_FILE}, not from {_SITE}"
assert c_mask is not None, "the wheel's C accelerator did not load"
"""


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def dist(session: nox.Session) -> None:
    """The distributions as a user gets them, on each supported Python.

    Builds the sdist from a clean copy of the tracked files (as they are in
    the working tree: no node_modules, build output or local files), then the
    wheel from the sdist (so the sdist must be complete), with the C
    accelerator required; runs ``twine check --strict`` and
    ``check-wheel-contents``, and checks both archives' contents. Installs
    the wheel (not editable) with the ``test`` extra and runs the whole
    suite from the unpacked sdist with its ``src/`` removed; a generated
    root ``conftest.py`` asserts that ``faye_websocket`` comes from
    site-packages with the accelerator loaded. Needs ``git``, a C compiler,
    ``node``/``npm``; ``nox -s dist -- -x tests/test_frames.py`` narrows
    pytest.
    """
    root = Path(__file__).parent
    tmp = Path(session.create_tmp()).resolve()
    tree, out, unpacked = tmp / "tree", tmp / "dist", tmp / "unpacked"
    for path in (tree, out, unpacked):
        shutil.rmtree(path, ignore_errors=True)
    tracked = _tracked_files(root)
    for name in tracked:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, tree / name)

    session.install("build", "twine", "check-wheel-contents")
    session.run("python", "-m", "build", "--outdir", str(out), str(tree),
                env={"FAYE_WEBSOCKET_REQUIRE_SPEEDUPS": "1"})
    [sdist], [wheel] = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    session.run("twine", "check", "--strict", str(sdist), str(wheel))
    session.run("check-wheel-contents", str(wheel))
    problems = _check_sdist(sdist, tracked) + _check_wheel(wheel)
    if problems:
        session.error("; ".join(problems))
    session.log(f"{sdist.name}: {sdist.stat().st_size:,} bytes; "
                f"{wheel.name}: {wheel.stat().st_size:,} bytes")

    session.install(f"{wheel}[test]")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(unpacked, filter="data")
        else:  # Python < 3.11.4 running nox; the archive is our own
            archive.extractall(unpacked)
    [source] = unpacked.iterdir()
    shutil.rmtree(source / "src")
    (source / "conftest.py").write_text(DIST_CONFTEST)
    session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix",
                str(source / "tests" / "interop"), external=True)
    session.chdir(source)
    session.run("python", "-c", "import faye_websocket.__main__ as m; print(m.version())")
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)


def _tracked_files(root: Path) -> list[str]:
    """Tracked files present in the working tree (deleted ones left out)."""
    output = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True,
                            capture_output=True).stdout.decode()
    return sorted(name for name in output.split("\0") if name and (root / name).is_file())


def _check_sdist(sdist: Path, tracked: list[str]) -> list[str]:
    """Every tracked file but CI and git configuration; nothing built or installed."""
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    missing = [name for name in tracked
               if not name.startswith(NOT_IN_SDIST) and name not in names]
    stray = [name for name in names
             if "node_modules/" in name or "__pycache__" in name
             or name.endswith((".so", ".pyd", ".pyc"))]
    return ([f"sdist lacks {', '.join(missing)}"] if missing else []) + (
        [f"sdist has {', '.join(sorted(stray))}"] if stray else [])


def _check_wheel(wheel: Path) -> list[str]:
    """The package with its compiled accelerator, py.typed and the license;
    no C source and no tests."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    problems = [f"wheel has {name}" for name in names
                if name.endswith(".c") or name.startswith("tests/") or "/tests/" in name]
    if not any(name.startswith("faye_websocket/_core/_speedups.")
               and name.endswith((".so", ".pyd")) for name in names):
        problems.append("wheel lacks the compiled accelerator")
    if "faye_websocket/py.typed" not in names:
        problems.append("wheel lacks py.typed")
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        problems.append("wheel lacks the license")
    return problems


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py", "docs/conf.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site in docs/_build/html (open index.html): Sphinx
    with myst-parser and furo, the pages in docs/*.md and the API reference
    from the docstrings. Warnings are errors and every cross-reference must
    resolve (``-W --keep-going -n``); ``-E`` rereads every page, so a stale
    build cannot hide a warning. No network; a few seconds."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-n", "-E", "-q", "-b", "html",
                "docs", "docs/_build/html", *session.posargs)


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


@nox.session
def compression(session: nox.Session) -> None:
    """The compression benchmark (docs/compression.md): the codec matrix
    (~10 minutes), the incompressible-data sample, and the servers against
    websockets with permessage-deflate (~5 minutes a round).
    ``nox -s compression -- servers --rounds 3`` runs one part."""
    session.install("-e", ".[bench]")
    for what in ([session.posargs] if session.posargs else [["codec"], ["skip"], ["servers"]]):
        session.run("python", "-m", "bench", "compression", *what)


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
