"""One ``torch.nn`` layer as data (no torch import until a module is made)."""

from __future__ import annotations

import importlib
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Ref:
    """A class passed as an argument (``activation=nn.SiLU``), by its name in ``torch.nn``."""

    name: str

    def resolve(self):
        from torch import nn

        return getattr(nn, self.name)

    def __repr__(self) -> str:
        return f"nn.{self.name}"


@dataclass(frozen=True)
class ModuleCall:
    """One ``torch.nn`` layer as data: its class, where it comes from, and its arguments.
    :func:`cnnspec.builder.build` makes the module from it and :mod:`cnnspec.emit` writes it
    as source, so both always agree.

    ``lib`` is ``"nn"`` (``torch.nn``), another library's module (``"torchvision.ops"``), or
    a cnnspec layer kind's module (``"cnnspec.layers.layerscale"``) whose class emit copies
    into the written source.
    """

    cls: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    lib: str = "nn"

    def resolve(self) -> type:
        """The class (importing torch, and the library it comes from)."""
        if self.lib == "nn":
            from torch import nn

            return getattr(nn, self.cls)
        return getattr(importlib.import_module(self.lib), self.cls)

    def make(self) -> nn.Module:
        def value(v):
            return v.resolve() if isinstance(v, Ref) else v

        return self.resolve()(*map(value, self.args),
                              **{k: value(v) for k, v in self.kwargs.items()})

    def source(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        prefix = "nn." if self.lib == "nn" else ""
        return f"{prefix}{self.cls}({', '.join(parts)})"

    def preamble(self) -> str | None:
        """What the emitted source needs before it uses this call: an import line, or the
        class's own source for a cnnspec module; None for ``torch.nn``."""
        if self.lib == "nn":
            return None
        if self.lib.startswith("cnnspec."):
            return textwrap.dedent(inspect.getsource(self.resolve())).rstrip()
        return f"from {self.lib} import {self.cls}"


def made_on_first_use(**factories):
    """A module's ``__getattr__`` giving each class ``factories[name]()`` makes, made once,
    on first use: a layer kind defining its own ``nn.Module`` imports torch only when the
    module is built (``ModuleCall.resolve``), not when the kind is declared."""
    made: dict = {}

    def __getattr__(name: str):
        if name not in factories:
            raise AttributeError(name)
        if name not in made:
            made[name] = factories[name]()
        return made[name]

    return __getattr__
