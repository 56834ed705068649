"""The measurements of benchmarks/pipeline.py (see its docstring)."""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from torch import nn
from torchvision.transforms import v2

import cnnspec
from cnnspec.builder import build
from cnnspec.training.api import prepare

ROOT = Path(__file__).resolve().parents[1]
LENET = """network LeNet5
input 32x32x1
conv 5x5x6 valid tanh
avgpool 2
conv 5x5x16 valid tanh
avgpool 2
flatten
dense 120 tanh
dense 84 tanh
dense 10
train:
    epochs 100
    optimizer sgd lr 0.05 momentum 0.9
    seed 1
"""
AUGMENT = "    augment: crop 32 pad 2, rotate 10\n"
QUIET = Console(file=io.StringIO())


class _Augmented(torch.utils.data.Dataset):
    """What a plain PyTorch user writes: a tensor dataset with a per-item v2 transform."""

    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def _plain(trainer, augment: bool):
    """A plain loop over the trainer's own data: same initial weights, optimizer, order."""
    cfg = trainer.cfg
    model = build(cnnspec.infer_shapes(trainer.spec), seed=cfg.seed)
    model.load_state_dict(trainer.model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr,
                          momentum=cfg.optimizer.momentum)
    tr, va = trainer.train_loader.dataset, trainer.val_loader.dataset
    x = torch.from_numpy(tr.images.array[tr.indices])
    y = torch.from_numpy(tr.images.labels[tr.indices])
    xv = torch.from_numpy(va.images.array[va.indices])
    yv = torch.from_numpy(va.images.labels[va.indices])
    mean, std = trainer.norm.mean, trainer.norm.std
    gen = torch.Generator().manual_seed(cfg.seed)
    workers = trainer.train_loader.num_workers
    loader = None
    if augment:
        t = v2.Compose([v2.RandomCrop(32, padding=2), v2.RandomRotation(10)])
        loader = torch.utils.data.DataLoader(_Augmented(x, y, t), batch_size=cfg.batch,
                                             shuffle=True, num_workers=workers,
                                             persistent_workers=workers > 0)

    def epoch() -> float:
        model.train()
        total = 0.0
        if loader is None:
            perm = torch.randperm(len(y), generator=gen)
            batches = ((x[perm[i:i + cfg.batch]], y[perm[i:i + cfg.batch]])
                       for i in range(0, len(y), cfg.batch))
        else:
            batches = loader
        for xb, yb in batches:
            out = model((xb.float() / 255 - mean) / std)
            loss = nn.functional.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
        model.eval()
        with torch.no_grad():
            for i in range(0, len(yv), 256):
                out = model((xv[i:i + 256].float() / 255 - mean) / std)
                nn.functional.cross_entropy(out, yv[i:i + 256]).item()
        return total / len(y)

    return epoch, workers


def loop_pair(augment: bool, repeats: int):
    """[(cnnspec epoch s, plain epoch s)] interleaved after a warm-up pair, the first
    epoch's train losses (without augmentation), and the number of workers."""
    spec = cnnspec.loads(LENET + (AUGMENT if augment else ""))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = prepare(spec, Path(tmp) / "run", console=QUIET)
        plain, workers = _plain(trainer, augment)
        for cb in trainer.callbacks:
            cb.on_train_start(trainer)
        pairs, losses = [], None
        for r in range(repeats + 1):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            t = {}
            for which in order:
                t0 = time.perf_counter()
                if which == 0:
                    trainer.epoch = r
                    m = trainer.train_epoch(r)
                else:
                    loss = plain()
                t[which] = time.perf_counter() - t0
            if r == 0:
                losses = None if augment else (m["train_loss"], loss)
            else:
                pairs.append((t[0], t[1]))
        for cb in trainer.callbacks:
            cb.on_train_end(trainer)
    return pairs, losses, workers


SMALL_SPECS = ("lenet5", "lenet5-adam", "alexnet-custom")
_FOLDER: list[Path] = []


def data_for(name: str):
    """None (the embedded digits) or, for the 3-class alexnet-custom, a folder of 3 digit
    classes (1, 4, 7; every image of each) written once as PNGs."""
    if name != "alexnet-custom":
        return None
    if not _FOLDER:
        from importlib import resources

        root = Path(tempfile.mkdtemp(prefix="cnnspec-bench-digits-"))
        with resources.files("cnnspec.embedded").joinpath("digits.npz").open("rb") as f:
            npz = np.load(f)
            images, labels = npz["images"], npz["labels"]
        for c in (1, 4, 7):
            (root / f"digit{c}").mkdir(parents=True)
            for i in np.flatnonzero(labels == c):
                Image.fromarray(images[i]).save(root / f"digit{c}" / f"{i:05d}.png")
        _FOLDER.append(root)
    return _FOLDER[0]


