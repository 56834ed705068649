"""What a syntax error says: :func:`diagnose` turns Lark's exception into a diagnostic at
``file:line:col`` with a did-you-mean or the words the parser expected there, and names the
section a misplaced setting belongs to (used by :func:`cnnspec.language.parser.parse`)."""

from __future__ import annotations

import re

from lark import Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from ..errors import SourceText, Span, did_you_mean
from .lark_parser import (
    _expected_text,
    _keywords,
    _parser,
    _soft_terminals,
    section_words,
    statement_keywords,
)


def _word_at(line: str, col: int) -> str:
    m = re.match(r"[^\s,:#()=]+", line[col - 1 :])
    return m.group(0) if m else line[col - 1 : col]


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
    hint = _lowercase(word, statement_keywords()) or did_you_mean(word, [*statement_keywords(),
                                                                          *blocks])
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
    hint = _lowercase(word, _keywords(expected)) or did_you_mean(word, _keywords(expected))
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
    from ..layers.activations import ACTIVATIONS

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


def _lowercase(word: str, keywords) -> str | None:
    """The hint for a keyword written with capitals (``Conv``, ``MaxPool``): the language's
    words are lowercase."""
    if word != word.lower() and word.lower() in set(keywords):
        return f"the language's words are lowercase: write '{word.lower()}'"
    return None
