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
- :mod:`.inference`: validation, and a finished run's evaluate and predict.
"""

from .api import RunResult, resume, train
from .callbacks import Callback, TrainingError
from .inference import evaluate_run, load_run, predict
from .loop import Trainer
from .run_folder import RunFolder

__all__ = ["Callback", "RunFolder", "RunResult", "Trainer", "TrainingError", "evaluate_run",
           "load_run", "predict", "resume", "train"]
