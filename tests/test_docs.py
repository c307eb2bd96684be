"""The runnable examples in docs/ run (against a live echo server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from faye_websocket._demo import demo_server

from .conftest import running

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
