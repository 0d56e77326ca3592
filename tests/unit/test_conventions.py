"""DESIGN.md's notebook conventions: no committed outputs, a parameters cell, a toc that matches."""

import json
from pathlib import Path

import pytest
import yaml

from ..conftest import FIXTURES, REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + [FIXTURES / "tiny.ipynb"]
SKELETON = ("Overview", "Prerequisites", "Parameters", "Setup", "Claims", "Summary", "References")


def _cells(path: Path):
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_outputs_committed(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: a code cell has committed outputs"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_with_profile_and_seed(path):
    tagged = [c for c in _cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    source = "".join(tagged[0]["source"])
    assert "profile = " in source and "seed = " in source, f"{path.name}: parameters need profile and seed"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name == "notebooks"], ids=lambda p: p.stem)
def test_chapter_follows_the_skeleton(path):
    headings = [line.lstrip("# ").strip() for c in _cells(path) if c["cell_type"] == "markdown"
                for line in "".join(c["source"]).splitlines() if line.startswith("## ")]
    positions = [next((i for i, h in enumerate(headings) if h.startswith(s)), None) for s in SKELETON]
    missing = [s for s, i in zip(SKELETON, positions, strict=True) if i is None]
    assert not missing, f"{path.name}: missing sections {missing}"
    assert positions == sorted(positions), f"{path.name}: sections out of order: {headings}"


def test_toc_lists_only_existing_notebooks_and_pages():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [e["file"] for p in toc["parts"] for e in (p.get("chapters") or [])]
    for f in files:
        assert (REPO / f"{f}.md").is_file() or (REPO / f"{f}.ipynb").is_file(), f"_toc.yml lists missing {f}"
