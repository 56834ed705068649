"""``cnnspec new``: a starter spec from one of the shipped specs (they are in the wheel as
``cnnspec.specs``), renamed, with the files it includes copied beside it."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ..errors import CnnSpecError
from ..files import write_text

INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"', re.MULTILINE)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def templates() -> list[str]:
    """The shipped specs, by file name without ``.cnn`` (lenet5, alexnet, vgg16, ...)."""
    root = resources.files("cnnspec.specs")
    return sorted(p.name.removesuffix(".cnn") for p in root.iterdir() if p.name.endswith(".cnn"))


def template_text(template: str, relative: str | None = None) -> str:
    """The text of a shipped spec (or of ``relative``, a file it includes)."""
    root = resources.files("cnnspec.specs")
    target = root.joinpath(*(relative or f"{template}.cnn").split("/"))
    return target.read_text(encoding="utf-8")


def new_spec(name: str, template: str = "lenet5", out: str | Path | None = None
             ) -> tuple[Path, list[Path]]:
    """Write ``out`` (default ``<name>.cnn``): the shipped spec ``template`` with its
    ``network`` renamed to ``name``; files it includes (``include "lib/vgg.cnn"``) are
    copied beside it. Returns (the spec written, the included files written).

    Raises:
        CnnSpecError: an unknown template, a name that is not an identifier, or a file that
            exists already (nothing is overwritten).
    """
    if template not in templates():
        raise CnnSpecError(f"no shipped spec named '{template}'; choose one of "
                           f"{', '.join(templates())}")
    if not NAME.match(name):
        raise CnnSpecError(f"'{name}' cannot name a network: use letters, digits and _, "
                           "starting with a letter (e.g. MyNet)")
    path = Path(out) if out is not None else Path(f"{name}.cnn")
    text = template_text(template)
    text, n = re.subn(r"^network\s+\S+", f"network {name}", text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise CnnSpecError(f"the shipped spec {template} has no network line")  # a packaging bug
    text = f"# Started from the shipped spec {template} (cnnspec new {name} --from {template}).\n" + text
    written, includes = [], [(path.parent / rel, template_text(template, rel))
                             for rel in INCLUDE.findall(text)]
    clashes = [p for p in [path] + [p for p, body in includes if not _same(p, body)] if p.exists()]
    if clashes:
        raise CnnSpecError(f"{clashes[0]} exists already; choose another name or -o FILE "
                           "(cnnspec new never overwrites a file)")
    for p, body in includes:
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            write_text(p, body)
            written.append(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return path, written


def _same(path: Path, body: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8", errors="replace") == body
