"""The documentation site builds with `mkdocs build --strict` (no broken link, no unknown
reference, no docstring mkdocstrings cannot read), its CLI reference is generated from the
click commands themselves, its API reference from the docstrings, and its .cnn blocks are
highlighted by cnnspec's own lexer."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("mkdocs")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                       cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def text_of(page) -> str:
    """A page's text: tags removed, entities decoded, whitespace collapsed."""
    plain = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
    return " ".join(plain.replace("\u2019", "'").split())


def phrase(doc: str, n: int = 6) -> str:
    """The first ``n`` words of a docstring, as rendered (RST ``code`` marks dropped)."""
    return " ".join(doc.replace("``", "").split()[:n])


def test_every_page_of_the_nav_is_built(site):
    for page in ("index.html", "language/index.html", "cli/index.html", "api/index.html",
                 "errors/index.html", "insight/index.html", "changelog/index.html",
                 "tutorials/vgg/index.html", "tutorials/photos/index.html",
                 "tutorials/transition-transfer/index.html"):
        assert (site / page).exists(), page


def test_the_cli_reference_is_generated_from_the_commands(site):
    from cnnspec.cli import cli

    page = text_of(site / "cli" / "index.html")
    for name, command in cli.commands.items():
        assert f"cnnspec {name}" in page, name
        assert phrase(command.help) in page, name


def test_the_api_reference_comes_from_the_docstrings(site):
    from cnnspec.insight.probing import probe

    page = text_of(site / "api" / "index.html")
    assert "max_images = 2000" in page  # its signature, read from the code
    assert phrase(probe.__doc__) in page


def test_spec_blocks_are_highlighted_by_the_cnnspec_lexer(site):
    page = (site / "tutorials" / "vgg" / "index.html").read_text()
    assert '<span class="kt">conv</span>' in page  # Keyword.Type: a layer kind
    assert '<span class="err">' not in page
