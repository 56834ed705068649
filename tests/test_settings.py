"""cnnspec/settings: each setting of ``train:`` and ``transfer:`` declared once (issue 24), and
read from there by the grammar, the transformer, the checks, the IR, the command-line
overrides, the summary and docs/language.md."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

import cnnspec
from cnnspec import ir, settings
from cnnspec.errors import SpecError
from cnnspec.language.lark_parser import grammar_text, section_words
from cnnspec.training.settings import OVERRIDES, apply_overrides
from conftest import ROOT

PACKAGE = ROOT / "cnnspec"


def _doc_table(header: str) -> list[tuple[str, ...]]:
    page = (ROOT / "docs" / "language.md").read_text()
    start = page.index(header)
    lines = page[start: page.index("\n\n", start)].splitlines()[2:]
    return [tuple(c.strip() for c in line.strip("|").replace("\\|", "\0").split("|"))
            for line in lines]


def test_docs_rows_are_the_declarations():
    unescape = [tuple(c.replace("\0", "\\|") for c in row)
                for row in _doc_table("| Setting | Meaning | Default |")]
    assert unescape == settings.doc_rows("train")
    assert [tuple(r) for r in _doc_table("| Statement | Meaning |")] == settings.doc_rows("transfer")


def test_the_section_models_have_one_field_per_declared_field_in_order():
    declared = [f.name for s in settings.SECTIONS["train"] for f in s.fields]
    assert [k for k in ir.TrainConfig.model_fields if k not in ("span", "trace")] == declared
    assert ir.TrainConfig.model_fields["label_smoothing"].description.startswith(
        "``nn.CrossEntropyLoss")
    assert "setting_spans" in ir.Transfer.model_fields
    assert "setting_spans" not in ir.Transfer(source="x").model_dump()


def test_every_statement_rule_is_in_the_grammar_and_its_section():
    text = grammar_text()
    for s in settings.SETTINGS:
        for rule in s.rules:
            assert f"\n{rule}:" in text or f"\n!{rule}:" in text, rule
    words = section_words()
    assert {"epochs", "optimizer", "augment", "early_stop", "log"} <= words["train"]
    assert {"from", "freeze", "unfreeze", "classes", "bn", "bias", "lr"} <= words["transfer"]


VALUES = {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-4, "label_smoothing": 0.1,
          "clip_grad_norm": 2.0, "split": 0.7}


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_every_override_sets_the_field_it_declares(name):
    o = settings.OVERRIDES[name]
    value = {"int>=1": 3, "int>=0": 2, "switch": True, "flag": True, "path": "photos",
             "choice": o.choices[-1] if o.choices else None}.get(o.type, VALUES.get(name))
    base = ir.TrainConfig(optimizer=ir.Optimizer(name="sgd", lr=0.1, momentum=0.9))
    cfg = apply_overrides(base, {name: value}).model_dump()
    for part in o.path:
        cfg = cfg[part]
    assert cfg == value
    assert o.flag == "--" + name.replace("_", "-")


def test_a_settings_error_names_it_with_its_declared_label_at_its_place():
    with pytest.raises(SpecError) as exc:
        cnnspec.loads("network T\ninput 4x4x1\nflatten\ndense 2\ntrain:\n    label_smoothing 1.5\n")
    d = exc.value.diagnostics[0]
    assert (d.span.line, d.span.col) == (6, 21)
    assert d.message == "train: the label smoothing must be less than 1.0, got 1.5"
    assert d.hint == "a fraction in [0, 1) such as 0.1"


def test_given_twice_reads_as_the_setting_is_written():
    with pytest.raises(SpecError) as exc:
        cnnspec.loads('network T\ninput 4x4x1\nflatten\ndense 2\ntransfer:\n    from "a"\n'
                      '    from "b"\n    freeze all\n    train last 1 conv\n')
    messages = [d.message for d in exc.value.diagnostics]
    assert messages == ["transfer: from is given twice",
                        "transfer: freeze, train last or freeze all is given twice"]


def test_the_summary_lines_come_from_the_settings_in_order():
    cfg = ir.TrainConfig(label_smoothing=0.1, workers=2, precision="bf16",
                         early_stop=ir.EarlyStop(monitor="val_loss", patience=3))
    assert settings.summary_lines("train", cfg) == [
        "label smoothing 0.1", "2 DataLoader worker(s)", "bf16 mixed precision",
        "early stop on val_loss after 3 epochs without improvement"]


SETTING_FILE = '''
"""A setting added by one file: print_every N (a test of the registry)."""
from pydantic import PositiveInt

from .base import IRField, Override, Setting, simple_transform

SETTINGS = (
    Setting("train", ("print_every",), 'print_every: "print_every" INT _NL',
            (IRField("print_every", PositiveInt | None, None, "Print every N steps."),),
            (("`print_every N`", "print a line every N steps", "none"),), "int",
            {"print_every": simple_transform("print_every", "int")},
            labels={"print_every": ("the print interval", "a number of steps")},
            overrides=(Override("print_every", ("print_every",), "int>=1", "Override it."),),
            summary=lambda c: c.print_every and f"a line every {c.print_every} steps"),
)
'''


def test_a_new_setting_is_one_file(tmp_path):
    """A copy of the package with one file added to cnnspec/settings/ (and nothing else
    changed) parses, checks (with its label), validates, overrides and summarises it."""
    root = tmp_path / "tree"
    shutil.copytree(PACKAGE, root / "cnnspec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(root / "cnnspec" / "grammar", ignore_errors=True)
    shutil.copytree(ROOT / "grammar", root / "cnnspec" / "grammar")
    (root / "cnnspec" / "settings" / "print_every.py").write_text(SETTING_FILE)
    script = textwrap.dedent("""
        import cnnspec
        from cnnspec.errors import SpecError
        from cnnspec.training.settings import apply_overrides
        assert cnnspec.__file__.startswith(%r), cnnspec.__file__
        head = "network T\\ninput 4x4x1\\nflatten\\ndense 2\\ntrain:\\n"
        spec = cnnspec.loads(head + "    print_every 5\\n")
        print(spec.train.print_every, apply_overrides(spec.train, {"print_every": 7}).print_every)
        print(cnnspec.summarize(spec).training["extras"])
        try:
            cnnspec.loads(head + "    print_every 0\\n")
        except SpecError as exc:
            print(exc.diagnostics[0].message)
        from click.testing import CliRunner
        from cnnspec.cli import cli
        from cnnspec.report.preview import override_lines
        help = CliRunner().invoke(cli, ["compile", "--help"]).output
        print("--print-every INTEGER RANGE Override it." in " ".join(help.split()))
        print(override_lines(spec.train, spec.train, {"print_every": 7})[0].split(",")[0])
    """) % str(root)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                       check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "5 7", "['a line every 5 steps']",
        "train: the print interval must be greater than 0, got 0", "True",
        "With --print-every 7"]


def test_the_command_line_flags_are_the_declared_overrides():
    import click
    from click.testing import CliRunner

    from cnnspec.cli import cli

    command = cli.get_command(None, "compile")
    flags = {opt for p in command.params for opt in p.opts}
    declared = {o.flag for o in settings.OVERRIDES.values()}
    assert declared <= flags  # --data too: declared by the command itself, with its meaning
    assert "--no-compile" in {opt for p in command.params for opt in p.secondary_opts}
    helps = {p.opts[0]: p.help for p in command.params if isinstance(p, click.Option)}
    assert all(helps[o.flag] == o.help for o in settings.OVERRIDES.values() if o.type != "path")
    out = CliRunner().invoke(cli, ["compile", "--help"]).output
    assert "--label-smoothing FLOAT" in out
