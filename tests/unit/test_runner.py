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
    with pytest.raises(RunError, match="unknown parameter.*nn; valid parameters: profile, seed, n, fail, data_dir"):
        run.run("tiny", "smoke", {"nn": 3})
    with pytest.raises(RunError, match="--profile"):
        run.run("tiny", "smoke", {"profile": "full"})


def test_parameters_are_read_from_the_tagged_cell(tiny):
    assert run.parameters(tiny) == {"profile": '"auto"', "seed": "0", "n": "None", "fail": "False",
                                    "data_dir": "None"}


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
    assert "tiny: code cell 4 of 5 failed with ValueError: asked to fail" in message
    assert "cell begins: if fail:" in message and "partial notebook kept" in message
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


def _lib_copy(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    shutil.copytree(REPO / "lib" / "moderndl", lib, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("MODERNDL_LIB", str(lib))
    return lib


def test_a_chapter_key_covers_its_own_package_and_the_core_only(tmp_path, monkeypatch):
    lib = _lib_copy(tmp_path, monkeypatch)
    gan, randwire = REPO / "notebooks" / "style_gan.ipynb", REPO / "notebooks" / "randwire.ipynb"
    files = {p.relative_to(lib).parts[0] for p in run.imported_files(randwire)}
    assert "randwire" in files and "profiles.py" in files and "ledger.py" in files
    assert not files & {"gan", "mac", "gpt2", "zero", "multitask"}, files
    before = run.cache_key(gan, {}, "smoke"), run.cache_key(randwire, {}, "smoke")
    changed = next(p for p in run.imported_files(gan) if p.parent.name == "gan" and p.name != "__init__.py")
    changed.write_text(changed.read_text() + "\n# a change under gan/\n")
    after = run.cache_key(gan, {}, "smoke"), run.cache_key(randwire, {}, "smoke")
    assert after[0] != before[0], "a change under gan/ must re-run the GAN chapter"
    assert after[1] == before[1], "a change under gan/ must not re-run randwire"
    (lib / "seed.py").write_text((lib / "seed.py").read_text() + "\n# core change\n")
    assert run.cache_key(randwire, {}, "smoke") != before[1], "a core change re-runs every chapter"


def test_the_key_covers_the_contents_of_a_data_folder(tiny, tmp_path):
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "dog").mkdir()
    (data / "cat" / "a.png").write_bytes(b"cat-a")
    (data / "dog" / "b.png").write_bytes(b"dog-b")
    params = {"data_dir": str(data)}
    base = run.cache_key(tiny, params, "smoke")
    assert run.cache_key(tiny, params, "smoke") == base
    (data / "cat").rename(data / "tmp")  # swap the class folders
    (data / "dog").rename(data / "cat")
    (data / "tmp").rename(data / "dog")
    swapped = run.cache_key(tiny, params, "smoke")
    assert swapped != base
    (data / "dog" / "a.png").unlink()
    assert run.cache_key(tiny, params, "smoke") not in (base, swapped)
    (data / "cat" / "b.png").write_bytes(b"dog-B")  # same name and size, new bytes
    assert len({run.cache_key(tiny, params, "smoke"), base, swapped}) == 3


def test_parameters_are_type_and_range_checked_before_the_kernel(tiny, monkeypatch):
    from types import SimpleNamespace

    table = {p: {"n": 5, "data_dir": ""} for p in ("smoke", "laptop", "full", "dry")}
    fake = SimpleNamespace(TABLE=table, RANGES={"n": (1, None)})
    monkeypatch.setattr(run.chapters, "scales", lambda name: fake if name == "tiny" else None)
    monkeypatch.setattr(run, "_execute", lambda *a, **k: pytest.fail("the kernel must not start"))
    with pytest.raises(RunError, match=r"n=1.5 is a float; it must be a int like 5"):
        run.run("tiny", "smoke", {"n": 1.5})
    with pytest.raises(RunError, match=r"n=-1 is out of range; valid: \[1, inf\]"):
        run.run("tiny", "smoke", {"n": -1})
    with pytest.raises(RunError, match=r"n='abc' is a str; it must be a int"):
        run.run("tiny", "smoke", {"n": "abc"})
    with pytest.raises(RunError, match=r"seed=-2 must be a non-negative int"):
        run.run("tiny", "smoke", {"seed": -2})


def test_an_unwritable_build_folder_is_a_one_line_error_before_work(tiny, monkeypatch):
    import os

    if os.geteuid() == 0:  # root writes through permissions; make the folder a file instead
        build = run.paths.build()
        build.mkdir(parents=True, exist_ok=True)
        (build / "executed").write_text("not a folder")
    else:
        run.paths.build().mkdir(parents=True, exist_ok=True)
        run.paths.build().chmod(0o500)
    monkeypatch.setattr(run, "_execute", lambda *a, **k: pytest.fail("no work before the check"))
    with pytest.raises(RunError, match="cannot write to .*executed"):
        run.run("tiny", "smoke", {})


@pytest.mark.slow
def test_a_failed_run_is_never_staged(tiny):
    from moderndl import stage

    with pytest.raises(RunError):
        run.run("tiny", "smoke", {"fail": True}, log=lambda *_: None)
    executed, _, _ = run.outputs("tiny")
    assert executed.is_file() and not run.complete("tiny")
    monkey_toc = {"root": "book/intro", "parts": [{"caption": "x", "chapters": [{"file": "notebooks/tiny"}]}]}
    (run.paths.root() / "_toc.yml").write_text(__import__("yaml").safe_dump(monkey_toc))
    with pytest.raises(RunError, match="tiny has no complete, current run to stage"):
        stage.stage()
    run.run("tiny", "smoke", {}, log=lambda *_: None)
    assert run.complete("tiny")
    assert (stage.stage() / "notebooks" / "tiny.ipynb").is_file()


def test_ctrl_c_prints_one_line(tiny, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run", interrupted)
    assert run.main(["run", "tiny"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
