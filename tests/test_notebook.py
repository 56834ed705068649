"""cnnspec in Jupyter, on a real kernel (nbclient + ipykernel): a summary displays as an HTML
table and prints as its text table, and training draws its progress bar as an output
widget (rich's Jupyter support, with ipywidgets) beside the epoch lines."""

from __future__ import annotations

import json
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from conftest import SPECS


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernel spec for this very interpreter (not whatever `python3` kernel the machine
    has registered), found through JUPYTER_PATH."""
    folder = tmp_path / "jupyter" / "kernels" / "cnnspec-test"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cnnspec test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "cnnspec-test"


def test_summary_and_training_in_a_notebook(tmp_path, kernel):
    spec = SPECS / "lenet5.cnn"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in (
        f"import cnnspec\nspec = cnnspec.load({str(spec)!r})\ncnnspec.summarize(spec)",
        "print(cnnspec.summarize(spec))",
        f"run = cnnspec.train(spec, out={str(tmp_path / 'run')!r}, epochs=1, export=False)",
    )]
    nbclient.NotebookClient(nb, timeout=600, kernel_name=kernel,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown, printed, trained = (c.outputs for c in nb.cells)
    # 1. the value of a cell: an HTML table, one row per layer
    html = shown[0]["data"]["text/html"]
    assert html.startswith("<table>") and html.count("<tr>") == 1 + 8  # header + 8 layers
    # 2. print(): the text table on stdout, not displayed piecemeal by rich
    assert [o["output_type"] for o in printed] == ["stream"]
    text = printed[0]["text"]
    assert "| C1    | conv" in text and "Total params: 61,706" in text
    # 3. training: the progress bar is an ipywidgets Output widget, then the epoch line
    kinds = [next(iter(o.get("data", {"stream": 0}))) if o["output_type"] == "display_data"
             else o["output_type"] for o in trained]
    widgets = [o for o in trained if "application/vnd.jupyter.widget-view+json"
               in o.get("data", {})]
    assert len(widgets) == 1, json.dumps(kinds)
    lines = "".join(o.get("data", {}).get("text/plain", "") for o in trained)
    assert "epoch 1: train loss" in lines
    assert not [o for o in trained if o["output_type"] == "error"]
    assert "ipywidgets" not in json.dumps(trained)  # no "install ipywidgets" warning
