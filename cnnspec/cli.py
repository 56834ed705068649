"""The ``cnnspec`` command: thin wrappers over the library verbs.

One place (:func:`main`) turns user errors into a message on stderr and exit status 1;
a user never sees a traceback for a mistake in a spec, a data folder or a command line.
"""

from __future__ import annotations

import os
import sys
import traceback

import click
from rich.console import Console

from .cli_insight import INSIGHT
from .consoles import err, out
from .errors import CnnSpecError
from .report.render import FORMATS
from .shapes import infer


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnnspec")
@click.option("--debug", is_flag=True, help="Show Python tracebacks (for a bug report); also "
              "CNNSPEC_DEBUG=1.")
def cli(debug: bool) -> None:
    """Describe, check, measure, train and export convolutional networks written as .cnn specs."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="json: the validated spec (blocks and repeats unrolled, layers named), "
              "as `cnnspec schema` describes it; a spec with mistakes prints them on stderr "
              "as usual, nothing on stdout, exit status 1.")
def check(spec: str, fmt: str) -> None:
    """Parse and validate SPEC; report every mistake with file:line:col."""
    from .compiler import check as check_spec

    s = check_spec(spec)
    if fmt == "json":
        sys.stdout.write(s.model_dump_json(indent=2) + "\n")
        return
    from .report.tables import count

    out.print(f"{spec}: ok ({s.name}, {count(len(s.layers), 'layer')}, "
              f"{count(infer(s).params, 'parameter')})")


@cli.command()
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of a validated spec: what `cnnspec check
    --format json` prints and a run folder's spec.json holds, for other tools."""
    import json

    from .ir import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--depth", type=click.IntRange(min=0), help="Fold blocks: show rows nested at most "
              "this deep (0: top-level layers only); totals are unchanged.")
@click.option("--wide", is_flag=True, help="Print the table at its full width (no wrapping), "
              "whatever the terminal's width.")
def summary(spec: str, fmt: str, depth: int | None, wide: bool) -> None:
    """Per-layer output shapes, parameters and MACs of SPEC, computed without building it."""
    from . import load, summarize
    from .report.render import render

    render(summarize(load(spec), depth), fmt, out, wide)


