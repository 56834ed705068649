"""The ``cnnspec`` command: thin wrappers over the library verbs.

One place (:func:`main`) turns user errors into a message on stderr and exit status 1;
a user never sees a traceback for a mistake in a spec, a data folder or a command line.
The commands live in one module per group: :mod:`.spec` (check, schema, summary, diff,
graph, fmt, emit, new), :mod:`.training` (compile), :mod:`.inference` (evaluate, predict),
:mod:`.insight` (features, gradcam, probe, lr-find) and :mod:`.utilities` (data,
completion, cache).
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from ..consoles import err, out
from ..errors import CnnSpecError
from .common import _error
from .inference import INFERENCE
from .insight import INSIGHT
from .spec import SPEC
from .training import TRAINING
from .utilities import UTILITIES

__all__ = ["cli", "err", "main", "out"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnnspec")
@click.option("--debug", is_flag=True, help="Show Python tracebacks (for a bug report); also "
              "CNNSPEC_DEBUG=1.")
def cli(debug: bool) -> None:
    """Describe, check, measure, train and export convolutional networks written as .cnn specs."""


for _command in (*SPEC, *INFERENCE, *UTILITIES, *TRAINING, *INSIGHT):
    cli.add_command(_command)


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
