"""How a run uses the machine: DataLoader workers, PyTorch threads, mixed precision,
torch.compile, synchronised batch norm, and TensorBoard logging."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import IRField, Override, Setting, keep_word, simple_transform


def _setting(key, rule, grammar, annotation, default, field_doc, row, value, override,
             summary, labels=None):
    words = {f"{rule}_kind": keep_word} if f"!{rule}_kind" in grammar else {}
    return Setting("train", (rule,), grammar, (IRField(key, annotation, default, field_doc),),
                   (row,), value, {rule: simple_transform(key, value), **words},
                   labels=labels or {},
                   overrides=(override,) if override else (), summary=summary)


SETTINGS = (
    _setting(
        "workers", "workers", '// DataLoader worker processes and PyTorch threads (default: '
        'from the usable cores)\nworkers: "workers" INT _NL',
        Annotated[int, Field(ge=0, le=256)] | None, None,
        "DataLoader worker processes (None: from the usable cores, see cnnspec.data.pipeline).",
        ("`workers N`", "DataLoader worker processes that read and augment batches "
         "([pipeline](pipeline.md#workers))", "from the usable cores"), "int",
        Override("workers", ("workers",), "int>=0", "Override train: workers (DataLoader "
                 "worker processes; default from the usable cores)."),
        lambda c: c.workers is not None and f"{c.workers} DataLoader worker(s)",
        {"workers": ("the number of workers", "0 loads in the training process; 2 to 8 is "
                     "usual")}),
    _setting(
        "threads", "threads", 'threads: "threads" INT _NL',
        Annotated[int, Field(ge=1, le=1024)] | None, None,
        "PyTorch intra-op threads (None: see cnnspec.training.settings.choose_threads).",
        ("`threads N`", "PyTorch intra-op threads of the training process "
         "([pipeline](pipeline.md#threads))", "1 for small networks, else the usable cores "
         "less the workers"), "int",
        Override("threads", ("threads",), "int>=1", "Override train: threads (PyTorch "
                 "intra-op threads; default: see docs/pipeline.md)."),
        lambda c: c.threads is not None and f"{c.threads} thread(s)",
        {"threads": ("the number of threads", "at least 1; at most the cores you may use")}),
    _setting(
        "precision", "precision", '// Mixed precision (autocast; fp16 adds a gradient '
        'scaler), torch.compile, and batch-norm\n// statistics over every process of a '
        'torchrun group (docs/distributed.md).\nprecision: "precision" precision_kind _NL\n'
        '!precision_kind: "fp32" | "bf16" | "fp16"',
        Literal["fp32", "bf16", "fp16"], "fp32",
        "Mixed precision: ``torch.autocast`` in bfloat16 or float16 (fp16 with a gradient "
        "scaler); weights and optimizer state stay float32 (cnnspec.training.performance).",
        ("`precision fp32 \\| bf16 \\| fp16`", "mixed precision: forward pass and loss under "
         "`torch.autocast`; fp16 adds a gradient scaler; weights stay float32 "
         "([distributed](distributed.md#one-gpu))", "fp32"), "word",
        Override("precision", ("precision",), "choice", "Override train: precision (mixed "
                 "precision; see docs/distributed.md).", ("fp32", "bf16", "fp16")),
        lambda c: c.precision != "fp32" and f"{c.precision} mixed precision"),
    _setting(
        "compile", "compile", 'compile: "compile" onoff _NL', bool, False,
        "``torch.compile`` the training step's forward (eager, with a message, where it "
        "cannot).",
        ("`compile on \\| off`", "`torch.compile` the training forward pass; where it cannot "
         "run, one line says why and training goes on eagerly", "off"), "onoff",
        Override("compile", ("compile",), "switch", "Override train: compile (torch.compile "
                 "the training step)."),
        lambda c: c.compile and "torch.compile"),
    _setting(
        "sync_batchnorm", "sync_batchnorm", 'sync_batchnorm: "sync_batchnorm" onoff _NL', bool,
        False, "Under torchrun, batch-norm statistics over the global batch "
        "(``nn.SyncBatchNorm``).",
        ("`sync_batchnorm on \\| off`", "under torchrun, batch-norm statistics over the "
         "global batch (`nn.SyncBatchNorm`, GPUs only) "
         "([distributed](distributed.md#several-gpus))", "off"), "onoff", None,
        lambda c: c.sync_batchnorm and "batch norm synchronised across processes (under "
        "torchrun)"),
    _setting(
        "tensorboard", "log", '// TensorBoard event files in the run folder\'s tensorboard/ '
        '(needs the tensorboard package).\nlog: "log" log_kind _NL\n!log_kind: "tensorboard"',
        bool, False, "``log tensorboard``: TensorBoard event files in the run folder's "
        "``tensorboard/`` (cnnspec.training.tensorboard).",
        ("`log tensorboard`", "also write TensorBoard event files to the run folder's "
         "`tensorboard/`: loss and learning rate every 10 steps, loss, accuracy and lr per "
         "epoch, the graph, a grid of augmented training images, the spec (`--tensorboard`; "
         "needs `pip install tensorboard`; open with `tensorboard --logdir runs`)", "off"),
        "true",
        Override("tensorboard", ("tensorboard",), "flag", "Also log to TensorBoard (train: "
                 "log tensorboard): event files in RUN/tensorboard/; needs pip install "
                 "tensorboard."),
        lambda c: c.tensorboard and "TensorBoard log in RUN/tensorboard"),
)
