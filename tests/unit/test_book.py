"""Staging and the claims ledger; the book builds with zero chapters."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moderndl import stage as book

from ..conftest import REPO


def _sidecar(name, claims, profile="smoke", device="cpu (x86_64, 2 cores)"):
    return {"notebook": name, "profile": profile, "device": device, "torch": "2.13.0", "commit": "abc123",
            "date": "2026-11-25T00:00:00+00:00", "wall_s": 12.5, "metrics": {}, "claims": claims}


def _claim(id_, ours, holds, scope="all"):
    return {"id": id_, "statement": f"statement {id_}", "paper_value": 1.0, "ours": ours, "tolerance": 0.1,
            "profile": "smoke", "holds": holds, "scope": scope, "note": ""}


def test_claims_ledger_shows_build_beside_laptop_and_full_records(book_root):
    import shutil

    shutil.copy(REPO / "tests" / "fixtures" / "tiny.ipynb", book_root / "notebooks" / "alpha.ipynb")
    metrics = book_root / "_build" / "metrics"
    metrics.mkdir(parents=True)
    claims = [_claim("c1", 0.95, True), _claim("c2", 0.5, False, "full")]
    (metrics / "alpha.json").write_text(json.dumps(_sidecar("alpha", claims)))
    text = book.claims_markdown(["alpha"])
    assert "checks **2** claims; **1** hold" in text
    assert "No full-profile (GPU) record is committed yet" in text
    assert "Laptop record: none committed" in text
    assert "| statement c1 | 1 | 0.1 | all | 0.95 ✓ | – | – |" in text

    key = book.run.cache_key(book_root / "notebooks" / "alpha.ipynb", {}, "full")
    record = {**_sidecar("alpha", [_claim("c2", 0.99, True, "full")], profile="full", device="NVIDIA H100"),
              "parameters": {}, "code_key": key}
    (book_root / "results" / "full" / "alpha.json").write_text(json.dumps(record))
    laptop = {**_sidecar("alpha", [_claim("c2", 0.7, False, "full")], profile="laptop"),
              "parameters": {}, "code_key": "an-older-key", "commit": "0ld0ld"}
    (book_root / "results" / "laptop").mkdir()
    (book_root / "results" / "laptop" / "alpha.json").write_text(json.dumps(laptop))
    text = book.claims_markdown(["alpha"])
    assert "Full record (**current**): profile `full` on NVIDIA H100" in text
    assert "Laptop record (**stale since 0ld0ld**): profile `laptop`" in text
    assert "| this build | laptop record (stale since 0ld0ld) | full record (current) |" in text
    assert "| statement c2 | 1 | 0.1 | full | 0.5 ✗ | 0.7 ✗ | 0.99 ✓ |" in text

    nb = book_root / "notebooks" / "alpha.ipynb"
    nb.write_text(nb.read_text().replace("Tiny fixture", "Tiny fixture, edited"))
    assert "Full record (**stale since abc123**)" in book.claims_markdown(["alpha"])


def test_stage_without_chapters_drops_them_and_fills_the_ledger(book_root):
    toc = book_root / "_toc.yml"
    toc.write_text(toc.read_text().replace("  - caption: Chapters\n    chapters:\n",
                                           "  - caption: Chapters\n    chapters:\n      - file: notebooks/ghost\n"))
    with pytest.raises(book.run.RunError, match="ghost has no complete, current run"):
        book.stage()
    src = book.stage(with_chapters=False)
    assert "notebooks/ghost" not in (src / "_toc.yml").read_text()
    claims = (src / "book" / "claims.md").read_text()
    assert book.LEDGER_MARKER not in claims and "No chapter is in this build yet" in claims
    before = (src / "book" / "intro.md").stat().st_mtime_ns
    book.stage(with_chapters=False)
    assert (src / "book" / "intro.md").stat().st_mtime_ns == before, "an unchanged file must not be rewritten"


@pytest.mark.slow
def test_book_builds_with_zero_chapters(book_root):
    vendor = book_root / "_build" / "vendor" / "mathjax"
    vendor.mkdir(parents=True)
    (vendor / "tex-chtml.js").write_text("// stand-in for the vendored MathJax\n")
    src = book.stage(with_chapters=False)
    jb = Path(sys.executable).with_name("jupyter-book")
    env = {**os.environ, "MODERNDL_ROOT": str(book_root)}
    out = subprocess.run([str(jb), "build", str(src), "--path-output", str(book_root), "--builder", "html",
                          "-W", "-n", "--keep-going", "--quiet"], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    html = book_root / "_build" / "html"
    assert (html / "book" / "intro.html").is_file() and (html / "mathjax" / "tex-chtml.js").is_file()
    assert "No chapter is in this build yet" in (html / "book" / "claims.html").read_text()
    assert not (html / "notebooks").exists()