@cli.command()
@click.argument("spec_a", type=click.Path(dir_okay=False))
@click.argument("spec_b", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--changed-only", is_flag=True, help="Show only changed, added and removed layers.")
@click.option("--wide", is_flag=True, help="Print the table at its full width (no wrapping), "
              "whatever the terminal's width.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw the changed layers' "
              "parameters and MACs, A beside B, as a PNG.")
def diff(spec_a: str, spec_b: str, fmt: str, changed_only: bool, wide: bool,
         plot: str | None) -> None:
    """Parameters and MACs of SPEC_A vs SPEC_B, layer by layer, aligned by structure."""
    from . import load
    from .report.diff import diff as diff_specs
    from .report.render import render_diff

    if plot is not None:
        from .report.pictures import picture_path

        picture_path(plot)  # before any work: a bad name fails first
    d = diff_specs(load(spec_a), load(spec_b))
    render_diff(d, fmt, out, changed_only, wide)
    if plot is not None:
        from .report.pictures import diff_plot

        err.print(f"plot: {diff_plot(d, plot)}", markup=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="net.svg, net.png (need Graphviz), net.dot or net.mmd (Mermaid).")
def graph(spec: str, output: str) -> None:
    """Draw SPEC: one box per layer with its output shape, branches side by side."""
    from . import load
    from .report.graph import write_graph

    write_graph(infer(load(spec)), output)
    err.print(f"wrote {output}", markup=False)


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
def fmt(specs: tuple[str, ...], check: bool) -> None:
    """Rewrite SPECS in the canonical layout (comments kept); idempotent."""
    from .language.fmt import format_file

    unformatted = []
    for spec in specs:
        if format_file(spec, write=not check):
            unformatted.append(spec)
            err.print(f"{'would reformat' if check else 'reformatted'} {spec}", markup=False)
    if check and unformatted:
        sys.exit(1)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, not stdout.")
def emit(spec: str, output: str | None) -> None:
    """Print SPEC as readable PyTorch source: an nn.Sequential class you can paste and run."""
    from . import load
    from .emit import emit as emit_source

    source = emit_source(infer(load(spec)))
    if output is not None:
        from pathlib import Path

        from .files import write_text

        if not output or Path(output).is_dir():
            raise click.UsageError(f"-o: give a file to write, not {output!r}")
        if Path(output).exists() and Path(output).resolve() == Path(spec).resolve():
            raise click.UsageError(f"-o {output} is the spec being read; write the PyTorch "
                                   "source to another file (e.g. model.py)")
        write_text(Path(output), source)
    else:
        sys.stdout.write(source)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> (default: "
              "the run's own data, scored on its validation images).")
@click.option("--weights", default="weights", show_default=True,
              type=click.Choice(["weights", "best", "last"]), help="Which weights of the run.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--wide", is_flag=True, help="Print the table at its full width (no wrapping), "
              "whatever the terminal's width.")
def evaluate(run: str, data: str | None, weights: str, fmt: str, wide: bool) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of RUN on DATA
    (default: the run's own validation images)."""
    import json

    from .report.results import render_evaluation
    from .training import evaluate_run

    r = evaluate_run(run, data, weights)
    if fmt == "json":
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
    else:
        render_evaluation(r, out, err, wide)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
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
    """The top-k classes of each image with their probabilities (softmax), using RUN.
    An unreadable image is reported and the others predicted; the exit status is then 1."""
    if backend == "onnx" and weights == "weights":
        from .training.runtime import predict as predict_images

        results = predict_images(run, list(images), top_k, device)
    else:
        from .training.inference import predict as predict_images

        results = predict_images(run, list(images), top_k, weights, device)
    from .report.results import prediction_line

    for r in results:
        if "error" in r:
            _error(r["error"])
            continue
        out.print(prediction_line(r), markup=False)
    failed = sum("error" in r for r in results)
    if failed:
        _error(f"{failed} of {len(results)} image(s) could not be read")
        sys.exit(1)


@cli.command()
@click.argument("folder", type=click.Path())
@click.option("--min-classes", default=0, type=click.IntRange(min=0), help="e.g. 3 (the course).")
@click.option("--min-per-class", default=0, type=click.IntRange(min=0), help="e.g. 250.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--wide", is_flag=True, help="Print the table at its full width (no wrapping), "
              "whatever the terminal's width.")
def data(folder: str, min_classes: int, min_per_class: int, fmt: str, wide: bool) -> None:
    """Report an image folder: classes, counts, sizes, modes, unreadable files, duplicates."""
    import json

    from .data.report import data_report
    from .report.results import render_data_report

    r = data_report(folder, min_classes, min_per_class)
    if fmt == "json":
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
    else:
        render_data_report(r, out, min_classes, min_per_class, wide)
    if not r["meets_minimum"]:
        sys.exit(1)


def _template_names(ctx, param, incomplete: str) -> list[str]:
    from .language.templates import templates

    return [t for t in templates() if t.startswith(incomplete)]


@cli.command()
@click.argument("name", required=False)
@click.option("--from", "template", default="lenet5", show_default=True,
              shell_complete=_template_names,
              help="The shipped spec to start from: lenet5, alexnet, vgg16, resnet18, ... "
              "(cnnspec new --list shows them all).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write "
              "(default NAME.cnn).")
@click.option("--list", "list_", is_flag=True, help="List the shipped specs and stop.")
def new(name: str | None, template: str, output: str | None, list_: bool) -> None:
    """Write NAME.cnn, a starter spec copied from a shipped one (never overwrites)."""
    from .language.templates import new_spec, templates

    if list_:
        out.print("\n".join(templates()))
        return
    if name is None:
        raise click.UsageError("give the new network's NAME, e.g. cnnspec new MyNet --from vgg16")
    path, extra = new_spec(name, template, output)
    also = f" (and {', '.join(map(str, extra))}, which it includes)" if extra else ""
    out.print(f"wrote {path}{also} from {template}; next: cnnspec check {path}, cnnspec "
              f"summary {path}, cnnspec compile {path} --train", markup=False)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL. Add to ~/.bashrc: eval "$(cnnspec
    completion bash)"; ~/.zshrc: eval "$(cnnspec completion zsh)"; fish: cnnspec completion
    fish > ~/.config/fish/completions/cnnspec.fish."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    sys.stdout.write(cls(cli, {}, "cnnspec", "_CNNSPEC_COMPLETE").source() + "\n")


@cli.command()
@click.option("--clear", is_flag=True, help="Remove every decoded-image cache entry.")
def cache(clear: bool) -> None:
    """Where decoded images are cached (CNNSPEC_CACHE_DIR), and how much; --clear empties it."""
    from .data.cache import cache_info, clear_cache

    info = clear_cache() if clear else cache_info()
    verb = "removed" if clear else "holds"
    out.print(f"decoded-image cache {info['folder']} {verb} {info['entries']} entr"
              f"{'y' if info['entries'] == 1 else 'ies'}, {info['bytes'] / 2**20:,.1f} MiB",
              highlight=False, markup=False)


@cli.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), help="Export to this ONNX file.")
@click.option("--train", "do_train", is_flag=True, help="Train, then write a run folder.")
@click.option("--softmax", is_flag=True, help="The ONNX model outputs probabilities (a softmax "
              "after the last layer) instead of logits.")
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> (default: "
              "the spec's train: data, else the embedded digits).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train: epochs.")
