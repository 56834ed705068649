"""The text of what the commands report after the work is done: a run's end, an
evaluation, a data folder's report, predictions. The numbers come from the library
(:mod:`cnnspec.training`, :mod:`cnnspec.data.report`); this module only words and lays
them out on a rich console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .tables import count, show

if TYPE_CHECKING:
    from rich.console import Console


def run_lines(run, seconds: float) -> list[str]:
    """The end of a training run: final validation accuracy and loss, time (training
    alone; ``seconds`` with data and export), the ONNX check, the run folder."""
    final = run.final
    lines = [(f"val accuracy {final['val_accuracy']:.2%} (val loss {final['val_loss']:.4f}) "
             f"after {count(final['epoch'], 'epoch')}; training took "
             f"{run.seconds:.1f} s, {seconds:.1f} s with data and export")]
    if run.export is not None:
        lines.append(str(run.export))
    return [*lines, f"run folder: {run.out}"]


def render_evaluation(r: dict, out: Console, err: Console, wide: bool = False) -> None:
    """``cnnspec evaluate``'s table: accuracy, per-class precision/recall/F1 and support,
    the confusion matrix (rows true, columns predicted); skipped images on ``err``."""
    out.print(f"{r['run']} on {r['data']}: {r['images']} images ({r['subset']}), accuracy "
              f"{r['accuracy']:.2%}")
    rows = [(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
             str(m["support"])) for name, m in zip(r["classes"], r["per_class"], strict=True)]
    show(out, ("class", "precision", "recall", "F1", "support"), rows, numeric=(1, 2, 3, 4),
         wrap=(0,), wide=wide)
    k = len(r["classes"])
    show(out, ("true \\ predicted", *r["classes"]),
         [(name, *map(str, row)) for name, row in zip(r["classes"], r["confusion"], strict=True)],
         numeric=tuple(range(1, k + 1)), wrap=(0,), title="confusion matrix", wide=wide)
    for path in r["skipped"]:
        err.print(f"skipped unreadable image {path}", markup=False)


def render_data_report(r: dict, out: Console, min_classes: int, min_per_class: int,
                       wide: bool = False) -> None:
    """``cnnspec data``'s table: classes with image counts, sizes and modes; unreadable
    files, duplicates, warnings; the minimum asked for, met or not."""
    def sizes(c: dict) -> str:  # the 5 commonest sizes, then how many others
        text = ", ".join(f"{k}: {v}" for k, v in c["sizes"].items())
        more = c.get("other_sizes", 0)
        return text + (f", and {more} other size{'s' if more > 1 else ''}" if more else "")

    rows = [(c["name"], str(c["images"]), sizes(c),
             ", ".join(f"{k}: {v}" for k, v in c["modes"].items())) for c in r["classes"]]
    if not rows:  # no classes: the problem says why; an empty table says nothing
        for problem in r["problems"]:
            out.print(f"error: {problem}", markup=False)
        return
    show(out, ("class", "images", "sizes (WxH: count)", "modes"), rows, numeric=(1,),
         wrap=(0, 2, 3), title=f"{r['root']}: {len(r['classes'])} classes, "
         f"{r['total_images']} images", wide=wide)
    for u in r["unreadable"]:
        out.print(f"unreadable: {u['path']} ({u['reason']})")
    for a, b in r["duplicates"]:
        out.print(f"duplicate: {b} has the same bytes as {a}")
    for w in r["warnings"]:
        out.print(f"warning: {w}", markup=False)
    if min_classes or min_per_class:
        out.print(f"minimum {min_classes} classes x {min_per_class} images: " +
                  ("met" if r["meets_minimum"] else "NOT met: " + "; ".join(r["problems"])))
    else:
        for problem in r["problems"]:
            out.print(f"error: {problem}", markup=False)


def prediction_line(r: dict) -> str:
    """One image's top classes: ``digit.png: 7 98.1%, 1 1.2%, 9 0.3%``."""
    return f"{r['image']}: " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])


def render_weights_list(rows: list[dict], out: Console) -> None:
    """``cnnspec fetch --list``: the named weights with the shipped spec mirroring each;
    parameters, GMACs per image and ImageNet-1K acc@1 as torchvision's registry gives them
    (its "GFLOPS" column counts multiply-accumulates)."""
    table = [(r["source"] + (" (DEFAULT)" if r["default"] else ""), f"{r['params']:,}",
              f"{r['gmacs']:.3f}" if r["gmacs"] is not None else "-",
              f"{r['acc1']:.2f}" if r["acc1"] is not None and r["acc1"] == r["acc1"] else "-",
              "yes" if r["downloaded"] else "no", r["spec"]) for r in rows]
    show(out, ("named weights", "parameters", "GMACs", "acc@1 %", "downloaded", "spec"), table,
         numeric=(1, 2, 3), wrap=(0,), title="transfer: from ... (torchvision's registry; "
         "cnnspec fetch LIBRARY MODEL [TAG] downloads ahead of time)")
