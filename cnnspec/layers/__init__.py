"""Layer kinds as data, each declared once and read by every stage that needs it (issue 16).

Every module of this package that defines ``KIND`` (a :class:`~cnnspec.layers.base.Kind`)
is a layer kind; they are found here, so a new kind is one file (its grammar rule included:
``Kind.grammar``). The IR's ``Layer`` union, the front end,
the checks, shapes and counts, the builder, the summary and ``emit`` all look kinds up in
the tables below. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Kind


def _discover() -> list[Kind]:
    kinds = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "KIND", None), Kind):
            kinds.append(module.KIND)
    return kinds


KINDS: tuple[Kind, ...] = tuple(_discover())
"""Every layer kind, by module name."""
BY_KIND: dict[str, Kind] = {w: k for k in KINDS for w in k.words}
"""IR ``kind`` value (``conv``, ``maxpool``, ...) -> its Kind."""
BY_RULE: dict[str, Kind] = {r: k for k in KINDS for r in k.rules}
"""Grammar rule (``conv``, ``transition``, ``activation_layer``, ...) -> its Kind."""
BY_WORD: dict[str, Kind] = {(k.word or r): k for k in KINDS for r in k.rules}
"""A raw statement's word (``conv``, ``transition``, ``activation``, ...) -> its Kind."""
