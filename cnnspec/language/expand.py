"""Blocks, repeats and includes unrolled; then automatic names (C1.., M1.., F1..) assigned.

Expansion works on raw statements (before validation), so a value computed from a
block parameter is checked like a literal one, at the place it was written, with a
note naming the call it came from.

Names: convolutions (a transition is one) are C1, C2, ...; pooling layers M1, M2, ...;
dense layers F1, F2, ...; batch norms BN1..; local response norms N1..; dropouts D1..;
flattens FL1..; activations written as layers A1..; concatenations CAT1..; residual
blocks R1... Numbering runs through the whole network in order of appearance,
branches and residual bodies included; ``as NAME`` gives a layer its own name, and
counters advance for labelled layers too, so ``C3`` always means the third convolution.
"""

from __future__ import annotations

import dataclasses
import keyword
from pathlib import Path

from ..errors import Diagnostic, SourceText, Span, did_you_mean
from .expressions import _EvalError, evaluate
from .lark_parser import MAX_NESTING
from .raw import Opt, Param, Raw

# The most layers a spec may unroll to (repeats multiply): far above any real network, low
# enough that a mistyped count (`repeat 1000000:`) is an error rather than a hang.
MAX_LAYERS = 10_000
# The deepest chain of block calls (a block calling a block calling ...).
MAX_DEPTH = 50

