"""Settings as data, each declared once and read by every stage that needs it (issue 24), as
layer kinds are (:mod:`cnnspec.layers`).

Every module of this package that defines ``SETTINGS`` (a tuple of
:class:`~cnnspec.settings.base.Setting`) holds settings of the ``train:`` or ``transfer:``
section; they are found here, in the order of :data:`ORDER`. From them come:

- the grammar's section rules (:func:`grammar_text`, appended by
  :func:`cnnspec.language.lark_parser.grammar_text`);
- the transformer's methods (:data:`TRANSFORMS`, read by :mod:`cnnspec.language.transform`);
- the checks (:mod:`cnnspec.language.validate` calls each setting's ``check``);
- the IR models :class:`cnnspec.ir.TrainConfig` and :class:`cnnspec.ir.Transfer`
  (:func:`section_model`);
- the command-line overrides (:data:`OVERRIDES`: ``cnnspec compile --train``'s flags and
  :func:`cnnspec.training.settings.apply_overrides`);
- the summary's lines (:func:`summary_lines`) and docs/language.md's rows (:func:`doc_rows`,
  held equal by tests/test_settings.py).

Nothing here imports torch, click or the front end.
"""

from __future__ import annotations

import importlib
import pkgutil

from pydantic import Field, create_model, model_validator

from .base import IRField, Override, Setting

ORDER = ("train", "optimizer", "schedule", "runtime", "augment", "callbacks", "data",
         "transfer")
"""The modules in the order their settings are listed (grammar, IR fields, docs rows)."""


def _discover() -> list[Setting]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "SETTINGS", None), tuple):
            found[info.name] = module.SETTINGS
    unknown = sorted(set(found) - set(ORDER))
    names = [n for n in ORDER if n in found] + unknown  # a new module's settings go last
    return [s for n in names for s in found[n]]


SETTINGS: tuple[Setting, ...] = tuple(_discover())
"""Every setting, in :data:`ORDER`."""
SECTIONS: dict[str, tuple[Setting, ...]] = {
    sec: tuple(s for s in SETTINGS if s.section == sec) for sec in ("train", "transfer")}
BY_KEY: dict[tuple[str, str], Setting] = {
    (s.section, f.name): s for s in SETTINGS for f in s.fields}
"""(section, IR field or raw key) -> its Setting."""
TRANSFORMS: dict[str, object] = {rule: m for s in SETTINGS for rule, m in s.transform.items()}
"""Grammar rule -> its transformer method (see ``Setting.transform``)."""
OVERRIDES: dict[str, Override] = {o.name: o for s in SETTINGS for o in s.overrides}
"""Override name (``label_smoothing``; the flag ``--label-smoothing``) -> its Override."""
LABELS: dict[str, tuple[str, str | None]] = {k: v for s in SETTINGS for k, v in s.labels.items()}
"""A setting's field -> (how it reads in an error, a hint)."""


def grammar_text() -> str:
    """The sections' rules: ``train_section``, ``?train_stmt`` listing every train setting's
    statement rules, the same for ``transfer``, and each setting's own rules."""
    parts = []
    for section, stmts in SECTIONS.items():
        rules = [r for s in stmts for r in s.rules]
        parts += [f'{section}_section: "{section}" ":" _NL _INDENT {section}_stmt+ _DEDENT',
                  f"?{section}_stmt: " + "\n    | ".join(rules)]
        parts += [s.grammar.strip() for s in stmts]
    return "\n".join(parts)


def section_model(section: str, name: str, doc: str, base, extra: tuple[IRField, ...] = ()):
    """The Pydantic model of ``section`` (``train`` -> ``TrainConfig``): one field per
    :class:`IRField` of its settings, in order, and their ``model_checks`` as validators."""
    fields = {}
    for f in [f for s in SECTIONS[section] for f in s.fields] + list(extra):
        info = Field(default=f.default, description=f.doc or None, exclude=f.exclude or None,
                     repr=not f.exclude)
        fields[f.name] = (f.annotation, info)
    checks = [c for s in SECTIONS[section] for c in s.model_checks]

    def run_checks(self):
        for check in checks:
            check(self)
        return self

    validators = {"_checks": model_validator(mode="after")(run_checks)} if checks else {}
    model = create_model(name, __base__=base, __doc__=doc, __module__="cnnspec.ir",
                         __validators__=validators, **fields)
    return model


def summary_lines(section: str, cfg) -> list[str]:
    """The "Also:" lines of the summary for the section's IR ``cfg``, in setting order."""
    lines = []
    for s in SECTIONS[section]:
        line = s.summary(cfg) if s.summary is not None else None
        if line:
            lines.append(line)
    return lines


def doc_rows(section: str) -> list[tuple[str, ...]]:
    """docs/language.md's table of the section, row by row, as the settings declare it."""
    return [row for s in SECTIONS[section] for row in s.doc]
