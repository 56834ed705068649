"""cnnspec/compiler.py: check (with the transfer source) and compile as library calls."""

from __future__ import annotations

from conftest import run_cli as _cli


def test_check_names_a_missing_transfer_source_with_its_resolved_path(tmp_path):
    spec = tmp_path / "specs" / "t.cnn"
    spec.parent.mkdir()
    spec.write_text("network T\ninput 28x28x1\nconv 3x3x4 relu\nflatten\ndense 10\n"
                    "transfer:\n    from \"runs/source\"\n    freeze up to C1\n")
    r = _cli("check", spec, cwd=tmp_path)
    assert r.returncode == 1
    assert (f"t.cnn:7:10: error: transfer: from \"runs/source\": "
            f"{(tmp_path / 'specs' / 'runs' / 'source').resolve()} does not exist") in r.stderr
    assert f"relative to the spec's folder ({spec.parent.resolve()})" in r.stderr


def test_compile_spec_builds_exports_and_says_so(tmp_path):
    """compile_spec: the summary, the built module's parameters, the ONNX check, on the
    console given; nothing trained (None returned)."""
    import io

    from rich.console import Console

    from cnnspec.compiler import compile_spec
    from conftest import SPECS

    buf = io.StringIO()
    result = compile_spec(SPECS / "lenet5.cnn", Console(file=buf, width=200, color_system=None),
                          onnx=str(tmp_path / "m.onnx"))
    text = buf.getvalue()
    assert result is None and (tmp_path / "m.onnx").stat().st_size > 200_000
    assert "Total params: 61,706" in text
    assert "built cnnspec.builder.Network LeNet5: 61,706 parameters" in text
    assert "ONNX Runtime" in text


def test_compile_checks_the_transfer_source_before_any_work(tmp_path):
    """compile, like check, refuses a transfer source that is not there, at its from line,
    before printing a summary or exporting anything."""
    import io

    import pytest
    from rich.console import Console

    from cnnspec import SpecError
    from cnnspec.compiler import compile_spec

    spec = tmp_path / "t.cnn"
    spec.write_text('network T\ninput 8x8x1\nconv 3x3x4\nflatten\ndense 2\ntransfer:\n'
                    '    from "nosuch"\n    freeze up to C1\n')
    buf = io.StringIO()
    with pytest.raises(SpecError) as err:
        compile_spec(spec, Console(file=buf), onnx=str(tmp_path / "m.onnx"))
    d = err.value.diagnostics[0]
    assert (d.span.line, d.span.col) == (7, 10) and "does not exist" in d.message
    assert buf.getvalue() == "" and not (tmp_path / "m.onnx").exists()
    with pytest.raises(ValueError, match="apply only when training"):
        compile_spec(spec, Console(file=buf), overrides={"epochs": 1})


def test_training_flags_without_train_are_refused(tmp_path):
    for args, message in ((["--out", str(tmp_path / "r")], "--out only applies with --train"),
                          (["--device", "cpu", "--lr", "0.1"],
                           "--lr, --device only apply with --train"),
                          (["--softmax"], "--softmax applies to an exported model")):
        r = _cli("compile", "specs/lenet5.cnn", *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    assert not (tmp_path / "r").exists()
