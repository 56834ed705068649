"""Spans, diagnostics and the one renderer that draws ``file:line:col``, the line and a caret.

User mistakes (a malformed spec, a bad data folder, a wrong weights file) raise
:class:`CnnSpecError` or a subclass; anything else is a bug in cnnspec. The CLI turns
``CnnSpecError`` into a message and exit status 1, never a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

MAX_DIAGNOSTICS = 50  # errors printed at most; the list on the exception keeps them all
MAX_LINE = 120  # characters of a source line quoted under an error


@dataclass(frozen=True)
class Span:
    """A place in a spec file: 1-based line and column, end column exclusive."""

    file: str
    line: int
    col: int
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    """One error in a spec: where it is, what is wrong, and what would be right."""

    span: Span | None
    message: str
    hint: str | None = None
    source_line: str | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    """Where the statement was reached from, e.g. "in block stage(64, 2) at vgg.cnn:12:1"."""

    def render(self, kind: str = "error") -> str:
        """``file:line:col: error: message`` (or ``warning:``), the line, a caret under the
        spot, the hint."""
        if self.span is None:
            head = f"{kind}: {self.message}"
        else:
            head = f"{self.span}: {kind}: {self.message}"
        out = [head]
        if self.span is not None and self.source_line is not None:
            line = self.source_line.rstrip("\n").expandtabs(1)
            width = 1
            if self.span.end_col is not None and self.span.end_col > self.span.col:
                width = self.span.end_col - self.span.col
            col = self.span.col - 1
            if len(line) > MAX_LINE:  # show a window of a very long line around the caret
                start = max(0, min(col - MAX_LINE // 2, len(line) - MAX_LINE))
                line = ("..." if start else "") + line[start:start + MAX_LINE] + (
                    "..." if start + MAX_LINE < len(line) else "")
                col = col - start + (3 if start else 0)
                width = min(width, MAX_LINE)
            out.append(f"    {line}")
            out.append("    " + " " * col + "^" * width)
        if self.hint:
            out.append(f"hint: {self.hint}")
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


class CnnSpecError(Exception):
    """Base class of every error a user can cause; carries one or more diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic] | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(None, diagnostics)]
        self.diagnostics = diagnostics
        super().__init__(self.render())

    def render(self) -> str:
        shown = [d.render() for d in self.diagnostics[:MAX_DIAGNOSTICS]]
        rest = len(self.diagnostics) - MAX_DIAGNOSTICS
        if rest > 0:
            shown.append(f"... and {rest} more error(s); fix these first")
        return "\n\n".join(shown)


class SpecError(CnnSpecError):
    """A .cnn file that does not parse or does not validate."""


class DataError(CnnSpecError):
    """A data folder or image that cannot be used for training."""


class WeightsError(CnnSpecError):
    """A weights file that does not fit the network."""


class ExportError(CnnSpecError):
    """An ONNX export that fails or disagrees with PyTorch."""


class TrainingError(CnnSpecError):
    """Training cannot go on (a NaN or infinite loss); the last good checkpoint is kept."""


class SourceText:
    """The text of a spec file (and of the files it includes), to quote lines in diagnostics."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        # Split as the parser counts lines: at "\n" only (splitlines() would also split at
        # "\r", "\f", "\x1c", ... and number every later line differently).
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.others: dict[str, SourceText] = {}

    def add(self, text: str, file: str) -> SourceText:
        """Register an included file, so spans in it can be quoted too."""
        self.others[file] = SourceText(text, file)
        return self.others[file]

    def line(self, n: int, file: str | None = None) -> str | None:
        if file is not None and file != self.file:
            return self.others[file].line(n) if file in self.others else None
        return self.lines[n - 1] if 1 <= n <= len(self.lines) else None

    def diag(self, span: Span | None, message: str, hint: str | None = None,
             trace: tuple[Span, ...] = ()) -> Diagnostic:
        """A diagnostic quoting the line of ``span``; ``trace`` lists the block calls that
        led to it, innermost first."""
        src = self.line(span.line, span.file) if span is not None else None
        notes = [f"in a block called at {t}: {(self.line(t.line, t.file) or '').strip()}"
                 for t in trace]
        return Diagnostic(span, message, hint, src, notes)


def did_you_mean(word: str, candidates: list[str] | set[str]) -> str | None:
    """A hint naming the closest candidate to a misspelt word, or None.

    >>> did_you_mean("rellu", ["relu", "tanh"])
    "did you mean 'relu'?"
    """
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
