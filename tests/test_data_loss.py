"""Nothing of the user's is lost: a run folder that is not a run, the temporary-file cleanup,
an ONNX output over a FIFO, the cache's clear and its entries that are links, FIFOs or
damaged (issue 29, findings 11-15, 18, 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnspec import ir
from cnnspec.data import load_data
from cnnspec.training.run_folder import RunFolder
from conftest import TINY as TINY_RUN

INPUT = ir.InputShape(height=28, width=28, channels=1)
TINY = TINY_RUN.format(epochs=1)
# a project folder as a user has it: hidden files with two dots in their names, and files
# named as a run's are (their own spec.cnn, run.json, ...)
USER_FILES = {".pre-commit-config.yaml": "repos: []\n", ".env.local": "KEY=1\n",
              ".gitlab-ci.yml": "stages: []\n", "spec.cnn": "my own notes\n",
              "spec.json": '{"mine": true}\n', "run.json": '{"mine": true}\n',
              "classes.json": '["mine"]\n', "notes.txt": "keep me\n"}


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name, text in USER_FILES.items():
        (project / name).write_text(text)
    (project / "tiny.cnn").write_text(TINY)
    return project


def _cli(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _intact(project: Path) -> None:
    for name, text in USER_FILES.items():
        assert (project / name).read_text() == text, name


def test_out_naming_a_folder_that_holds_no_run_is_refused_and_nothing_is_touched(tmp_path):
    project = _project(tmp_path)
    r = _cli("compile", "tiny.cnn", "--train", "--out", ".", cwd=project)
    assert r.returncode == 1, r.stderr
    assert "is not empty and holds no run" in r.stderr
    assert "Traceback" not in r.stderr
    _intact(project)
    assert not (project / "last.ckpt").exists() and not (project / "model.onnx").exists()


def test_a_run_failing_before_its_first_epoch_keeps_the_users_files(tmp_path):
    project = _project(tmp_path)
    for cls in ("a", "b"):  # a folder that passes the first check, fails while decoding
        (tmp_path / "broken" / cls).mkdir(parents=True)
        (tmp_path / "broken" / cls / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for data in ("no-such-folder", tmp_path / "broken"):
        r = _cli("compile", "tiny.cnn", "--train", "--out", ".", "--data", data, cwd=project)
        assert r.returncode == 1
        _intact(project)


def test_abandon_removes_only_the_start_files_this_process_wrote(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start("network X\n", {"network": "X"}, ["a", "b"], {"network": "X", "steps_per_epoch": 1})
    (run.path / "mine.txt").write_text("keep")
    run.abandon(created=[run.path])
    assert sorted(p.name for p in run.path.iterdir()) == ["mine.txt"]
    # a second folder object that wrote nothing removes nothing
    other = tmp_path / "other"
    other.mkdir()
    for name in ("spec.cnn", "spec.json", "run.json", "classes.json"):
        (other / name).write_text("{}")
    RunFolder(other).abandon(created=[])
    assert len(list(other.iterdir())) == 4


def test_a_run_killed_before_its_first_epoch_may_start_again_in_its_folder(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start("network X\n", {"network": "X"}, ["a"], {"network": "X", "steps_per_epoch": 3})
    (run.path / "run.lock").write_text('{"pid": 1, "host": "elsewhere"}')
    (run.path / ".last.ckpt.ab12cd34").write_bytes(b"half")
    assert run.foreign() == []
    assert RunFolder(tmp_path / "new").foreign() == []
    # the same names, written by the user (run.json is not cnnspec's): refused
    (run.path / "run.json").write_text('{"mine": true}')
    assert run.foreign() != []


def test_the_temporary_file_cleanup_removes_only_the_run_files_temporaries(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    theirs = [".pre-commit-config.yaml", ".env.local", ".gitlab-ci.yml", ".a.b",
              ".notes.txt.ab12cd34", ".weights.safetensors.old"]
    ours = [".last.ckpt.ab12cd34", ".model.onnx.k9_x0abc.onnx", ".metrics.json.zzzzzzzz",
            ".epoch-003.safetensors.0123abcd"]
    for name in theirs + ours:
        (folder / name).write_text("x")
    removed = RunFolder(folder).clean_temporaries()
    assert sorted(removed) == sorted(ours)
    assert sorted(p.name for p in folder.iterdir()) == sorted(theirs)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_compile_onnx_over_a_fifo_is_refused_and_the_fifo_kept(tmp_path):
    import stat

    (tmp_path / "tiny.cnn").write_text(TINY)
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    r = _cli("compile", tmp_path / "tiny.cnn", "--onnx", fifo, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "not a regular file" in r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert "built " not in r.stdout  # refused before the build, not after the export


def test_cache_clear_removes_only_the_caches_own_files(digit_folder, tmp_path, monkeypatch):
    cache = tmp_path / "shared-cache"
    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(cache))
    images = load_data(digit_folder, INPUT)
    key = Path(images.cache).stem
    del images
    theirs = {"package.json": "{}", "notes.u8": "x", "config.json": "{}", ".hidden.json": "{}"}
    for name, text in theirs.items():
        (cache / name).write_text(text)
    (cache / f".{key}.4242.u8").write_bytes(b"unfinished")
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    (cache / f"{'f' * 32}.json").symlink_to(outside)
    r = _cli("cache", "--clear", timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in cache.iterdir()) == sorted(theirs)
    assert outside.read_text() == "precious"


def _entry(digit_folder, cache: Path) -> tuple[Path, np.ndarray]:
    images = load_data(digit_folder, INPUT)
    meta = cache / (Path(images.cache).stem + ".json")
    return meta, np.array(images.array)


def test_a_cache_entry_that_is_a_link_is_replaced_not_written_through(digit_folder, tmp_path,
                                                                       monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(cache))
    meta, first = _entry(digit_folder, cache)
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    meta.unlink()
    meta.symlink_to(outside)
    again = load_data(digit_folder, INPUT)
    assert outside.read_text() == "precious"
    assert not meta.is_symlink() and json.loads(meta.read_text())["shape"][0] == len(again)
    assert np.array_equal(np.array(again.array), first)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_place_of_a_cache_entry_is_decoded_again_not_waited_on(digit_folder, tmp_path):
    cache = tmp_path / "cache"
    code = ("import os, sys; from cnnspec import ir; from cnnspec.data import load_data; "
            f"x = load_data({str(digit_folder)!r}, ir.InputShape(height=28, width=28, channels=1));"
            " print(len(x))")
    env = {**os.environ, "CNNSPEC_CACHE_DIR": str(cache)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    (meta,) = cache.glob("*.json")
    meta.unlink()
    os.mkfifo(meta)
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60, check=True)
    assert again.stdout == first.stdout == "180\n"
    assert meta.is_file()


@pytest.mark.parametrize("damage", [
    {"kept": [999] + list(range(1, 180))}, {"shape": [-180, 1, 28, 28]}, {"shape": [180, 784]},
    {"kept": "all"}, {"skipped": [3]}, {"shape": [180.0, 1, 28, 28]}])
def test_a_cache_entry_of_the_wrong_types_is_decoded_again(digit_folder, tmp_path, monkeypatch,
                                                           damage):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(cache))
    meta, first = _entry(digit_folder, cache)
    doc = json.loads(meta.read_text())
    doc.update(damage)
    meta.write_text(json.dumps(doc))
    again = load_data(digit_folder, INPUT)
    assert np.array_equal(np.array(again.array), first)
    assert json.loads(meta.read_text())["kept"] == list(range(180))


def test_out_inside_the_data_folder_is_refused(tmp_path, digit_folder):
    """Issue 29, finding 27: the run's pictures would become training images."""
    (tmp_path / "tiny.cnn").write_text(TINY.replace("dense 10", "dense 3"))
    r = _cli("compile", tmp_path / "tiny.cnn", "--train", "--data", digit_folder, "--out",
             digit_folder / "run")
    assert r.returncode == 1
    assert "would be inside the data folder" in r.stderr
    assert not (digit_folder / "run").exists()


