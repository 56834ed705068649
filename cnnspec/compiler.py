"""What ``cnnspec check`` and ``cnnspec compile`` do, as library calls: a spec checked as far
as a spec can be (its transfer source included), and compiled: summarised, built (the
module must have the reported parameters), exported to ONNX and trained.

Messages go to the ``console`` given (rich); their text comes from :mod:`cnnspec.report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import ir
from .errors import CnnSpecError, SourceText, SpecError
from .language.loader import load

if TYPE_CHECKING:
    from rich.console import Console


def check(path: str | Path) -> ir.Spec:
    """The validated spec at ``path``, with its ``transfer: from`` source checked to exist
    and be readable as weights.

    Raises:
        SpecError: any mistake in the spec, or a transfer source that cannot be one
            (at the ``from`` line, with the folder it was looked for in).
    """
    from .training.run_folder import RunFolder
    from .weights import resolve_source, source_problem

    spec = load(path)
    if spec.transfer is not None and spec.transfer.named is not None:
        from .errors import WeightsError
        from .hub import of_spec

        try:
            of_spec(spec)  # the name and tag exist in the library's registry
        except WeightsError as exc:
            src = SourceText(spec.source, spec.file)
            raise SpecError([src.diag(spec.transfer.setting_spans.get("named", spec.transfer.span),
                                      f"transfer: {exc.render().removeprefix('error: ')}",
                                      "cnnspec fetch --list shows the named weights")]) from None
    elif spec.transfer is not None:
        source = resolve_source(spec.transfer.source, spec.file)
        problem = source_problem(source, RunFolder.source_weights(source))
        if problem is not None:
            src = SourceText(spec.source, spec.file)  # the caret line, as every spec error has it
            raise SpecError([src.diag(
                spec.transfer.setting_spans.get("source", spec.transfer.span),
                f"transfer: from \"{spec.transfer.source}\": {_shown(source)} {problem}",
                f"a path in a spec is relative to the spec's folder "
                f"({Path(spec.file).resolve().parent}); train the source run first, or fix the "
                "path")])
    return spec


def _shown(path: Path) -> Path:
    """``path`` resolved for a message, or as written where it cannot be (a loop of links)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()


def source_warnings(spec: ir.Spec) -> list[str]:
    """Where a spec with named weights prepares its images otherwise than the weights were
    trained with (:func:`cnnspec.hub.preprocessing_notes`), each rendered as
    ``file:line:col: warning: ...`` with its line and caret; [] for other specs."""
    if spec.transfer is None or spec.transfer.named is None:
        return []
    from .hub import of_spec
    from .preprocessing import preprocessing_notes

    src = SourceText(spec.source, spec.file)
    return [src.diag(span, message).render("warning")
            for span, message in preprocessing_notes(spec, of_spec(spec))]


def _head_for_data(spec: ir.Spec, data) -> ir.Spec:
    """Before anything is built: the head training will have (``classes from data``: one
    output per class), or a head too small for the data's classes refused at once.

    Raises:
        DataError: the last layer has fewer outputs than the data has classes.
    """
    from .data.folder import class_names
    from .errors import DataError
    from .shapes import infer
    from .training.settings import data_path_of
    from .transfer import with_classes

    path = data_path_of(spec, data)
    n = len(class_names(path))  # (None: the embedded digits' 10); a missing folder: its error
    t = spec.transfer
    if t is not None and t.classes == "data":
        return with_classes(spec, n)
    out = infer(spec).output_shape
    if len(out) == 1 and out[0] < n and not (t is not None and t.classes == "keep"):
        where = f"{path}" if path is not None else "the embedded digits (no --data given)"
        raise DataError(f"{spec.name} ends in {out[0]} outputs but {where} "
                        f"{'has' if path is not None else 'have'} {n} classes; "
                        "the last layer must be dense N, N >= classes"
                        + ("" if t is None else "; in transfer:, write classes from data"))
    return spec


def _pretrained(model, spec: ir.Spec, console: Console):
    """(module to export, class names, (mean, std)) for ``compile --onnx``: with named weights
    whose head is kept (``classes keep``, or no ``classes``), the weights loaded, their
    normalisation in front and their categories as the class names; else ``model`` as
    built (random weights), with neither."""
    t = spec.transfer
    if t is None or t.named is None or t.classes not in (None, "keep"):
        return model, None, None
    from torch import nn

    from .hub import fetch, of_spec
    from .preprocessing import input_statistics
    from .training.inference import Standardize
    from .weights import load_into

    named = of_spec(spec)
    path, digest = fetch(named, say=lambda m: console.print(m, highlight=False, markup=False))
    load_into(model, spec, path, None)
    mean, std = input_statistics(named, spec.input.channels)
    console.print(f"loaded {named.name} ({path.name}, SHA-256 {digest[:16]}...): "
                  f"{len(named.categories)} categories", highlight=False, markup=False)
    classes = list(named.categories) if t.classes == "keep" and named.categories else None
    return nn.Sequential(Standardize(mean, std), model), classes, (mean, std)


