"""The tutorial notebooks run top to bottom on the demo data, and are kept without outputs.

Each notebook is executed with ``nbclient`` in a kernel started from *this* interpreter
(``sys.executable -m ipykernel_launcher``, through a kernelspec written to a temporary folder,
so a ``python3`` kernel installed elsewhere on the machine cannot be picked up instead), in a
temporary working directory (its ``runs/`` lands there), with a time limit per cell. A failing
cell fails the test with that cell's source and traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = [
    "01_data_audit_and_splits.ipynb",
    "02_transfer_learning.ipynb",
    "03_multilabel_thresholds.ipynb",
    "04_semi_supervised.ipynb",
]
CELL_TIMEOUT = 600  # seconds per cell; the slowest cell (training) takes under a minute
KERNEL_NAME = "keras-species-test"


def _kernel_manager(tmp_path: Path):
    """A KernelManager whose kernel runs in this interpreter (the test's venv)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras-species tests",
        "language": "python",
        "env": {"TF_CPP_MIN_LOG_LEVEL": "2"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)


def _failing_cell(nb) -> str:
    """Index and first line of the first cell whose output is an error."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.splitlines()[0] if cell.source else ""
                return f"cell {i} ({first!r}): {out.get('ename')}: {out.get('evalue')}"
    return "unknown cell"


@pytest.mark.slow  # the four take about 3-4 minutes together on a 2-core CPU
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    path = NOTEBOOK_DIR / name
    assert path.is_file(), f"{path} is missing"
    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(
        nb,
        km=_kernel_manager(tmp_path),
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(work)}},
        allow_errors=False,
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        executed = tmp_path / f"executed_{name}"
        nbformat.write(nb, executed)
        pytest.fail(f"{name} failed at {_failing_cell(nb)} (executed copy: {executed})\n{err}",
                    pytrace=False)
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.1f} s")
    # the notebooks write their outputs under runs/ of the working directory, nowhere else
    assert (work / "runs").is_dir(), f"{name} wrote no runs/ folder in its working directory"


def test_every_notebook_is_listed() -> None:
    found = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS), (
        f"notebooks/ holds {found}; add new notebooks to NOTEBOOKS in {Path(__file__).name}"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_no_outputs(name: str) -> None:
    """Notebooks are committed clean: no outputs, no execution counts (they run in CI instead)."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{name}: cells {dirty} carry outputs or execution counts; clear them before committing "
        f"(jupyter nbconvert --clear-output --inplace notebooks/{name})"
    )
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{name}: kernel is not python3"


def test_notebooks_use_no_absolute_paths() -> None:
    """A notebook must run from any checkout: no paths of the machine it was written on."""
    for name in NOTEBOOKS:
        text = (NOTEBOOK_DIR / name).read_text(encoding="utf-8")
        for marker in ("/work/", "/home/", "/tmp/", os.path.expanduser("~") + "/"):
            assert marker not in text, f"{name} contains the absolute path fragment {marker!r}"


def test_the_shared_data_paths_the_notebooks_name_are_beside_the_checkout() -> None:
    """Every ``shared/data`` path a notebook names is written from ``notebooks/`` (where a
    notebook runs): ``../../shared/data/...``. 03's introduction still said ``../shared/...``,
    which lies inside the checkout, after its code cells had been corrected."""
    import re

    for name in NOTEBOOKS:
        text = (NOTEBOOK_DIR / name).read_text(encoding="utf-8")
        for found in re.findall(r"((?:\.\./)*)shared/data/", text):
            assert found == "../../", f"{name} names {found}shared/data/: from notebooks/ it is ../../shared/data/"
        shared = NOTEBOOK_DIR.parents[1] / "shared" / "data"
        for rel in re.findall(r"\.\./\.\./shared/data/([\w./-]+)", text):
            if shared.is_dir():  # the checkout's neighbour (absent on some machines)
                assert (shared / rel.rstrip(".")).exists(), f"{name} names ../../shared/data/{rel}, which does not exist"


def test_notebook_01_runs_on_a_multi_label_csv(tmp_path: Path) -> None:
    """01's settings take "a CSV": it runs on a multi-label one (its first rows indexed class
    names by a multi-hot row, its sample grid took flat indices of the label matrix for images,
    and its share column divided by the tags, not the images)."""
    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    rows = ["path,labels"]
    rng = np.random.default_rng(0)
    for i in range(40):
        tags = ["cod", "eel", "cod;eel", "ray;cod", "eel;ray"][i % 5]
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(data / f"{i}.png")
        rows.append(f"{i}.png,{tags}")
    (data / "tags.csv").write_text("\n".join(rows) + "\n")
    nb = nbformat.read(NOTEBOOK_DIR / "01_data_audit_and_splits.ipynb", as_version=4)
    settings = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("from pathlib")
                    and 'DATA = "demo"' in c.source)
    settings.source = settings.source.replace('DATA = "demo"', f"DATA = {str(data / 'tags.csv')!r}")
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(work)}}, allow_errors=False)
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"01 on a multi-label CSV failed at {_failing_cell(nb)}\n{err}", pytrace=False)
    shares = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []))
    assert "| cod | 24 | 60.0% |" in shares, shares[:600]  # 24 of the 40 images carry cod
