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

# The most indented blocks inside one another (real specs use four or five).
MAX_NESTING = 50


class _TooDeep(Exception):
    """Blocks nested more than MAX_NESTING deep (which later stages could not recurse into)."""

    def __init__(self, token: Token):
        self.token = token


class _CnnIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types: tuple[str, ...] = ()
    CLOSE_PAREN_types: tuple[str, ...] = ()
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4

    def handle_NL(self, token: Token):
        # Lark's DedentError names no line; keep the newline token and the open levels.
        levels = list(self.indent_level)
        try:
            yield from super().handle_NL(token)
        except DedentError as exc:
            exc.token, exc.levels = token, levels
            raise
        if len(self.indent_level) > MAX_NESTING + 1:
            raise _TooDeep(token)


@functools.cache
def grammar_text() -> str:
    """The grammar shipped in the package (``grammar/cnnspec.lark`` in the source tree), with
    each layer kind's rules (``Kind.grammar`` of ``cnnspec/layers/<kind>.py``), the ``?layer``
    rule that lists them, and the ``act`` rule made from
    :data:`cnnspec.layers.activations.ACTIVATIONS`."""
    from .layers import KINDS
    from .layers.activations import ACTIVATIONS

    text = resources.files("cnnspec.grammar").joinpath("cnnspec.lark").read_text("utf-8")
    rules = [r for k in KINDS for r in k.rules]
    return "\n".join([
        text.rstrip(), "",
        "// ---------------------------------------------------------------- layer kinds",
        "// (appended by cnnspec.parser.grammar_text from cnnspec/layers/<kind>.py)",
        "?layer: " + "\n      | ".join(rules),
        *(k.grammar.strip() for k in KINDS),
        "!act: " + " | ".join(f'"{name}"' for name in ACTIVATIONS), ""])


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
    return sorted({w for w in words if w.isidentifier()})


@functools.cache
def _soft_terminals() -> frozenset[str]:
    """Terminals of the grammar's ``soft_word`` rule: words of the train and transfer sections
    that elsewhere are plain names. Where a name is expected they are names, not keywords to
    list or suggest."""
    return frozenset(sym.name for rule in _parser().rules if rule.origin.name == "soft_word"
                     for sym in rule.expansion)


def _punctuation(terminal_names: set[str]) -> list[str]:
    """Literal non-words behind terminal names (``COLON`` -> ``:``, ``COMMA`` -> ``,``)."""
    marks: list[str] = []
    for name in terminal_names:
        try:
            pattern = _parser().get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str" and not pattern.value.isidentifier():
            marks.append(pattern.value)
    return sorted(set(marks))


def _expected_text(terminal_names: set[str]) -> str:
    words = _keywords(terminal_names)
    pretty = {_PRETTY[n] for n in terminal_names if n in _PRETTY}
    others = sorted(pretty - {"end of block", "an indented block"})
    items = [f"'{w}'" for w in words] + [f"'{m}'" for m in _punctuation(terminal_names)] + others
    if not items:  # only a block can come here (after a line ending in ':')
        items = sorted(pretty)
    if len(items) > 12:
        items = items[:12] + ["..."]
    return ", ".join(items)


def _word_at(line: str, col: int) -> str:
    m = re.match(r"[^\s,:#()=]+", line[col - 1 :])
    return m.group(0) if m else line[col - 1 : col]


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


@functools.cache
def statement_keywords() -> list[str]:
    """The words that can start a statement (layers, 'repeat', 'concat', 'block', ...)."""
    ip = _parser().parse_interactive("input 1x1x1\n")
    ip.exhaust_lexer()
    return _keywords(set(ip.accepts()))


