"""Parameter expressions of blocks: ``{4 * width}``, ``{c // 2}``, ``{0.2 * i / 16}``, worked
out safely (Python's ``ast`` of the expression, only numbers, parameter names, + - * / //
% and brackets; nothing is executed). :mod:`cnnspec.language.expand` reports the errors at their
``{...}``."""

from __future__ import annotations

import ast
import operator

from ..errors import did_you_mean

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Div: operator.truediv, ast.Mod: operator.mod}


class _EvalError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint


def evaluate(expr: str, env: dict[str, int | float]) -> int | float:
    """Evaluate a parameter expression: numbers, parameter names, + - * / // % and brackets.

    >>> evaluate("4 * width", {"width": 64}), evaluate("c // 2", {"c": 7})
    (256, 3)
    """
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a NUL byte
        raise _EvalError(f"'{{{expr}}}' is not an expression",
                         "write a parameter name or arithmetic such as {2 * filters}") from None

    def ev(node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                hint = did_you_mean(node.id, env) or (
                    f"the parameters here are: {', '.join(env)}" if env else
                    "parameters exist only inside a block; define one with block NAME(param):")
                raise _EvalError(f"unknown parameter '{node.id}'", hint)
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Div, ast.Mod)) and right == 0:
                used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & set(env))
                raise _EvalError(f"'{{{expr}}}' divides by zero", (
                    "here " + ", ".join(f"{n} = {env[n]}" for n in used)) if used else None)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        raise _EvalError(f"'{{{expr}}}' uses something other than numbers, parameters and "
                         "+ - * / // %")

    try:
        value = ev(tree.body)
    except (OverflowError, RecursionError, MemoryError):
        raise _EvalError(f"'{{{expr}}}' is too large or too deeply nested to work out") from None
    if not abs(value) <= 10**100:  # also inf and nan
        raise _EvalError(f"'{{{expr}}}' is too large to be a number of a spec (over 10**100)")
    return int(value) if isinstance(value, float) and value.is_integer() else value
