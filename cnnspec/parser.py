"""Text -> Lark tree. The LALR parser is built once from ``grammar/cnnspec.lark`` and cached.

Lark's errors are turned into :class:`~cnnspec.errors.SpecError` with ``file:line:col``,
the line, a caret, and a did-you-mean hint computed from the keywords the parser
expected at that spot.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)
from lark.indenter import DedentError, Indenter

from .errors import SourceText, Span, SpecError, did_you_mean


class _CnnIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types: list[str] = []
    CLOSE_PAREN_types: list[str] = []
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


@functools.cache
def grammar_text() -> str:
    """The grammar shipped in the package (``grammar/cnnspec.lark`` in the source tree)."""
    return resources.files("cnnspec.grammar").joinpath("cnnspec.lark").read_text("utf-8")


@functools.cache
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        postlex=_CnnIndenter(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


# Terminal names people read in "expected ..." lists.
_PRETTY = {
    "_NL": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "end of block",
    "DIMS": "a size like 3x3x64",
    "INT": "a whole number",
    "FLOAT": "a number",
    "NAME": "a name",
    "STRING": 'a "quoted path"',
    "$END": "end of file",
}


def _keywords(terminal_names: set[str]) -> list[str]:
    """Literal words behind terminal names (``CONV`` -> ``conv``, ``ACT`` -> relu, tanh...)."""
    words: list[str] = []
    parser = _parser()
    for name in terminal_names:
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str":
            words.append(pattern.value)
    return sorted(set(w for w in words if w.isidentifier()))


def _expected_text(terminal_names: set[str]) -> str:
    words = _keywords(terminal_names)
    others = sorted(
        {_PRETTY[n] for n in terminal_names if n in _PRETTY}
        - {"end of block", "an indented block"}
    )
    items = [f"'{w}'" for w in words] + others
    if len(items) > 12:
        items = items[:12] + ["..."]
    return ", ".join(items)


def _word_at(line: str, col: int) -> str:
    m = re.match(r"[^\s,:#]+", line[col - 1 :])
    return m.group(0) if m else line[col - 1 : col]


def parse(text: str, file: str = "<string>") -> Tree:
    """Parse spec text into a Lark tree with positions.

    Raises:
        SpecError: the text does not follow the grammar; the diagnostic names the
            offending word, what was expected there, and the closest keyword.
    """
    if not text.endswith("\n"):
        text += "\n"
    src = SourceText(text, file)
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        raise SpecError([_diagnose(exc, src)]) from None
    except DedentError as exc:
        raise SpecError([src.diag(None, f"inconsistent indentation: {exc}")]) from None


def _diagnose(exc: UnexpectedInput, src: SourceText):
    if isinstance(exc, UnexpectedEOF):
        last = len(src.lines)
        span = Span(src.file, last, len(src.line(last) or "") + 1)
        return src.diag(span, "unexpected end of file", f"expected {_expected_text(exc.expected)}")
    if isinstance(exc, UnexpectedToken):
        tok: Token = exc.token
        expected = set(exc.accepts or exc.expected)
        if tok.type == "_DEDENT" or tok.type == "$END":
            return _unexpected_end(exc, tok, expected, src)
        if tok.type == "_INDENT":
            line = tok.end_line or tok.line
            span = Span(src.file, line, 1, (tok.end_column or 1))
            return src.diag(span, "unexpected indentation", "only a line ending in ':' opens a block")
        if tok.type == "_NL":
            line_text = src.line(tok.line) or ""
            col = len(line_text.rstrip().split("#")[0].rstrip()) + 1
            span = Span(src.file, tok.line, col)
            return src.diag(
                span, "line ends too early", f"expected {_expected_text(expected)}"
            )
        word = str(tok.value)
        line, col = tok.line, tok.column
    else:
        assert isinstance(exc, UnexpectedCharacters)
        expected = set(exc.allowed or ())
        line, col = exc.line, exc.column
        word = _word_at(src.line(line) or "", col)
    span = Span(src.file, line, col, col + len(word))
    hint = did_you_mean(word, _keywords(expected))
    what = _expected_text(expected)
    if hint is None and what:
        hint = f"expected {what}"
    elif what:
        hint = f"{hint} (expected {what})"
    starts_line = (src.line(line) or "")[: col - 1].strip() == ""
    noun = "unknown word" if starts_line else "unexpected"
    return src.diag(span, f"{noun} '{word}'", hint)


def _unexpected_end(exc, tok, expected, src):
    # The block ended (or the file did) before a statement was complete.
    line = max(1, (tok.line or len(src.lines)) - 1)
    while line > 1 and not (src.line(line) or "").split("#")[0].strip():
        line -= 1
    text = src.line(line) or ""
    span = Span(src.file, line, len(text.split("#")[0].rstrip()) + 1)
    return src.diag(span, "block is incomplete", f"expected {_expected_text(expected)}")
