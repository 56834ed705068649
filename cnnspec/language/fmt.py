"""``cnnspec fmt``: the canonical layout of a spec, comments kept.

The layout works on tokens, so numbers, words and their order stay exactly as written:
four spaces per block level, one space between words, none before ``,`` ``:`` ``)`` or
after ``(``, ``name=value`` without spaces in block calls, two spaces before a trailing
comment (trailing comments of consecutive lines in one block are aligned), at most one
blank line in a row (none at the start or end of a block), and one
newline at the end. Formatting is idempotent, and the formatted text parses to the same
spec (tests check both for every shipped spec).
"""

from __future__ import annotations

from .lark_parser import _parser
from .parser import parse

INDENT = "    "


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one line; a '#' inside a quoted path does not start a comment."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i], line[i:].rstrip()
    return line, ""


def _join(tokens) -> str:
    out = ""
    prev = prev_type = None
    for tok in tokens:
        text = str(tok)
        if prev is None:
            out = text
        elif text in (",", ":", ")") or prev in ("(",) or text == "(" and (prev_type == "NAME" or prev.isidentifier()) or text == "=" or prev == "=":
            out += text
        else:
            out += " " + text
        prev, prev_type = text, tok.type
    return out


def format_text(text: str, file: str = "<string>") -> str:
    """The canonical layout of spec text.

    Raises:
        SpecError: the text does not parse (nothing is formatted then).
    """
    parse(text, file)  # never lay out text that is not a spec
    lexer = _parser()
    # lines as the parser counts them: at "\n" only (splitlines() would also break at
    # \x0b, \x0c, \x1c-\x1e, \x85, \u2028 inside a comment and turn the rest into code)
    lines = text.expandtabs(4).replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    levels: list[int] = [0]  # indentation widths of the open blocks
    code_level: list[int | None] = []
    for line in lines:
        code, _ = _split_comment(line)
        if not code.strip():
            code_level.append(None)
            continue
        width = len(code) - len(code.lstrip())
        while width < levels[-1]:
            levels.pop()
        if width > levels[-1]:
            levels.append(width)
        code_level.append(len(levels) - 1)

    rows: list[tuple[str, str, int | None]] = []  # (code, trailing comment, level of code)
    for i, line in enumerate(lines):
        code, comment = _split_comment(line)
        level = code_level[i]
        if level is None:
            # a comment line sits at the level of the next line of code
            level = next((lv for lv in code_level[i + 1:] if lv is not None), 0)
            rows.append((INDENT * level + comment if comment else "", "", None))
            continue
        tokens = [t for t in lexer.lex(code.strip()) if t.type not in ("_NL", "COMMENT")]
        rows.append((INDENT * level + _join(tokens), comment, level))
    return _tidy_blank_lines(_align_comments(rows))


def _align_comments(rows) -> list[str]:
    """Trailing comments of consecutive code lines at one level start in one column."""
    out, i = [], 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and rows[i][2] is not None and rows[j][2] == rows[i][2]:
            j += 1
        group = rows[i:j]
        width = max(len(code) for code, comment, _ in group if comment) if any(
            comment for _, comment, _ in group) else 0
        out += [(code.ljust(width) + "  " + comment) if comment else code for code, comment, _ in group]
        i = j
    return out


def _tidy_blank_lines(out: list[str]) -> str:
    tidy: list[str] = []
    for i, line in enumerate(out):
        if line == "":
            nxt = next((x for x in out[i + 1:] if x != ""), None)
            prev = tidy[-1] if tidy else None
            if prev is None or prev == "" or nxt is None:
                continue
            if prev.rstrip().endswith(":") and not prev.lstrip().startswith("#"):
                continue  # no blank line right after a block opens
            indent_next = len(nxt) - len(nxt.lstrip())
            indent_prev = len(prev) - len(prev.lstrip())
            if indent_next > indent_prev:
                continue
        tidy.append(line)
    return "\n".join(tidy) + "\n"


def format_file(path, write: bool = True) -> bool:
    """Whether the spec at ``path`` is not in the canonical layout; with ``write``, it is
    rewritten in it (atomically).

    Raises:
        SpecError: the file cannot be read as a spec (a FIFO, a device, too large) or does
            not parse; nothing is written then.
    """
    from pathlib import Path

    from ..files import write_text
    from .loader import read_spec_text

    text = read_spec_text(Path(path))  # never a FIFO or /dev/zero
    new = format_text(text, str(path))
    if new != text and write:
        write_text(Path(path), new)
    return new != text
