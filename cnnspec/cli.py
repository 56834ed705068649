"""The ``cnnspec`` command: thin wrappers over the library verbs.

One place (:func:`main`) turns user errors into a message on stderr and exit status 1;
a user never sees a traceback for a mistake in a spec, a data folder or a command line.
"""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console

from .errors import CnnSpecError
from .report.render import FORMATS

# In a pipe, rich would wrap tables at 80 columns; a wide page keeps each row on one line.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnnspec")
def cli() -> None:
    """Describe, check, measure, train and export convolutional networks written as .cnn specs."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def check(spec: str) -> None:
    """Parse and validate SPEC; report every mistake with file:line:col."""
    from . import load

    s = load(spec)
    out.print(f"{spec}: ok ({s.name}, {len(s.layers)} layers, {s.shaped.params:,} parameters)")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def summary(spec: str, fmt: str) -> None:
    """Per-layer output shapes, parameters and MACs of SPEC, computed without building it."""
    from . import load, summarize
    from .report.render import render

    render(summarize(load(spec)), fmt, out)


@cli.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), help="Export to this ONNX file.")
@click.option("--train", "do_train", is_flag=True, help="Train, then write a run folder.")
@click.option("--data", type=click.Path(), help="Image folder DIR/<class>/<image> (default: "
              "the spec's train: data, else the embedded digits).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train: epochs.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder "
              "(default runs/<network>).")
@click.option("--device", help="cpu, cuda or cuda:N (default: cuda where available).")
def compile_(spec: str, onnx_path: str | None, do_train: bool, data: str | None,
             epochs: int | None, out_dir: str | None, device: str | None) -> None:
    """Build SPEC into a PyTorch module, print its summary, and optionally export or train it."""
    from . import load, summarize
    from .report.render import render

    s = load(spec)
    render(summarize(s), "table", out)
    if onnx_path:
        from .export import export_onnx

        out.print(str(export_onnx(s.build(), s, onnx_path)))
    if do_train:
        from .trainer import train

        t0 = time.perf_counter()
        run = train(s, data=data, out=out_dir, epochs=epochs, device=device, console=err)
        final = run.final
        out.print(f"val accuracy {final['val_accuracy']:.2%} (val loss {final['val_loss']:.4f}) "
                  f"after {final['epoch']} epochs; training took {run.seconds:.1f} s, "
                  f"{time.perf_counter() - t0:.1f} s with data and export")
        if run.export is not None:
            out.print(str(run.export))
        out.print(f"run folder: {run.out}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into exit status 1 without a traceback."""
    try:
        rc = cli.main(args=argv, prog_name="cnnspec", standalone_mode=False)
    except CnnSpecError as exc:
        err.print(exc.render(), markup=False, highlight=False)
        sys.exit(1)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:  # a full disk, a read-only folder: say which file, keep no traceback
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    if isinstance(rc, int) and rc:
        sys.exit(rc)


if __name__ == "__main__":
    main()