class Expander:
    """Unrolls blocks, repeats and includes of one spec, collecting diagnostics."""

    def __init__(self, src: SourceText, parse_file):
        self.src = src
        self.parse_file = parse_file  # (path) -> list[Raw]; for include
        self.blocks: dict[str, Raw] = {}
        self.diagnostics: list[Diagnostic] = []
        self.included: set[Path] = set()
        self.unrolled = 0  # statements made so far (see MAX_LAYERS)
        self._seen: set[tuple] = set()  # (span, message) of each diagnostic: linear checks
        self.nesting = 0  # concats and residuals around the statement being expanded

    def error(self, span: Span | None, message: str, hint: str | None = None, trace=()) -> None:
        if (span, message) in self._seen:
            return  # a body repeated N times has its mistakes once
        self._seen.add((span, message))
        self.diagnostics.append(self.src.diag(span, message, hint, trace))

    # -- definitions and includes
    def collect(self, statements: list[Raw], stack: tuple[Path, ...]) -> list[Raw]:
        """Register block definitions and load includes; return the other statements."""
        rest = []
        for raw in statements:
            if raw.kind == "block_def":
                name = raw.fields["name"]
                if name in self.blocks:
                    first = self.blocks[name].spans["name"]
                    self.error(raw.spans["name"], f"block '{name}' is defined twice (first at {first})",
                               "give one of them another name")
                else:
                    self.blocks[name] = raw
                    self.check_params(raw)
            elif raw.kind == "include":
                self.include(raw, stack)
            else:
                rest.append(raw)
        return rest

    def check_params(self, block: Raw) -> None:
        """Parameters named twice, and defaults that are not numbers, are reported once, at
        the definition; calls of such a block are then skipped (``broken``)."""
        seen = set()
        for p in block.fields["params"]:
            if p.key in seen:
                self.error(p.span, f"block '{block.fields['name']}' has two parameters called "
                           f"'{p.key}'", "give each parameter its own name")
                block.fields["broken"] = True
            seen.add(p.key)
            if keyword.iskeyword(p.key):  # {from} could not be evaluated as an expression
                self.error(p.span, f"'{p.key}' is a Python keyword and cannot name a parameter",
                           "give the parameter another name")
                block.fields["broken"] = True
            if isinstance(p.value, Param):
                try:
                    p.value = evaluate(p.value.expr, {})
                except _EvalError as exc:
                    hint = ("a default is a number; it cannot use other parameters"
                            if exc.message.startswith("unknown parameter") else exc.hint)
                    self.error(p.value.span, exc.message, hint)
                    block.fields["broken"] = True

    def include(self, raw: Raw, stack: tuple[Path, ...]) -> None:
        here = stack[-1].parent if stack else Path(".")
        try:
            path = (here / raw.fields["path"]).resolve()
            folder = path.is_dir()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
            self.error(raw.spans["path"], f"cannot include {raw.fields['path']!r}: {exc}")
            return
        if folder:
            self.error(raw.spans["path"], f"the included path is a folder: {path}",
                       "include a .cnn file, e.g. include \"lib/blocks.cnn\"")
            return
        if path in stack:
            chain = " -> ".join(p.name for p in (*stack[stack.index(path):], path))
            self.error(raw.spans["path"], f"include cycle: {chain}", "remove one of the includes")
            return
        if path in self.included:
            return
        try:
            statements = self.parse_file(path)
        except FileNotFoundError:
            self.error(raw.spans["path"], f"included file not found: {path}",
                       "paths are relative to the file that includes them")
            return
        except OSError as exc:
            self.error(raw.spans["path"], f"cannot read the included file {path}: "
                       f"{exc.strerror or exc}")
            return
        self.included.add(path)
        for other in self.collect(statements, (*stack, path)):
            self.error(other.span, f"an included file may only define blocks, found "
                       f"'{other.kind}'", "move it into the spec that includes this file")

    # -- expansion
    def expand(self, statements: list[Raw], env: dict, trace: tuple[Span, ...] = (),
               calls: tuple[str, ...] = ()) -> list[Raw]:
        out: list[Raw] = []
        for raw in statements:
            if raw.kind == "call":
                out += self.call(raw, env, trace, calls) or [self.failed(raw, trace)]
            elif raw.kind == "repeat":
                out += self.repeat(raw, env, trace, calls) or [self.failed(raw, trace)]
            elif raw.kind in ("concat", "residual") and self.nesting >= MAX_NESTING:
                # within one file the parser stops this; through block calls, it is stopped here
                self.error(raw.spans.get("name", raw.span), f"concat and residual are nested more "
                           f"than {MAX_NESTING} deep", "flatten the structure", trace[:3])
                out.append(self.failed(raw, trace))
            elif raw.kind == "concat":
                self.nesting += 1
                branches = [self.expand(b, env, trace, calls) for b in raw.fields["branches"]]
                self.nesting -= 1
                out.append(self.concrete(raw, env, trace, branches=branches))
            elif raw.kind == "residual":
                self.nesting += 1
                shortcut = raw.fields["shortcut"]
                body = self.expand(raw.fields["body"], env, trace, calls)
                shortcut = None if shortcut is None else self.expand(shortcut, env, trace, calls)
                self.nesting -= 1
                out.append(self.concrete(raw, env, trace, body=body, shortcut=shortcut))
            elif raw.kind in ("train", "transfer"):
                out.append(self.train(raw, env, trace))
            elif raw.kind in ("network", "input"):
                out.append(self.concrete(raw, env, trace))  # {2*14} is allowed; {x} is not
            else:
                out.append(self.concrete(raw, env, trace))
        return out

    @staticmethod
    def failed(raw: Raw, trace) -> Raw:
        """Stands for a call or repeat that could not be expanded (already reported), so that
        its absence is not taken for a second mistake (an empty residual body, no layers)."""
        return Raw("failed", raw.span, trace=trace)

    def repeat(self, raw: Raw, env: dict, trace, calls) -> list[Raw]:
        count = self.value(raw.fields["count"], env, raw, trace)
        if count is None:
            return []
        if not isinstance(count, int) or count < 1:
            hint = ("to leave the statements out, delete the repeat" if count == 0 else
                    "write repeat N: with N = 1, 2, 3, ...")
            self.error(raw.spans["count"], f"repeat needs a whole number of at least 1, "
                       f"got {count}", hint, trace)
            return []
        once = self.expand(raw.fields["body"], env, trace, calls)
        size = _size(once)
        if self.unrolled + size * (count - 1) > MAX_LAYERS:
            self.unrolled -= size
            self.error(raw.spans["count"], f"repeat {count} unrolls to {size * count} layers; a "
                       f"spec may have at most {MAX_LAYERS}" if size * count > MAX_LAYERS else
                       f"repeat {count} takes the spec past {MAX_LAYERS} layers, the most a spec "
                       "may have", "is the count right?", trace)
            return []
        out = once
        for _ in range(count - 1):
            out += self.expand(raw.fields["body"], env, trace, calls)
        return out

    def train(self, raw: Raw, env: dict, trace) -> Raw:
        """The train section with its numbers worked out (``lr {0.1/4}``; ``{x}`` is an error)."""

        def concrete(v):  # the optimizer, schedule (with its steps), augment list, callbacks
            if isinstance(v, Raw):
                r = self.concrete(v, env, trace)
                r.fields = {k: concrete(x) if isinstance(x, (Raw, list)) else x
                            for k, x in r.fields.items()}
                return r
            if isinstance(v, list):
                return [concrete(x) for x in v]
            return self.value(v, env, raw, trace)

        fields = {key: concrete(v) for key, v in raw.fields.items()}  # in the order of the file
        return dataclasses.replace(raw, fields=fields, spans=dict(raw.spans), trace=trace)

    def call(self, raw: Raw, env: dict, trace, calls) -> list[Raw]:
        name = raw.fields["name"]
        block = self.blocks.get(name)
        if block is None:
            from .lark_parser import statement_keywords

            hint = did_you_mean(name, [*self.blocks, *statement_keywords()])
            self.error(raw.spans["name"], f"unknown block '{name}'",
                       hint or "define it with 'block NAME(params):' or include the file that does",
                       trace)
            return []
        if name in calls:
            chain = " -> ".join((*calls[calls.index(name):], name))
            self.error(raw.spans["name"], f"block '{name}' calls itself"
                       + (f" through another block: {chain}" if calls[-1] != name else ""),
                       "a block cannot use itself, directly or through other blocks; "
                       "use repeat N: to stack copies", trace)
            return []
        if block.fields.get("broken"):
            return []  # its definition is wrong: already reported
        if len(calls) >= MAX_DEPTH:
            self.error(raw.spans["name"], f"blocks call each other more than {MAX_DEPTH} deep",
                       "call fewer blocks from blocks", trace[:3])
            return []
        bound = self.bind(block, raw, env, trace)
        if bound is None:
            return []
        return self.expand(block.fields["body"], bound, (raw.span, *trace), (*calls, name))

    def bind(self, block: Raw, raw: Raw, env: dict, trace) -> dict | None:
        params: list[Opt] = block.fields["params"]
        names = [p.key for p in params]
        listed = (f"its parameters: {', '.join(names)}" if names else
                  f"it has no parameters: call it as {block.fields['name']}()")
        bound: dict = {}
        ok = True
        for i, arg in enumerate(raw.fields["args"]):
            if arg.key is None:
                if i >= len(params):
                    self.error(arg.span, f"{block.fields['name']}() takes {len(params)} "
                               f"argument(s), got {len(raw.fields['args'])}", listed, trace)
                    return None
                key = names[i]
            elif arg.key not in names:
                self.error(arg.span, f"{block.fields['name']}() has no parameter '{arg.key}'",
                           did_you_mean(arg.key, names) or listed, trace)
                ok = False
                continue
            else:
                key = arg.key
            if key in bound:
                self.error(arg.span, f"parameter '{key}' is given twice", None, trace)
                ok = False
            bound[key] = self.value(arg.value, env, raw, trace)
            ok = ok and bound[key] is not None
        for p in params:
            if p.key not in bound:
                if p.value is None:
                    self.error(raw.spans["name"], f"{block.fields['name']}() needs a value for "
                               f"'{p.key}'", f"call it as {block.fields['name']}({', '.join(names)})",
                               trace)
                    ok = False
                else:
                    bound[p.key] = p.value  # a number: worked out by check_params
        return bound if ok else None

    def value(self, v, env: dict, raw: Raw, trace):
        if not isinstance(v, Param):
            return v
        try:
            return evaluate(v.expr, env)
        except _EvalError as exc:
            self.error(v.span, exc.message, exc.hint, trace)
            return None

    def concrete(self, raw: Raw, env: dict, trace, **extra) -> Raw:
        """A copy of ``raw`` with every parameter replaced by its value."""
        self.unrolled += 1
        fields, spans = {}, dict(raw.spans)
        for key, v in raw.fields.items():
            if isinstance(v, tuple):
                # the span of each {...} in a size, so that a bad value is shown in its place
                spans.update({f"{key}.{i}": x.span for i, x in enumerate(v) if isinstance(x, Param)})
                v = tuple(self.value(x, env, raw, trace) for x in v)
            else:
                v = self.value(v, env, raw, trace)
            fields[key] = v
        fields.update(extra)
        return dataclasses.replace(raw, fields=fields, spans=spans, trace=trace)


