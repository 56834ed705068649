"""Syntax highlighting of ``.cnn`` specs: a Pygments lexer and a TextMate grammar, both made
from the words of the language's own grammar (``grammar/cnnspec.lark``), so a keyword added
there is highlighted everywhere without a second list to keep in step.

- :class:`CnnSpecLexer`: registered with Pygments through the ``pygments.lexers`` entry
  point, so ``pygmentize spec.cnn``, MkDocs (``pymdownx.highlight``) and Sphinx highlight
  ```` ```cnn ```` blocks;
- :func:`textmate_grammar`: the grammar VS Code (and every TextMate-grammar editor) reads,
  written to ``editors/vscode/syntaxes/cnnspec.tmLanguage.json`` by ``python -m
  cnnspec.language.lexer --write``.

The classes: structure (``network``, ``block``, ``residual``, ``train``, ...), layer kinds
(``conv``, ``dense``, ...), activations (the grammar's ``act`` rule), every other word of the
grammar (settings and options: ``stride``, ``lr``, ``freeze``, ...), sizes (``3x3x64``,
``3x3x{filters}``), numbers, ``{parameter}`` expressions, strings, comments and names.
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

from pygments.lexer import RegexLexer, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from ..layers import BY_WORD

STRUCTURE = ("network", "input", "include", "block", "repeat", "concat", "branch", "identity",
             "residual", "shortcut", "as", "train", "transfer")
LAYERS = tuple(word for word in BY_WORD if word != "activation")
"""The words that start a layer: every kind's (cnnspec/layers/<kind>.py)."""

DIMS = r"(?:[0-9]+|\{[^{}\n]*\})(?:x(?:[0-9]+|\{[^{}\n]*\}))+"
PARAM = r"\{[^{}\n]*\}"
FLOAT = r"(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
INT = r"[0-9]+"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, tuple[str, ...]]:
    """The grammar's words by class: ``structure``, ``layers``, ``activations``, ``settings``.

    Raises:
        AssertionError: a word listed here as structure or layer is not in the grammar (the
            lists above went stale).
    """
    from ..layers.activations import ACTIVATIONS
    from .lark_parser import grammar_text

    literals = set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', grammar_text()))
    activations = tuple(ACTIVATIONS)
    stale = (set(STRUCTURE) | set(LAYERS)) - literals
    assert not stale, f"not words of the grammar any more: {sorted(stale)}"
    settings = literals - set(STRUCTURE) - set(LAYERS) - set(activations)
    return {"structure": STRUCTURE, "layers": LAYERS, "activations": activations,
            "settings": tuple(sorted(settings))}


class CnnSpecLexer(RegexLexer):
    """Pygments lexer for cnnspec ``.cnn`` network specs."""

    name = "cnnspec"
    aliases = ("cnn", "cnnspec")
    filenames = ("*.cnn",)
    mimetypes = ("text/x-cnnspec",)
    url = "https://github.com/cnnspec/cnnspec"

    _v = vocabulary()
    tokens = {  # noqa: RUF012 - Pygments reads this class attribute as is
        "root": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (DIMS, Number),
            (PARAM, String.Interpol),
            (FLOAT, Number.Float),
            (INT, Number.Integer),
            (words(_v["structure"], suffix=r"\b"), Keyword),
            (words(_v["layers"], suffix=r"\b"), Keyword.Type),
            (words(_v["activations"], suffix=r"\b"), Name.Builtin),
            (words(_v["settings"], suffix=r"\b"), Keyword.Pseudo),
            (NAME, Name),
            (r"[:,()]", Punctuation),
            (r"=", Operator),
        ],
    }


SCOPES = [  # TextMate scope names: the conventional ones every theme colours
    ("comment.line.number-sign.cnn", r"#.*$"),
    ("string.quoted.double.cnn", r'"[^"\n]*"'),
    ("constant.numeric.size.cnn", DIMS),
    ("variable.parameter.cnn", PARAM),
    ("constant.numeric.float.cnn", FLOAT),
    ("constant.numeric.integer.cnn", INT),
]


def _alternation(ws: tuple[str, ...]) -> str:
    return r"\b(?:" + "|".join(sorted(ws, key=lambda w: (-len(w), w))) + r")\b"


def textmate_grammar() -> dict:
    """The TextMate grammar of ``.cnn`` (scope ``source.cnn``): flat ``match`` patterns, tried
    at each position (the earliest match wins, then the first listed); anything no pattern
    matches is ``invalid.illegal.cnn``."""
    v = vocabulary()
    patterns = [{"name": name, "match": rx} for name, rx in SCOPES]
    patterns += [
        {"name": "keyword.control.structure.cnn", "match": _alternation(v["structure"])},
        {"name": "storage.type.layer.cnn", "match": _alternation(v["layers"])},
        {"name": "support.function.activation.cnn", "match": _alternation(v["activations"])},
        {"name": "keyword.other.setting.cnn", "match": _alternation(v["settings"])},
        {"name": "entity.name.cnn", "match": r"\b" + NAME + r"\b"},
        {"name": "punctuation.separator.cnn", "match": r"[:,()]"},
        {"name": "keyword.operator.assignment.cnn", "match": r"="},
        {"name": "invalid.illegal.cnn", "match": r"\S"},
    ]
    return {"$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/"
                       "tmlanguage.json",
            "name": "cnnspec", "scopeName": "source.cnn", "fileTypes": ["cnn"],
            "comment": "Generated by `python -m cnnspec.language.lexer --write` from the words of "
                       "grammar/cnnspec.lark; do not edit.",
            "patterns": patterns}


TEXTMATE_FILE = Path("editors/vscode/syntaxes/cnnspec.tmLanguage.json")


def main(argv: list[str]) -> int:
    """``python -m cnnspec.language.lexer --write [ROOT]``: (re)write the TextMate grammar under ROOT
    (default: the working folder); without ``--write``, print it."""
    text = json.dumps(textmate_grammar(), indent=2) + "\n"
    if argv and argv[0] == "--write":
        path = Path(argv[1] if len(argv) > 1 else ".") / TEXTMATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
