"""Issue 13's hostile-input harness: inputs of each group the issue names, run through the
command line, each judged; prints per group how many inputs were tried and how many failed.

    python scripts/hostile.py                      # this checkout (~10 min)
    python scripts/hostile.py --code OLD_CHECKOUT  # the same inputs against other code
    python scripts/hostile.py --fuzz 100 --only specs,output   # a quick look

Commands run in this process (``cnnspec.cli.main`` with a time limit) except where an input
could take the process down (``include "/dev/zero"``, a file size limit), which run in a
child process with a memory and time limit. An input *fails* when the command

- ends in a traceback (an exception out of ``main``, or exit status 70 "internal error"),
- hangs (over ``--timeout`` seconds), or shows a raw Python warning,
- exits 0 where it must refuse (or refuses where it must work), or
- breaks the input's own check: a file outside a run folder changed through a link, a spec
  that ``fmt`` made invalid, a name shown wrong, a killed run that cannot be resumed to the
  result of an uninterrupted one, ...

Groups (as the issue lists them): specs, training, run folders, crash consistency, names,
output; and issue 29's user files (what cnnspec did not write is never removed or rewritten). The specs group includes ``--fuzz`` inputs from each strategy of tests/fuzzing.py.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = """network Tiny
input 12x12x1
conv 3x3x4 relu
maxpool 2
flatten
dense {hidden}
{extra}dense 3
train:
    epochs {epochs}
    batch {batch}
    optimizer sgd lr {lr} momentum 0.9{wd}
    data "{data}"
    split 0.25
