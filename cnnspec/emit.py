"""ShapedSpec -> readable PyTorch source: an ``nn.Sequential`` class a student can paste and run.

The layers are written from the same :class:`~cnnspec.builder.ModuleCall` data the builder
instantiates, and the ``Concat`` / ``Residual`` helpers are copied from :mod:`cnnspec.builder`,
so the emitted module has the compiled module's structure, ``state_dict`` keys and outputs.
"""

from __future__ import annotations

import inspect
import keyword
import re

from . import builder
from .layers.activations import ACTIVATIONS
from .shapes import ShapedSpec, fmt_shape, walk

INDENT = "    "


# Names every emitted file defines or imports; the network's class must not shadow them,
# nor the classes its layers import or define (_calls).
_TAKEN = {"Concat", "Residual", "torch", "nn", "OrderedDict", "model"}


def _calls(infos):
    """The ModuleCall of every leaf layer, nested ones included, in order."""
    return [builder.leaf(info) for _, _, info in walk(infos)
            if info.layer.kind not in ("concat", "residual")]


def _identifier(shaped: ShapedSpec) -> str:
    ident = re.sub(r"\W", "_", shaped.spec.name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = f"Net_{ident}"
    taken = _TAKEN | {call.cls for call in _calls(shaped.layers) if call.lib != "nn"}
    return f"{ident}Net" if ident in taken else ident


def _entries(infos, depth: int) -> list[str]:
    """Source lines of ``("NAME", module),`` entries for an OrderedDict, at ``depth`` indents."""
    pad = INDENT * depth
    lines = []
    for info in infos:
        kind = info.layer.kind
        comment = f"  # -> {fmt_shape(info.out_shape)}"
        if kind == "concat":
            lines.append(f'{pad}("{info.name}", Concat([{comment}')
            for branch in info.children:
                if branch:
                    lines.append(f"{pad}{INDENT}nn.Sequential(OrderedDict([")
                    lines += _entries(branch, depth + 2)
                    lines.append(f"{pad}{INDENT}])),")
                else:
                    lines.append(f"{pad}{INDENT}nn.Identity(),")
            lines.append(f"{pad}])),")
        elif kind == "residual":
            lines.append(f'{pad}("{info.name}", Residual(OrderedDict([{comment}')
            lines += _entries(info.children[0], depth + 1)
            if len(info.children) > 1:
                lines.append(f"{pad}]), shortcut=nn.Sequential(OrderedDict([")
                lines += _entries(info.children[1], depth + 1)
                lines.append(f"{pad}])))),")
            else:
                lines.append(f"{pad}]), shortcut=None)),")
        else:
            lines.append(f'{pad}("{info.name}", {builder.leaf(info).source()}),{comment}')
        act = getattr(info.layer, "activation", None)
        if act:
            lines.append(f'{pad}("{info.name}_{act}", {ACTIVATIONS[act].source()}),')
    return lines


def _preambles(infos) -> list[str]:
    """Import lines and class definitions the layers' modules need, each once, in order."""
    return list(dict.fromkeys(t for t in (call.preamble() for call in _calls(infos)) if t))


def _uses(infos, kind: str) -> bool:
    return any(info.layer.kind == kind for _, _, info in walk(infos))


def emit(shaped: ShapedSpec) -> str:
    """Python source defining the network as an ``nn.Sequential`` subclass, plus a ``__main__``
    that builds it, counts its parameters and runs one zero image (N=1, C, H, W)."""
    spec = shaped.spec
    cls = _identifier(shaped)
    c, h, w = spec.input.chw()
    out = [
        f'"""{spec.name}, written by cnnspec from {spec.file}.',
        "",
        (f"Input (N, {c}, {h}, {w}) float32 -> output (N, "
         f"{', '.join(map(str, shaped.output_shape))}); {shaped.params:,} parameters."),
        '"""',
        "",
        "from collections import OrderedDict",
        "",
        "import torch",
        "from torch import nn",
    ]
    needs = _preambles(shaped.layers)
    names: dict[str, list[str]] = {}  # torchvision's modules, one line per library
    for line in (t for t in needs if t.startswith("from ")):
        lib, name = line.removeprefix("from ").split(" import ")
        names.setdefault(lib, []).append(name)
    out += [f"from {lib} import {', '.join(sorted(names[lib]))}" for lib in sorted(names)]
    out.append("")
    for helper, kind in ((builder.Concat, "concat"), (builder.Residual, "residual")):
        if _uses(shaped.layers, kind):
            out += ["", inspect.getsource(helper).rstrip(), ""]
    for text in needs:
        if not text.startswith("from "):
            out += ["", text, ""]
    out += [
        "",
        f"class {cls}(nn.Sequential):",
        f'{INDENT}"""{spec.name} as in the spec: one child per layer, named like the spec."""',
        "",
        f"{INDENT}def __init__(self):",
        f"{INDENT * 2}super().__init__(OrderedDict([",
        *_entries(shaped.layers, 3),
        f"{INDENT * 2}]))",
        "",
        "",
        'if __name__ == "__main__":',
        f"{INDENT}model = {cls}().eval()",
        f'{INDENT}print(sum(p.numel() for p in model.parameters()), "parameters")',
        f"{INDENT}with torch.no_grad():",
        f"{INDENT * 2}print(model(torch.zeros(1, {c}, {h}, {w})).shape)",
    ]
    return "\n".join(out) + "\n"


def emitted_class(shaped: ShapedSpec) -> str:
    """The name of the class :func:`emit` defines."""
    return _identifier(shaped)

