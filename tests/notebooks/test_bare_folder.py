"""A notebook opened alone, as Colab or a downloaded file would: no repository around it.

The notebook is copied into an empty folder and executed there with papermill at smoke (with
fewer steps), using the installed package. Its install cell finds ``moderndl`` and does nothing; its
outputs land beside it, and its sidecar says the commit is unknown.
"""

import json
import os
import shutil

import pytest

from moderndl import ledger, run

from ..conftest import REPO

NAME = "multitask"  # a chapter whose smoke run is among the quickest

pytestmark = pytest.mark.xdist_group(NAME)


@pytest.mark.slow
def test_a_notebook_alone_in_a_folder_runs_at_smoke(tmp_path, monkeypatch):
    import papermill

    folder = tmp_path / "alone"
    folder.mkdir()
    shutil.copy(REPO / "notebooks" / f"{NAME}.ipynb", folder / f"{NAME}.ipynb")
    for var in ("MODERNDL_ROOT", "MODERNDL_METRICS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    monkeypatch.chdir(folder)
    run.ensure_kernel()
    papermill.execute_notebook(str(folder / f"{NAME}.ipynb"), str(folder / "out.ipynb"), cwd=str(folder),
                               parameters={"profile": "smoke", "steps": 20, "sweep": [0.5]},
                               kernel_name=run.KERNEL, progress_bar=False)
    sidecar = ledger.load(folder / "_build" / "metrics" / f"{NAME}.json")
    assert sidecar["commit"] == "unknown" and sidecar["profile"] == "smoke"
    # a short run (the chapter's smoke test asserts its claims): every claim is evaluated
    assert sidecar["claims"] and all(isinstance(c["holds"], bool) for c in sidecar["claims"])
    first = json.loads((folder / "out.ipynb").read_text())["cells"][0]
    assert "install" in first["metadata"]["tags"] and not any(o.get("ename") for o in first["outputs"])
    assert os.listdir(folder / "_build" / "metrics") == [f"{NAME}.json"]
