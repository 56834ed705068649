"""Training: the step loop, optimizer and schedules, callbacks, the run folder, inference.

- :mod:`.api`: ``train`` and ``resume`` (set-up, then the loop, then the final files);
- :mod:`.setup`: a run's set-up (data, split, normalisation, module, loaders, threads);
- :mod:`.loop`: the :class:`Trainer` and its step loop;
- :mod:`.performance`: mixed precision, channels_last, cuDNN autotuning, torch.compile;
- :mod:`.distributed`: torchrun process groups (DDP, the global batch, rank 0 writes);
- :mod:`.optim`: optimizers, parameter groups, the per-step learning-rate schedule;
- :mod:`.callbacks`: the callback interface and the built-in ones (NaN guard, checkpoints,
  early stopping, progress);
- :mod:`.run_folder`: the one owner of every file of a run;
- :mod:`.settings`: command-line overrides, device, workers and threads;
- :mod:`.inference`: validation, and a finished run's evaluate and predict (PyTorch);
- :mod:`.runtime`: predict with the run's ``model.onnx`` on ONNX Runtime (no torch).
"""

from importlib import import_module

# Imported on first use (PEP 562): predict on ONNX Runtime reads a run folder without torch.
_WHERE = {
    "RunResult": "api", "resume": "api", "train": "api", "Callback": "callbacks",
    "TrainingError": "callbacks", "evaluate_run": "inference", "load_run": "inference",
    "predict": "inference", "Trainer": "loop", "RunFolder": "run_folder",
}
__all__ = ["Callback", "RunFolder", "RunResult", "Trainer", "TrainingError",
           "evaluate_run", "load_run", "predict", "resume", "train"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
