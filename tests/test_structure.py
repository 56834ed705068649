"""The package's shape (issue 16): no import cycles between its modules, counting imports
inside functions too (a lazy import is still a dependency) but not those only for type
checkers (``if TYPE_CHECKING:``); the IR is plain data that imports no later stage."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

from cnnspec.layers import KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "cnnspec"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def import_graph() -> nx.DiGraph:
    """module -> the package modules it imports (at any depth, except type-only imports)."""
    mods = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph.add_edges_from((name, t) for t in targets if t in mods and t != name)
    return graph


def test_the_graph_is_read():
    graph = import_graph()
    assert graph.has_edge("cnnspec.language.loader", "cnnspec.language.parser")
    assert graph.has_edge("cnnspec.builder", "cnnspec.shapes")
    assert graph.number_of_nodes() > 50


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert cycles == []


def test_the_ir_imports_no_later_stage():
    """ir.py is data: it may use errors (spans), the layer kinds' declarations
    (cnnspec.layers, which import nothing else of the package but errors) and the settings'
    (cnnspec.settings, which import only those), nothing after it in the pipeline."""
    graph = import_graph()
    kinds = {m for m in graph if m.startswith("cnnspec.layers")}
    declared = {m for m in graph if m.startswith("cnnspec.settings")}  # the settings' registry
    assert set(graph.successors("cnnspec.ir")) <= {"cnnspec.errors"} | kinds | declared
    assert {t for m in kinds for t in graph.successors(m)} <= {"cnnspec.errors"} | kinds
    # the settings declare their IR models on the kinds' base: nothing later, no front end
    assert {t for m in declared for t in graph.successors(m)} <= (
        {"cnnspec.errors", "cnnspec.layers.base"} | kinds | declared)


def test_the_compiler_stages_import_nothing_above_them():
    """The front end, the IR, the layer kinds, shapes, the builder and the transfer
    learning's weights and plan import no training, data or insight module, not even inside
    a function: what those need from a run folder (a transfer source's weights file, its
    normalisation) the layer above reads through RunFolder and passes down (issue 24)."""
    graph = import_graph()
    stages = {m for m in graph if m in ("cnnspec.weights", "cnnspec.transfer", "cnnspec.shapes",
                                         "cnnspec.builder", "cnnspec.ir")
              or m.startswith(("cnnspec.layers", "cnnspec.language"))}
    above = ("cnnspec.training", "cnnspec.data", "cnnspec.insight")
    assert len(stages) > 10  # the front end and the kinds are in the graph
    upward = sorted((m, t) for m in stages for t in graph.successors(m) if t.startswith(above))
    assert upward == []


MAX_LINES = 300
ALLOWED = {  # module -> (its most lines until it is split, why); remove an entry once its
    # module is split: this table only shrinks
    "cnnspec/language/expand.py": (344, "being split (issue 24)"),
}


def test_every_module_is_at_most_300_lines():
    """The module-size guide (issue 24): a module longer than this owns more than one thing;
    split it by what it owns (helper modules of functions, not mixins across files)."""
    root = PACKAGE.parent
    lines = {str(p.relative_to(root)): p.read_text().count("\n")
             for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    over = {m: n for m, n in lines.items() if n > ALLOWED.get(m, (MAX_LINES,))[0]}
    assert over == {}  # split it (or, while another change splits it, see ALLOWED)


def test_a_copied_spec_has_the_shapes_of_its_own_layers():
    """Spec.shaped was a cached property: ``model_copy(update=...)`` returned a spec that
    still carried the original's shapes. Shapes are now computed from the spec given."""
    import cnnspec

    spec = cnnspec.loads("network T\ninput 8x8x1\nflatten\ndense 10\n")
    assert cnnspec.infer_shapes(spec).params == 650
    fewer = spec.model_copy(update={"layers": [spec.layers[0],
                                               spec.layers[1].model_copy(
                                                   update={"out_features": 2})]})
    assert cnnspec.infer_shapes(fewer).params == 130
    assert sum(p.numel() for p in cnnspec.build(fewer).parameters()) == 130


def test_the_architecture_page_names_every_module_and_only_real_ones():
    """docs/architecture.md stays true: its table lists every module of the package (the
    layer kinds as one row), and every path it names exists."""
    import re

    root = PACKAGE.parent
    page = (root / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:cnnspec|grammar)/[\w/]+\.(?:py|lark))`", page))
    # the layer kinds are the row `cnnspec/layers/<kind>.py`: a new kind is one file
    kinds = {f"cnnspec/layers/{k.model.__module__.rsplit('.', 1)[1]}.py" for k in KINDS}
    modules = {str(p.relative_to(root)) for p in PACKAGE.rglob("*.py")
               if "__pycache__" not in p.parts} - kinds
    assert "`cnnspec/layers/<kind>.py`" in page
    assert modules - named == set()  # a module the page does not mention
    assert {n for n in named if not (root / n).exists()} == set()  # a path that is not there


# The compiler's stages and reports, each with tests/test_<module>.py (the training, data
# and insight packages are tested by what they do: test_train, test_pipeline, test_runs,
# test_insight, test_distributed, ...).
MIRRORED = ["errors", "language/parser", "language/transform", "language/expand",
            "language/names", "language/validate", "language/loader", "ir", "layers",
            "shapes", "builder", "emit", "language/fmt", "language/lexer", "schedule", "transfer",
            "language/templates", "compiler", "cli", "report/summary", "report/diff",
            "report/graph", "report/results"]


def test_each_stage_has_its_test_module():
    tests = Path(__file__).parent
    for module in MIRRORED:
        assert (PACKAGE / f"{module}.py").exists() or (PACKAGE / module).is_dir(), module
        test = tests / f"test_{module.rsplit('/', 1)[-1]}.py"
        assert test.exists(), f"{test.name} is missing for cnnspec/{module}"
        # its docstring starts with the module it tests
        assert test.read_text().startswith(f'"""cnnspec/{module}'), test.name