@click.option("--batch", type=click.IntRange(min=1), help="Override train: batch.")
@click.option("--lr", type=float, help="Override the optimizer's learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw", "rmsprop"]),
              help="Override the optimizer (keeps the spec's lr unless --lr is given).")
@click.option("--momentum", type=float, help="Override the optimizer's momentum.")
@click.option("--weight-decay", type=float, help="Override train: weight_decay.")
@click.option("--label-smoothing", type=float, help="Override train: label_smoothing.")
@click.option("--clip-grad-norm", type=float, help="Override train: clip_grad_norm.")
@click.option("--seed", type=click.IntRange(min=0), help="Override train: seed.")
@click.option("--split", type=float, help="Override train: split.")
@click.option("--workers", type=click.IntRange(min=0), help="Override train: workers "
              "(DataLoader worker processes; default from the usable cores).")
@click.option("--threads", type=click.IntRange(min=1), help="Override train: threads "
              "(PyTorch intra-op threads; default: see docs/pipeline.md).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Override train: precision (mixed precision; see docs/distributed.md).")
@click.option("--compile/--no-compile", "compile", default=None,
              help="Override train: compile (torch.compile the training step).")
@click.option("--tensorboard", is_flag=True, default=None,
              help="Also log to TensorBoard (train: log tensorboard): event files in "
              "RUN/tensorboard/; needs pip install tensorboard.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder "
              "(default runs/<network>).")
@click.option("--device", help="cpu, cuda or cuda:N (default: cuda where available).")
@click.option("--resume", "resume_run", type=click.Path(file_okay=False),
              help="Continue the run in this folder from its last checkpoint (no SPEC needed); "
              "with --epochs N, train it on up to N epochs.")
def compile_(spec: str | None, onnx_path: str | None, do_train: bool, softmax: bool,
             data: str | None, epochs: int | None, out_dir: str | None, device: str | None,
             resume_run: str | None, **overrides) -> None:
    """Build SPEC into a PyTorch module, print its summary, and optionally export or train it.

    Train settings given on the command line (--epochs, --lr, --batch, ...) replace the
    spec's for this run and are recorded in the run folder (run.json, spec.json)."""
    from .compiler import compile_spec
    from .compiler import resume_run as resume

    if resume_run:
        ignored = [name for name, v in (("SPEC", spec), ("--onnx", onnx_path), ("--data", data),
                                        ("--out", out_dir), ("--softmax", softmax)) if v]
        ignored += [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
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
                 overrides=given, out=out_dir, device=device, messages=err)


for _command in INSIGHT:
    cli.add_command(_command)


def _error(text: str) -> None:
    """An error on stderr; in a torchrun group, from every rank, each saying which."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    prefix = f"rank {os.environ.get('RANK', '0')}: " if world > 1 else ""
    # soft_wrap: a long path stays on one line (the terminal wraps it; a copy is whole)
    Console(stderr=True, highlight=False, width=err.width).print(
        prefix + text, markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into exit status 1 without a traceback.
    Under torchrun only rank 0 prints results; every rank prints its errors, named. Anything
    else is a bug in cnnspec: one line says so and asks for a report (exit status 70);
    ``--debug`` or ``CNNSPEC_DEBUG=1`` shows the traceback."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args[: args.index("--") if "--" in args else None] or bool(
        os.environ.get("CNNSPEC_DEBUG"))
    if os.environ.get("RANK", "0") not in ("", "0") and os.environ.get("WORLD_SIZE", "1") != "1":
        out.quiet = err.quiet = True  # torchrun: rank 0 prints the results
    try:
        rc = cli.main(args=args, prog_name="cnnspec", standalone_mode=False)
    except CnnSpecError as exc:
        if debug:
            traceback.print_exc()
        _error(exc.render())
        sys.exit(1)
    except click.exceptions.Abort:
        _error("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except OSError as exc:  # a full disk, a read-only folder: say which file, keep no traceback
        if debug:
            traceback.print_exc()
        _error(f"error: {exc}")
        sys.exit(1)
    except MemoryError:
        _error("error: out of memory; the network or its input is too large for this machine "
               "(cnnspec summary shows the parameters and activations it needs)")
        sys.exit(1)
    except Exception as exc:  # the last line of defence: a bug, said as one
        if isinstance(exc, RuntimeError) and ("allocate" in str(exc)
                                              or "out of memory" in str(exc)):
            _error(f"error: out of memory: {str(exc).splitlines()[0]}; the network or its "
                   "input is too large for this machine (cnnspec summary shows what it needs)")
            sys.exit(1)
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _error(f"internal error: {type(exc).__name__}: {first}\nThis is a bug in cnnspec, not "
               "in your input. Please report it with the command you ran and what `cnnspec "
               "--debug ...` (the same command) prints.")
        sys.exit(70)
    if isinstance(rc, int) and rc:
        sys.exit(rc)


if __name__ == "__main__":
    main()

