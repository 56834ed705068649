"""Kill a training run with SIGKILL *inside* its file writes, resume it each time, and check
that it ends exactly where an uninterrupted run ends (issue 13: crash-consistent run folders).

    python scripts/kill_in_writes.py --kills 20 --epochs 40   # the full check (~10 min)
    python scripts/kill_in_writes.py --kills 4 --json     # what the test suite runs

``scripts/kill_resume.py`` kills at random times, and its kills almost never land inside a
write (the write window of small files is tiny). Here the process kills its own process
group from inside :func:`cnnspec.files.atomic_write`, at one of three instants (in turn) of
its k-th write (k drawn at random, 1-14, each restart):

- ``mid-write``: the temporary file holds half its bytes (a write cut short);
- ``before-rename``: the temporary file is complete and flushed, not yet renamed;
- ``after-rename``: the new file is in place, the folder's entry not yet flushed.

The writes are every file of a run folder (spec, run.json, classes, last.ckpt, metrics.json
and .csv, best and per-epoch weights, curves). Nothing in cnnspec knows about this: the
bootstrap replaces ``cnnspec.files._fsync`` (called at exactly those two points) in the
child process before running the command line. After the last kill the run is resumed to
its end and compared with an uninterrupted run: same metrics, same weights, no temporary
file left, no lock left.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kill_resume import SPEC, _cnnspec, _finished, _state, cli

PHASES = ("mid-write", "before-rename", "after-rename")

BOOT = r"""
import os, signal, sys
from pathlib import Path
import cnnspec.files as files

phase, k = os.environ["KILL_WRITE"].split(":")
k, log, real, seen = int(k), os.environ["KILL_LOG"], files._fsync, [0, ""]

def _fsync(path):
    p = Path(path)
    if p.is_file():
        seen[1] = p.name  # the temporary file of the write in progress
    if (phase == "after-rename") != p.is_file():
        seen[0] += 1
        if seen[0] == k:
            if phase == "mid-write":
                os.truncate(p, p.stat().st_size // 2)
            elif phase == "before-rename":
                real(path)
            with open(log, "a") as f:
                f.write(seen[1].split(".")[1] + "." + seen[1].split(".")[2] + "\n")
            os.killpg(os.getpgid(0), signal.SIGKILL)
    return real(path)

files._fsync = _fsync
sys.argv = ["cnnspec", *sys.argv[1:]]
from cnnspec.cli import main
main()
"""


def _start(args: list[str], phase: str, k: int, log: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KILL_WRITE": f"{phase}:{k}",
           "KILL_LOG": str(log)}
    return subprocess.Popen([sys.executable, "-c", BOOT, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def kill_in_writes(work: Path, kills: int, epochs: int, seed: int) -> dict:
    """The experiment (see the module docstring); returns what happened."""
    import torch

    rng = random.Random(seed)
    spec = work / "killme.cnn"
    spec.write_text(SPEC.format(epochs=epochs))
    ref = _cnnspec("compile", str(spec), "--train", "--out", str(work / "whole"))
    assert ref.returncode == 0, ref.stderr
    run, log, done, cycles = work / "killed", work / "kills.log", 0, []
    while done < kills and not _finished(run):
        resumable = (run / "last.ckpt").exists()
        args = (["compile", "--resume", str(run)] if resumable
                else ["compile", str(spec), "--train", "--out", str(run)])
        phase, k = PHASES[len(cycles) % 3], rng.randint(1, 14)
        proc = _start(args, phase, k, log)
        _, err = proc.communicate(timeout=900)
        if proc.returncode != -9:  # it ran to its end (or failed) before the k-th write
            cycles.append({"phase": phase, "k": k, "rc": proc.returncode})
            if proc.returncode != 0:
                raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {err}")
            break
        done += 1
        file = log.read_text().splitlines()[-1]
        cycles.append({"kill": done, "phase": phase, "k": k, "file": file,
                       "resumed": resumable})
    resumable = (run / "last.ckpt").exists()
    end = _cnnspec(*(["compile", "--resume", str(run)] if resumable
                     else ["compile", str(spec), "--train", "--out", str(run)]))
    assert end.returncode == 0, end.stderr
    (m_ref, w_ref), (m_run, w_run) = _state(work / "whole"), _state(run)
    same_weights = w_ref.keys() == w_run.keys() and all(torch.equal(w_ref[k], w_run[k])
                                                         for k in w_ref)
    files: dict[str, int] = {}
    for c in cycles:
        if "file" in c:
            key = f"{c['file']} ({c['phase']})"
            files[key] = files.get(key, 0) + 1
    return {"kills": done, "epochs": epochs, "seed": seed, "same_metrics": m_ref == m_run,
            "same_weights": same_weights, "leftover_temporaries": sorted(
                p.name for p in run.glob(".*")), "lock_left": (run / "run.lock").exists(),
            "files_hit": dict(sorted(files.items())), "log": cycles}


def main() -> None:
    cli(kill_in_writes, __doc__)


if __name__ == "__main__":
    main()
