"""``log tensorboard``: TensorBoard event files in the run folder's ``tensorboard/``.

Written by rank 0 through ``torch.utils.tensorboard.SummaryWriter`` (the ``tensorboard``
package, an optional extra: ``pip install 'cnnspec[tensorboard]'``). Tags:

- ``step/loss``, ``step/lr``: the training loss of a step and the learning rate, every
  :data:`EVERY` steps (reading the loss waits for the device, so not every step); the x
  axis is the global step (from 1);
- ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val`` (in [0, 1]), ``lr``,
  ``images_per_s``: once per epoch, the x axis the epoch (from 1, as metrics.csv);
- the graph of the network (traced once in eval mode, so no batch-norm statistic moves),
  ``train/augmented``: a grid of the first training images as the first epoch's
  augmentation draws them (the order and random state of training are not touched), and
  ``spec``: the spec's text.

A resumed run appends to the same files and drops what a killed run logged after its last
checkpoint (``SummaryWriter(purge_step=...)``). Open with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch

from ..errors import CnnSpecError
from .callbacks import Callback

EVERY = 10


def require(resuming: bool = False) -> None:
    """Raises CnnSpecError, saying how to install it, when tensorboard is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        way = ("this run was started with it, so resuming it logs too" if resuming else
               "or remove `log tensorboard` / --tensorboard")
        raise CnnSpecError("log tensorboard: the tensorboard package is not installed; "
                           f"pip install tensorboard (or cnnspec[tensorboard]); {way}")


class TensorBoardLog(Callback):
    """Writes the tags of the module docstring; see there."""

    def __init__(self, every: int = EVERY):
        self.every, self.writer = every, None

    def on_train_start(self, trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        where = trainer.folder.tensorboard
        if where.exists() and not where.is_dir():
            raise CnnSpecError(f"{where}: a file where the TensorBoard folder goes; move it away")
        first = trainer.first_epoch * trainer.steps_per_epoch
        self.writer = SummaryWriter(log_dir=str(trainer.folder.tensorboard),
                                    purge_step=first + 1 if first else None)
        if trainer.first_epoch == 0:
            self._graph(trainer)
            self._images(trainer)
            self.writer.add_text("spec", "```\n" + trainer.spec.source + "\n```", 0)

    def _graph(self, trainer) -> None:
        model = trainer.model.logits()
        training = model.training
        c, h, w = trainer.spec.input.chw()
        model.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.writer.add_graph(model, torch.zeros(1, c, h, w, device=trainer.device))
        except Exception as exc:  # noqa: BLE001 - a graph that cannot be traced: say so, go on
            trainer.console.print(f"tensorboard: no graph ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})",
                                  markup=False, highlight=False)
        finally:
            model.train(training)

    def _images(self, trainer, n: int = 32) -> None:
        from torchvision.utils import make_grid

        from ..data.images import _augment_seed

        data = trainer.train_loader.dataset
        count = min(n, len(data))
        if count == 0:
            return
        x, _ = data.__getitems__((_augment_seed(trainer.cfg.seed, 0, 0), list(range(count))))
        grid = make_grid(x.float() / 255, nrow=8, padding=2, pad_value=1.0)
        self.writer.add_image("train/augmented", grid, 0)

    def on_step_end(self, trainer, step, loss) -> None:
        if (step + 1) % self.every:
            return
        k = trainer.epoch * trainer.steps_per_epoch + step + 1
        self.writer.add_scalar("step/loss", float(loss), k)
        self.writer.add_scalar("step/lr", trainer.step_lr, k)

    def on_epoch_end(self, trainer, epoch, m) -> None:
        e = m["epoch"]
        for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"),
                         ("accuracy/train", "train_accuracy"), ("accuracy/val", "val_accuracy"),
                         ("lr", "lr"), ("images_per_s", "images_per_s")):
            self.writer.add_scalar(tag, m[key], e)
        self.writer.flush()

    def on_train_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
