"""What pip installs: the wheel's package list, dependency ranges and platform markers, and
source that the supported Pythons (3.10-3.13) compile. (CI also builds the wheel and
installs it into a fresh virtual environment: .ci/run.)"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIREMENTS = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]


def test_every_subpackage_is_in_the_wheel():
    """pyproject lists packages by hand: a new subpackage missing there installs nowhere."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cnnspec").rglob(
        "__init__.py")}
    assert found <= listed, sorted(found - listed)


PLATFORMS = {  # (sys_platform, platform_machine): the ONNX Runtime build pip should pick
    ("linux", "x86_64"): "onnxruntime-gpu", ("win32", "AMD64"): "onnxruntime-gpu",
    ("linux", "aarch64"): "onnxruntime", ("darwin", "arm64"): "onnxruntime",
    ("darwin", "x86_64"): "onnxruntime", ("win32", "ARM64"): "onnxruntime",
}


@pytest.mark.parametrize("platform", PLATFORMS, ids=["-".join(p) for p in PLATFORMS])
def test_exactly_one_onnx_runtime_build_per_platform(platform):
    env = {**default_environment(), "sys_platform": platform[0], "platform_machine": platform[1]}
    chosen = [r.name for r in REQUIREMENTS if r.name.startswith("onnxruntime")
              and (r.marker is None or r.marker.evaluate(env))]
    assert chosen == [PLATFORMS[platform]]  # both at once would share one package folder


def test_torch_is_a_range_and_ci_pins_the_pair_in_a_constraints_file():
    torch_reqs = {r.name: r for r in REQUIREMENTS if r.name in ("torch", "torchvision")}
    assert set(torch_reqs) == {"torch", "torchvision"}
    for req in torch_reqs.values():
        assert all(s.operator == ">=" for s in req.specifier), req  # no exact pins
    pins = dict(line.split("==") for line in (ROOT / ".ci" / "constraints.txt").read_text()
                .splitlines() if line and not line.startswith("#"))
    assert set(pins) == {"torch", "torchvision"}
    for name, version in pins.items():
        assert torch_reqs[name].specifier.contains(version)  # the pin lies inside the range
    assert "-c .ci/constraints.txt" in (ROOT / ".ci" / "run").read_text()


def _interpreter(version: str) -> str | None:
    """A working python{version}: on PATH, or installed by pyenv (whose shims only answer
    for the versions a project selects)."""
    found = [shutil.which(f"python{version}")]
    found += sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    for python in filter(None, found):
        ok = subprocess.run([python, "-c", "pass"], check=False, capture_output=True, timeout=60)
        if ok.returncode == 0:
            return python
    return None


@pytest.mark.parametrize("version", ["3.10", "3.12", "3.13"])
def test_the_package_compiles_under_supported_pythons(version):
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no python{version} on this machine")
    code = ("import pathlib, sys\n"
            "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*.py')):\n"
            "    compile(p.read_text(encoding='utf-8'), str(p), 'exec')\n")
    r = subprocess.run([python, "-c", code, str(ROOT / "cnnspec")], check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"


@pytest.mark.slow
def test_the_wheel_carries_what_cnnspec_reads_at_run_time(tmp_path):
    """Built for real: the grammar, every shipped spec, the embedded digits with their
    attribution, the license, every module, and the Pygments entry point."""
    import sys
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True,
                       check=False, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("cnnspec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"cnnspec/grammar/cnnspec.lark", "cnnspec/embedded/digits.npz",
                "cnnspec/embedded/README.md", "cnnspec/insight/probing.py", "cnnspec/language/lexer.py"}
    expected |= {f"cnnspec/specs/{p.relative_to(ROOT / 'specs').as_posix()}"
                 for p in (ROOT / "specs").rglob("*.cnn")}
    expected |= {f"cnnspec/{p.relative_to(ROOT / 'cnnspec').as_posix()}"
                 for p in (ROOT / "cnnspec").rglob("*.py")}
    assert expected <= names, sorted(expected - names)
    assert any(n.endswith(("/LICENSE", "/licenses/LICENSE")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pygments.lexers]" in text and "cnnspec.language.lexer:CnnSpecLexer" in text
    assert "cnnspec = cnnspec.cli:main" in text
