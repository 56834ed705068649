"""Lark tree -> raw nodes: plain field dicts with the span of every field kept.

One short method per grammar rule. Nothing is checked here beyond what the
grammar already guarantees; :mod:`cnnspec.validate` turns raw nodes into the IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lark import Token, Transformer, v_args

from .errors import Span
from .layers import BY_RULE
from .layers.base import Kind


@dataclass
class Opt:
    """One option of a statement (``stride 2``, ``relu``), with where it was written."""

    key: str
    value: Any
    span: Span


@dataclass
class Raw:
    """A statement before validation: its kind, fields, and a span per field."""

    kind: str
    span: Span
    fields: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    duplicates: list[Opt] = field(default_factory=list)
    trace: tuple[Span, ...] = ()
    """The block calls this statement was expanded from, innermost first."""

    def set(self, opt: Opt) -> None:
        if opt.key in self.fields:
            self.duplicates.append(opt)
        self.fields[opt.key] = opt.value
        self.spans[opt.key] = opt.span


@dataclass(frozen=True)
class Param:
    """A number still to be worked out from block parameters: ``{filters}``, ``{4*width}``,
    or a bare parameter name (``repeat convs:``). :mod:`cnnspec.expand` evaluates it."""

    expr: str
    span: Span

    def __str__(self) -> str:
        return "{" + self.expr + "}"


def _whole(text: str) -> int | float:
    """``int(text)``; a number too long for Python's int() (over 4300 digits) becomes inf,
    which validation then rejects at its place, like any other number out of range."""
    return int(text) if len(text) <= 4000 else float("inf")


def _split_dims(text: str) -> list[str]:
    """'3x3x{2*f}' -> ['3', '3', '{2*f}'] (an x inside braces does not split)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if ch == "x" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


