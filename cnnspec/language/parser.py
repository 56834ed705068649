"""Text -> Lark tree. The LALR parser is built once from ``grammar/cnnspec.lark`` and cached.

Lark's errors are turned into :class:`~cnnspec.errors.SpecError` with ``file:line:col``,
the line, a caret, and a did-you-mean hint computed from the keywords the parser
expected at that spot.
"""

from __future__ import annotations

from lark import Tree
from lark.exceptions import (
    UnexpectedInput,
)
from lark.indenter import DedentError

from ..errors import SourceText, Span, SpecError
from .lark_parser import (  # noqa: F401 - grammar_text, section_words ... re-exported
    MAX_NESTING,
    _CnnIndenter,
    _parser,
    _TooDeep,
    grammar_text,
    section_words,
    statement_keywords,
)
from .syntax_errors import _diagnose

# Syntax errors reported per file at most; after each, the offending line (and the block it
# opens) is blanked and the text parsed again, so one run names independent mistakes.
MAX_SYNTAX_ERRORS = 20
# Characters parsed in all for that search: 20 errors in any spec up to 50 KB (a 5,000-line
# spec), fewer in larger ones; the search stays linear in the spec's size (about 6 s at
# most on a 2-core machine, where Lark parses ~180 KB/s).
_RECOVERY_BUDGET = 1_000_000


def parse(text: str, file: str = "<string>") -> Tree:
    """Parse spec text into a Lark tree with positions.

    After a syntax error the line is blanked (with the block it opens) and parsing starts
    again, so that up to ``MAX_SYNTAX_ERRORS`` independent mistakes are reported at once,
    each at its own ``file:line:col``; only the first error of a line is reported.

    Raises:
        SpecError: the text does not follow the grammar; each diagnostic names the
            offending word, what was expected there, and the closest keyword.
    """
    if not text.endswith("\n"):
        text += "\n"
    src = SourceText(text, file)
    lines = text.split("\n")
    found: list = []
    blanked: set[int] = set()
    budget = _RECOVERY_BUDGET
    while True:
        try:
            tree = _parse_once("\n".join(lines), src)
        except _SyntaxMistake as exc:
            diag, fatal = exc.diagnostic, exc.fatal
        else:
            if found:  # the rest parsed once the bad lines were blanked
                raise SpecError(found)
            return tree
        line = diag.span.line if diag.span is not None else 0
        budget -= len(text)
        cascade = False
        if blanked and 1 <= line <= len(lines):
            # An error caused by the blanking: it falls on a blanked line, or a block
            # whose lines were blanked is now empty. Blank its opening line instead.
            while line > 1 and not _code(lines[line - 1]):
                line -= 1
            after = next((j for j in range(line + 1, len(lines) + 1)
                          if _code(lines[j - 1])), len(lines) + 1)
            cascade = line != diag.span.line or any(line < j < after for j in blanked)
        if not cascade:
            if any(d.span == diag.span for d in found):
                raise SpecError(found)  # blanking did not move the parser on
            found.append(diag)
        if len(found) >= MAX_SYNTAX_ERRORS or (budget < len(text) and not fatal):
            found[-1].notes.append(f"stopped looking after {len(found)} syntax error(s); fix "
                                   "these and check again")
            raise SpecError(found)
        if fatal or not (1 <= line <= len(lines) and lines[line - 1].strip()):
            raise SpecError(found)
        blanked |= _blank(lines, line - 1)


def _code(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _blank(lines: list[str], i: int) -> set[int]:
    """Blank line ``i`` and the lines under it indented deeper (the block it opens or
    continues), keeping line numbers; returns the blanked lines, 1-based."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    lines[i] = ""
    done = {i + 1}
    for j in range(i + 1, len(lines)):
        if not _code(lines[j]):
            continue
        if len(lines[j]) - len(lines[j].lstrip()) <= indent:
            break
        lines[j] = ""
        done.add(j + 1)
    return done


class _SyntaxMistake(Exception):
    def __init__(self, diagnostic, fatal: bool = False):
        self.diagnostic, self.fatal = diagnostic, fatal


def _parse_once(text: str, src: SourceText) -> Tree:
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        raise _SyntaxMistake(_diagnose(exc, src)) from None
    except _TooDeep as exc:
        line = exc.token.end_line or exc.token.line
        indent = str(exc.token).rsplit("\n", 1)[1]
        raise _SyntaxMistake(src.diag(
            Span(src.file, line, 1, len(indent) + 1),
            f"blocks are nested more than {MAX_NESTING} deep", "flatten the structure, or move "
            "part of it into a block"), fatal=True) from None
    except DedentError as exc:
        tok = exc.token
        line = tok.end_line or tok.line
        indent = str(tok).rsplit("\n", 1)[1]
        span = Span(src.file, line, 1, len(indent) + 1)
        width = indent.count(" ") + indent.count("\t") * _CnnIndenter.tab_len
        levels = " or ".join(str(n) for n in exc.levels)
        raise _SyntaxMistake(src.diag(
            span, "inconsistent indentation",
            f"this line is indented by {width}, which matches no enclosing block "
            f"(indented by {levels}); line it up with the block it belongs to",
        )) from None
