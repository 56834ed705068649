"""Lark tree -> raw nodes: plain field dicts with the span of every field kept.

One short method per grammar rule. Nothing is checked here beyond what the
grammar already guarantees; :mod:`cnnspec.validate` turns raw nodes into the IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lark import Token, Transformer, v_args

from .errors import Span


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

    def set(self, opt: Opt) -> None:
        if opt.key in self.fields:
            self.duplicates.append(opt)
        self.fields[opt.key] = opt.value
        self.spans[opt.key] = opt.span


def _int(tok: Token) -> int:
    return int(tok)


def _num(tok: Token) -> float:
    return float(tok)


def _dims(tok: Token) -> tuple[int, ...]:
    return tuple(int(p) for p in str(tok).split("x"))


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
        return self._raw("input", meta, [self._opt("dims", items[0], _dims(items[0]))])

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
        return self._opt("stride", items[0], _int(items[0]))

    def _word(self, items):  # padword, onoff, act, optimizer_name: the keyword token itself
        return items[0]

    padword = onoff = act = optimizer_name = _word

    def pad(self, items):
        tok = items[0]
        return self._opt("padding", tok, _int(tok) if tok.type == "INT" else str(tok))

    def padmode(self, items):
        return self._opt("padding", items[0], str(items[0]))

    def bias(self, items):
        return self._opt("bias", items[0], str(items[0]) == "on")

    def activation(self, items):
        return self._opt("activation", items[0], str(items[0]))

    # -- layers
    @v_args(meta=True)
    def conv(self, meta, items):
        return self._raw("conv", meta, [self._opt("dims", items[0], _dims(items[0]))], items[1:])

    @v_args(meta=True)
    def transition(self, meta, items):
        raw = self.conv(meta, items)
        raw.kind = "transition"
        return raw

    @v_args(meta=True)
    def pool(self, meta, items):
        kind_tok, window = items[0], items[1]
        dims = _dims(window) if window.type == "DIMS" else (_int(window),)
        return self._raw(str(kind_tok), meta, [self._opt("dims", window, dims)], items[2:])

    @v_args(meta=True)
    def adaptiveavgpool(self, meta, items):
        tok = items[0]
        dims = _dims(tok) if tok.type == "DIMS" else (_int(tok),)
        return self._raw("adaptiveavgpool", meta, [self._opt("dims", tok, dims)])

    @v_args(meta=True)
    def globalavgpool(self, meta, items):
        return self._raw("globalavgpool", meta)

    @v_args(meta=True)
    def batchnorm(self, meta, items):
        return self._raw("batchnorm", meta, opts=items)

    @v_args(meta=True)
    def dropout(self, meta, items):
        return self._raw("dropout", meta, [self._opt("p", items[0], _num(items[0]))])

    @v_args(meta=True)
    def flatten(self, meta, items):
        return self._raw("flatten", meta)

    @v_args(meta=True)
    def dense(self, meta, items):
        first = [self._opt("out_features", items[0], _int(items[0]))]
        return self._raw("dense", meta, first, items[1:])

    @v_args(meta=True)
    def activation_layer(self, meta, items):
        return self._raw("activation", meta, [self._opt("function", items[0], str(items[0]))])

    # -- train section
    @v_args(meta=True)
    def train_section(self, meta, items):
        raw = Raw("train", self._mspan(meta))
        for item in items:
            raw.set(item)
        return raw

    def _simple(key, convert):
        def method(self, items):
            return self._opt(key, items[0], convert(items[0]))

        return method

    epochs = _simple("epochs", _int)
    batch = _simple("batch", _int)
    split = _simple("split", _num)
    seed = _simple("seed", _int)
    weight_decay = _simple("weight_decay", _num)
    data = _simple("data", lambda t: str(t)[1:-1])
    lr = _simple("lr", _num)
    momentum = _simple("momentum", _num)

    def optimizer(self, items):
        name = items[0]
        raw = Raw("optimizer", self._tspan(name), {"name": str(name)}, {"name": self._tspan(name)})
        for o in items[1:]:
            raw.set(o)
        return Opt("optimizer", raw, self._tspan(name))

    @v_args(meta=True)
    def schedule(self, meta, items):
        return Opt("schedule", list(items), self._mspan(meta))

    def milestone(self, items):
        epoch, lr = items
        span = self._tspan(epoch)
        return Raw("milestone", span, {"epoch": _int(epoch), "lr": _num(lr)},
                   {"epoch": span, "lr": self._tspan(lr)})

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
        raw = Raw("crop", self._mspan(meta), {"kind": "crop", "size": _int(items[0])},
                  {"size": self._tspan(items[0])})
        if len(items) > 1:
            raw.set(self._opt("pad", items[1], _int(items[1])))
        return raw

    @v_args(meta=True)
    def rotate(self, meta, items):
        return Raw("rotate", self._mspan(meta), {"kind": "rotate", "degrees": _num(items[0])},
                   {"degrees": self._tspan(items[0])})


def to_raw(tree, file: str) -> list[Raw]:
    """The statements of a parsed spec, in order."""
    return ToRaw(file).transform(tree)
