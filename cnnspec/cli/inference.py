"""The commands that use a trained run: ``evaluate`` and ``predict`` (:mod:`cnnspec.cli`
adds them to the ``cnnspec`` group)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..consoles import err, out
from .common import WIDE_HELP, _error


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> (default: "
              "the run's own data, scored on its validation images).")
@click.option("--weights", default="weights", show_default=True,
              type=click.Choice(["weights", "best", "last"]), help="Which weights of the run.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--wide", is_flag=True, help=WIDE_HELP)
def evaluate(run: str, data: str | None, weights: str, fmt: str, wide: bool) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of RUN on DATA
    (default: the run's own validation images)."""
    import json

    from ..report.results import render_evaluation
    from ..training import evaluate_run

    r = evaluate_run(run, data, weights)
    if fmt == "json":
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
    else:
        render_evaluation(r, out, err, wide)


@click.command()
@click.argument("run", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--weights", default="weights", show_default=True,
              type=click.Choice(["weights", "best", "last"]),
              help="Which weights; best and last run on PyTorch (model.onnx holds the final ones).")
@click.option("--backend", default="onnx", show_default=True, type=click.Choice(["onnx", "torch"]),
              help="onnx: the run's model.onnx on ONNX Runtime (starts in a fraction of a "
              "second); torch: the weights on PyTorch.")
@click.option("--device", help="cpu, cuda or cuda:N (default: a GPU where available).")
def predict(run: str, images: tuple[str, ...], top_k: int, weights: str, backend: str,
            device: str | None) -> None:
    """The top-k classes of each image with their probabilities (softmax), using RUN (a run
    folder, or a model.onnx written by `compile --onnx`). An unreadable image is reported and
    the others predicted; the exit status is then 1."""
    if Path(run).suffix == ".onnx" and (backend != "onnx" or weights != "weights"):
        raise click.UsageError("a .onnx file predicts on ONNX Runtime with its own weights; "
                               "--backend torch and --weights need a run folder")
    if backend == "onnx" and weights == "weights":
        from ..training.runtime import predict as predict_images

        results = predict_images(run, list(images), top_k, device)
    else:
        from ..training.inference import predict as predict_images

        results = predict_images(run, list(images), top_k, weights, device)
    from ..report.results import prediction_line

    for r in results:
        if "error" in r:
            _error(r["error"])
            continue
        out.print(prediction_line(r), markup=False)
    failed = sum("error" in r for r in results)
    if failed:
        _error(f"{failed} of {len(results)} image(s) could not be read")
        sys.exit(1)


INFERENCE = (evaluate, predict)
