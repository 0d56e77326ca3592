import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def book_root(tmp_path, monkeypatch):
    """An isolated book root: MODERNDL_ROOT points at a tmp copy of the book sources."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "book", tmp_path / "book")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "results" / "full").mkdir(parents=True)
    monkeypatch.setenv("MODERNDL_ROOT", str(tmp_path))
    monkeypatch.delenv("MODERNDL_METRICS", raising=False)
    return tmp_path


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny convolutions on a 2-core machine run faster without thread sync."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
