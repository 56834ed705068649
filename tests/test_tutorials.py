"""The tutorials of the documentation site run as written: in a fresh folder, top to bottom,
each ```cnn title="F"``` block is written to F, each ```python``` block runs (one namespace,
its asserts included) and each line of a ```bash``` block runs in a shell and must succeed.
A ```text``` block right after a python or bash block is that block's output: each of its
lines must appear in what the block printed."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[tuple[str, str, str]]:
    """(language, attributes, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(path.read_text())]


def run_tutorial(path: Path, folder: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict = {"__name__": "__tutorial__"}
    printed = None
    old = os.getcwd()
    os.chdir(folder)
    try:
        for i, (lang, attrs, body) in enumerate(blocks(path)):
            where = f"{path.name} block {i + 1} ({lang})"
            if lang == "cnn" and (m := re.search(r'title="([^"]+)"', attrs)):
                Path(m.group(1)).write_text(body)
                printed = None
            elif lang == "python":
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    exec(compile(body, where, "exec"), namespace)  # noqa: S102 - our docs
                printed = buf.getvalue()
            elif lang == "bash":
                printed = ""
                for line in body.splitlines():
                    command = line.split("  #")[0].strip()
                    if not command or command.startswith("#"):
                        continue
                    r = subprocess.run(command, shell=True, capture_output=True, text=True,
                                       env=env, timeout=900, check=False)
                    assert r.returncode == 0, f"{where}: {command}\n{r.stdout}\n{r.stderr}"
                    printed += r.stdout + r.stderr
            elif lang == "text" and printed is not None:
                missing = [line for line in body.splitlines()
                           if line.strip() and line.rstrip() not in printed]
                assert not missing, f"{where}: not in the output above it: {missing}\n{printed}"
                printed = None
            else:
                printed = None
    finally:
        os.chdir(old)


def test_there_are_three_tutorials():
    assert [p.stem for p in TUTORIALS] == ["photos", "transition-transfer", "vgg"]


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_as_written(path, tmp_path):
    assert blocks(path), path
    run_tutorial(path, tmp_path)
