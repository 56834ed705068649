"""The run folder: the one owner of every file a training run writes and reads back.

Training, resume, evaluate, predict and transfer all go through :class:`RunFolder`; no other
module knows these file names or formats. Every file is written atomically (a temporary
file beside it, then a rename), so a crash or a full disk leaves the old file or the new one.

- at the start: ``spec.cnn`` (the spec as given), ``spec.json`` (as resolved, overrides
  applied), ``run.json`` (data, device, overrides, workers, threads, normalisation, split
  sizes), ``classes.json`` (class names in order);
- after every epoch: ``last.ckpt`` (epoch, weights, optimizer, scheduler and random states;
  read back with ``torch.load(weights_only=True)``: tensors and plain data, never a pickle
  of code), ``last.safetensors``, ``best.safetensors`` (the best epoch by ``checkpoint best
  METRIC``), ``epoch-NNN.safetensors`` (``checkpoint every N``), ``metrics.json`` and
  ``metrics.csv`` (one record per epoch);
- at the end: ``weights.safetensors``, ``curves.png``, ``confusion.png``, ``model.onnx``;
- with ``log tensorboard``: ``tensorboard/`` (event files, appended to on resume);
- later, on request: ``insight/`` (``cnnspec features``, ``gradcam`` and ``probe``);
- while a process trains into it: ``run.lock`` (its PID, host and start time), so a second
  process cannot train into the same folder; a lock whose process is gone is taken over.

Nothing is written through a symbolic link that leads out of the folder, and the temporary
files of writes a kill interrupted (``.<name>.<random>``) are removed when a run starts or
resumes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CnnSpecError, WeightsError
from ..files import write_json, write_text
from . import run_files, run_lock

if TYPE_CHECKING:  # torch is imported where run_files needs it: predict on ONNX Runtime
    import torch  # reads a run folder without it
    from torch import nn

RUN_FILES = re.compile(r"(spec\.cnn|spec\.json|classes\.json|run\.json|run\.lock|last\.ckpt|"
                       r"(weights|best|last|epoch-\d+)\.safetensors|metrics\.json|metrics\.csv|"
                       r"curves\.png|confusion\.png|model\.onnx)")
"""The names of the files a run writes at its top level (and nothing else)."""
TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(\.onnx)?")
"""A temporary file of an interrupted write: ``.<name>.<8 random characters>`` as
:func:`cnnspec.files.atomic_write` (and the ONNX export, with ``.onnx`` after it) names them."""
LOCK = "run.lock"
WEIGHTS = ("weights", "best", "last")
"""The weights a finished run offers: after the last epoch, of the best epoch, of the latest."""


class RunFolder:
    """One run's folder (see the module docstring for its files)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def curves(self) -> Path:
        """``curves.png``: loss, accuracy and learning rate by epoch."""
        return self._target("curves.png")

    @property
    def confusion(self) -> Path:
        """``confusion.png``: the validation confusion matrix."""
        return self._target("confusion.png")

    @property
    def tensorboard(self) -> Path:
        """``tensorboard/``: TensorBoard event files (``log tensorboard``)."""
        return self._target("tensorboard")

    @property
    def onnx(self) -> Path:
        """``model.onnx``: normalisation + network, float32 (N, C, H, W) pixels in [0, 1]."""
        return self._target("model.onnx")

    def insight(self, name: str) -> Path:
        """``insight/<name>``: pictures and tables of ``cnnspec features``, ``gradcam`` and
        ``probe`` (never read back by training); a CnnSpecError if ``insight`` or ``name`` is
        a symbolic link out of the run folder."""
        self._target("insight")
        return self._target(f"insight/{name}")

    def started(self) -> bool:
        """A run wrote its start files here (it may have stopped before its first epoch)."""
        return (self.path / "spec.json").exists()

    @classmethod
    def next_free(cls, base: Path) -> RunFolder:
        """``base`` if it is free, else ``base-2``, ``base-3``, ...: a new run never
        overwrites an earlier one (as Ultralytics numbers its runs)."""
        candidate, n = Path(base), 1
        while candidate.exists() and any(candidate.iterdir()):
            n += 1
            candidate = Path(base).with_name(f"{Path(base).name}-{n}")
        return cls(candidate)

    # ------------------------------------------------------------------ the start
    def holds_run(self) -> bool:
        """A run has completed at least one epoch here (it can be resumed, not restarted)."""
        return (self.path / "last.ckpt").exists() or (self.path / "weights.safetensors").exists()

    def has_checkpoint(self) -> bool:
        return (self.path / "last.ckpt").exists()

    # ------------------------------------------------------------------ one writer at a time
    def lock(self) -> None:
        """Take ``run.lock`` for this process (creating the folder); a CnnSpecError if
        another process holds it (:func:`.run_lock.take`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        run_lock.take(self.path, self.path / LOCK)
        self._locked = True

    def unlock(self) -> None:
        """Release ``run.lock`` if this process took it."""
        if getattr(self, "_locked", False):
            (self.path / LOCK).unlink(missing_ok=True)
            self._locked = False

    def clean_temporaries(self) -> list[str]:
        """Remove the temporary files of interrupted writes of this folder's run files
        (``.<run file>.<random>``, see :data:`TEMPORARY`); any other file is left alone."""
        removed = []
        for p in self.path.glob(".*"):
            if _is_temporary(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed

    def foreign(self) -> list[str]:
        """The entries of this folder that no run wrote: empty for a new or empty folder,
        and for a run killed before its first epoch ended (only its start files, its lock
        and temporaries, and a ``run.json`` that cnnspec wrote). Training into a folder with
        foreign entries would overwrite or delete a user's files, so it is refused."""
        if not self.path.is_dir():
            return []
        names = sorted(p.name for p in self.path.iterdir())
        other = [n for n in names if not (RUN_FILES.fullmatch(n) or _is_temporary(n)
                                         or n in ("tensorboard", "insight"))]
        if other or not names:
            return other
        if "run.json" not in names:  # killed before its start files: only its lock is left
            return [n for n in names if n != LOCK and not _is_temporary(n)]
        # every name is a run file's: is run.json really cnnspec's?
        return [] if run_files.is_run_record(self.path / "run.json") else names

    def _target(self, name: str) -> Path:
        """The path to write ``name`` to (a CnnSpecError if it is a symbolic link that leads
        out of the run folder)."""
        path = self.path / name
        if path.is_symlink():
            inside = self.path.resolve()
            target = path.resolve()
            if target != inside and inside not in target.parents:
                raise CnnSpecError(f"{path} is a symbolic link to {target}, outside the run "
                                   "folder; cnnspec does not write through it. Remove the link")
        return path

    def start(self, spec_source: str, resolved: dict, classes: list[str], info: dict) -> None:
        """Write the files a run starts with (raises CnnSpecError if ``path`` is a file)."""
        if self.path.exists() and not self.path.is_dir():
            raise CnnSpecError(f"{self.path}: is a file; --out must be a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self._wrote: list[str] = []
        # run.json first: a run killed between these writes is known by it as cnnspec's
        for name, write, value in (("run.json", write_json, info),
                                   ("spec.cnn", write_text, spec_source),
                                   ("spec.json", write_json, resolved),
                                   ("classes.json", write_json, classes)):
            write(self._target(name), value)
            self._wrote.append(name)

    def abandon(self, created: list[Path]) -> None:
        """A run stopped before its first checkpoint: remove the start files this process
        wrote (never a file it did not write), and the folders this run ``created`` (the
        run folder and the parents made for it, deepest first) that are empty, so that it can
        be started again instead of being left unresumable, and no empty ``runs/`` stays."""
        if self.has_checkpoint():
            return
        for name in getattr(self, "_wrote", ()):
            (self.path / name).unlink(missing_ok=True)
        self._wrote = []
        for folder in created:  # deepest first; one that is not empty stops the rest
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()

    # ------------------------------------------------------------------ reading back (run_files)
    def spec_source(self) -> tuple[str, str]:
        """(text of spec.cnn, its path for messages)."""
        return run_files.read_text(self.path / "spec.cnn")

    def resolved(self) -> dict:
        """spec.json: the spec as it ran (overrides applied), a dict."""
        return run_files.read_json(self.path / "spec.json")

    def train_config(self):
        """spec.json's ``train`` settings as an :class:`~cnnspec.ir.TrainConfig` (a
        CnnSpecError if they are missing or not valid: a damaged spec.json)."""
        return run_files.train_config(self.path / "spec.json")

    def info(self) -> dict:
        """run.json: how the run was set up (data, device, normalisation, ...), a dict whose
        entries that are read back have their types (:func:`.run_files.info`)."""
        return run_files.info(self.path / "run.json")

    def classes(self) -> list[str]:
        """The class names in output order (classes.json: a list of strings)."""
        return run_files.classes(self.path / "classes.json")

    def normalization(self) -> tuple[list[float], list[float], str]:
        """(mean, std, where they came from) recorded in run.json."""
        return run_files.normalization(self.path / "run.json")

    def update(self, resolved: dict | None = None, **info) -> None:
        """Rewrite spec.json with ``resolved`` and/or merge ``info`` into run.json."""
        if resolved is not None:
            write_json(self._target("spec.json"), resolved)
        if info:
            write_json(self._target("run.json"), {**self.info(), **info})

    # ------------------------------------------------------------------ as a transfer source
    @classmethod
    def source_weights(cls, source: Path) -> Path | None:
        """The weights file a transfer from ``source`` loads: ``source`` itself if it is not
        a folder, else the run folder's final weights, else its last epoch's (None: it has
        neither, it is not a run folder)."""
        if not source.is_dir():
            return source
        try:
            return cls(source).weights_file()
        except WeightsError:
            return None

    @classmethod
    def source_normalization(cls, source: Path) -> tuple[list[float], list[float]] | None:
        """(mean, std) recorded in the run.json of a run folder ``source`` (or of the folder
        holding the weights file ``source``), or None for files from elsewhere. A transferred
        network keeps the input standardisation its layers learnt with."""
        try:
            mean, std, _ = cls(source if source.is_dir() else source.parent).normalization()
            return mean, std
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: dict) -> None:
        """``last.ckpt``: everything resume needs, in one file renamed into place in one step
        (an interruption leaves the old or the new checkpoint, never a mix)."""
        run_files.save_checkpoint(self._target("last.ckpt"), state)

    def load_checkpoint(self) -> dict:
        """``last.ckpt`` read with PyTorch's restricted loader (tensors and plain data only)."""
        return run_files.load_checkpoint(self.path / "last.ckpt")

    def save_weights(self, which: str, model: nn.Module, network: str) -> Path:
        """``<which>.safetensors`` (``weights``, ``best``, ``last``, ``epoch-003``): the
        module's state_dict, no pickle, written atomically."""
        return run_files.save_weights(self._target(f"{which}.safetensors"), model, network)

    def weights_file(self, which: str | None = None) -> Path:
        """``<which>.safetensors``; with ``which`` None, the final weights, else the last
        epoch's (what a transfer from this run loads). A WeightsError if there is none."""
        names = [which] if which else ["weights", "last"]
        for name in names:
            if (self.path / f"{name}.safetensors").is_file():
                return self.path / f"{name}.safetensors"
        raise WeightsError(f"{self.path / (names[0] + '.safetensors')}: no such weights file (a "
                           "run writes weights.safetensors when it ends, and last.safetensors "
                           "after every epoch)")

    def load_weights(self, which: str = "weights") -> dict[str, torch.Tensor]:
        """The tensors of ``<which>.safetensors`` (a WeightsError if it is missing or not a
        readable safetensors file)."""
        return run_files.load_weights(self.weights_file(which))

    # ------------------------------------------------------------------ metrics
    def write_metrics(self, network: str, metrics: list[dict],
                      stopped_early: bool | None = None) -> None:
        """``metrics.json`` (and ``stopped_early`` once the run ends) and ``metrics.csv``."""
        doc = {"network": network, "epochs": metrics}
        if stopped_early is not None:
            doc["stopped_early"] = stopped_early
        write_json(self._target("metrics.json"), doc)
        if metrics:
            write_text(self._target("metrics.csv"), run_files.metrics_csv(metrics))

    def metrics(self) -> list[dict]:
        return run_files.metrics(self.path / "metrics.json")


def _is_temporary(name: str) -> bool:
    """``name`` is a temporary file of an interrupted write of one of a run's files."""
    m = TEMPORARY.fullmatch(name)
    return bool(m) and bool(RUN_FILES.fullmatch(m["name"]))
