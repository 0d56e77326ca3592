"""``make gpu-check``: everything that needs CUDA, in one script of at most 8 minutes.

For each chapter it calls ``moderndl.<package>.bench.gpu_check(device, toy)``, which runs the
full profile's training path for a short fixed budget (bf16, channels_last and
``torch.compile`` wherever that chapter's full profile turns them on) and the chapter's
throughput benchmark, and returns a JSON-able dict. It needs torch, transformers,
accelerate and networkx, not papermill or Jupyter.

On a CUDA machine the record goes to ``results/gpu-check/<device>.json``. Without CUDA the
same paths run on CPU at toy size (``toy=True``), each chapter says what it skipped, and
the record goes to ``_build/gpu-check/cpu.json``; ``make test`` runs it that way.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
import traceback
from collections.abc import Sequence

import torch

from moderndl import chapters, ledger, paths

BUDGET_S = 8 * 60


def check_chapter(notebook: str, device: torch.device, toy: bool) -> dict:
    """One chapter's part, timed; an exception is recorded, not raised, so the others still run."""
    pkg = chapters.package(notebook)
    started = time.perf_counter()
    try:
        bench = importlib.import_module(f"{pkg}.bench")
        result = {"ok": True, **bench.gpu_check(device, toy)}
    except Exception as err:  # noqa: BLE001 - the record names it; the exit code reports it
        result = {"ok": False, "error": f"{type(err).__name__}: {err}",
                  "traceback": traceback.format_exc(limit=8)}
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m moderndl.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--chapters", nargs="*", default=list(chapters.PACKAGES), choices=list(chapters.PACKAGES))
    p.add_argument("--cpu", action="store_true", help="the CPU form at toy size even when CUDA is present")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    record = {**ledger.new_sidecar("gpu-check", "full" if cuda else "toy", device), "chapters": {}}
    started = time.perf_counter()
    for name in args.chapters:
        sys.stderr.write(f"gpu-check: {name} ...\n")
        record["chapters"][name] = r = check_chapter(name, device, toy=not cuda)
        sys.stderr.write(f"gpu-check: {name} {'ok' if r['ok'] else 'FAILED: ' + r['error']} ({r['wall_s']} s)\n")
    record["wall_s"] = round(time.perf_counter() - started, 2)
    record["within_budget"] = record["wall_s"] <= BUDGET_S
    slug = re.sub(r"[^a-z0-9]+", "-", record["device"].lower()).strip("-")
    out = (paths.root() / "results" / "gpu-check" / f"{slug}.json" if cuda
           else paths.build() / "gpu-check" / "cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ledger.jsonable(record), indent=2))
    failed = [n for n, r in record["chapters"].items() if not r["ok"]]
    sys.stderr.write(f"gpu-check: {len(record['chapters']) - len(failed)} of {len(record['chapters'])} chapters ok "
                     f"in {record['wall_s']} s; record at {out}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
