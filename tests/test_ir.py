"""cnnspec/ir.py and `cnnspec schema`: the JSON Schema of a validated spec, from Pydantic; every shipped spec
(as `cnnspec check --format json` prints it) and a run's spec.json validate against it, and
it rejects what the language rejects."""

from __future__ import annotations

import json

import jsonschema
import pytest

import cnnspec
from cnnspec.cli import main
from conftest import SPECS

SHIPPED = sorted(SPECS.glob("*.cnn"))


def cli(capsys, *args) -> str:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def validator():
    from cnnspec.ir import json_schema

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)  # a well-formed schema
    return jsonschema.Draft202012Validator(schema)


def test_schema_command_prints_the_schema(capsys, validator):
    printed = json.loads(cli(capsys, "schema"))
    assert printed == validator.schema
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(printed["required"]) == {"name", "input", "layers"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_spec_validates(path, capsys, validator):
    instance = json.loads(cli(capsys, "check", path, "--format", "json"))
    assert instance["name"] == cnnspec.load(path).name
    errors = list(validator.iter_errors(instance))
    assert not errors, [e.message for e in errors[:3]]


def test_the_schema_rejects_what_the_language_rejects(validator):
    good = cnnspec.load(SPECS / "lenet5.cnn").model_dump(mode="json")
    assert validator.is_valid(good)
    for damage in (
        lambda s: s["layers"][0].update(kind="convolution"),  # no such layer kind
        lambda s: s["layers"][0].update(out_channels=0),  # conv 5x5x0
        lambda s: s["train"].update(epochs=0),
        lambda s: s["train"]["optimizer"].update(name="lamb"),
        lambda s: s["input"].update(channels="three"),
        lambda s: s.update(colour="red"),  # an unknown field
    ):
        bad = json.loads(json.dumps(good))
        damage(bad)
        assert not validator.is_valid(bad), bad


def test_a_run_folders_spec_json_validates(tmp_path, validator):
    run = cnnspec.train(cnnspec.loads("network Tiny\ninput 8x8x1\nconv 3x3x2 relu\nflatten\n"
                                      "dense 10\ntrain:\n    epochs 1\n"), out=tmp_path / "run",
                        export=False)
    spec_json = json.loads((run.out / "spec.json").read_text())
    errors = list(validator.iter_errors(spec_json))
    assert not errors, [e.message for e in errors[:3]]
