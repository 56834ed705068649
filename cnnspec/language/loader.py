"""The front end as one call: text -> parse -> raw nodes -> validated, named, shaped Spec."""

from __future__ import annotations

from pathlib import Path

from .. import ir
from ..errors import SourceText, SpecError
from ..shapes import infer
from .expand import expand
from .names import assign_names
from .parser import parse
from .transform import to_raw
from .validate import validate


def loads(text: str, file: str = "<string>") -> ir.Spec:
    """Parse and validate spec text; shapes are inferred and checked too.

    Raises:
        SpecError: every independent mistake found, each with file:line:col, the
            line, a caret and a hint.
    """
    if not text.endswith("\n"):
        text += "\n"
    src = SourceText(text, file)

    def parse_file(path: Path):
        """Statements of an included file. Raises FileNotFoundError, or OSError with the
        reason (the include line reports it at its place): not a regular file (a FIFO would
        block, /dev/zero never end), larger than a spec may be, or not UTF-8."""
        if path.exists() and not path.is_file():
            raise OSError("not a regular file")
        if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
            raise OSError(f"{path.stat().st_size:,} bytes is too large for a spec "
                          f"(at most {MAX_SPEC_BYTES:,})")
        try:
            other = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise OSError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        src.add(other if other.endswith("\n") else other + "\n", str(path))
        return to_raw(parse(other, str(path)), str(path))

    statements, diagnostics = expand(to_raw(parse(text, file), file), src, parse_file)
    fields, more = validate(statements, src)
    diagnostics += more
    if not diagnostics:
        fields["layers"], diagnostics = assign_names(fields["layers"], src)
    if diagnostics:
        raise SpecError(diagnostics)
    fields["sources"] = {f: s.text for f, s in src.others.items()}
    spec = ir.Spec.model_validate(fields)
    infer(spec)  # infer shapes now, so that a loaded spec is a checked spec
    if spec.transfer is not None:
        from ..transfer import check_names, with_classes

        mistakes = check_names(spec)
        if mistakes:
            raise SpecError([src.diag(span, msg, hint) for span, msg, hint in mistakes])
        if isinstance(spec.transfer.classes, int):  # the new head, shown by summary and build
            spec = with_classes(spec, spec.transfer.classes)
            infer(spec)  # the new head's shapes are checked too
    return spec


MAX_SPEC_BYTES = 4_000_000
"""Specs are text a person writes: VGG-16 is 1 KB. Anything this large is the wrong file."""


def read_spec_text(path: str | Path) -> str:
    """The text of a spec file, read only if it is a regular file of at most
    :data:`MAX_SPEC_BYTES` (a FIFO would block, /dev/zero would never end).

    Raises:
        SpecError: missing, not a regular file, too large, or not UTF-8.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a FIFO, /dev/zero: never read it
        raise SpecError(f"{path}: not a regular file; give a .cnn spec file")
    if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: {path.stat().st_size:,} bytes is too large for a spec "
                        f"(at most {MAX_SPEC_BYTES:,}); is it the right file?")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc})") from None


def load(path: str | Path) -> ir.Spec:
    """Read and check a ``.cnn`` file (see :func:`loads`).

    Raises:
        SpecError: the file cannot be read (see :func:`read_spec_text`), or the spec has
            mistakes.
    """
    return loads(read_spec_text(path), str(Path(path)))
