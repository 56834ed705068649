"""scripts/hostile.py, issue 13's per-group harness, at smoke size: it runs, judges, and this
checkout fails none of its inputs (the full run, with before/after counts, is in the
issue's note: ``python scripts/hostile.py --timeout 10``)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_hostile_input_harness_finds_nothing_here(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "hostile.py"), "--only",
                        "specs,names,output,user files", "--fuzz", "5", "--timeout", "30"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
            for line in r.stdout.splitlines()
            if line.startswith("| ") and "---" not in line and "| group" not in line}
    assert set(rows) >= {"specs", "names", "output", "user files", "all"}
    assert int(rows["specs"][0].replace(",", "")) > 100  # the inputs were really run
    assert all(failed == "0" for _, failed in rows.values())
