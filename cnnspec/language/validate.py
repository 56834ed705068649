"""Raw nodes -> :class:`~cnnspec.ir.Spec`, with every problem mapped to its span.

Each statement is validated on its own by its Pydantic model, so one run reports
every independent mistake; Pydantic's errors are rewritten as plain sentences that
name the field as the language writes it, with a hint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import ir, settings
from ..errors import Diagnostic, SourceText, Span
from ..layers import BY_WORD
from ..layers.base import FieldError
from .raw import Raw

# What each field of a layer (or of a statement outside the train: and transfer: sections)
# is called in a sentence, and what to tell the user about it; the settings' own are
# declared with them (cnnspec.settings.LABELS).
LABELS: dict[str, tuple[str, str | None]] = {
    "kernel_size": ("the kernel size", "sizes are whole numbers of at least 1"),
    "stride": ("the stride", "stride 1 keeps the size, stride 2 halves it"),
    "padding": ("the padding", None),
    "height": ("the input height", "write input HxWxC, e.g. input 32x32x1"),
    "width": ("the input width", "write input HxWxC, e.g. input 32x32x1"),
    "channels": ("the input channels", "1 for grayscale, 3 for RGB"),
    "groups": ("groups", "groups N splits the channels into N groups; 1 is a plain convolution"),
    "dilation": ("the dilation", "dilation 1 is a plain kernel, 2 spreads it over every other pixel"),
    "eps": ("eps", "a small number added to the variance, e.g. eps 1e-5"),
    "alpha": ("alpha", None),
    "beta": ("beta", None),
    "k": ("k", None),
}

# Fields whose name means something else in another statement: (statement, field) -> label.
KIND_LABELS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("random_erasing", "p"): ("the probability", "a probability in [0, 1]"),
}

_OPS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}


def _message(err: dict[str, Any], what: str) -> tuple[str, str | None]:
    own = BY_WORD[what].labels if what in BY_WORD else {}  # a layer kind's own labels
    known = {**LABELS, **settings.LABELS}
    field = next((p for p in err["loc"] if isinstance(p, str) and (p in own or p in known)), None)
    if field is None:  # a field with no entry: name it as the language writes it
        field = next((p for p in err["loc"] if isinstance(p, str)), None)
    label, hint = (own.get(field) or KIND_LABELS.get((what, field))
                   or known.get(field, (field or what, None)))
    if err["type"] in _OPS:
        op, key = _OPS[err["type"]]
        return f"{what}: {label} must be {op} {err['ctx'][key]}, got {err['input']}", hint
    if err["type"] == "value_error":  # a model validator's own sentence
        return f"{what}: {err['msg'].removeprefix('Value error, ')}", hint
    if err["type"] == "finite_number":  # inf: a number too long to be one
        return f"{what}: {label} is too large", hint
    if err["type"] == "int_from_float":  # {filters / 3}, or a block called with 2.5
        return (f"{what}: {label} must be a whole number, got {err['input']:g}",
                "'/' can give a fraction; '//' divides to a whole number, e.g. {filters // 3}")
    return f"{what}: {label}: {err['msg']}", hint


# Which part of a written size (``dims``) a field comes from; kernel_size and output_size
# use the index in the error's location.
_DIMS_PART = {"out_channels": 2, "height": 0, "width": 1, "channels": 2}


class Validator:
    """Collects diagnostics while turning raw statements into IR objects."""

    def __init__(self, src: SourceText):
        self.src = src
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple] = set()  # (span, message): a set keeps check linear

    def error(self, span: Span | None, message: str, hint: str | None = None, trace=()) -> None:
        key = (span, message)
        if key in self._seen:
            return  # maxpool 0 is two errors (0x0) but one mistake
        self._seen.add(key)
        self.diagnostics.append(self.src.diag(span, message, hint, trace))

    def model(self, cls: type[BaseModel], raw: Raw, fields: dict[str, Any], what: str,
              field_keys: dict[str, str] | None = None):
        """``cls(**fields)``; on failure, one diagnostic per Pydantic error, at its field's span."""
        for dup in raw.duplicates:
            self.error(dup.span, f"{what}: {dup.key} is given twice", "keep one of them", raw.trace)
        if any(v is None for k, v in fields.items() if k != "shortcut") or any(
                isinstance(v, tuple) and None in v for v in fields.values()):
            return None  # a parameter that could not be evaluated: already reported
        extra = {"trace": raw.trace} if raw.trace else {}
        try:
            return cls.model_validate({**fields, "span": raw.span, **extra})
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else ""
                name = (field_keys or {}).get(key, key)
                span = raw.spans.get(name, raw.span)
                if name == "dims":  # one part of a size: under its {...} if it came from one
                    part = _DIMS_PART.get(key, err["loc"][1] if len(err["loc"]) > 1 else 0)
                    span = raw.spans.get(f"dims.{part}", span)
                msg, hint = _message(err, what)
                self.error(span, msg, hint, raw.trace)
            return None

    # -- the train: and transfer: sections, through their settings (cnnspec.settings)
    def section(self, raw: Raw, name: str):
        """The IR of section ``name`` (:class:`~cnnspec.ir.TrainConfig`,
        :class:`~cnnspec.ir.Transfer`) from its raw node, each setting's ``check`` turning its
        raw value into IR values; None after reporting its mistakes. The section is checked
        whole even when a setting failed, so that one mistake does not hide another."""
        f = dict(raw.fields)
        for dup in raw.duplicates:  # reported here, as each is removed from the fields below
            s = settings.BY_KEY.get((name, dup.key))
            if s is not None and s.twice:
                message, hint = s.twice.split("|")
            else:
                written = s.written.get(dup.key, dup.key) if s is not None else dup.key
                message, hint = f"{name}: {written} is given twice", "keep one of them"
            self.error(dup.span, message, hint, raw.trace)
        raw = replace(raw, duplicates=[])
        for s in settings.SECTIONS[name]:
            if s.check is not None and s.check(self, f, raw) is False:
                return None  # a mistake that makes the rest meaningless: already reported
        failed = {k for k, v in f.items() if v is None or (isinstance(v, list) and None in v)}
        model = ir.TrainConfig if name == "train" else ir.Transfer
        config = self.model(model, raw, {k: v for k, v in f.items() if k not in failed}, name)
        return None if failed else config

    # -- layers
    def error_at(self, raw: Raw, span: Span | None, message: str, hint: str | None = None) -> None:
        self.error(span, message, hint, raw.trace)

    def layer(self, raw: Raw, within: str = "network"):
        """The IR layer of a raw statement (None after reporting its mistakes); ``within``:
        what holds it (network, branch, residual body, shortcut)."""
        if raw.kind == "failed":
            return None  # a call or repeat that could not be expanded: already reported
        if raw.kind == "concat":
            branches = [[self.layer(r, "branch") for r in b] for b in raw.fields["branches"]]
            fields = {k: v for k, v in raw.fields.items() if k != "branches"}
            if any(None in b for b in branches):
                return None
            return self.model(ir.Concat, raw, {**fields, "branches": branches}, "concat")
        if raw.kind == "residual":
            body = [self.layer(r, "residual body") for r in raw.fields["body"]]
            last = {r.kind: i for i, r in enumerate(raw.fields["body"])}  # each word's last line
            for i, r in enumerate(raw.fields["body"]):
                kind = BY_WORD.get(r.kind)
                if kind is None or not kind.residual_body_only:
                    continue
                if last[r.kind] != i:
                    body[i] = self.error_at(r, r.span, f"{r.kind} is given twice in this "
                                            "residual body", "keep one, as the body's last line")
                elif i != len(body) - 1:
                    body[i] = self.error_at(
                        r, r.span, f"{r.kind} must be the last line of the residual: body: it "
                        "drops the body's output, so layers after it would still run on the "
                        "dropped images", "move it below the body's other layers")
                elif len(body) == 1:
                    body[i] = self.error_at(r, r.span, f"{r.kind}: the residual body has no "
                                            "other layer, so there is nothing to drop",
                                            "write the body's layers above it")
            sc = raw.fields["shortcut"]
            shortcut = None if sc is None else [self.layer(r, "shortcut") for r in sc]
            if None in body or (shortcut is not None and None in shortcut):
                return None
            if not body:
                return self.error_at(raw, raw.span, "residual: the body is empty")
            fields = {k: v for k, v in raw.fields.items() if k not in ("body", "shortcut")}
            return self.model(ir.Residual, raw, {**fields, "body": body, "shortcut": shortcut},
                              "residual")
        f = dict(raw.fields)
        dims = f.get("dims")
        if dims is not None and None in dims:
            return None  # a parameter that could not be evaluated: already reported
        keys = {"kernel_size": "dims", "out_channels": "dims", "output_size": "dims"}
        if "name" in raw.spans and raw.span.end_col is not None:  # underline 'as NAME' too
            raw.span = replace(raw.span, end_col=raw.spans["name"].end_col)
        kind = BY_WORD[raw.kind]
        if kind.residual_body_only and within != "residual body":
            place = {"network": "at the top level", "branch": "in a concat branch",
                     "shortcut": "in a shortcut"}[within]
            return self.error_at(raw, raw.span, f"{raw.kind} belongs in a residual: body, not "
                                 f"{place}: there it would drop the whole signal of an image",
                                 "write it as the last line of the residual's body")
        if kind.fields is not None:
            try:
                f = kind.fields(raw.kind, f)
            except FieldError as exc:
                return self.error_at(raw, raw.spans.get(exc.field, raw.span), exc.message, exc.hint)
        return self.model(kind.model, raw, f, raw.kind, keys)


