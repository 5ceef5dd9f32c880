"""Every notebook runs headless against the smoke results, so none can rot. Notebooks are
stored without outputs."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_smoke_results(path, smoke_copy, monkeypatch):
    monkeypatch.setenv("SUITE_ROOT", str(smoke_copy))
    monkeypatch.setenv("SUITE_PROFILE", "smoke")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(smoke_copy), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(smoke_copy)}}).execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("prefix_tuning_plus" in str(o.get("data", {})) for o in outputs)
