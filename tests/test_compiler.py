"""cnnspec/compiler.py: check (with the transfer source) and compile as library calls."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def _flat(folder, n=3):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_check_names_a_missing_transfer_source_with_its_resolved_path(tmp_path):
    spec = tmp_path / "specs" / "t.cnn"
    spec.parent.mkdir()
    spec.write_text("network T\ninput 28x28x1\nconv 3x3x4 relu\nflatten\ndense 10\n"
                    "transfer:\n    from \"runs/source\"\n    freeze up to C1\n")
    r = _cli("check", spec, cwd=tmp_path)
    assert r.returncode == 1
    assert (f"t.cnn:7:10: error: transfer: from \"runs/source\": "
            f"{(tmp_path / 'specs' / 'runs' / 'source').resolve()} does not exist") in r.stderr
    assert f"relative to the spec's folder ({spec.parent.resolve()})" in r.stderr


def test_compile_spec_builds_exports_and_says_so(tmp_path):
    """compile_spec: the summary, the built module's parameters, the ONNX check, on the
    console given; nothing trained (None returned)."""
    import io

    from rich.console import Console

    from cnnspec.compiler import compile_spec
    from conftest import SPECS

    buf = io.StringIO()
    result = compile_spec(SPECS / "lenet5.cnn", Console(file=buf, width=200, color_system=None),
                          onnx=str(tmp_path / "m.onnx"))
    text = buf.getvalue()
    assert result is None and (tmp_path / "m.onnx").stat().st_size > 200_000
    assert "Total params: 61,706" in text
    assert "built cnnspec.builder.Network LeNet5: 61,706 parameters" in text
    assert "ONNX Runtime" in text
