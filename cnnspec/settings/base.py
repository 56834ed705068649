"""What a setting of the ``train:`` or ``transfer:`` section is made of: :class:`Setting`, the
declaration each ``cnnspec/settings/<group>.py`` makes once and every stage reads (grammar,
transform, checks, IR field, command-line override, summary line, docs row), as a layer
kind is one :class:`~cnnspec.layers.base.Kind`. Nothing here imports torch, click or the
front end; the stages pass themselves in (the transformer to ``transform`` methods, the
validator to ``check``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

Metric = Literal["val_loss", "val_accuracy", "train_loss", "train_accuracy"]
"""What callbacks and ``schedule plateau`` watch; losses improve downwards, accuracies upwards."""
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32 (numpy.finfo(numpy.float32).max): optimizer settings live in float32
tensors, so a larger one would overflow to inf at the first step."""
Rate = Annotated[float, Field(gt=0.0, lt=FLOAT32_MAX)]
"""A positive setting that must fit in float32: learning rates, eps, norm limits."""

Value = Literal["int", "num", "string", "onoff", "word", "true"]
"""How a one-value statement ``WORD VALUE`` reads its value: a whole number, a number, a
quoted string (unquoted), ``on``/``off`` (True/False), a word as written, or nothing after
the words (True: ``log tensorboard``, ``bn train``)."""


@dataclass(frozen=True)
class IRField:
    """One field of the section's IR model (:class:`cnnspec.ir.TrainConfig` or
    :class:`cnnspec.ir.Transfer`): its name, type with range (a Pydantic annotation), default
    and docstring."""

    name: str
    annotation: Any
    default: Any = None
    doc: str = ""
    exclude: bool = False
    """Left out of dumps (spans kept for error carets)."""


@dataclass(frozen=True)
class Override:
    """A command-line override of a setting: ``--NAME VALUE`` for ``compile --train`` (and
    ``lr-find``), generated from this, so that a flag cannot drift from its spec word.

    ``type``: ``int>=1``, ``int>=0``, ``float``, ``choice`` (of ``choices``), ``switch``
    (``--NAME/--no-NAME``), ``flag`` (``--NAME`` alone sets True), ``path`` (a folder; the
    commands that take one declare ``--data`` themselves, with what it means there)."""

    name: str
    path: tuple[str, ...]
    """Where the value goes in the section's IR (``("optimizer", "lr")``)."""
    type: Literal["int>=1", "int>=0", "float", "choice", "switch", "flag", "path"]
    help: str
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """``--label-smoothing`` for ``label_smoothing``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Setting:
    """One setting of a section, declared once (see the module docstring).

    A one-value statement (``label_smoothing 0.1``) needs only ``value``: its grammar rule,
    its transform and its IR value come from it. A structured one (``optimizer``,
    ``schedule``, ``augment:``) gives its ``transform`` methods and its ``check``."""

    section: Literal["train", "transfer"]
    rules: tuple[str, ...]
    """Grammar rules that are statements of the section (``?train_stmt: ... | rule``)."""
    grammar: str
    """Its Lark rules: the statements and their sub-rules."""
    fields: tuple[IRField, ...]
    """The IR fields it fills; ``fields[0].name`` is its key (the raw option it sets)."""
    doc: tuple[tuple[str, ...], ...]
    """Its rows in docs/language.md's table of the section (held equal by a test)."""
    value: Value | None = None
    transform: dict[str, Callable] = field(default_factory=dict)
    """Grammar rule -> transformer method ``(self, items)`` or, marked :func:`with_meta`,
    ``(self, meta, items)``; ``self`` is :class:`cnnspec.language.transform.ToRaw`."""
    check: Callable | None = None
    """``check(validator, fields, raw)``: turn its raw value(s) in the section's ``fields``
    (a dict, changed in place) into IR values, reporting mistakes through the validator
    (:class:`cnnspec.language.validate.Validator`); a value it sets to None failed."""
    labels: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Field -> (how it reads in an error, a hint)."""
    written: dict[str, str] = field(default_factory=dict)
    """Raw key -> how the statement is written, for "given twice" (``source``: ``from``)."""
    twice: str | None = None
    """Its own "given twice" sentence and hint, as ``"message|hint"``."""
    repeatable: bool = False
    """May be written more than once (``unfreeze``): its values are kept as a list."""
    overrides: tuple[Override, ...] = ()
    summary: Callable[[Any], str | None] | None = None
    """The section's IR -> its line among the summary's "Also:" (None: nothing to say)."""
    model_checks: tuple[Callable, ...] = ()
    """Checks of the whole section's IR (``warmup`` shorter than ``epochs``): raise ValueError."""

    @property
    def key(self) -> str:
        return self.fields[0].name


def keep_word(self, items):
    """The transform of a ``!word: "a" | "b"`` rule: the keyword token itself."""
    return items[0]


def with_meta(method: Callable) -> Callable:
    """Mark a transform method as taking the rule's ``meta`` (Lark's ``v_args(meta=True)``)."""
    method.with_meta = True
    return method


def simple_transform(key: str, value: Value) -> Callable:
    """The transform method of a one-value statement (see :data:`Value`)."""

    @with_meta
    def method(self, meta, items):
        if not items:  # nothing but its words: bn train
            return self._mopt(key, meta, True)
        tok = items[0]
        if value == "int":
            v = self._int(tok)
        elif value == "num":
            v = self._num(tok)
        elif value == "string":
            v = str(tok)[1:-1]
        elif value == "onoff":
            v = str(tok) == "on"
        elif value == "word":
            v = str(tok)
        else:
            v = True
        return self._opt(key, tok, v)

    return method