@functools.lru_cache(maxsize=1)
def section_words() -> dict[str, frozenset[str]]:
    """The words that start a statement of the ``train:`` and ``transfer:`` sections, read
    from the grammar (``epochs``, ``optimizer``, ...; ``from``, ``freeze``, ...)."""
    parser = _parser()
    patterns = {t.name: t.pattern.value for t in parser.terminals
                if t.pattern.type == "str"}
    first: dict[str, set[str]] = {}
    for rule in parser.rules:
        if rule.expansion and rule.expansion[0].is_term and rule.expansion[0].name in patterns:
            first.setdefault(rule.origin.name, set()).add(patterns[rule.expansion[0].name])
    out = {}
    for section in ("train", "transfer"):
        stmts = [r.expansion[0].name for r in parser.rules
                 if r.origin.name == f"{section}_stmt" and r.expansion]
        out[section] = frozenset(w for name in stmts for w in first.get(name, ()))
    return out


def _unknown_statement(line: int, src: SourceText, name: Token | None = None):
    """A statement that starts with a word that is no keyword and is not a block call.
    ``name`` is that word's token when the parser has it (after ``repeat 2:`` it is not the
    first word of the line)."""
    if isinstance(name, Tree):  # a section word used as a name (soft_word): its token
        name = next(iter(name.scan_values(lambda v: isinstance(v, Token))), None)
    if isinstance(name, Token) and str(name).isidentifier():
        line, col, word = name.line, name.column, str(name)
    else:
        m = re.match(r"(\s*)([^\s(#:,]*)", src.line(line) or "")
        col, word = len(m.group(1)) + 1, m.group(2) or "?"
    blocks = re.findall(r"^\s*block\s+([A-Za-z_]\w*)", src.text, flags=re.MULTILINE)
    if word in blocks:
        return src.diag(Span(src.file, line, col, col + len(word)),
                        f"'{word}' is a block: a call needs brackets",
                        f"write {word}(...) with its arguments")
    section = next((name for name, words in section_words().items() if word in words), None)
    if section is not None:  # `epochs 30` written among the layers
        return src.diag(Span(src.file, line, col, col + len(word)),
                        f"'{word}' is a setting of the {section}: section, not a layer",
                        f"put it under a '{section}:' line, indented (see docs/language.md)")
    hint = did_you_mean(word, [*statement_keywords(), *blocks])
    if hint is None:
        hint = "a statement starts with a layer such as 'conv', 'maxpool', 'dense', or a block call NAME(...)"
    return src.diag(Span(src.file, line, col, col + len(word)), f"unknown word '{word}'", hint)


# Keywords that open a statement only in one place, and where that is.
_MISPLACED = {
    "branch": "'branch:' goes directly inside 'concat:'",
    "identity": "'identity' is a branch: it goes directly inside 'concat:'",
    "shortcut": ("'shortcut:' goes inside 'residual:', after the body (at least one layer), "
                 "at the same indentation"),
    "block": "blocks are defined at the top level of a file, not inside another statement",
    "include": "include goes at the top level of a file",
    "input": "'input' goes at the top level of the spec, once",
    "network": "'network' goes at the top level of the spec, once",
    "train": "'train:' goes at the top level of the spec, once",
    "transfer": "'transfer:' goes at the top level of the spec, once",
}


