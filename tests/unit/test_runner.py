"""The runner: parameter validation, the cache, failing cells, provenance. Uses the fixture."""

import json
import shutil

import nbformat
import pytest

from moderndl import run
from moderndl.run import RunError

from ..conftest import FIXTURES, REPO

TINY = FIXTURES / "tiny.ipynb"


@pytest.fixture
def tiny(book_root):
    path = book_root / "notebooks" / "tiny.ipynb"
    shutil.copy(TINY, path)
    return path


def test_unknown_notebook_lists_valid(tiny):
    with pytest.raises(RunError, match="unknown notebook 'tinyy'; valid notebooks: tiny"):
        run.locate("tinyy")


def test_unknown_parameter_is_rejected_with_valid_ones(tiny):
    with pytest.raises(RunError, match="unknown parameter.*nn; valid parameters: profile, seed, n, fail"):
        run.run("tiny", "smoke", {"nn": 3})
    with pytest.raises(RunError, match="--profile"):
        run.run("tiny", "smoke", {"profile": "full"})


def test_parameters_are_read_from_the_tagged_cell(tiny):
    assert run.parameters(tiny) == {"profile": '"auto"', "seed": "0", "n": "None", "fail": "False"}


def test_cli_values_are_yaml():
    assert run._parse_value("100") == 100
    assert run._parse_value("[ER, WS]") == ["ER", "WS"]
    assert run._parse_value("true") is True
    assert run._parse_value("/data/cifar") == "/data/cifar"


def test_cache_key_covers_notebook_library_params_profile(tiny, tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    shutil.copytree(REPO / "lib" / "moderndl", lib, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("MODERNDL_LIB", str(lib))
    base = run.cache_key(tiny, {"n": 5}, "smoke")
    assert run.cache_key(tiny, {"n": 5}, "smoke") == base
    assert run.cache_key(tiny, {"n": 6}, "smoke") != base
    assert run.cache_key(tiny, {"n": 5}, "full") != base
    (lib / "profiles.py").write_text((lib / "profiles.py").read_text() + "\n# changed\n")
    assert run.cache_key(tiny, {"n": 5}, "smoke") != base


@pytest.mark.slow
def test_run_caches_and_reruns_when_library_changes(tiny, tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    shutil.copytree(REPO / "lib" / "moderndl", lib, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("MODERNDL_LIB", str(lib))
    first = run.run("tiny", "smoke", {"n": 7}, log=lambda *_: None)
    assert first["cached"] is False
    executed, sidecar, _ = run.outputs("tiny")
    stamp = executed.stat().st_mtime_ns

    second = run.run("tiny", "smoke", {"n": 7}, log=lambda *_: None)
    assert second["cached"] is True and executed.stat().st_mtime_ns == stamp

    (lib / "seed.py").write_text((lib / "seed.py").read_text() + "\n# a change to one library file\n")
    third = run.run("tiny", "smoke", {"n": 7}, log=lambda *_: None)
    assert third["cached"] is False and executed.stat().st_mtime_ns != stamp

    data = json.loads(sidecar.read_text())
    assert data["metrics"]["mean"] is not None and data["wall_s"] > 0 and data["parameters"] == {"n": 7}
    assert [c["id"] for c in data["claims"]] == ["n_positive", "full_only"]
    nb = nbformat.read(executed, as_version=4)
    assert "provenance" in nb.cells[1].metadata["tags"]
    assert "smoke" in nb.cells[1].source and data["commit"] in nb.cells[1].source
    assert any(c.metadata.get("tags") == ["injected-parameters"] for c in nb.cells)


@pytest.mark.slow
def test_failing_cell_names_notebook_cell_exception_and_keeps_partial(tiny):
    with pytest.raises(RunError) as err:
        run.run("tiny", "smoke", {"fail": True}, log=lambda *_: None)
    message = str(err.value)
    assert "tiny: cell" in message and "ValueError: asked to fail" in message and "partial notebook kept" in message
    executed, _, keyfile = run.outputs("tiny")
    assert executed.is_file() and not keyfile.exists()
    nb = nbformat.read(executed, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_cli_exits_nonzero_with_a_clear_error(tiny, capsys):
    assert run.main(["run", "nope"]) == 1
    assert "unknown notebook 'nope'; valid notebooks: tiny" in capsys.readouterr().err
    assert run.main(["run", "tiny", "-p", "bogus", "1"]) == 1
    assert "unknown parameter(s) bogus" in capsys.readouterr().err


@pytest.mark.slow
def test_a_notebook_without_a_ledger_still_gets_a_complete_sidecar(book_root):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Bare", id="t"),
                nbformat.v4.new_code_cell('profile = "auto"\nseed = 0', id="p", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, book_root / "notebooks" / "bare.ipynb")
    data = run.run("bare", "smoke", log=lambda *_: None)
    assert data["notebook"] == "bare" and data["profile"] == "smoke" and data["claims"] == []
    assert data["parameters"] == {} and data["cached"] is False
    _, sidecar, _ = run.outputs("bare")
    assert run.ledger.load(sidecar)["wall_s"] > 0