def test_a_transfer_source_that_is_a_loop_of_links_is_named(tmp_path):
    """Issue 29, finding 23: an internal error before."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    spec = tmp_path / "t.cnn"
    spec.write_text('network T\ninput 28x28x1\nflatten\ndense 10\ntransfer:\n    from "a"\n')
    r = _cli("check", spec)
    assert r.returncode == 1, r.stderr
    assert 'transfer: from "a": ' in r.stderr and "is a loop of symbolic links" in r.stderr


def test_a_cache_that_cannot_be_written_is_a_note_not_a_python_warning(tmp_path, digit_folder):
    """Issue 29, finding 29: a raw UserWarning with cnnspec's source line before."""
    (tmp_path / "file").write_text("not a folder")
    code = ("from cnnspec import ir; from cnnspec.data import load_data; "
            f"print(len(load_data({str(digit_folder)!r}, ir.InputShape(height=28, width=28, "
            "channels=1))))")
    r = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                       text=True, timeout=120, check=False,
                       env={**os.environ, "CNNSPEC_CACHE_DIR": str(tmp_path / "file")})
    assert r.returncode == 0 and r.stdout == "180\n"
    assert "Warning" not in r.stderr
    assert r.stderr.startswith(f"note: cannot write the decoded-image cache in {tmp_path / 'file'}")


def test_a_run_failing_at_its_start_leaves_no_empty_folders(tmp_path):
    """The newcomer's finding: a failed start (here: no readable image) left the empty
    parents it had made for --out (runs/, a/b/)."""
    for cls in ("a", "b"):
        (tmp_path / "broken" / cls).mkdir(parents=True)
        (tmp_path / "broken" / cls / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "tiny.cnn").write_text(TINY.replace("dense 10", "dense 2"))
    r = _cli("compile", "tiny.cnn", "--train", "--data", "broken", "--out", "a/b/run",
             cwd=tmp_path)
    assert r.returncode == 1
    assert not (tmp_path / "a").exists()
    r = _cli("compile", "tiny.cnn", "--train", "--data", "broken", cwd=tmp_path)
    assert r.returncode == 1 and not (tmp_path / "runs").exists()
