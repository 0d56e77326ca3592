"""pyproject's ranges hold the lock; Binder installs what the Makefile installs, in its order;
every notebook's first cell installs the library when (and only when) it is missing."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ..conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK = {canonicalize_name(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)}
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("spec", PYPROJECT["dependencies"] + [d for ds in PYPROJECT["optional-dependencies"].values()
                                                              for d in ds])
def test_every_dependency_range_holds_its_pin(spec):
    req = Requirement(spec)
    name = canonicalize_name(req.name)
    assert name in LOCK, f"{req.name} is a dependency but not pinned in requirements.txt"
    assert req.specifier.contains(LOCK[name], prereleases=True), f"{req.name}=={LOCK[name]} is outside {spec}"


def test_python_versions_agree():
    requires = SpecifierSet(PYPROJECT["requires-python"])
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-") and requires.contains(runtime.removeprefix("python-") + ".0")
    assert not requires.contains("3.10.0"), "the lock needs Python 3.11"


def test_binder_installs_in_the_makefiles_order():
    post = (REPO / "binder" / "postBuild").read_text()
    make = (REPO / "Makefile").read_text()
    for line in ("\"$(grep -E '^torch==' requirements.txt)\"", "--no-build-isolation -r requirements.txt"):
        assert line.replace("$(", "$$(") in make or line in make, line
        assert line in post, line
    assert post.index("^torch==") < post.index("--no-build-isolation")


def _install_cell(path: Path) -> dict:
    return json.loads(path.read_text())["cells"][0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_cell_installs_the_library_from_the_configured_repository(path):
    cell = _install_cell(path)
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert cell["cell_type"] == "code" and "remove-cell" in cell["metadata"]["tags"]
    assert f"git+{url}" in "".join(cell["source"]), "the install URL must be _config.yml's repository.url"
    assert "".join(cell["source"]) == "".join(_install_cell(NOTEBOOKS[0])["source"]), "one install cell for all"


@pytest.mark.parametrize("present", [True, False])
def test_the_install_cell_runs_pip_only_when_the_library_is_missing(present, monkeypatch):
    import importlib.util

    from IPython.core.inputtransformer2 import TransformerManager

    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append((name, line))

    code = TransformerManager().transform_cell("".join(_install_cell(NOTEBOOKS[0])["source"]))
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "moderndl" and not present else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    exec(code, {"get_ipython": lambda: Shell()})  # noqa: S102 - the notebook's own cell
    if present:
        assert calls == []
    else:
        assert len(calls) == 1 and calls[0][0] == "pip" and calls[0][1].startswith("install")