def validate(statements: list[Raw], src: SourceText) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Statements -> the fields of a :class:`~cnnspec.ir.Spec` (unnamed layers) and diagnostics."""
    v = Validator(src)
    seen: dict[str, Raw] = {}
    layers: list = []
    train = ir.TrainConfig()
    transfer = None
    name, input_shape = Path(src.file).stem or "Network", None
    for raw in statements:
        if raw.kind in ("network", "input", "train", "transfer"):
            if raw.kind in seen:
                first = seen[raw.kind].span
                v.error(raw.span, f"'{raw.kind}' is given twice (first at line {first.line})",
                        "a spec has one of each")
                continue
            seen[raw.kind] = raw
        if raw.kind == "network":
            name = raw.fields["name"]
        elif raw.kind == "input":
            dims = raw.fields["dims"]
            if None in dims:
                continue  # a parameter that could not be evaluated: already reported
            if len(dims) != 3:
                v.error(raw.spans["dims"], f"input needs HxWxC (height x width x channels), got "
                        f"{'x'.join(map(str, dims))}",
                        f"for a grayscale image write input {dims[0]}x{dims[1]}x1")
                continue
            input_shape = v.model(ir.InputShape, raw, dict(zip(("height", "width", "channels"), dims)),
                                  "input", {k: "dims" for k in ("height", "width", "channels")})
        elif raw.kind == "train":
            train = v.section(raw, "train")
        elif raw.kind == "transfer":
            transfer = v.section(raw, "transfer")
        else:
            layers.append(v.layer(raw))
    if input_shape is not None and train is not None:
        norm = train.normalize
        for key in ("mean", "std"):
            values = getattr(norm, key)
            if values is not None and len(values) != input_shape.channels:
                v.error(norm.span, f"normalize: {len(values)} {key} value(s) for an input with "
                        f"{input_shape.channels} channel(s)", f"give one {key} per channel")
        if norm.preset == "imagenet" and input_shape.channels != 3:
            v.error(norm.span, f"normalize imagenet: ImageNet statistics are for RGB images, the "
                    f"input has {input_shape.channels} channel(s)", "leave normalize out to compute "
                    "mean and std from the training images")
        for a in train.augment:
            if a.kind == "crop" and (a.size > input_shape.height + 2 * a.pad
                                     or a.size > input_shape.width + 2 * a.pad):
                v.error(a.span, f"crop {a.size} is larger than the {input_shape.height}x"
                        f"{input_shape.width} input padded by {a.pad}",
                        f"crop at most {min(input_shape.height, input_shape.width) + 2 * a.pad}, "
                        "or pad more")
    first_layer = next((r for r in statements
                        if r.kind not in ("network", "input", "train", "transfer")), None)
    if not statements:
        v.error(Span(src.file, 1, 1), "the spec is empty",
                "write an 'input' line and layers, e.g. 'input 28x28x1', 'flatten', 'dense 10'")
    elif "input" not in seen:
        v.error(first_layer.span if first_layer else Span(src.file, 1, 1),
                "the spec has no 'input' line",
                "add one such as 'input 32x32x1' (height x width x channels) before the layers")
    if not layers and not v.diagnostics:
        v.error(Span(src.file, 1, 1), "the spec has no layers", "add layers such as 'conv 3x3x16 relu'")
    if seen.get("transfer") is not None and transfer is None:
        layers.append(None)  # a mistake in the transfer section: already reported
    fields = {"name": name, "input": input_shape, "layers": layers, "train": train,
              "transfer": transfer,
              "file": src.file, "source": src.text}
    return fields, v.diagnostics
