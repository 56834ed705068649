"""The insight commands: ``features``, ``gradcam``, ``probe`` and ``lr-find`` (thin wrappers
over :mod:`cnnspec.insight`; :mod:`cnnspec.cli` adds them to the ``cnnspec`` group)."""

from __future__ import annotations

import json
import sys

import click

from ..consoles import err, out

WEIGHTS = click.Choice(["weights", "best", "last"])
DEVICE_HELP = "cpu, cuda or cuda:N (default: a GPU where available)."


def _layers(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.UsageError(f"--layers {value!r}: no layer name; write e.g. --layers C1,C3")
    return names


def _given(flag: str, value: str | None) -> str | None:
    """``value``, refusing an empty one (it would mean the current folder, or nothing)."""
    if value is not None and not value.strip():
        raise click.UsageError(f"{flag}: empty; give a value or leave the option out")
    return value


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Folder for the PNGs (default: RUN/insight/features-<image name>).")
@click.option("--layers", help="Conv layers to show, e.g. C1,C3 (default: every conv layer).")
@click.option("--weights", default="weights", show_default=True, type=WEIGHTS)
@click.option("--device", help=DEVICE_HELP)
def features(run: str, image: str, output: str | None, layers: str | None, weights: str,
             device: str | None) -> None:
    """The feature maps of each conv layer of RUN for IMAGE (a grid per layer, after its
    batch norm and activation) and the first layer's filters, as PNGs."""
    from ..insight.features import feature_maps
    from ..report.tables import show

    r = feature_maps(run, image, _layers(layers), _given("-o", output), weights, device)
    if r["note"]:
        err.print(r["note"], markup=False)
    out.print(f"{image}: predicted {r['predicted']} ({r['probability']:.1%})")
    show(out, ("layer", "output", "maps", "silent maps", "mean", "picture"),
         [(row["layer"], row["shape"], row["shape"].rsplit("x", 1)[-1], str(row["silent"]),
           f"{row['mean']:.3g}", row["file"]) for row in r["layers"]],
         numeric=(2, 3, 4), wrap=(5,))
    out.print(f"first-layer filters: {r['filters']}")


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The PNG (default: RUN/insight/gradcam-<image name>-<class>.png).")
@click.option("--class", "class_name", help="Explain this class (default: the predicted one).")
@click.option("--layer", help="Conv layer or block (default: the last one with a map "
              "larger than 1x1).")
@click.option("--weights", default="weights", show_default=True, type=WEIGHTS)
@click.option("--device", help=DEVICE_HELP)
def gradcam(run: str, image: str, output: str | None, class_name: str | None,
            layer: str | None, weights: str, device: str | None) -> None:
    """Where in IMAGE the evidence for a class lies, according to RUN: Grad-CAM
    (Selvaraju et al. 2017) as a PNG of the image, the map and the overlay."""
    from ..insight.features import gradcam as explain

    r = explain(run, image, _given("--class", class_name), _given("--layer", layer),
                _given("-o", output), weights, device)
    if r["note"]:
        err.print(r["note"], markup=False)
    out.print(f"{image}: Grad-CAM for class {r['class']} ({r['probability']:.1%}; predicted "
              f"{r['predicted']}) at {r['layer']} ({r['shape']}): {r['file']}")
    if not r["map"].any():
        out.print(f"the map is 0 everywhere: nothing at {r['layer']} speaks for class "
                  f"{r['class']} in this image")


@click.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> of the new "
              "task (default: the run's own data).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The plot (default: RUN/insight/probe-<data folder name>.png).")
@click.option("--margin", default=0.02, show_default=True, type=float,
              help="Accuracy (0.02 = 2 points) a deeper cut may lose to the best layer.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Cross-validation folds (each image is held out once); a DIR with "
              "train/ and val/ keeps that split instead.")