def compile_spec(path: str | Path, console: Console, *, onnx: str | None = None,
                 train: bool = False, softmax: bool = False, data: str | None = None,
                 overrides: dict | None = None, out: str | None = None,
                 device: str | None = None, messages: Console | None = None,
                 sets: list[str] = ()):
    """``cnnspec compile``: print the summary of the spec at ``path``, build its module
    (input (N, C, H, W) float32) and check that it has the reported parameters, then export
    it to ``onnx`` (checked with ONNX Runtime) and/or train it (``overrides``: train settings
    replacing the spec's for this run). ``messages`` gets training's progress.

    Returns:
        The finished run (:class:`cnnspec.training.Run`) when ``train``, else None.

    Raises:
        SpecError: any mistake in the spec, its transfer source included (:func:`check`).
        DataError, TrainingError: as training raises them.
        ValueError: ``overrides`` without ``train``.
        RuntimeError: the built module's parameters differ from the summary's (a bug).
    """
    from .builder import build
    from .report.render import render
    from .report.results import run_lines
    from .report.summary import summarize
    from .shapes import infer

    given = dict(overrides or {})
    if given and not train:
        raise ValueError(f"overrides {sorted(given)} apply only when training (train=True)")
    spec = check(path)  # the transfer source too, before any work
    assigned = {}
    if sets:  # --set NAME=VALUE: a setting joins the overrides, a layer's value the spec
        from .training.settings import assign

        spec, from_sets, assigned = assign(spec, list(sets))
        if from_sets and not train:
            raise CnnSpecError(f"--set {', '.join(from_sets)}: train settings apply only "
                               "with --train")
        given = {**from_sets, **given}
    for warning in source_warnings(spec):
        (messages or console).print(warning, highlight=False, markup=False, soft_wrap=True)
    if onnx:
        from .files import check_target

        check_target(onnx)  # a FIFO, a device or a folder: refused before the build
    if train:
        spec = _head_for_data(spec, data)
    render(summarize(spec), "table", console)
    shaped = infer(spec)
    model = build(shaped)  # compile means build: the module exists and has the reported parameters
    built, reported = sum(p.numel() for p in model.parameters()), shaped.params
    if built != reported:
        raise RuntimeError(f"built {built:,} parameters but the summary says {reported:,}")
    console.print(f"built {type(model).__module__}.{type(model).__name__} {spec.name}: "
                  f"{built:,} parameters")
    if onnx:
        from torch import nn

        from .export import export_onnx, metadata
        from .training.api import ends_in_softmax

        probabilities = softmax or ends_in_softmax(model)
        exported, classes, norm = _pretrained(model, spec, messages or console)
        if softmax and not ends_in_softmax(model):
            exported = nn.Sequential(exported, nn.Softmax(dim=1))
        console.print(str(export_onnx(exported, spec, onnx, meta=metadata(
            spec, "probabilities" if probabilities else "logits", classes, norm))))
    if not train:
        return None
    from .report.preview import override_lines
    from .training import train as train_spec
    from .training.settings import apply_overrides

    run_cfg = apply_overrides(spec.train, given) if given else spec.train
    for line in override_lines(spec.train, run_cfg, given):
        console.print(line)
    t0 = time.perf_counter()
    run = train_spec(spec, data=data, out=out, overrides=given, device=device,
                     console=messages or console, softmax=softmax, assigned=assigned)
    for line in run_lines(run, time.perf_counter() - t0):
        console.print(line)
    return run


def resume_run(run: str | Path, console: Console, *, epochs: int | None = None,
               device: str | None = None, messages: Console | None = None):
    """``cnnspec compile --resume RUN``: continue RUN from its last checkpoint (to ``epochs``
    epochs in all when given); the run's summary lines go to ``console``."""
    from .report.results import run_lines
    from .training import resume

    t0 = time.perf_counter()
    done = resume(run, epochs=epochs, device=device, console=messages or console)
    for line in run_lines(done, time.perf_counter() - t0):
        console.print(line)
    return done
