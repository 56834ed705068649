"""The Lark parser of the language, built once and cached: the grammar's text (the file
``grammar/cnnspec.lark`` with each layer kind's rules), the indentation post-lexer, and
the vocabulary read from the grammar (keywords, the words that start a statement or a
section's setting) that syntax errors and the editors use."""

from __future__ import annotations

import functools
from importlib import resources

from lark import Lark, Token
from lark.indenter import DedentError, Indenter

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
    the ``train:`` and ``transfer:`` sections' rules from their settings
    (:func:`cnnspec.settings.grammar_text`), each layer kind's rules (``Kind.grammar`` of ``cnnspec/layers/<kind>.py``), the ``?layer``
    rule that lists them, and the ``act`` rule made from
    :data:`cnnspec.layers.activations.ACTIVATIONS`."""
    from .. import settings
    from ..layers import KINDS
    from ..layers.activations import ACTIVATIONS

    text = resources.files("cnnspec.grammar").joinpath("cnnspec.lark").read_text("utf-8")
    rules = [r for k in KINDS for r in k.rules]
    return "\n".join([
        text.rstrip(), "",
        "// ---------------------------------------------------------------- settings",
        "// (appended by cnnspec.language.lark_parser.grammar_text from cnnspec/settings/)",
        settings.grammar_text(), "",
        "// ---------------------------------------------------------------- layer kinds",
        "// (appended by cnnspec.language.lark_parser.grammar_text from cnnspec/layers/<kind>.py)",
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