def feed_ratio(repeats: int):
    """Per small-image spec: (name, images/s the DataLoader delivers, images/s training
    steps consume on batches already in memory, workers)."""
    rows = []
    for name in SMALL_SPECS:
        spec = cnnspec.load(ROOT / "specs" / f"{name}.cnn")
        with tempfile.TemporaryDirectory() as tmp:
            trainer = prepare(spec, Path(tmp) / "run", console=QUIET, data=data_for(name))
            loader = trainer.train_loader
            fed = []
            for r in range(repeats + 1):
                loader.batch_sampler.set_epoch(r)
                t0, n = time.perf_counter(), 0
                for x, _ in loader:
                    n += len(x)
                if r:
                    fed.append(n / (time.perf_counter() - t0))
            batches = [b for _, b in zip(range(20), loader, strict=False)]
            model, opt = trainer.model.logits(), trainer.optimizer
            model.train()
            consumed = []
            for r in range(repeats + 1):
                t0, n = time.perf_counter(), 0
                for x, y in batches:
                    loss = nn.functional.cross_entropy(model(trainer.norm(x.float() / 255)), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    n += len(y)
                if r:
                    consumed.append(n / (time.perf_counter() - t0))
            rows.append((name, statistics.median(fed), statistics.median(consumed),
                         loader.num_workers))
            del loader, trainer
    return rows


TINY = """network Tiny
input 160x160x3
conv 3x3x8 stride 2 relu
maxpool 4
flatten
dense 3
train:
    epochs 1
    batch 32
    optimizer sgd lr 0.01
"""


def _rss_anon_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/*/stat parent ids)."""
    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo += [c for c, par in parents.items() if par == q]
    return out


def _write_images(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(base).resize((160, 160)).save(d / f"{i:05d}.jpg", quality=90)


def _peak_rss_anon_mib(spec: Path, data: Path, out: Path, cache: Path) -> float:
    env = {**os.environ, "CNNSPEC_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "cnnspec", "compile", str(spec), "--train",
                             "--data", str(data), "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max([peak] + [_rss_anon_kib(p) for p in _tree(proc.pid)])
        time.sleep(0.02)
    if proc.returncode:
        raise RuntimeError(f"training on {data} failed with exit {proc.returncode}")
    return peak / 1024


def memory_growth(sizes=(600, 3000)):
    """[(images, peak RssAnon MiB of the largest process)] for each number of images."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "tiny.cnn").write_text(TINY)
        for n in sizes:
            _write_images(tmp / f"d{n}", n)
            rows.append((n, _peak_rss_anon_mib(tmp / "tiny.cnn", tmp / f"d{n}", tmp / f"run{n}",
                                               tmp / f"cache{n}")))
    return rows


def threads_ratio(repeats: int):
    """Per spec: (name, images/s with the default threads, with 1 thread, default count),
    each epoch beside one busy process, interleaved."""
    from cnnspec.training.settings import choose_threads

    env_threads = os.environ.pop("OMP_NUM_THREADS", None)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    rows = []
    try:
        for name in ("lenet5", "alexnet-custom"):
            spec = cnnspec.load(ROOT / "specs" / f"{name}.cnn")
            with tempfile.TemporaryDirectory() as tmp:
                trainer = prepare(spec, Path(tmp) / "run", console=QUIET, data=data_for(name),
                                  overrides={"epochs": 2 * repeats + 2})
                default, _ = choose_threads(None, cnnspec.infer_shapes(spec).macs, trainer.train_loader.num_workers)
                for cb in trainer.callbacks:
                    cb.on_train_start(trainer)
                ips = {default: [], 1: []}
                for r in range(repeats + 1):
                    for threads in ((default, 1) if r % 2 == 0 else (1, default)):
                        torch.set_num_threads(threads)
                        e = 2 * r + (threads == 1)
                        trainer.epoch = e
                        m = trainer.train_epoch(e)
                        if r:
                            ips[threads].append(m["images_per_s"])
                for cb in trainer.callbacks:
                    cb.on_train_end(trainer)
            if default == 1:  # the same setting twice: their ratio is the noise
                ips = {1: ips[1]}
            rows.append((name, statistics.median(ips[default]), statistics.median(ips[1]), default))
    finally:
        busy.kill()
        if env_threads is not None:
            os.environ["OMP_NUM_THREADS"] = env_threads
    return rows