def _diagnose(exc: UnexpectedInput, src: SourceText):
    if isinstance(exc, UnexpectedEOF):
        last = len(src.lines)
        span = Span(src.file, last, len(src.line(last) or "") + 1)
        return src.diag(span, "unexpected end of file", f"expected {_expected_text(exc.expected)}")
    if isinstance(exc, UnexpectedToken):
        tok: Token = exc.token
        expected = set(exc.accepts or exc.expected)
        if "NAME" in expected:
            expected -= _soft_terminals()
        stack = exc.interactive_parser.parser_state.value_stack if exc.interactive_parser else []
        after_block = len(stack) > 1 and getattr(stack[-2], "type", None) == "BLOCK"
        if expected == {"LPAR"} and not after_block:
            # NAME at the start of a statement: a block call, or a typo
            return _unknown_statement(tok.line, src, stack[-1] if stack else None)
        if tok.type == "_DEDENT" or tok.type == "$END":
            return _unexpected_end(exc, tok.line or len(src.lines), expected, src)
        if expected == {"_INDENT"}:  # a line ending in ':' with no indented block under it
            return _unexpected_end(exc, tok.line - 1, expected, src)
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
        if tok.type == "NAME":  # a word cut short by a character no token takes (dénse)
            word = _word_at(src.line(line) or "", col)
    else:
        assert isinstance(exc, UnexpectedCharacters)
        # What the parser could take here; the lexer's own list is every kind of token.
        parser_state = getattr(exc, "interactive_parser", None)
        expected = set(parser_state.accepts() if parser_state else exc.allowed or ())
        if "NAME" in expected:
            expected -= _soft_terminals()
        line, col = exc.line, exc.column
        word = _word_at(src.line(line) or "", col)
    span = Span(src.file, line, col, col + len(word))
    expected = _without_second_activation(expected, (src.line(line) or "")[: col - 1])
    keyword = word in _keywords({t.name for t in _parser().terminals})
    starts_line = (src.line(line) or "")[: col - 1].strip() == ""
    if keyword and starts_line and word in _MISPLACED:  # `branch:` outside a concat
        return src.diag(span, f"'{word}' cannot go here", _MISPLACED[word])
    here = set(_keywords(expected))
    # the section being written, if any ("train" opens train: at the top level too)
    inside = next((s for s, words in section_words().items() if (words - {"train"}) & here),
                  None)
    section = next((s for s, words in section_words().items()
                    if word in words and s != inside), None)
    if keyword and starts_line and section is not None and word not in here:
        # `bias train` among the layers or under train:, `epochs 3` under transfer:
        place = f"the {inside}: section" if inside else "a layer"
        return src.diag(span, f"'{word}' starts a setting of the {section}: section, not of "
                        f"{place}" if inside else f"'{word}' is a setting of the {section}: "
                        "section, not a layer",
                        f"put it under a '{section}:' line, indented (see docs/language.md)")
    hint = did_you_mean(word, _keywords(expected))
    what = _expected_text(expected)
    if hint is None and "NAME" in expected and keyword:
        hint = f"'{word}' is a keyword and cannot be used as a name"
    if hint is None and word[:1] == "-" and expected & {"INT", "FLOAT"}:
        hint = "numbers cannot be negative here"
    if hint is None and what:
        hint = f"expected {what}"
    elif what:
        hint = f"{hint} (expected {what})"
    is_word = word[:1].isalpha() or word[:1] == "_"
    noun = "unknown word" if starts_line and is_word else "unexpected"
    if not word.isprintable():  # a control character: show it as \x0c, not as itself
        word = word.encode("unicode_escape").decode("ascii")
    return src.diag(span, f"{noun} '{word}'", hint)


def _without_second_activation(expected: set[str], before: str) -> set[str]:
    """``expected`` less the activation words when the line already has one before the
    error (``conv 3x3x8 relu6 stide 2``: the hint should not offer a second activation)."""
    from .layers.activations import ACTIVATIONS

    if not set(re.findall(r"[A-Za-z_]\w*", before.split("#")[0])) & set(ACTIVATIONS):
        return expected
    return {name for name in expected if not set(_keywords({name})) & set(ACTIVATIONS)}


def _unexpected_end(exc, line, expected, src):
    # The block ended (or the file did) before a statement was complete: point at the end
    # of the last line with something on it, at or before ``line`` (the newline token's line).
    line = max(1, line)
    while line > 1 and not (src.line(line) or "").split("#")[0].strip():
        line -= 1
    text = src.line(line) or ""
    span = Span(src.file, line, len(text.split("#")[0].rstrip()) + 1)
    if expected == {"_INDENT"}:
        return src.diag(span, "nothing is indented under this line",
                        f"a line ending in ':' opens a block; expected {_block_start(exc)} "
                        "on the next lines, indented")
    return src.diag(span, "block is incomplete", f"expected {_expected_text(expected)}")


def _block_start(exc) -> str:
    """What may open the block the parser is waiting for, e.g. 'epochs', 'batch', ..."""
    parser_state = getattr(exc, "interactive_parser", None)
    if parser_state is None:
        return "an indented block"
    parser_state = parser_state.copy()
    try:
        parser_state.feed_token(Token("_INDENT", ""))
    except UnexpectedInput:
        return "an indented block"
    return _expected_text(parser_state.accepts()) or "an indented block"
