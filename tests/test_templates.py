"""cnnspec/language/templates.py: ``cnnspec new`` (starter specs from the shipped ones, in the wheel) and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import cnnspec
from cnnspec.language.templates import templates
from conftest import SPECS


def _cli(*args, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnspec", *args], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_every_shipped_spec_is_a_template():
    assert templates() == sorted(p.stem for p in SPECS.glob("*.cnn"))


@pytest.mark.parametrize("template", ["lenet5", "vgg11", "resnet18"])
def test_new_writes_a_renamed_spec_that_checks(tmp_path, template):
    r = _cli("new", "MyNet", "--from", template, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spec = cnnspec.load(tmp_path / "MyNet.cnn")
    original = cnnspec.load(SPECS / f"{template}.cnn")
    assert spec.name == "MyNet" and cnnspec.infer_shapes(spec).params == cnnspec.infer_shapes(original).params
    assert (tmp_path / "lib" / "vgg.cnn").exists() == (template == "vgg11")  # its include
    assert "wrote MyNet.cnn" in r.stdout and "cnnspec compile MyNet.cnn --train" in r.stdout


def test_new_never_overwrites_and_names_its_mistakes(tmp_path):
    (tmp_path / "MyNet.cnn").write_text("mine")
    r = _cli("new", "MyNet", cwd=tmp_path)
    assert r.returncode == 1 and "MyNet.cnn exists already" in r.stderr
    assert (tmp_path / "MyNet.cnn").read_text() == "mine"
    r = _cli("new", "2fast", cwd=tmp_path)
    assert r.returncode == 1 and "'2fast' cannot name a network" in r.stderr
    r = _cli("new", "X", "--from", "vgg17", cwd=tmp_path)
    assert r.returncode == 1 and "no shipped spec named 'vgg17'; choose one of alexnet" in r.stderr


def test_shell_completion_completes_commands_and_templates(tmp_path):
    script = _cli("completion", "bash", cwd=tmp_path)
    assert script.returncode == 0 and "_cnnspec_completion()" in script.stdout
    for shell in ("zsh", "fish"):
        assert _cli("completion", shell, cwd=tmp_path).stdout.strip()
    r = _cli(cwd=tmp_path, env={"COMP_WORDS": "cnnspec ch", "COMP_CWORD": "1",
                                "_CNNSPEC_COMPLETE": "bash_complete"})
    assert r.stdout.split() == ["plain,check"]
    r = _cli(cwd=tmp_path, env={"COMP_WORDS": "cnnspec new X --from res", "COMP_CWORD": "4",
                                "_CNNSPEC_COMPLETE": "bash_complete"})
    assert r.stdout.split() == [f"plain,{t}" for t in templates() if t.startswith("res")]
    assert {"plain,resnet18", "plain,resnet50"} <= set(r.stdout.split())


def test_new_pretrained_writes_a_transfer_section_cut_before_the_last_stage(tmp_path):
    """--pretrained: torchvision's weights of the model the template mirrors, frozen up to
    the last stage but one (VGG-16: C10, before C11-C13 at 14x14; ResNet-18: R6, before
    R7-R8 at 7x7), a head for the data's classes; --data: the data line."""
    from cnnspec.compiler import check
    from cnnspec.errors import CnnSpecError
    from cnnspec.language.templates import new_spec

    (tmp_path / "photos").mkdir()
    path, _ = new_spec("Photos", "vgg16", tmp_path / "photos.cnn", pretrained=True,
                       data=tmp_path / "photos")
    spec = check(path)
    assert spec.transfer.named.model == "vgg16" and spec.transfer.named.tag is None
    assert spec.transfer.freeze.layer == "C10" and spec.transfer.classes == "data"
    assert spec.train.data == "photos"
    path, _ = new_spec("R", "resnet18", tmp_path / "r.cnn", pretrained=True)
    assert check(path).transfer.freeze.layer == "R6"
    with pytest.raises(CnnSpecError, match="mirrors no torchvision model"):
        new_spec("L", "lenet5", tmp_path / "l.cnn", pretrained=True)
    assert not (tmp_path / "l.cnn").exists()
