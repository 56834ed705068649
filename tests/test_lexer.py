"""cnnspec/language/lexer.py: highlighting of .cnn everywhere a spec is read: the Pygments lexer (pygmentize, MkDocs)
and the TextMate grammar (VS Code), both on every shipped spec and every spec in the docs,
with no error tokens; the TextMate grammar also through VS Code's own engine
(vscode-textmate + Oniguruma, installed by `npm ci --prefix editors/vscode`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Token

from cnnspec.language.lexer import TEXTMATE_FILE, CnnSpecLexer, textmate_grammar, vocabulary
from conftest import ROOT, SPECS

SHIPPED = sorted(SPECS.rglob("*.cnn"))
DOC_BLOCKS = [(p.name, block) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
              for block in re.findall(r"```cnn\n(.*?)```", p.read_text(), flags=re.DOTALL)]
SOURCES = [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in SHIPPED] + [
    (f"{name}-block{i}", text) for i, (name, text) in enumerate(DOC_BLOCKS)]


def test_there_is_something_to_highlight():
    assert len(SHIPPED) >= 15 and len(DOC_BLOCKS) >= 20


@pytest.mark.parametrize(("name", "text"), SOURCES, ids=[n for n, _ in SOURCES])
def test_pygments_lexes_every_spec_without_errors(name, text):
    tokens = list(CnnSpecLexer().get_tokens(text))
    assert "".join(t for _, t in tokens) == text + ("" if text.endswith("\n") else "\n")
    errors = [(kind, value) for kind, value in tokens if kind in Error]
    assert not errors, errors


def test_pygments_token_classes():
    text = 'network VGG\nconv 3x3x{width} stride 2 relu as C9  # note\nschedule step:\n    11: 1e-3\n'
    tokens = [(k, v) for k, v in CnnSpecLexer().get_tokens(text) if v.strip()]
    assert tokens == [
        (Token.Keyword, "network"), (Token.Name, "VGG"),
        (Token.Keyword.Type, "conv"), (Token.Literal.Number, "3x3x{width}"),
        (Token.Keyword.Pseudo, "stride"), (Token.Literal.Number.Integer, "2"),
        (Token.Name.Builtin, "relu"), (Token.Keyword, "as"), (Token.Name, "C9"),
        (Token.Comment.Single, "# note"),
        (Token.Keyword.Pseudo, "schedule"), (Token.Keyword.Pseudo, "step"),
        (Token.Punctuation, ":"),
        (Token.Literal.Number.Integer, "11"), (Token.Punctuation, ":"),
        (Token.Literal.Number.Float, "1e-3")]


def test_the_lexer_is_registered_for_cnn_files(tmp_path):
    assert type(get_lexer_for_filename("vgg.cnn")) is CnnSpecLexer  # the entry point
    assert type(get_lexer_by_name("cnn")) is CnnSpecLexer
    r = subprocess.run(["pygmentize", "-f", "html", SPECS / "lenet5.cnn"], capture_output=True,
                       text=True, check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert '<span class="kt">conv</span>' in r.stdout  # Keyword.Type, guessed from .cnn
    assert '<span class="err">' not in r.stdout


def test_every_grammar_word_has_a_class():
    v = vocabulary()
    assert {"conv", "dense", "maxpool"} <= set(v["layers"])
    assert "relu" in v["activations"] and "gelu" in v["activations"]
    assert {"stride", "lr", "freeze", "unfreeze", "precision"} <= set(v["settings"])
    classes = [set(ws) for ws in v.values()]
    assert sum(map(len, classes)) == len(set().union(*classes))  # each word in one class


def test_the_textmate_file_is_generated_from_the_grammar():
    on_disk = json.loads((ROOT / TEXTMATE_FILE).read_text())
    assert on_disk == textmate_grammar(), (
        "editors/vscode/syntaxes/cnnspec.tmLanguage.json is stale: run "
        "`python -m cnnspec.language.lexer --write`")


def _textmate_tokens(line: str, patterns) -> list[tuple[int, str, str]]:
    """TextMate's rule for a flat list of `match` patterns: at each position the pattern
    whose match starts earliest wins (ties: the first listed)."""
    out, pos = [], 0
    while pos < len(line):
        found = [(m.start(), i, m) for i, (_, rx) in enumerate(patterns)
                 if (m := rx.search(line, pos))]
        if not found:
            break
        start, i, m = min(found, key=lambda f: (f[0], f[1]))
        if line[pos:start].strip():
            out.append((pos, line[pos:start], "source.cnn"))  # no scope: a gap
        out.append((start, m.group(), patterns[i][0]))
        pos = max(m.end(), start + 1)
    return out


@pytest.mark.parametrize(("name", "text"), SOURCES, ids=[n for n, _ in SOURCES])
def test_textmate_scopes_every_word(name, text):
    patterns = [(p["name"], re.compile(p["match"])) for p in textmate_grammar()["patterns"]]
    bad = [(n + 1, tok) for n, line in enumerate(text.splitlines())
           for tok in _textmate_tokens(line, patterns)
           if tok[2] in ("source.cnn", "invalid.illegal.cnn") and tok[1].strip()]
    assert not bad, bad


VSCODE = ROOT / "editors" / "vscode"


@pytest.mark.skipif(not (VSCODE / "node_modules" / "vscode-textmate").exists()
                    or shutil.which("node") is None,
                    reason="VS Code's TextMate engine is not installed: npm ci --prefix "
                           "editors/vscode (CI installs it)")
def test_vscode_textmate_engine_tokenises_every_shipped_spec(tmp_path):
    files = [str(p) for p in SHIPPED]
    for i, (_, block) in enumerate(DOC_BLOCKS):
        f = tmp_path / f"block{i}.cnn"
        f.write_text(block)
        files.append(str(f))
    r = subprocess.run(["node", str(VSCODE / "test" / "tokenize.mjs"), *files],
                       capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert len(result) == len(files)
    assert {f: v["bad"] for f, v in result.items() if v["bad"]} == {}
    lenet = result[str(SPECS / "lenet5.cnn")]["counts"]
    assert lenet["storage.type.layer.cnn"] == 8  # conv, avgpool twice; flatten; dense x3