"""


class Hang(Exception):
    pass


@dataclass
class Run:
    rc: int
    out: str
    err: str
    failure: str | None = None  # "traceback", "hang", "raw warning" (the command's own)


def _alarm(signum, frame):
    raise Hang


def cli(*args, cwd: Path, timeout: float) -> Run:
    """``cnnspec ARGS`` in this process, in ``cwd``, within ``timeout`` seconds."""
    from cnnspec.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    rc, failure = 0, None
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            main([str(a) for a in args])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Hang:
        rc, failure = -1, "hang"
    except BaseException:  # noqa: BLE001 - a traceback reached the user
        rc, failure = -2, "traceback"
        err.write(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(here)
    text = err.getvalue()
    if failure is None and rc == 70:
        failure = "traceback"
    if failure is None and ("Warning:" in text or "Traceback (most recent" in text):
        failure = "raw warning"
    return Run(rc, out.getvalue(), text, failure)


def isolated(*args, cwd: Path, timeout: float, fsize: int | None = None,
             memory: int = 6 << 30) -> Run:
    """``cnnspec ARGS`` in a child process with a memory limit (and a file size limit)."""

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        r = subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], cwd=cwd,
                           capture_output=True, text=True, timeout=timeout, env=env,
                           preexec_fn=limits, check=False)
    except subprocess.TimeoutExpired:
        return Run(-1, "", "", "hang")
    failure = None
    if r.returncode == 70 or "Traceback (most recent" in r.stderr:
        failure = "traceback"
    elif r.returncode < 0:
        failure = f"killed by signal {-r.returncode}"
    return Run(r.returncode, r.stdout, r.stderr, failure)


def judge(run: Run, expect: str, extra: str | None = None) -> str | None:
    """None when the command behaved; otherwise what went wrong."""
    if run.failure:
        return run.failure
    if expect == "error" and run.rc == 0:
        return "exit 0 where it must refuse"
    if expect == "ok" and run.rc != 0:
        return f"exit {run.rc} where it must work: {run.err.strip()[-200:]}"
    if run.rc not in (0, 1, 2):
        return f"exit {run.rc}"
    return extra


# ------------------------------------------------------------------------------------ data

def images(folder: Path, classes=("a", "b", "c"), per_class=8, size=12, seed=0) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.clip(rng.normal(60 + 70 * k, 20, (size, size)), 0, 255).astype("uint8")
            Image.fromarray(arr).save(folder / name / f"{i}.png")
    return folder


def tiny(folder: Path, data: Path, *, epochs=1, batch=4, lr="0.05", hidden=8, extra="",
         wd="") -> Path:
    spec = folder / "tiny.cnn"
    spec.write_text(TINY.format(epochs=epochs, batch=batch, lr=lr, hidden=hidden, extra=extra,
                                wd=f"\n    weight_decay {wd}" if wd else "", data=data))
    return spec


# ---------------------------------------------------------------------------------- groups

# The words that open a statement of the train: and transfer: sections (as
# cnnspec.language.parser.section_words() gives them today; fixed here so that any checkout gets the
# same inputs).
SECTION_WORDS = ["augment", "batch", "bn", "checkpoint", "classes", "clip_grad_norm",
                 "compile", "data", "early_stop", "epochs", "freeze", "from",
                 "label_smoothing", "log", "lr", "optimizer", "precision", "schedule", "seed",
                 "split", "sync_batchnorm", "threads", "train", "unfreeze", "weight_decay",
                 "workers"]


def group_specs(work: Path, t: float, fuzz: int):
    sys.path.insert(0, str(ROOT / "tests"))
    from fuzzing import SHIPPED, grammar_specs, mutated, outcomes, word_streams

    here = os.getcwd()
    os.chdir(work)
    try:
        for name, strategy in (("mutated", mutated), ("words", word_streams),
                               ("grammar", grammar_specs)):
            runs = outcomes(strategy(), fuzz, t, derandomize=True)
            for i, (_, what) in enumerate(runs):
                failure = None if what in ("loaded", "spec error") else what
                yield f"fuzz {name} #{i}", (lambda r=failure: r)
    finally:
        os.chdir(here)

    head = "network T\ninput 28x28x1\n"
    for word in SECTION_WORDS:
        def case(word=word):
            f = work / f"word_{word}.cnn"
            f.write_text(head + f"conv 3x3x4\n{word} 3\nflatten\ndense 10\n")
            r = cli("check", f, cwd=work, timeout=t)
            same = f"did you mean '{word}'" in r.err
            return judge(r, "error", "suggests the word itself" if same else None)
        yield f"train word {word} at top level", case
    for k in (10, 12, 15, 20, 30):
        for form in ("conv 3x3x{n}\n", "dense {n}\n", "input {n}x{n}x3\n"):
            def case(k=k, form=form):
                body = form.format(n=10 ** k)
                text = (body + "conv 3x3x4\n" if form.startswith("input") else
                        "input 28x28x1\n" + body)
                f = work / f"huge_{k}.cnn"
                f.write_text("network H\n" + text + "flatten\ndense 10\n")
                return judge(isolated("compile", f, cwd=work, timeout=60), "error")
            yield f"size 10**{k}: {form.strip()}", case
    breaks = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
    for name in sorted(SHIPPED)[:6]:
        for ch in breaks:
            def case(name=name, ch=ch):
                lines = SHIPPED[name].splitlines()
                lines.insert(3, f"# a note{ch}dense 3 then more words")
                f = work / f"break_{name}"
                f.write_text("\n".join(lines) + "\n")
                r = cli("fmt", f, cwd=work, timeout=t)
                if r.failure or r.rc != 0:
                    return judge(r, "ok")
                return judge(cli("check", f, cwd=work, timeout=t), "ok")
            yield f"fmt keeps a comment with {ch!r} ({name})", case

    def include(target_maker, why):
        def case():
            target = target_maker(work)
            f = work / "inc.cnn"
            f.write_text(f'network I\ninput 8x8x1\ninclude "{target}"\nflatten\ndense 2\n')
            r = isolated("check", f, cwd=work, timeout=30)
            located = "inc.cnn:3:" in r.err
            return judge(r, "error", None if located else "no file:line:col")
        return case

    def fifo(w):
        p = w / "fifo.cnn"
        if not p.exists():
            os.mkfifo(p)
        return p

    def latin1(w):
        p = w / "latin1.cnn"
        p.write_bytes(b"block b():\n    dense 3 # caf\xe9\n")
        return p

    yield "include /dev/zero", include(lambda w: "/dev/zero", "device")
    yield "include a FIFO", include(fifo, "fifo")
    yield "include non-UTF-8 bytes", include(latin1, "latin1")
    yield "include a folder", include(lambda w: w, "folder")

    def many_errors():
        f = work / "many.cnn"
        f.write_text(head + "dropout 2.0\n" * 12000 + "flatten\ndense 10\n")
        return judge(cli("check", f, cwd=work, timeout=min(t, 15)), "error")
    yield "check with 12,000 errors within 15 s", many_errors

    def many_layers(line):
        def case():
            f = work / "layers.cnn"
            f.write_text(head + line * 12000 + "flatten\ndense 10\n")
            return judge(cli("check", f, cwd=work, timeout=min(t, 30)), "error")
        return case
    yield "12,000 plain layers pass the layer limit", many_layers("relu\n")
    yield "12,000 block calls pass the layer limit", many_layers("b()\n")


def group_training(work: Path, t: float):
    data = images(work / "data", per_class=7)  # 21 images, 16 train / 5 validation

    def train(name, expect, **kw):
        def case():
            folder = work / name
            folder.mkdir(exist_ok=True)
            spec = tiny(folder, data, **kw)
            r = cli("compile", spec, "--train", "--out", folder / "run", cwd=folder, timeout=t)
            if expect == "error" and r.rc == 0:
                return "trained without a word"
            if expect == "error" and "learning rate" not in r.err and "weight" not in r.err \
                    and "momentum" not in r.err and not r.failure:
                return f"no word of the setting: {r.err.strip()[-160:]}"
            return judge(r, expect)
        return case

    for batch in (3, 5, 15):  # 16 training images: the last batch holds one image
        yield f"batchnorm after dense, batch {batch}", train(
            f"bn{batch}", "ok", batch=batch, extra="batchnorm\n")
    for lr in ("1e39", "3.5e38", "1e300"):
        yield f"lr {lr}", train(f"lr{lr}", "error", lr=lr)
    for wd in ("1e39", "1e300"):
        yield f"weight decay {wd}", train(f"wd{wd}", "error", wd=wd)
    yield "lr 1e6 diverges", train("lr1e6", "error", lr="1e6", hidden=64)
    yield "lr 1e4 diverges", train("lr1e4", "error", lr="1e4", hidden=64)


def _trained(work: Path, t: float) -> tuple[Path, Path]:
    data = images(work / "data")
    spec = tiny(work, data)
    r = cli("compile", spec, "--train", "--out", work / "run", cwd=work, timeout=300)
    assert r.rc == 0, r.err
    return work / "run", data


def group_run_folders(work: Path, t: float):
    run, data = _trained(work, t)
    image = next((data / "a").glob("*.png"))
    outside = work / "precious.txt"
    files = sorted(p.name for p in run.iterdir() if p.is_file() and not p.name.startswith("."))

    def damages(name):
        yield "missing", lambda p: p.unlink()
        yield "empty", lambda p: p.write_bytes(b"")
        yield "half", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        yield "garbage", lambda p: p.write_bytes(os.urandom(64))
        yield "a folder", lambda p: (p.unlink(), p.mkdir())
        yield "a FIFO", lambda p: (p.unlink(), os.mkfifo(p))
        yield "a link out", lambda p: (p.unlink(), p.symlink_to(outside))
        if name.endswith(".json"):
            doc = json.loads((run / name).read_text())
            for value in ([], "x", 3, None):
                yield f"json {value!r}", lambda p, v=value: p.write_text(json.dumps(v))
            if isinstance(doc, dict):
                for key in sorted(doc)[:12]:
                    for value in (None, "x", -1):
                        yield f"key {key}={value!r}", lambda p, k=key, v=value: p.write_text(
                            json.dumps({**doc, k: v}))
            if isinstance(doc, list):
                yield "names with paths", lambda p: p.write_text(json.dumps(
                    ["../../x", "/etc/passwd", "[red]"] + doc[3:]))

    commands = {"evaluate": lambda r: ("evaluate", r, "--data", data),
                "predict": lambda r: ("predict", r, image, "--backend", "torch"),
                "resume": lambda r: ("compile", "--resume", r, "--epochs", "2")}
    n = 0
    for name in files:
        for damage, apply in damages(name):
            for command, args in commands.items():
                n += 1

                def case(name=name, apply=apply, args=args, n=n):
                    copy = work / f"r{n}"
                    shutil.copytree(run, copy, symlinks=True)
                    outside.write_text("precious")
                    try:
                        apply(copy / name)
                        r = cli(*args(copy), cwd=work, timeout=t)
                    finally:
                        kept = outside.read_text() == "precious"
                        shutil.rmtree(copy, ignore_errors=True)
                    if not kept:
                        return "wrote through a link out of the run folder"
                    if "nan%" in r.out:
                        return "printed nan%"
                    if r.rc == 130:
                        return "reported as interrupted"
                    return judge(r, "any")
                yield f"{name} {damage}: {command}", case

    def fifo_image():
        fifo = work / "image.png"
        if not fifo.exists():
            os.mkfifo(fifo)
        return judge(cli("predict", run, fifo, "--backend", "torch", cwd=work, timeout=t),
                     "error")
    yield "predict a FIFO", fifo_image


BOOT = r"""
import os, signal, sys
phase, k = os.environ["KILL_AT"].split(":")
k, real, seen = int(k), os.replace, [0]
def replace(src, dst, *a, **kw):
    seen[0] += 1
    if seen[0] == k:
        if phase == "mid-write":
            os.truncate(src, os.path.getsize(src) // 2)
        elif phase == "after-rename":
            real(src, dst, *a, **kw)
        os.killpg(os.getpgid(0), signal.SIGKILL)
    return real(src, dst, *a, **kw)
os.replace = replace
sys.argv = ["cnnspec", *sys.argv[1:]]
from cnnspec.cli import main
main()
"""


def group_crashes(work: Path, t: float, kills: int):
    data = images(work / "data")
    spec = tiny(work, data, epochs=3)
    ref = cli("compile", spec, "--train", "--out", work / "whole", "--onnx", work / "w.onnx",
              cwd=work, timeout=300)
    assert ref.rc == 0, ref.err
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def metrics(run):
        doc = json.loads((run / "metrics.json").read_text())
        return [(m["epoch"], round(m.get("val_accuracy") or 0, 6)) for m in doc["epochs"]]

    phases = ("mid-write", "before-rename", "after-rename")
    for i in range(kills):
        phase, k = phases[i % 3], 1 + i // 3 * 2 + i % 2

        def case(phase=phase, k=k, i=i):
            run = work / f"k{i}"
            p = subprocess.run([sys.executable, "-c", BOOT, "compile", str(spec), "--train",
                                "--out", str(run)], cwd=work, capture_output=True, text=True,
                               env={**env, "KILL_AT": f"{phase}:{k}"}, timeout=300,
                               start_new_session=True, check=False)
            if p.returncode != -9:
                return None  # the run ended before its k-th write: nothing to judge
            resumable = (run / "last.ckpt").exists()
            args = (("compile", "--resume", run) if resumable else
                    ("compile", spec, "--train", "--out", run))
            r = cli(*args, cwd=work, timeout=t)
            if r.failure or r.rc != 0:
                return f"killed at write {k} ({phase}), then: {judge(r, 'ok')}"
            if metrics(run) != metrics(work / "whole"):
                return f"killed at write {k} ({phase}): metrics differ from an uninterrupted run"
            left = [q.name for q in run.glob(".*")]
            return f"temporary files left: {left}" if left else None
        yield f"SIGKILL at write {k}, {phase}", case

    def two_writers():
        run = work / "two"
        (work / "two_spec").mkdir(exist_ok=True)
        long = tiny(work / "two_spec", data, epochs=30)
        first = subprocess.Popen([sys.executable, "-m", "cnnspec", "compile", str(long),
                                  "--train", "--out", str(run)], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            for _ in range(600):
                if (run / "last.ckpt").exists():
                    break
                if first.poll() is not None:
                    return "the first run ended early"
                time.sleep(0.1)
            r = cli("compile", "--resume", run, "--epochs", "31", cwd=work, timeout=t)
            return judge(r, "error")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    yield "a second process resumes a run being trained", two_writers


NAMES = ["[red]cats", "x[", "[bold]b[/bold]", "[/]", "[link=file:x]l", "a b", "-rf",
         "caf\u00e9", "\u2603 snow", "[[x]]"]


def group_names(work: Path, t: float):
    import numpy as np
    from PIL import Image

    for i, name in enumerate(NAMES):
        def data_report(name=name, i=i):
            folder = work / f"d{i}"
            images(folder, classes=(name, "plain"), per_class=3)
            (folder / name / "broken.png").write_bytes(b"not a png")
            r = cli("data", folder, cwd=work, timeout=t)
            shown = name in r.out + r.err
            return judge(r, "any", None if shown else "the name is not shown as it is")
        if "/" not in name:  # a class is one folder
            yield f"data report, class {name!r}", data_report

        def predict(name=name, i=i):
            bad = work / f"p{i}" / f"{name}.png"
            bad.parent.mkdir(parents=True, exist_ok=True)
            bad.write_bytes(b"not a png")
            r = cli("predict", RUN[0], bad, "--backend", "torch", cwd=work, timeout=t)
            shown = f"{name}.png" in r.err
            return judge(r, "error", None if shown else "the name is not shown as it is")
        yield f"predict an unreadable {name!r}.png", predict

        def spec_name(name=name, i=i):
            f = work / f"s{i}" / f"{name}.cnn"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("network N\ninput 8x8x1\nconvv 3x3x4\n")
            r = cli("check", f, cwd=work, timeout=t)
            shown = f"{name}.cnn:3:1" in r.err
            return judge(r, "error", None if shown else "the name is not shown as it is")
        yield f"check a spec named {name!r}.cnn", spec_name

    def bomb():
        folder = work / "bomb"
        (folder / "a").mkdir(parents=True, exist_ok=True)
        (folder / "b").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((9500, 9500), np.uint8)).save(folder / "a" / "big.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "b" / "small.png")
        return judge(cli("data", folder, cwd=work, timeout=t), "any")
    yield "a decompression-bomb-sized image", bomb


RUN: list[Path] = []


def group_output(work: Path, t: float):
    data = images(work / "data")
    spec = tiny(work, data)

    def expect(args, what, check=None):
        def case():
            r = cli(*args(), cwd=work, timeout=t)
            return judge(r, what, check() if check else None)
        return case

    yield "--out ''", expect(lambda: ("compile", spec, "--train", "--out", ""), "error",
                             lambda: "trained into the current folder"
                             if (work / "run.json").exists() else None)
    yield "--onnx ''", expect(lambda: ("compile", spec, "--onnx", ""), "error")
    yield "--out a file", expect(lambda: ("compile", spec, "--train", "--out", spec), "error")
    text = spec.read_text()
    yield "emit -o the spec itself", expect(lambda: ("emit", spec, "-o", spec), "error",
                                            lambda: None if spec.read_text() == text
                                            else "overwrote the spec")
    yield "emit -o a folder", expect(lambda: ("emit", spec, "-o", work), "error")

    def fifo():
        p = work / "f.cnn"
        if not p.exists():
            os.mkfifo(p)
        return p
    yield "fmt a FIFO", expect(lambda: ("fmt", fifo()), "error")
    yield "check a FIFO", expect(lambda: ("check", fifo()), "error")
    yield "fmt /dev/zero", lambda: judge(isolated("fmt", "/dev/zero", cwd=work, timeout=30),
                                         "error")
    yield "check /dev/zero", lambda: judge(isolated("check", "/dev/zero", cwd=work,
                                                    timeout=30), "error")
    yield "check a folder", expect(lambda: ("check", work), "error")
    yield "summary of a missing spec", expect(lambda: ("summary", work / "nope.cnn"), "error")
    yield "evaluate a spec, not a run", expect(lambda: ("evaluate", spec), "error")

    def full_disk():
        run = work / "full"
        first = cli("compile", spec, "--train", "--out", run, cwd=work, timeout=300)
        if first.rc:
            return judge(first, "ok")
        before = (run / "last.ckpt").read_bytes()
        r = isolated("compile", "--resume", run, "--epochs", "2", cwd=work, timeout=120,
                     fsize=(run / "last.ckpt").stat().st_size // 2)
        kept = (run / "last.ckpt").read_bytes() == before
        return judge(r, "error", None if kept else "the last good checkpoint was lost")
    yield "disk full while writing last.ckpt", full_disk


def group_user_files(work: Path, t: float):
    """Issue 29's data-loss findings: nothing cnnspec did not write is removed or rewritten."""
    data = images(work / "data")
    spec = tiny(work, data)
    mine = {".pre-commit-config.yaml": "a", ".env.local": "b", ".gitlab-ci.yml": "c",
            "spec.cnn": "d", "spec.json": "{}", "run.json": "{}", "classes.json": "[]"}

    def project(name):
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for n, text in mine.items():
            (folder / n).write_text(text)
        return folder

    def lost(folder):
        gone = [n for n, text in mine.items()
                if not (folder / n).is_file() or (folder / n).read_text() != text]
        return f"lost or rewrote {', '.join(gone)}" if gone else None

    def out_here(extra):
        def case():
            folder = project("p")
            r = cli("compile", spec, "--train", "--out", ".", *extra, cwd=folder, timeout=t)
            return judge(r, "error", lost(folder))
        return case
    yield "--out . in a project", out_here(())
    yield "--out . with a misspelt --data", out_here(("--data", work / "dta"))

    def onnx_fifo():
        fifo = work / "o.onnx"
        if not fifo.exists():
            os.mkfifo(fifo)
        r = cli("compile", spec, "--onnx", fifo, cwd=work, timeout=t)
        return judge(r, "error", None if fifo.is_fifo() else "replaced the FIFO")
    yield "--onnx a FIFO", onnx_fifo

    def cache_clear():
        cache = work / "cache"
        cache.mkdir(exist_ok=True)
        (cache / "package.json").write_text("{}")
        (cache / "notes.u8").write_text("x")
        old = os.environ.get("CNNSPEC_CACHE_DIR")
        os.environ["CNNSPEC_CACHE_DIR"] = str(cache)
        try:
            r = cli("cache", "--clear", cwd=work, timeout=t)
        finally:
            if old is None:
                os.environ.pop("CNNSPEC_CACHE_DIR")
            else:
                os.environ["CNNSPEC_CACHE_DIR"] = old
        kept = (cache / "package.json").exists() and (cache / "notes.u8").exists()
        return judge(r, "ok", None if kept else "removed files that are not cache entries")
    yield "cache --clear beside other files", cache_clear

    def cache_link(kind):
        def case():
            from cnnspec import ir
            from cnnspec.data.cache import cache_key
            from cnnspec.data.folder import scan

            cache = work / f"cache-{kind}"
            cache.mkdir(exist_ok=True)
            key = cache_key(scan(data), ir.InputShape(height=12, width=12, channels=1))
            entry, outside = cache / f"{key}.json", work / "outside.json"
            outside.write_text("precious")
            entry.unlink(missing_ok=True)
            if kind == "link":
                entry.symlink_to(outside)
            else:
                os.mkfifo(entry)
            env = {**os.environ, "CNNSPEC_CACHE_DIR": str(cache)}
            try:
                r = subprocess.run([sys.executable, "-m", "cnnspec", "compile", spec, "--train",
                                    "--out", work / f"run-{kind}"], cwd=work, env=env,
                                   capture_output=True, text=True, timeout=max(t, 120),
                                   check=False)
            except subprocess.TimeoutExpired:
                return "hang"
            run = Run(r.returncode, r.stdout, r.stderr,
                      "traceback" if "Traceback (most" in r.stderr else None)
            return judge(run, "ok", None if outside.read_text() == "precious"
                         else "wrote through a link out of the cache")
        return case
    yield "a cache entry that is a link out", cache_link("link")
    yield "a cache entry that is a FIFO", cache_link("fifo")


MAKERS = {"specs": lambda w, a: group_specs(w, a.timeout, a.fuzz),
          "training": lambda w, a: group_training(w, a.timeout),
          "run folders": lambda w, a: group_run_folders(w, a.timeout),
          "crash consistency": lambda w, a: group_crashes(w, a.timeout, a.kills),
          "names": lambda w, a: group_names(w, a.timeout),
          "output": lambda w, a: group_output(w, a.timeout),
          "user files": lambda w, a: group_user_files(w, a.timeout)}
GROUPS = list(MAKERS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", help="a checkout whose cnnspec package to test "
                        "(default: this one)")
    parser.add_argument("--fuzz", type=int, default=600, help="inputs per fuzz strategy")
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per input")
    parser.add_argument("--only", help="comma-separated groups")
    parser.add_argument("--show", type=int, default=3, help="failures shown per group")
    args = parser.parse_args()
    if args.code:  # this process and the child processes it starts
        sys.path.insert(0, str(Path(args.code).resolve()))
        os.environ["PYTHONPATH"] = str(Path(args.code).resolve())
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cnnspec

    print(f"cnnspec from {Path(cnnspec.__file__).parent}")
    signal.signal(signal.SIGALRM, _alarm)
    only = args.only.split(",") if args.only else GROUPS
    table, shown = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "names" in only:
            RUN.append(_trained(tmp / "names_run", args.timeout)[0])
        for group in GROUPS:
            if group not in only:
                continue
            work = tmp / group.replace(" ", "_")
            work.mkdir()
            cases = MAKERS[group](work, args)
            counts: collections.Counter = collections.Counter()
            for name, case in cases:
                counts["inputs"] += 1
                try:
                    failure = case()
                except Exception as exc:  # noqa: BLE001 - the harness's own trouble
                    failure = f"harness: {type(exc).__name__}: {exc}"
                if failure:
                    counts["failed"] += 1
                    if counts["failed"] <= args.show:
                        shown.append(f"[{group}] {name}: {failure}".replace("\n", " ")[:300])
            table.append((group, counts["inputs"], counts["failed"]))
            print(f"{group}: {counts['inputs']} inputs, {counts['failed']} failed", flush=True)
    print(f"\n| {'group':<18} | inputs | failed |\n|{'-' * 20}|--------|--------|")
    for group, n, failed in table:
        print(f"| {group:<18} | {n:6,d} | {failed:6,d} |")
    total = sum(n for _, n, _ in table), sum(f for _, _, f in table)
    print(f"| {'all':<18} | {total[0]:6,d} | {total[1]:6,d} |")
    for line in shown:
        print(line)
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