def expand(statements: list[Raw], src: SourceText, parse_file) -> tuple[list[Raw], list[Diagnostic]]:
    """Top-level statements -> concrete statements (no blocks, calls, repeats or parameters)."""
    ex = Expander(src, parse_file)
    main = Path(src.file).resolve() if src.file != "<string>" else Path.cwd() / "<string>"
    rest = ex.collect(statements, (main,))
    out = ex.expand(rest, {})
    layers = [raw for raw in out if raw.kind not in NOT_LAYERS]
    total = _size(layers)
    if total > MAX_LAYERS and not ex.diagnostics:  # plain lines and block calls count too
        first = _nth(layers, MAX_LAYERS + 1)
        ex.error(first.span, f"this spec has {total:,} layers after blocks and repeats are "
                 f"unrolled; a spec may have at most {MAX_LAYERS:,}",
                 "is it the right file? the largest published CNNs have a few hundred layers",
                 first.trace)
        return [], ex.diagnostics
    return out, ex.diagnostics


NOT_LAYERS = ("network", "input", "train", "transfer")
"""Top-level statements that are not layers."""


def _nth(raws: list[Raw], n: int) -> Raw:
    """The ``n``-th statement (1-based) in the order :func:`_size` counts them."""
    for raw in raws:
        n -= 1
        if n == 0:
            return raw
        for key in ("branches", "body", "shortcut"):
            groups = raw.fields.get(key) or []
            for group in (groups if key == "branches" else [groups]):
                size = _size(group)
                if n <= size:
                    return _nth(group, n)
                n -= size
    return raws[-1]


def _size(raws: list[Raw]) -> int:
    """Statements in an expanded list, those inside branches and residuals included."""
    n = 0
    for raw in raws:
        n += 1
        for key in ("branches", "body", "shortcut"):
            group = raw.fields.get(key) or []
            n += sum(_size(g) for g in group) if key == "branches" else _size(group)
    return n
