"""``cnnspec graph``: the network as a picture, one box per layer with its output shape.

The graph is computed as data (nodes and edges) and written as Mermaid text (``.mmd``) or
Graphviz DOT (``.dot``); ``.svg`` and ``.png`` are rendered from the DOT text by Graphviz's
``dot`` program through the ``graphviz`` package. Concat branches sit side by side and
join in a concat node; a residual's body and shortcut join in an add node.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from ..shapes import LayerInfo, ShapedSpec, fmt_shape
from .summary import describe


@dataclass
class Graph:
    nodes: dict[str, str] = field(default_factory=dict)  # id -> label (lines joined by \n)
    edges: list[tuple[str, str]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # id -> 'layer' | 'join' | 'io'

    def node(self, label: str, kind: str = "layer") -> str:
        nid = f"n{len(self.nodes)}"
        self.nodes[nid] = label
        self.kinds[nid] = kind
        return nid


def _chain(g: Graph, infos, src: str) -> str:
    """Add a sequence of layers after node ``src``; return the last node."""
    for info in infos:
        src = _layer(g, info, src)
    return src


def _layer(g: Graph, info: LayerInfo, src: str) -> str:
    kind = info.layer.kind
    shape = fmt_shape(info.out_shape)
    if kind == "concat":
        ends = [_chain(g, branch, src) for branch in info.children]
        join = g.node(f"{info.name} concat\n{shape}", "join")
        g.edges += [(end, join) for end in ends]
        return join
    if kind == "residual":
        body = _chain(g, info.children[0], src)
        shortcut = _chain(g, info.children[1], src) if len(info.children) > 1 else src
        join = g.node(f"{info.name} add\n{shape}", "join")
        g.edges += [(body, join), (shortcut, join)]
        return join
    what, args = describe(info)
    label = f"{info.name} {what}" + (f" {args}" if args else "") + f"\n{shape}"
    nid = g.node(label)
    g.edges.append((src, nid))
    return nid


def build_graph(shaped: ShapedSpec) -> Graph:
    g = Graph()
    first = g.node(f"input\n{fmt_shape(shaped.input_shape)}", "io")
    _chain(g, shaped.layers, first)
    return g


def to_mermaid(g: Graph) -> str:
    """Mermaid flowchart text (renders on GitHub and in mermaid.live)."""
    lines = ["flowchart TB"]
    shapes = {"layer": ('["', '"]'), "join": ('(("', '"))'), "io": ('(["', '"])')}
    for nid, label in g.nodes.items():
        a, b = shapes[g.kinds[nid]]
        lines.append(f"    {nid}{a}{label.replace(chr(34), '#quot;').replace(chr(10), '<br/>')}{b}")
    lines += [f"    {a} --> {b}" for a, b in g.edges]
    return "\n".join(lines) + "\n"


def to_dot(g: Graph, name: str) -> str:
    """Graphviz DOT text."""
    style = {"layer": "shape=box, style=rounded", "join": "shape=ellipse",
             "io": "shape=box, style=\"rounded,filled\", fillcolor=lightgrey"}
    lines = [f'digraph "{name}" {{', "    rankdir=TB;", '    node [fontname="Helvetica"];']
    for nid, label in g.nodes.items():
        text = label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'    {nid} [label="{text}", {style[g.kinds[nid]]}];')
    lines += [f"    {a} -> {b};" for a, b in g.edges]
    return "\n".join(lines) + "\n}\n"


def dot_available() -> bool:
    return shutil.which("dot") is not None


INSTALL_HINT = ("Graphviz's 'dot' program renders .svg and .png: install it with "
                "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) "
                "or 'conda install graphviz'; .mmd and .dot need nothing")


def render_image(dot_text: str, fmt: str) -> bytes:
    """Render DOT text to ``svg`` or ``png`` bytes with Graphviz (``dot`` must be installed)."""
    import graphviz

    return graphviz.Source(dot_text).pipe(format=fmt)


def write_graph(shaped: ShapedSpec, output: str) -> None:
    """Draw the network to ``output``: .mmd (Mermaid) and .dot (Graphviz text) are written
    directly; .svg and .png are rendered by Graphviz's ``dot``. Writes are atomic.

    Raises:
        CnnSpecError: another suffix; or .svg/.png without Graphviz (the .dot text is then
            written beside, and the message says where).
    """
    from pathlib import Path

    from ..errors import CnnSpecError
    from ..files import atomic_write, write_text

    path = Path(output)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("svg", "png", "dot", "mmd"):
        raise CnnSpecError(f"{output}: use a .svg, .png, .dot or .mmd file name")
    data = build_graph(shaped)
    if suffix == "mmd":
        write_text(path, to_mermaid(data))
        return
    dot = to_dot(data, shaped.spec.name)
    if suffix == "dot":
        write_text(path, dot)
        return
    if not dot_available():
        write_text(path.with_suffix(".dot"), dot)
        raise CnnSpecError(f"cannot render {output}: {INSTALL_HINT}. "
                           f"Wrote the text form to {path.with_suffix('.dot')}")
    image = render_image(dot, suffix)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(image))