class ToRaw(Transformer):
    """Transforms a parse tree into ``{"statements": [Raw, ...]}`` (see module docstring)."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    # -- spans
    def _tspan(self, tok: Token) -> Span:
        return Span(self.file, tok.line, tok.column, tok.end_column)

    def _mspan(self, meta) -> Span:
        end = meta.end_column if meta.end_line == meta.line else None
        return Span(self.file, meta.line, meta.column, end)

    def _opt(self, key: str, tok: Token, value: Any) -> Opt:
        return Opt(key, value, self._tspan(tok))

    # -- values: numbers, or parameters to evaluate later
    def _param(self, tok: Token, text: str) -> Param:
        return Param(text.strip(), self._tspan(tok))

    def _int(self, tok: Token):
        if tok.type == "PARAM":
            return self._param(tok, str(tok)[1:-1])
        if tok.type != "INT":  # a bare parameter name (which may be an option word: stride)
            return self._param(tok, str(tok))
        return _whole(tok)

    def _num(self, tok: Token):
        return float(tok) if tok.type in ("INT", "FLOAT") else self._int(tok)

    def _value(self, tok: Token):
        """An argument or default: int, float, or a parameter to evaluate later."""
        return _whole(tok) if tok.type == "INT" else self._num(tok)

    def _dims(self, tok: Token) -> tuple:
        out, col = [], tok.column
        for p in _split_dims(str(tok)):
            if p.startswith("{"):  # the span of this part only: the caret goes under {...}
                out.append(Param(p[1:-1].strip(), Span(self.file, tok.line, col, col + len(p))))
            else:
                out.append(_whole(p))
            col += len(p) + 1
        return tuple(out)

    def _arg(self, how: str, tok: Token) -> Opt:
        """A positional argument of a layer (:data:`cnnspec.layers.base.ArgType`)."""
        if how == "dims" or (how == "window" and tok.type == "DIMS"):
            return self._dims(tok)
        if how in ("int", "window"):
            value = self._int(tok)
            return (value,) if how == "window" else value
        return self._num(tok) if how == "num" else str(tok)

    def _raw(self, kind: str, meta, first: list[Opt] = (), opts: list = ()) -> Raw:
        raw = Raw(kind, self._mspan(meta))
        for o in [*first, *opts]:
            raw.set(o)
        return raw

    # -- top level
    def start(self, items):
        return list(items)

    @v_args(meta=True)
    def network(self, meta, items):
        return self._raw("network", meta, [self._opt("name", items[0], str(items[0]))])

    @v_args(meta=True)
    def input(self, meta, items):
        return self._raw("input", meta, [self._opt("dims", items[0], self._dims(items[0]))])

    @v_args(meta=True)
    def layer_stmt(self, meta, items):
        raw: Raw = items[0]
        if len(items) > 1:
            raw.set(items[1])
        return raw

    def label(self, items):
        return self._opt("name", items[0], str(items[0]))

    # -- options
    def stride(self, items):
        return self._opt("stride", items[0], self._int(items[0]))

    def _word(self, items):  # padword, onoff, act, optimizer_name: the keyword token itself
        return items[0]

    padword = onoff = precision_kind = log_kind = act = optimizer_name = no_decay = metric = \
        soft_word = _word

    def pad(self, items):
        tok = items[0]
        return self._opt("padding", tok, str(tok) if tok.type in ("SAME", "VALID") else self._int(tok))

    def padmode(self, items):
        return self._opt("padding", items[0], str(items[0]))

    def bias(self, items):
        return self._opt("bias", items[0], str(items[0]) == "on")

    def activation(self, items):
        return self._opt("activation", items[0], str(items[0]))

    # -- train section
    @v_args(meta=True)
    def train_section(self, meta, items):
        raw = Raw("train", self._mspan(meta))
        for item in items:
            for opt in item if isinstance(item, list) else [item]:
                raw.set(opt)
        return raw

    def _simple(key, convert):  # a helper that makes methods
        def method(self, items):
            value = str(items[0])[1:-1] if convert == "string" else getattr(self, convert)(items[0])
            return self._opt(key, items[0], value)

        return method

    epochs = _simple("epochs", "_int")
    batch = _simple("batch", "_int")
    split = _simple("split", "_num")
    seed = _simple("seed", "_int")
    workers = _simple("workers", "_int")
    threads = _simple("threads", "_int")

    def precision(self, items):
        return self._opt("precision", items[0], str(items[0]))

    def compile(self, items):
        return self._opt("compile", items[0], str(items[0]) == "on")

    def sync_batchnorm(self, items):
        return self._opt("sync_batchnorm", items[0], str(items[0]) == "on")

    def log(self, items):  # log tensorboard
        return self._opt("tensorboard", items[0], True)

    label_smoothing = _simple("label_smoothing", "_num")
    clip_grad_norm = _simple("clip_grad_norm", "_num")
    warmup = _simple("warmup", "_int")
    factor = _simple("factor", "_num")
    min_lr = _simple("min_lr", "_num")
    patience = _simple("patience", "_int")
    min_delta = _simple("min_delta", "_num")
    brightness = _simple("brightness", "_num")
    contrast = _simple("contrast", "_num")
    saturation = _simple("saturation", "_num")
    hue = _simple("hue", "_num")
    data = _simple("data", "string")
    lr = _simple("lr", "_num")
    momentum = _simple("momentum", "_num")
    groups = _simple("groups", "_int")
    dilation = _simple("dilation", "_int")
    eps = _simple("eps", "_num")
    alpha = _simple("alpha", "_num")
    beta = _simple("beta", "_num")
    lrn_k = _simple("k", "_num")

    def ceil(self, items):
        return self._opt("ceil_mode", items[0], True)

    def count_pad(self, items):
        return self._opt("count_include_pad", items[0], str(items[0]) == "on")

    # -- structure: blocks, calls, repeats, branches, residuals, includes
    def _body(self, items) -> list:
        return [i for i in items if isinstance(i, Raw)]

    @v_args(meta=True)
    def include(self, meta, items):
        return self._raw("include", meta, [self._opt("path", items[0], str(items[0])[1:-1])])

    def pname(self, items):
        return items[0]

    def param(self, items):
        name = items[0]
        default = self._value(items[1]) if len(items) > 1 else None
        return Opt(str(name), default, self._tspan(name))

    @v_args(meta=True)
    def block_def(self, meta, items):
        name, rest = items[0], items[1:]
        raw = self._raw("block_def", meta, [self._opt("name", name, str(name))])
        raw.fields["params"] = [o for o in rest if isinstance(o, Opt)]
        raw.fields["body"] = self._body(rest)
        return raw

    def arg(self, items):
        key = str(items[0]) if len(items) > 1 else None
        return Opt(key, self._value(items[-1]), self._tspan(items[0] if key else items[-1]))

    @v_args(meta=True)
    def call(self, meta, items):
        name = items[0]
        raw = self._raw("call", meta, [self._opt("name", name, str(name))])
        raw.fields["args"] = list(items[1:])
        return raw

    @v_args(meta=True)
    def repeat(self, meta, items):
        raw = self._raw("repeat", meta, [self._opt("count", items[0], self._int(items[0]))])
        raw.fields["body"] = self._body(items[1:])
        return raw

    @v_args(meta=True)
    def concat(self, meta, items):
        raw = self._raw("concat", meta, [o for o in items if isinstance(o, Opt)])
        raw.fields["branches"] = [i for i in items if isinstance(i, list)]
        return raw

    def branch_block(self, items):
        return self._body(items)

    def identity(self, items):
        return []

    @v_args(meta=True)
    def residual(self, meta, items):
        raw = self._raw("residual", meta, [o for o in items if isinstance(o, Opt)])
        raw.fields["body"] = self._body(items)
        raw.fields["shortcut"] = next((i for i in items if isinstance(i, list)), None)
        return raw

    def shortcut(self, items):
        return self._body(items)

    def optimizer(self, items):
        name = items[0]
        raw = Raw("optimizer", self._tspan(name), {"name": str(name)}, {"name": self._tspan(name)})
        for o in items[1:]:
            raw.set(o)
        return Opt("optimizer", raw, self._tspan(name))

    def weight_decay(self, items):
        value, words = items[0], items[1:]
        opts = [self._opt("weight_decay", value, self._num(value))]
        if words:
            opts.append(Opt("no_decay", tuple(str(w) for w in words), self._tspan(words[0])))
        return opts

    def nesterov(self, items):
        return self._opt("nesterov", items[0], True)

    def betas(self, items):
        return Opt("betas", (self._num(items[0]), self._num(items[1])), self._tspan(items[0]))

    @v_args(meta=True)
    def schedule(self, meta, items):
        kind = items[0]
        raw = Raw("schedule", self._mspan(meta), {"kind": str(kind)}, {"kind": self._tspan(kind)})
        rest = items[1:]
        if str(kind) == "multistep":
            ints = [t for t in rest if isinstance(t, Token)]
            raw.set(Opt("milestones", tuple(self._int(t) for t in ints), self._tspan(ints[0])))
        elif str(kind) == "plateau" and rest and isinstance(rest[0], Token):
            raw.set(self._opt("monitor", rest[0], str(rest[0])))
        milestones = [r for r in rest if isinstance(r, Raw)]
        if milestones:
            raw.fields["steps"] = milestones
        for o in rest:
            if isinstance(o, Opt):
                raw.set(o)
        return Opt("schedule", raw, self._mspan(meta))

    def milestone(self, items):
        epoch, lr = items
        span = self._tspan(epoch)
        return Raw("milestone", span, {"epoch": self._int(epoch), "lr": self._num(lr)},
                   {"epoch": span, "lr": self._tspan(lr)})

    @v_args(meta=True)
    def early_stop(self, meta, items):
        raw = Raw("early_stop", self._mspan(meta), {"monitor": str(items[0])},
                  {"monitor": self._tspan(items[0])})
        for o in items[1:]:
            raw.set(o)
        return Opt("early_stop", raw, self._mspan(meta))

    @v_args(meta=True)
    def checkpoint(self, meta, items):
        raw = Raw("checkpoint", self._mspan(meta))
        for o in items:
            raw.set(o)
        return Opt("checkpoint", raw, self._mspan(meta))

    @v_args(meta=True)
    def checkpoint_best(self, meta, items):
        return Opt("best", str(items[0]) if items else "val_accuracy", self._mspan(meta))

    @v_args(meta=True)
    def checkpoint_last(self, meta, items):
        return Opt("last", True, self._mspan(meta))

    def checkpoint_every(self, items):
        return self._opt("every", items[0], self._int(items[0]))

    @v_args(meta=True)
    def augment(self, meta, items):
        return Opt("augment", [a for group in items for a in group], self._mspan(meta))

    def augment_list(self, items):
        return list(items)

    @v_args(meta=True)
    def hflip(self, meta, items):
        return Raw("hflip", self._mspan(meta), {"kind": "hflip"})

    @v_args(meta=True)
    def vflip(self, meta, items):
        return Raw("vflip", self._mspan(meta), {"kind": "vflip"})

    @v_args(meta=True)
    def crop(self, meta, items):
        raw = Raw("crop", self._mspan(meta), {"kind": "crop", "size": self._int(items[0])},
                  {"size": self._tspan(items[0])})
        if len(items) > 1:
            raw.set(self._opt("pad", items[1], self._int(items[1])))
        return raw

    @v_args(meta=True)
    def rotate(self, meta, items):
        return Raw("rotate", self._mspan(meta), {"kind": "rotate", "degrees": self._num(items[0])},
                   {"degrees": self._tspan(items[0])})


    def _aug(self, kind: str, meta, opts=()) -> Raw:
        raw = Raw(kind, self._mspan(meta), {"kind": kind})
        for o in opts:
            raw.set(o)
        return raw

    def scale(self, items):
        return Opt("scale", (self._num(items[0]), self._num(items[1])), self._tspan(items[0]))

    @v_args(meta=True)
    def random_resized_crop(self, meta, items):
        opts = [self._opt("size", t, self._int(t)) if isinstance(t, Token) else t for t in items]
        return self._aug("random_resized_crop", meta, opts)

    @v_args(meta=True)
    def color_jitter(self, meta, items):
        return self._aug("color_jitter", meta, items)

    @v_args(meta=True)
    def random_erasing(self, meta, items):
        return self._aug("random_erasing", meta, [self._opt("p", items[0], self._num(items[0])),
                                                   *items[1:]])

    @v_args(meta=True)
    def mixup(self, meta, items):
        return self._aug("mixup", meta, [self._opt("alpha", items[0], self._num(items[0]))])

    @v_args(meta=True)
    def cutmix(self, meta, items):
        return self._aug("cutmix", meta, [self._opt("alpha", items[0], self._num(items[0]))])

    @v_args(meta=True)
    def normalize(self, meta, items):
        raw = self._aug("normalize", meta)
        if len(items) == 1:  # imagenet
            raw.set(self._opt("preset", items[0], str(items[0])))
        elif not items:  # said explicitly: computed on this run's training images
            raw.set(Opt("preset", "computed", self._mspan(meta)))
        for o in items[1:] if len(items) == 1 else items:
            raw.set(o)
        return raw

    def norm_mean(self, items):
        return Opt("mean", tuple(self._num(t) for t in items), self._tspan(items[0]))

    def norm_std(self, items):
        return Opt("std", tuple(self._num(t) for t in items), self._tspan(items[0]))


    # -- transfer section
    @v_args(meta=True)
    def transfer_section(self, meta, items):
        raw = Raw("transfer", self._mspan(meta))
        items = [o for item in items for o in (item if isinstance(item, list) else [item])]
        unfreeze = [o for o in items if o.key == "unfreeze"]
        for o in items:
            if o.key != "unfreeze":
                raw.set(o)
        raw.fields["unfreeze"] = [o.value for o in unfreeze]
        return raw

    @v_args(meta=True)
    def transfer_from(self, meta, items):
        return self._opt("source", items[0], str(items[0])[1:-1])

    @v_args(meta=True)
    def freeze_up_to(self, meta, items):
        return Opt("freeze", Raw("freeze", self._mspan(meta), {
            "mode": "up_to", "layer": str(items[0]), "name_spans": self._name_spans(items)}),
            self._mspan(meta))

    def _name_spans(self, tokens) -> dict:
        """Where each layer name of a transfer statement is written (for carets)."""
        return {str(t): self._tspan(t) for t in tokens}

    @v_args(meta=True)
    def freeze_all(self, meta, items):
        return Opt("freeze", Raw("freeze", self._mspan(meta), {
            "mode": "all_except", "keep": [str(t) for t in items],
            "name_spans": self._name_spans(items)}), self._mspan(meta))

    @v_args(meta=True)
    def train_last(self, meta, items):
        raw = Raw("freeze", self._mspan(meta), {"mode": "last_conv", "convs": self._int(items[0])},
                  {"convs": self._tspan(items[0])})
        return Opt("freeze", raw, self._mspan(meta))

    @v_args(meta=True)
    def unfreeze(self, meta, items):
        *names, epoch = items
        raw = Raw("unfreeze", self._mspan(meta), {"layers": [str(t) for t in names],
                                                   "epoch": self._int(epoch),
                                                   "name_spans": self._name_spans(names)},
                  {"epoch": self._tspan(epoch)})
        return Opt("unfreeze", raw, self._mspan(meta))

    @v_args(meta=True)
    def classes(self, meta, items):
        if items:
            return self._opt("classes", items[0], self._int(items[0]))
        return Opt("classes", "data", self._mspan(meta))

    @v_args(meta=True)
    def bn_train(self, meta, items):
        return Opt("bn_train", True, self._mspan(meta))

    @v_args(meta=True)
    def bias_train(self, meta, items):
        return Opt("bias_train", True, self._mspan(meta))

    def lr_split(self, items):
        return [self._opt("lr_backbone", items[0], self._num(items[0])),
                self._opt("lr_head", items[1], self._num(items[1]))]


def to_raw(tree, file: str) -> list[Raw]:
    """The statements of a parsed spec, in order."""
    return ToRaw(file).transform(tree)


def _layer_method(word: str, kind: Kind):
    """The transform of a layer kind's rule: ``Raw(word)`` with the kind's positional
    arguments (``Kind.args``) then its options."""

    @v_args(meta=True)
    def method(self, meta, items):
        first = [self._opt(field, tok, self._arg(how, tok))
                 for (field, how), tok in zip(kind.args, items, strict=False)]
        return self._raw(word, meta, first, items[len(kind.args):])

    method.__name__ = word
    return method


for _rule, _kind in BY_RULE.items():
    setattr(ToRaw, _rule, _layer_method(_kind.word or _rule, _kind))
