"""Lark tree -> raw nodes: plain field dicts with the span of every field kept.

One short method per grammar rule: the layer kinds' from :mod:`cnnspec.layers`, the
``train:`` and ``transfer:`` settings' from :mod:`cnnspec.settings` (each setting declares
its own), the rest here (the raw node types in :mod:`cnnspec.language.raw`, re-exported
here). Nothing is checked here beyond what the grammar already guarantees;
:mod:`cnnspec.language.validate` turns raw nodes into the IR.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, v_args

from .. import settings
from ..errors import Span
from ..layers import BY_RULE
from ..layers.base import Kind
from ..settings.base import simple_transform
from .raw import Opt, Param, Raw, _split_dims, _whole


def simple(key: str, value: str):
    """A transform method for a layer option ``word VALUE`` (``value``: ``int`` or ``num``),
    the settings' own one-value transform (:func:`cnnspec.settings.base.simple_transform`)."""
    return v_args(meta=True)(simple_transform(key, value))


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

    def _mopt(self, key: str, meta, value: Any) -> Opt:
        """An option whose span is its whole rule's (``bn train``, ``checkpoint last``)."""
        return Opt(key, value, self._mspan(meta))

    # -- raw nodes, for the settings' methods (cnnspec.settings), which import no front end
    @staticmethod
    def _raw_node(kind: str, span: Span, fields: dict | None = None,
                  spans: dict | None = None) -> Raw:
        return Raw(kind, span, dict(fields or {}), dict(spans or {}))

    @staticmethod
    def _is_raw(x) -> bool:
        return isinstance(x, Raw)

    @staticmethod
    def _is_opt(x) -> bool:
        return isinstance(x, Opt)

    def _section(self, name: str, meta, items) -> Raw:
        """``train:`` / ``transfer:``: every setting's option(s) on one raw node; a
        repeatable setting's (``unfreeze``) as a list."""
        raw = Raw(name, self._mspan(meta))
        lists = [s.key for s in settings.SECTIONS[name] if s.repeatable]
        for key in lists:
            raw.fields[key] = []
        for item in items:
            for opt in item if isinstance(item, list) else [item]:
                if opt.key in lists:
                    raw.fields[opt.key].append(opt.value)
                else:
                    raw.set(opt)
        return raw

    @v_args(meta=True)
    def train_section(self, meta, items):
        return self._section("train", meta, items)

    @v_args(meta=True)
    def transfer_section(self, meta, items):
        return self._section("transfer", meta, items)

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

    padword = onoff = act = soft_word = _word

    def pad(self, items):
        tok = items[0]
        return self._opt("padding", tok, str(tok) if tok.type in ("SAME", "VALID") else self._int(tok))

    def padmode(self, items):
        return self._opt("padding", items[0], str(items[0]))

    def bias(self, items):
        return self._opt("bias", items[0], str(items[0]) == "on")

    def activation(self, items):
        return self._opt("activation", items[0], str(items[0]))

    # -- layer options
    groups = simple("groups", "int")
    dilation = simple("dilation", "int")
    eps = simple("eps", "num")
    alpha = simple("alpha", "num")
    beta = simple("beta", "num")
    lrn_k = simple("k", "num")

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
for _rule, _method in settings.TRANSFORMS.items():  # each setting's own rules
    setattr(ToRaw, _rule, v_args(meta=True)(_method) if getattr(_method, "with_meta", False)
            else _method)
