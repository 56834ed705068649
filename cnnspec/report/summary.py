"""``cnnspec summary``: one row per layer and the totals, computed from the shapes as data.

Nothing is built and no tensor is allocated: the numbers come from
:mod:`cnnspec.shapes`, and a test holds them equal to ``sum(p.numel())`` of the built
module. Rendering (rich table, markdown, CSV, JSON) is separate from the data.

JSON schema (``--format json``), stable for scripts::

    {"network": str, "input": "HxWxC", "output": "HxWxC" | "F",
     "layers": [{"name", "path", "depth", "type", "args", "output", "params", "share", "macs",
                 "trainable"}],
     "totals": {"params", "trainable_params", "non_trainable_params", "buffers",
                "params_mb", "macs", "flops", "activations_mb"},
     "training": {"epochs", "batch", "optimizer", "weight_decay", "schedule", "schedule_kind",
                  "schedule_head", "lr_by_epoch", "extras", "warnings"},
     "transfer": {} | {"source", "frozen_params", "trainable_params", "head", "classes",
                       "bn_train", "bias_train", "unfreeze"}}

Layers are listed depth first: a concat or residual row (depth d) is followed by its
branches' / body's layers (depth d + 1); its parameters and MACs include theirs, so the
totals are the sums of the depth-0 rows. ``path`` is the layer's key prefix in the built
module's ``state_dict`` (``R1.C2``, ``CAT1.b2.C5``, ``R2.shortcut.conv``).
``activations_mb`` is the memory of every layer's output for one image, forward, float32
(each layer's output and each trailing activation's, as the built module allocates them).
``params_mb`` is float32 weights in MB (10**6 bytes), as torchinfo reports it;
``flops`` = 2 x ``macs`` (one multiply-accumulate = two floating-point operations).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from ..ir import Spec, TrainConfig
from ..layers import BY_KIND
from ..settings import summary_lines
from ..settings.optimizer import describe as describe_optimizer
from ..shapes import LayerInfo, fmt_shape, group_name, infer
from .preview import schedule_preview

BYTES_PER_PARAM = 4  # float32


@dataclass(frozen=True)
class Row:
    name: str
    path: str
    depth: int
    type: str
    args: str
    output: str
    params: int
    share: float
    """Fraction of all parameters held by this layer, in [0, 1]."""
    macs: int
    trainable: bool
    """Some of its parameters train from the first epoch (False: frozen by transfer:)."""
    status: str = ""
    """With a transfer: section, 'trainable', 'frozen', 'frozen until epoch E', 'partly
    frozen', 'weights frozen' (``bias train``: its biases train) or 'new head'; '' for
    layers without parameters or specs without transfer."""
    key: str = field(default="", compare=False)
    """Structure of the row for aligning two specs (type, window, label); not in JSON."""


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    params_mb: float
    macs: int
    flops: int
    activations_mb: float


@dataclass(frozen=True)
class Summary:
    network: str
    input: str
    output: str
    layers: list[Row]
    totals: Totals
    training: dict = field(default_factory=dict)
    """What ``--train`` would do: epochs, batch, optimizer, schedule preview, warnings."""
    transfer: dict = field(default_factory=dict)
    """The transfer: section's plan: source, frozen and trainable parameter counts."""

    def to_dict(self) -> dict:
        data = asdict(self)
        for row in data["layers"]:
            del row["key"]
        return data

    def __str__(self) -> str:
        """The table ``cnnspec summary`` prints, as plain text (``print(summary)``)."""
        from .render import render_table
        from .tables import text

        return text(lambda console: render_table(self, console))

    def _repr_html_(self) -> str:
        """An HTML table, for Jupyter."""
        from .render import summary_html

        return summary_html(self)


def describe(info: LayerInfo) -> tuple[str, str]:
    """(type, key arguments) of a layer as the summary prints them: the kind's own words
    (``cnnspec/layers/<kind>.py``), then its activation."""
    layer = info.layer
    if layer.kind == "concat":
        return "concat", f"{len(layer.branches)} branches, on channels"
    if layer.kind == "residual":
        if info.projection:
            conv = info.children[1][0].layer
            return "residual", (f"body + shortcut: automatic 1x1 projection, stride {conv.stride} "
                                "(channels or size change)")
        return "residual", "body + " + ("shortcut" if layer.shortcut is not None else "identity shortcut")
    kind = BY_KIND[layer.kind]
    act = getattr(layer, "activation", None)
    return kind.title(layer), ", ".join(a for a in (kind.describe(info), act) if a)


def _key(info: LayerInfo, kind: str) -> str:
    """What a layer is, apart from sizes that follow from its input: 'conv:3x3', 'dense',
    'maxpool:2x2'; a label (``as NAME``) is part of it, so labelled layers align by name."""
    layer = info.layer
    window = getattr(layer, "kernel_size", None)
    key = f"{kind}:{window[0]}x{window[1]}" if window else kind
    return f"{key}@{layer.name}" if layer.labelled else key