@click.option("--max-images", default=2000, show_default=True, type=click.IntRange(min=4))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--weights", default="weights", show_default=True, type=WEIGHTS)
@click.option("--device", help=DEVICE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def probe(run: str, data: str | None, output: str | None, margin: float, folds: int,
          max_images: int, seed: int, weights: str, device: str | None, fmt: str) -> None:
    """How well each conv layer's features of RUN separate the classes of DATA (a linear
    probe per layer), and where to freeze for transfer learning."""
    from ..insight.probing import probe as run_probe
    from ..report.tables import show

    r = run_probe(run, data, output, folds=folds, seed=seed, margin=margin,
                  max_images=max_images, weights=weights, device=device)
    if r["note"]:
        err.print(r["note"], markup=False)
    if r["skipped"]:
        err.print(f"skipped {len(r['skipped'])} unreadable image(s): "
                  f"{', '.join(r['skipped'][:3])}{', ...' if len(r['skipped']) > 3 else ''}",
                  markup=False)
    if fmt == "json":
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
        return
    scored = (f"{r['folds']}-fold cross-validation" if r["folds"] else "trained on train/, "
              "scored on val/")
    out.print(f"{r['run']} on {r['data']}: {r['images']:,} images in {len(r['classes'])} "
              f"classes, {r['held_out']:,} held out ({scored}); chance {r['chance']:.1%}")
    marks = {r["best"]: "best", r["suggested"]: "suggested"}
    if r["best"] == r["suggested"]:
        marks[r["best"]] = "best, suggested"
    show(out, ("layer", "output", "features", "train acc", "held-out acc", ""),
         [(row["layer"], row["shape"], str(row["features"]), f"{row['train_accuracy']:.1%}",
           f"{row['val_accuracy']:.1%}", marks.get(row["layer"], "")) for row in r["rows"]],
         numeric=(2, 3, 4))
    out.print(f"suggested cut ({r['rule']}); in the transfer: section write:")
    out.print(f"    {r['line']}")
    out.print(f"plot: {r['file']}")


@click.command(name="lr-find")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> (default: "
              "the spec's train: data, or the embedded digits).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The plot (default: lr-find-<network>.png here).")
@click.option("--steps", default=200, show_default=True, type=click.IntRange(min=5))
@click.option("--start", default=1e-7, show_default=True, type=float, help="First learning rate.")
@click.option("--end", default=10.0, show_default=True, type=float, help="Last learning rate.")
@click.option("--device", help=DEVICE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def lr_find(spec: str, data: str | None, output: str | None, steps: int, start: float,
            end: float, device: str | None, fmt: str) -> None:
    """The learning-rate range test (Smith 2017): train SPEC for a few hundred steps while
    the learning rate grows exponentially, plot the loss, suggest a rate. No run folder is
    written; the weights are thrown away."""
    from .. import load
    from ..insight.range_test import lr_find as range_test

    r = range_test(load(spec), data, output, start=start, end=end, steps=steps, device=device,
                   console=err)
    if r["note"]:
        err.print(r["note"], markup=False)
    if r["skipped"]:
        err.print(f"skipped {len(r['skipped'])} unreadable image(s)", markup=False)
    if fmt == "json":
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
        return
    out.print(f"{r['network']}: {r['steps']} steps, lr {r['lrs'][0]:.2g} to {r['lrs'][-1]:.3g}"
              + (f"; stopped: {r['stopped']}" if r["stopped"] else ""))
    if r["suggested"] is None:
        out.print("no suggestion: the loss never fell into a curve with a minimum after its "
                  "start; try a smaller --start or more --steps")
    else:
        steep = f"; steepest descent at {r['steepest']:.2g}" if r["steepest"] else ""
        out.print(f"suggested learning rate {r['suggested']:.2g} ({r['rule']}{steep})")
        if r["transfer_rates"]:
            backbone, head = r["transfer_rates"]
            out.print(f"    in the transfer: section: lr backbone {r['suggested']:.2g} head "
                      f"{r['suggested'] * head / backbone:.2g}   (the head keeps its ratio)")
        else:
            out.print(f"    in the spec: optimizer ... lr {r['suggested']:.2g}   or: --lr "
                      f"{r['suggested']:.2g}")
    out.print(f"plot: {r['file']}")


INSIGHT = (features, gradcam, probe, lr_find)
