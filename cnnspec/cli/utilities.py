"""The utility commands: ``data`` (an image folder's report), ``cache`` (the decoded-image
cache), ``fetch`` (named weights, ahead of time) and ``completion`` (shell completion
scripts); :mod:`cnnspec.cli` adds them to the ``cnnspec`` group."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..consoles import err, out
from .common import WIDE_HELP


@click.command()
@click.argument("folder", type=click.Path())
@click.option("--min-classes", default=0, type=click.IntRange(min=0), help="e.g. 3 (the course).")
@click.option("--min-per-class", default=0, type=click.IntRange(min=0), help="e.g. 250.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--wide", is_flag=True, help=WIDE_HELP)
def data(folder: str, min_classes: int, min_per_class: int, fmt: str, wide: bool) -> None:
    """Report an image folder: classes, counts, sizes, modes, unreadable files, duplicates."""
    import json

    from ..data.report import data_report
    from ..report.results import render_data_report

    r = data_report(folder, min_classes, min_per_class)
    if fmt == "json":
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
    else:
        render_data_report(r, out, min_classes, min_per_class, wide)
    if not r["meets_minimum"]:
        sys.exit(1)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL. Add to ~/.bashrc: eval "$(cnnspec
    completion bash)"; ~/.zshrc: eval "$(cnnspec completion zsh)"; fish: cnnspec completion
    fish > ~/.config/fish/completions/cnnspec.fish."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    # the root command is the cnnspec group (found through the context: this module does
    # not import the package that registers it)
    root = ctx.find_root().command
    sys.stdout.write(cls(root, {}, "cnnspec", "_CNNSPEC_COMPLETE").source() + "\n")


@click.command()
@click.option("--clear", is_flag=True, help="Remove every decoded-image cache entry.")
def cache(clear: bool) -> None:
    """Where decoded images are cached (CNNSPEC_CACHE_DIR), and how much; --clear empties it."""
    from ..data.cache import cache_info, clear_cache

    info = clear_cache() if clear else cache_info()
    verb = "removed" if clear else "holds"
    out.print(f"decoded-image cache {info['folder']} {verb} {info['entries']} entr"
              f"{'y' if info['entries'] == 1 else 'ies'}, {info['bytes'] / 2**20:,.1f} MiB",
              highlight=False, markup=False)


@click.command()
@click.argument("library", required=False)
@click.argument("model", required=False)
@click.argument("tag", required=False)
@click.option("--list", "show", is_flag=True, help="List the named weights the shipped specs "
              "mirror, with parameters, GMACs and ImageNet-1K acc@1 from torchvision's registry.")
@click.option("--offline", is_flag=True, help="Open no connection (as CNNSPEC_OFFLINE=1): only "
              "check the downloaded file.")
def fetch(library: str | None, model: str | None, tag: str | None, show: bool,
          offline: bool) -> None:
    """Download named weights ahead of time (on a cluster's login node, say): `cnnspec fetch
    torchvision resnet50 [TAG]` puts the file where torchvision keeps it
    ($TORCH_HOME/hub/checkpoints) and checks its SHA-256; a spec's `transfer: from
    torchvision resnet50` then uses it without a connection."""
    from .. import hub

    if show:
        from importlib import resources

        from ..report.results import render_weights_list

        render_weights_list(hub.listing(Path(str(resources.files("cnnspec.specs")))), out)
        return
    if library is None or model is None:
        raise click.UsageError("give LIBRARY MODEL [TAG] (torchvision resnet50), or --list")
    named = hub.resolve(library, model, tag)
    path, digest = hub.fetch(named, offline_only=offline or None,
                             say=lambda m: err.print(m, highlight=False, markup=False))
    out.print(f"{named.name}: {path} (SHA-256 {digest})", highlight=False, markup=False,
              soft_wrap=True)


UTILITIES = (data, completion, cache, fetch)