def _rows(infos, depth: int, prefix: str, total: int):
    """Rows depth first; each branch of a concat and each shortcut gets a row of its own."""
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    for info in infos:
        path = f"{prefix}{info.name}"
        kind, args = describe(info)
        yield Row(info.name, path, depth, kind, args, fmt_shape(info.out_shape), info.params,
                  share(info.params), info.macs, True, key=_key(info, kind))
        for i, group in enumerate(info.children):
            name = group_name(info, i)
            if name is None:  # a residual's body: its layers are the residual's children
                yield from _rows(group, depth + 1, f"{path}.", total)
                continue
            what = ("identity: the input itself" if info.layer.kind == "concat" and not group
                    else "automatic 1x1 projection + batchnorm" if name == "shortcut"
                    and info.projection else "")
            out = group[-1].out_shape if group else info.in_shape
            params, macs = sum(g.params for g in group), sum(g.macs for g in group)
            yield Row(name, f"{path}.{name}", depth + 1, "branch" if name != "shortcut" else "shortcut",
                      what, fmt_shape(out), params, share(params), macs, True, key=f"{name}:{what}")
            yield from _rows(group, depth + 2, f"{path}.{name}.", total)


def summarize(spec: Spec, depth: int | None = None) -> Summary:
    """The summary of a validated spec, as data (see the module docstring for the fields).

    ``depth`` folds nested rows: only rows at most that deep are kept (0: top level); a
    folded concat or residual row still carries its whole parameters and MACs.
    """
    shaped = infer(spec)
    total = shaped.params
    rows = [r for r in _rows(shaped.layers, 0, "", total) if depth is None or r.depth <= depth]
    transfer = {}
    if spec.transfer is not None:
        from ..transfer import freeze_plan

        plan = freeze_plan(spec)
        t = spec.transfer
        infos = {path: info for _, path, info in shaped.walk()}

        def status_of(path: str) -> str:  # bias train: a frozen layer's biases still train
            s = plan.status(path)
            if t.bias_train and s.startswith("frozen") and path in infos and infos[path].biases:
                return "weights " + s
            return s

        rows = [replace(r, status=status, trainable=status.startswith("weights frozen") or
                        status in ("", "trainable", "partly frozen", "new head"))
                for r, status in ((r, status_of(r.path)) for r in rows)]
        frozen = sum(infos[p].params - (infos[p].biases if t.bias_train else 0)
                     for p, e in plan.starts.items() if e > 0)
        transfer = {"source": t.source, "frozen_params": frozen, "trainable_params": total - frozen,
                    "head": plan.head, "classes": t.classes, "bn_train": t.bn_train,
                    "bias_train": t.bias_train,
                    "unfreeze": [{"layers": u.layers, "epoch": u.epoch} for u in t.unfreeze]}
        trainable = total - frozen
    else:
        trainable = sum(r.params for r in rows if r.trainable and r.depth == 0)
    totals = Totals(total, trainable, total - trainable, shaped.buffers,
                    total * BYTES_PER_PARAM / 1e6, shaped.macs, 2 * shaped.macs,
                    _activation_elements(shaped.layers) * BYTES_PER_PARAM / 1e6)
    return Summary(spec.name, fmt_shape(shaped.input_shape), fmt_shape(shaped.output_shape), rows,
                   totals, training(spec.train, spec.transfer), transfer)


def _activation_elements(infos) -> int:
    """Elements of every tensor a forward pass of one image produces (see the docstring)."""
    n = 0
    for info in infos:
        size = math.prod(info.out_shape)
        if info.layer.kind not in ("flatten", "dropout"):  # a view; identity at inference
            n += size
        if getattr(info.layer, "activation", None):
            n += size
        for group in info.children:
            n += _activation_elements(group)
    return n


def training(cfg: TrainConfig, transfer=None) -> dict:
    """The train: section as the summary shows it, with the schedule preview (for the
    backbone and the head apart when ``transfer:`` sets ``lr backbone X head Y``)."""
    opt = cfg.optimizer
    preview = schedule_preview(cfg)
    head = None
    if transfer is not None and transfer.lr_backbone is not None:
        head = preview.scaled(transfer.lr_head / opt.lr)
        preview = preview.scaled(transfer.lr_backbone / opt.lr)
    text = describe_optimizer(opt)
    extras = summary_lines("train", cfg)  # each setting's own line (cnnspec.settings)
    return {"epochs": cfg.epochs, "batch": cfg.batch, "optimizer": text,
            "weight_decay": cfg.weight_decay, "schedule": preview.text(),
            "schedule_kind": cfg.schedule.kind if cfg.schedule else "constant",
            "schedule_head": head.text() if head else None,
            "lr_by_epoch": [[a, b, lr] for a, b, lr in preview.ranges],
            "extras": extras, "warnings": preview.warnings}
