import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Refuse a run whose ``--dist loadgroup`` does not group: with pytest 9, pytest-xdist 3.8
    no longer tags node ids with their group, and grouped tests (a chapter's smoke and dry runs,
    which share artifact folders; the launches shared by a module) scatter over the workers."""
    if getattr(config.option, "loadgroup", False):
        grouped = [item for item in items if item.get_closest_marker("xdist_group")]
        if grouped and "@" not in grouped[0].nodeid:
            raise pytest.UsageError("pytest-xdist's --dist loadgroup does not group tests with this pytest "
                                    f"({pytest.__version__}); install the pytest of requirements.txt")


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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEARDOWN = """

import torch.distributed as _dist
if _dist.is_available() and _dist.is_initialized():
    _dist.barrier()
    _dist.destroy_process_group()
"""


def run_ranks(script: str, tmp_path: Path, *, nproc: int = 2, args: tuple[str, ...] = (), timeout: float = 300,
              launcher: str = "torchrun"):
    """Run ``script`` (Python source) on ``nproc`` gloo CPU ranks and return the finished process.

    ``launcher`` is ``torchrun`` (``torch.distributed.run --nproc_per_node``) or ``accelerate``
    (``accelerate launch --multi_gpu --num_processes``, which runs gloo ranks on a CPU-only
    machine; ``--cpu`` would silently run one process). Each rank gets one intra-op thread.
    The script writes its results under ``$OUT`` (``tmp_path``); a non-zero exit fails with
    the launcher's output. The script ends by destroying its process group: left to the
    interpreter's shutdown, gloo's threads can abort a rank ("terminate called without an
    active exception") after its work is done.
    """
    import os
    import subprocess
    import sys

    path = tmp_path / "ranks_script.py"
    path.write_text(script + TEARDOWN)
    port = str(free_port())
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", port, str(path), *args]
    elif launcher == "accelerate":
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip",
               "127.0.0.1", "--main_process_port", port, str(path), *args]
    else:
        raise ValueError(f"launcher {launcher!r}: torchrun or accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(tmp_path), "DS_ACCELERATOR": "cpu",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO / "lib")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    if done.returncode != 0:
        raise AssertionError(f"{launcher} with {nproc} ranks failed ({done.returncode}):\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    return done
