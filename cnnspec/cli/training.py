"""The ``compile`` command: build a spec, print its summary, export it (``--onnx``), train it
(``--train``, with train settings overridden on the command line) or resume a run
(``--resume``); :mod:`cnnspec.cli` adds it to the ``cnnspec`` group."""

from __future__ import annotations

import click

from ..consoles import err, out
from ..settings import OVERRIDES


def train_override_options(func):
    """The options of ``compile`` (and ``lr-find``) that override the spec's train settings
    for one run, made from the settings' declarations (:data:`cnnspec.settings.OVERRIDES`),
    so that a flag cannot drift from its spec word; in the settings' order."""
    for o in reversed([o for o in OVERRIDES.values() if o.type != "path"]):
        func = _option(o)(func)  # as stacked decorators: the first listed is applied last
    return func


def _option(o):
    """The click option of one :class:`~cnnspec.settings.base.Override`."""
    if o.type == "switch":
        return click.option(f"{o.flag}/--no-{o.flag[2:]}", o.name, default=None, help=o.help)
    if o.type == "flag":
        return click.option(o.flag, is_flag=True, default=None, help=o.help)
    kind = {"int>=1": click.IntRange(min=1), "int>=0": click.IntRange(min=0), "float": float,
            "choice": click.Choice(list(o.choices))}[o.type]
    return click.option(o.flag, type=kind, help=o.help)


@click.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), help="Export to this ONNX file.")
@click.option("--train", "do_train", is_flag=True, help="Train, then write a run folder.")
@click.option("--softmax", is_flag=True, help="The ONNX model outputs probabilities (a softmax "
              "after the last layer) instead of logits.")
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> (default: "
              "the spec's train: data, else the embedded digits).")
@train_override_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder "
              "(default runs/<network>).")
@click.option("--device", help="cpu, cuda or cuda:N (default: cuda where available).")
@click.option("--resume", "resume_run", type=click.Path(file_okay=False),
              help="Continue the run in this folder from its last checkpoint (no SPEC needed); "
              "with --epochs N, train it on up to N epochs.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Set a train "
              "setting (--set lr=0.01) or a layer's value (--set D1.p=0.3; --set dropout=0.3 "
              "where the spec has one dropout) for this run; repeatable; recorded in run.json.")
def compile_(spec: str | None, onnx_path: str | None, do_train: bool, softmax: bool,
             data: str | None, epochs: int | None, out_dir: str | None, device: str | None,
             resume_run: str | None, sets: tuple[str, ...], **overrides) -> None:
    """Build SPEC into a PyTorch module, print its summary, and optionally export or train it.

    Train settings given on the command line (--epochs, --lr, --batch, ...) replace the
    spec's for this run and are recorded in the run folder (run.json, spec.json)."""
    from ..compiler import compile_spec
    from ..compiler import resume_run as resume

    if resume_run:
        ignored = [name for name, v in (("SPEC", spec), ("--onnx", onnx_path), ("--data", data),
                                        ("--out", out_dir), ("--softmax", softmax)) if v]
        ignored += [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
        ignored += ["--set"] if sets else []
        if ignored:
            raise click.UsageError(f"--resume continues a run as it was set up (only --epochs "
                                   f"can extend it); it takes no {', '.join(ignored)}")
        resume(resume_run, out, epochs=epochs, device=device, messages=err)
        return
    if spec is None:
        raise click.UsageError("give a SPEC, or --resume RUN")
    for flag, value in (("--out", out_dir), ("--onnx", onnx_path), ("--data", data)):
        if value is not None and not value.strip():  # "" would mean the current folder
            raise click.UsageError(f"{flag}: empty; give a {'file' if flag == '--onnx' else 'folder'}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if epochs is not None:
        given["epochs"] = epochs
    train_only = [*(f"--{k.replace('_', '-')}" for k in given),
                  *(flag for flag, v in (("--out", out_dir), ("--data", data),
                                         ("--device", device)) if v is not None)]
    if train_only and not do_train:
        raise click.UsageError(f"{', '.join(train_only)} only appl"
                               f"{'ies' if len(train_only) == 1 else 'y'} with --train")
    if softmax and not (do_train or onnx_path):
        raise click.UsageError("--softmax applies to an exported model: give --onnx FILE or "
                               "--train")
    compile_spec(spec, out, onnx=onnx_path, train=do_train, softmax=softmax, data=data,
                 overrides=given, out=out_dir, device=device, messages=err, sets=list(sets))


TRAINING = (compile_,)
