"""Kill a training run with SIGKILL at random instants, resume it each time, and check that
it ends exactly where an uninterrupted run ends (issue 13: crash-consistent run folders).

    python scripts/kill_resume.py --kills 20          # the full check (a few minutes)
    python scripts/kill_resume.py --kills 3 --json    # what the test suite runs

Each cycle starts ``cnnspec compile SPEC --train`` (or ``--resume`` once a checkpoint
exists; a folder killed before its first checkpoint is started again), waits a random time
(its start-up, an epoch, or the checkpoint writes at an epoch's end), and kills the process
group with SIGKILL. After the last kill the run is resumed to its end, and its metrics and
weights are compared with an uninterrupted run of the same spec and seed: they must be
identical (one PyTorch thread, the same batches and augmentation after a resume).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """network KillMe
input 28x28x1
conv 3x3x8 relu
maxpool 2
conv 3x3x8 relu
maxpool 2
flatten
dropout 0.3
dense 10
train:
    epochs {epochs}
    batch 64
    workers 1
    optimizer sgd lr 0.05 momentum 0.9
    augment: crop 28 pad 2
    checkpoint best val_accuracy, every 1
"""
# dropout and a DataLoader worker: a resumed run must draw the same dropout masks (issue 29,
# finding 5: the workers' base seed was drawn from torch's global generator, which shifted
# them, by up to 0.043 in the final weights)


def _cnnspec(*args: str, wait: bool = True, env=None):
    cmd = [sys.executable, "-m", "cnnspec", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    if wait:
        return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env,
                              timeout=900)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)  # its own group: workers die with it


def _finished(run: Path) -> bool:
    return (run / "weights.safetensors").exists()


def _state(run: Path) -> tuple[list[dict], dict]:
    from safetensors.torch import load_file

    metrics = json.loads((run / "metrics.json").read_text())["epochs"]
    for m in metrics:  # wall-clock fields differ between any two runs
        m.pop("seconds", None)
        m.pop("images_per_s", None)
    return metrics, load_file(run / "weights.safetensors")


def kill_and_resume(work: Path, kills: int, epochs: int, seed: int) -> dict:
    """The experiment (see the module docstring); returns what happened."""
    import torch

    rng = random.Random(seed)
    spec = work / "killme.cnn"
    spec.write_text(SPEC.format(epochs=epochs))
    t0 = time.perf_counter()
    ref = _cnnspec("compile", str(spec), "--train", "--out", str(work / "whole"))
    assert ref.returncode == 0, ref.stderr
    whole_seconds = time.perf_counter() - t0
    run, done, log = work / "killed", 0, []
    while done < kills and not _finished(run):
        resumable = (run / "last.ckpt").exists()
        args = (["compile", "--resume", str(run)] if resumable
                else ["compile", str(spec), "--train", "--out", str(run)])
        proc = _cnnspec(*args, wait=False)
        t_spawn = time.perf_counter()
        if rng.random() < 0.25:  # now and then during start-up
            time.sleep(rng.uniform(0.3, 3.0))
        else:  # mostly in the steps and checkpoint writes, after this process's first
            # checkpoint (a loaded machine takes longer than any fixed delay to start, and
            # every kill then fell before the first checkpoint: nothing was ever resumed)
            ckpt = run / "last.ckpt"
            before = ckpt.stat().st_mtime_ns if ckpt.exists() else None
            while proc.poll() is None and time.perf_counter() - t_spawn < 120 and (
                    not ckpt.exists() or ckpt.stat().st_mtime_ns == before):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.5 * whole_seconds / epochs))
        delay = time.perf_counter() - t_spawn
        if proc.poll() is not None:  # it finished (or failed) before the kill
            log.append({"kill": None, "after_s": round(delay, 2), "rc": proc.returncode})
            if proc.returncode != 0:
                raise AssertionError(f"{' '.join(args)} exited {proc.returncode}")
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done += 1
        epochs_saved = len(json.loads((run / "metrics.json").read_text())["epochs"]) if (
            run / "metrics.json").exists() else 0
        log.append({"kill": done, "after_s": round(delay, 2), "resumed": resumable,
                    "epochs_in_metrics": epochs_saved,
                    "temporaries": sorted(p.name for p in run.glob(".*")) if run.exists() else []})
    # to the end: a finished run killed while writing its final files (model.onnx) is
    # resumed too, which writes them again and removes what the kill left behind
    resumable = (run / "last.ckpt").exists()
    args = (["compile", "--resume", str(run)] if resumable
            else ["compile", str(spec), "--train", "--out", str(run)])
    end = _cnnspec(*args)
    assert end.returncode == 0, end.stderr
    (m_ref, w_ref), (m_run, w_run) = _state(work / "whole"), _state(run)
    same_weights = w_ref.keys() == w_run.keys() and all(torch.equal(w_ref[k], w_run[k])
                                                         for k in w_ref)
    return {"kills": done, "epochs": epochs, "seed": seed, "same_metrics": m_ref == m_run,
            "same_weights": same_weights, "leftover_temporaries": sorted(
                p.name for p in run.glob(".*")), "lock_left": (run / "run.lock").exists(),
            "uninterrupted_s": round(whole_seconds, 1), "log": log}


def cli(experiment, doc: str) -> None:
    """The command line of both kill scripts: ``--kills``, ``--epochs``, ``--seed``,
    ``--json``; ``experiment(work, kills, epochs, seed)`` returns the result. Exits 1 unless
    the killed run ended as the uninterrupted one with no temporary file or lock left."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = experiment(Path(tmp), args.kills, args.epochs, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for entry in result["log"]:
            print(entry)
        print({k: v for k, v in result.items() if k != "log"})
    ok = result["same_metrics"] and result["same_weights"] and not result["lock_left"] \
        and not result["leftover_temporaries"]
    sys.exit(0 if ok else 1)


def main() -> None:
    cli(kill_and_resume, __doc__)


if __name__ == "__main__":
    main()
