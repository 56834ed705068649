"""The modules that moved into :mod:`cnnspec.language` (0.2): ``import cnnspec.parser``,
``from cnnspec.loader import loads`` and the other old paths keep working, and give the very
module that lives in ``cnnspec.language`` (one module object, so its classes and caches are
shared), not a copy."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = ("parser", "lark_parser", "syntax_errors", "transform", "raw", "expand", "expressions",
         "names", "validate", "loader", "fmt", "lexer", "templates")
"""``cnnspec.<name>`` -> ``cnnspec.language.<name>``."""


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``cnnspec.<moved>`` and loads it as the module ``cnnspec.language.<moved>``."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package == "cnnspec" and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"cnnspec.language.{spec.name.rpartition('.')[2]}")
        self._own_spec = module.__spec__  # importlib sets the alias's spec on it next
        return module

    def exec_module(self, module):
        module.__spec__ = self._own_spec  # already executed: keep its own spec and name


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
