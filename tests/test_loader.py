"""cnnspec/language/loader.py: what can be a spec file, and includes that cannot."""

from __future__ import annotations

import pytest

import cnnspec


@pytest.mark.parametrize("target, reason", [("/dev/zero", "not a regular file"),
                                            ("FIFO", "not a regular file"),
                                            ("bad.cnn", "not UTF-8 text (byte 0")])
def test_an_include_that_cannot_be_a_spec_is_an_error_at_its_line(tmp_path, target, reason):
    """/dev/zero was read until memory ran out, a FIFO hung, non-UTF-8 had no location."""
    import os

    os.mkfifo(tmp_path / "FIFO")
    (tmp_path / "bad.cnn").write_bytes(b"\xff\xfe not text")
    path = str(tmp_path / target) if target != "/dev/zero" else target
    spec = tmp_path / "t.cnn"
    spec.write_text(f'network T\ninput 28x28x1\ninclude "{path}"\nconv 3x3x4 relu\n'
                    "flatten\ndense 10\n")
    with pytest.raises(cnnspec.SpecError) as info:
        cnnspec.load(spec)
    assert f"t.cnn:3:9: error: cannot read the included file {path}: {reason}" in \
        info.value.render()
