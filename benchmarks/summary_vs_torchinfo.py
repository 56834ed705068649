"""Benchmark: `cnnspec` summary of VGG-16 vs `torchinfo.summary` of torchvision's VGG-16.

cnnspec computes parameters and MACs analytically from the spec, allocating no tensor;
torchinfo builds the model and runs a forward pass with hooks. Both are timed side by side
in one process, best of N runs each (time.perf_counter), and the ratio is reported:

- cnnspec: `cnnspec.load("specs/vgg16.cnn")` + `cnnspec.summarize(spec)` (parse, validate,
  shapes, report; the Lark parser is built once per process, as in a CLI run's first call);
- torchinfo (summary only): `torchinfo.summary(model, input_size=(1, 3, 224, 224))` on a
  model built beforehand;
- torchinfo (build + summary): `torchvision.models.vgg16()` then the summary, which is what
  a user waits for.

    python benchmarks/summary_vs_torchinfo.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torchinfo
from torchvision.models import vgg16

import cnnspec

ROOT = Path(__file__).resolve().parents[1]


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    t_ours, summary = best(lambda: cnnspec.summarize(cnnspec.load(ROOT / "specs" / "vgg16.cnn")),
                           args.repeat)
    model = vgg16(weights=None)
    t_info, stats = best(lambda: torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0),
                         args.repeat)
    t_both, _ = best(lambda: torchinfo.summary(vgg16(weights=None), input_size=(1, 3, 224, 224),
                                               verbose=0), args.repeat)
    assert summary.totals.params == stats.total_params == 138_357_544
    result = {
        "cnnspec_s": round(t_ours, 5),
        "torchinfo_summary_s": round(t_info, 4),
        "torchinfo_build_and_summary_s": round(t_both, 4),
        "ratio_summary_only": round(t_info / t_ours, 1),
        "ratio_build_and_summary": round(t_both / t_ours, 1),
        "params": summary.totals.params,
        "macs_cnnspec": summary.totals.macs,
        "macs_torchinfo": stats.total_mult_adds,
        "threads": torch.get_num_threads(),
    }
    out = ROOT / "benchmarks" / "results" / "summary_vs_torchinfo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
