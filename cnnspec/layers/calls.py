"""One ``torch.nn`` layer as data (no torch import until a module is made)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModuleCall:
    """One ``torch.nn`` layer as data: its class name and arguments. :func:`cnnspec.builder.build` makes
    the module from it and :mod:`cnnspec.emit` writes it as source, so both always agree."""

    cls: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def make(self) -> nn.Module:
        from torch import nn

        return getattr(nn, self.cls)(*self.args, **self.kwargs)

    def source(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"nn.{self.cls}({', '.join(parts)})"
