"""Raw nodes: a statement before validation, as plain field dicts with the span of every
field kept (made by :mod:`cnnspec.language.transform`, read by :mod:`cnnspec.language.expand` and
:mod:`cnnspec.language.validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Span


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
    or a bare parameter name (``repeat convs:``). :mod:`cnnspec.language.expand` evaluates it."""

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
