"""The spec commands: ``check``, ``schema``, ``summary``, ``diff``, ``graph``, ``fmt``,
``emit`` and ``new`` (none builds a network or imports PyTorch; :mod:`cnnspec.cli` adds them
to the ``cnnspec`` group)."""

from __future__ import annotations

import sys

import click

from ..consoles import err, out
from ..report.render import FORMATS
from ..shapes import infer
from .common import WIDE_HELP


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="json: the validated spec (blocks and repeats unrolled, layers named), "
              "as `cnnspec schema` describes it; a spec with mistakes prints them on stderr "
              "as usual, nothing on stdout, exit status 1.")
def check(spec: str, fmt: str) -> None:
    """Parse and validate SPEC; report every mistake with file:line:col."""
    from ..compiler import check as check_spec
    from ..compiler import source_warnings

    s = check_spec(spec)
    for warning in source_warnings(s):
        err.print(warning, highlight=False, markup=False, soft_wrap=True)
    if fmt == "json":
        sys.stdout.write(s.model_dump_json(indent=2) + "\n")
        return
    from ..report.tables import count

    out.print(f"{spec}: ok ({s.name}, {count(len(s.layers), 'layer')}, "
              f"{count(infer(s).params, 'parameter')})")


@click.command()
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of a validated spec: what `cnnspec check
    --format json` prints and a run folder's spec.json holds, for other tools."""
    import json

    from ..ir import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--depth", type=click.IntRange(min=0), help="Fold blocks: show rows nested at most "
              "this deep (0: top-level layers only); totals are unchanged.")
@click.option("--wide", is_flag=True, help=WIDE_HELP)
def summary(spec: str, fmt: str, depth: int | None, wide: bool) -> None:
    """Per-layer output shapes, parameters and MACs of SPEC, computed without building it."""
    from .. import load, summarize
    from ..compiler import source_warnings
    from ..report.render import render

    s = load(spec)
    if s.transfer is not None and s.transfer.named is not None:
        from ..compiler import check as check_spec

        check_spec(spec)  # an unknown name or tag: at its line, before the table
    render(summarize(s, depth), fmt, out, wide)
    for warning in source_warnings(s):  # named weights: where the spec's images differ
        err.print(warning, highlight=False, markup=False, soft_wrap=True)


@click.command()
@click.argument("spec_a", type=click.Path(dir_okay=False))
@click.argument("spec_b", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--changed-only", is_flag=True, help="Show only changed, added and removed layers.")
@click.option("--wide", is_flag=True, help=WIDE_HELP)
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw the changed layers' "
              "parameters and MACs, A beside B, as a PNG.")
def diff(spec_a: str, spec_b: str, fmt: str, changed_only: bool, wide: bool,
         plot: str | None) -> None:
    """Parameters and MACs of SPEC_A vs SPEC_B, layer by layer, aligned by structure."""
    from .. import load
    from ..report.diff import diff as diff_specs
    from ..report.render import render_diff

    if plot is not None:
        from ..report.pictures import picture_path

        picture_path(plot)  # before any work: a bad name fails first
    d = diff_specs(load(spec_a), load(spec_b))
    render_diff(d, fmt, out, changed_only, wide)
    if plot is not None:
        from ..report.pictures import diff_plot

        err.print(f"plot: {diff_plot(d, plot)}", markup=False)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="net.svg, net.png (need Graphviz), net.dot or net.mmd (Mermaid).")
def graph(spec: str, output: str) -> None:
    """Draw SPEC: one box per layer with its output shape, branches side by side."""
    from .. import load
    from ..report.graph import write_graph

    write_graph(infer(load(spec)), output)
    err.print(f"wrote {output}", markup=False)


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
def fmt(specs: tuple[str, ...], check: bool) -> None:
    """Rewrite SPECS in the canonical layout (comments kept); idempotent."""
    from ..language.fmt import format_file

    unformatted = []
    for spec in specs:
        if format_file(spec, write=not check):
            unformatted.append(spec)
            err.print(f"{'would reformat' if check else 'reformatted'} {spec}", markup=False)
    if check and unformatted:
        sys.exit(1)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, not stdout.")
def emit(spec: str, output: str | None) -> None:
    """Print SPEC as readable PyTorch source: an nn.Sequential class you can paste and run."""
    from .. import load
    from ..emit import emit as emit_source

    source = emit_source(infer(load(spec)))
    if output is not None:
        from pathlib import Path

        from ..files import write_text

        if not output or Path(output).is_dir():
            raise click.UsageError(f"-o: give a file to write, not {output!r}")
        if Path(output).exists() and Path(output).resolve() == Path(spec).resolve():
            raise click.UsageError(f"-o {output} is the spec being read; write the PyTorch "
                                   "source to another file (e.g. model.py)")
        write_text(Path(output), source)
    else:
        sys.stdout.write(source)


def _template_names(ctx, param, incomplete: str) -> list[str]:
    from ..language.templates import templates

    return [t for t in templates() if t.startswith(incomplete)]


@click.command()
@click.argument("name", required=False)
@click.option("--from", "template", default="lenet5", show_default=True,
              shell_complete=_template_names,
              help="The shipped spec to start from: lenet5, alexnet, vgg16, resnet18, ... "
              "(cnnspec new --list shows them all).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write "
              "(default NAME.cnn).")
@click.option("--list", "list_", is_flag=True, help="List the shipped specs and stop.")
@click.option("--pretrained", is_flag=True, help="Add a transfer: section: torchvision's "
              "ImageNet weights of the model, frozen up to the last stage but one, a new head "
              "for your classes.")
@click.option("--data", type=click.Path(), help="Add train: data DIR (an image folder), so "
              "that cnnspec compile NAME.cnn --train trains on it.")
def new(name: str | None, template: str, output: str | None, list_: bool, pretrained: bool,
        data: str | None) -> None:
    """Write NAME.cnn, a starter spec copied from a shipped one (never overwrites)."""
    from ..language.templates import new_spec, templates

    if list_:
        out.print("\n".join(templates()))
        return
    if name is None:
        raise click.UsageError("give the new network's NAME, e.g. cnnspec new MyNet --from vgg16")
    path, extra = new_spec(name, template, output, pretrained, data)
    also = f" (and {', '.join(map(str, extra))}, which it includes)" if extra else ""
    out.print(f"wrote {path}{also} from {template}; next: cnnspec check {path}, cnnspec "
              f"summary {path}, cnnspec compile {path} --train", markup=False)


SPEC = (check, schema, summary, diff, graph, fmt, emit, new)
