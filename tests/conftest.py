"""Shared fixtures: paths to the shipped specs and the real digits shipped inside the package
(the tests need nothing beside the clone)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

# One thread per process: on a shared 2-core machine, PyTorch's two threads slowed each other
# down ~10x (LeNet training 60 img/s with 2 threads vs 1,050 img/s with 1, measured under
# load). Set before torch is imported; subprocesses started by the tests inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
TINY = """network Tiny
input 28x28x1
conv 3x3x4 relu
maxpool 2
flatten
dense 10
train:
    epochs {epochs}
    batch 128
    optimizer sgd lr 0.05
"""
"""A small spec for the run-folder tests: about a second an epoch on the embedded digits."""


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped in the package (cnnspec/embedded/digits.npz):
    images (5000, 28, 28) uint8, labels (5000,)."""
    with resources.files("cnnspec.embedded").joinpath("digits.npz").open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        return npz["images"], npz["labels"]


def write_digit_folder(root: Path, images, labels, classes, per_class: int) -> Path:
    """Write ``per_class`` real digits of each class as PNG files under root/<class>/."""
    for c in classes:
        d = root / f"digit{c}"
        d.mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(labels == c)[:per_class]):
            Image.fromarray(images[idx]).save(d / f"{i:04d}.png")
    return root


@pytest.fixture
def digit_folder(tmp_path, digits) -> Path:
    """An image folder with 3 real digit classes (1, 4, 7) x 60 PNGs."""
    images, labels = digits
    return write_digit_folder(tmp_path / "digits", images, labels, (1, 4, 7), 60)


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite the golden files under tests/testdata/golden/ from the current output")


@pytest.fixture
def golden(request):
    """Compare text with tests/testdata/golden/NAME; rewrite it only with --update-goldens."""
    update = request.config.getoption("--update-goldens")

    def check(name: str, text: str) -> None:
        path = ROOT / "tests" / "testdata" / "golden" / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"{path} is missing: run pytest --update-goldens once and review it"
        assert text == path.read_text(), f"{name} differs from its golden file"

    return check


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    """Every test decodes into a cache folder of its session, never the user's ~/.cache."""
    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def rendered(fn, *args) -> str:
    """What a report function (``fn(*args, console)``) prints on a plain 200-column console."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    fn(*args, Console(file=buf, width=200, color_system=None, force_terminal=False))
    return buf.getvalue()


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root, so reports name specs as specs/NAME.cnn in any clone."""
    monkeypatch.chdir(SPECS.parent)


def run_cli(*args, cwd=None):
    """``python -m cnnspec ARGS`` in a real process: a ``subprocess.CompletedProcess`` with
    text stdout and stderr (never raising on a non-zero exit status)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=300, cwd=cwd)
