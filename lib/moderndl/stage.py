"""Stage the book for Jupyter Book: sources plus executed notebooks, and the claims ledger.

``make book`` executes every chapter into ``_build/executed/``, then calls :func:`stage`,
which mirrors the book root into ``_build/src/`` with the executed notebooks in place of
the output-free sources, and fills the claims ledger into ``book/claims.md`` from the
sidecars (``_build/metrics/*.json``) and the committed laptop and full records
(``results/laptop/*.json``, ``results/full/*.json``), each marked current or stale.
Jupyter Book then builds ``_build/src`` with execution off. Only complete runs whose key
still matches are staged: a failed or interrupted run never reaches the book.

Files are only rewritten when their bytes change, so a warm rebuild touches nothing and
Sphinx's incremental build has nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from moderndl import ledger, paths, run, tables

LEDGER_MARKER = "<!-- claims-ledger -->"
CHAPTER_PREFIX = "notebooks/"


def _toc() -> dict[str, Any]:
    return yaml.safe_load((paths.root() / "_toc.yml").read_text())


def _entries(toc: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for part in toc.get("parts", []):
        yield from part.get("chapters") or []


def chapters() -> list[str]:
    """Chapter names in ``_toc.yml`` order (entries under ``notebooks/``)."""
    return [e["file"][len(CHAPTER_PREFIX):] for e in _entries(_toc()) if e["file"].startswith(CHAPTER_PREFIX)]


def stage(*, with_chapters: bool = True) -> Path:
    """Mirror the book into ``_build/src``; return that folder."""
    root, build = paths.root(), paths.build()
    src = build / "src"
    toc = _toc()
    names = chapters() if with_chapters else []
    if not with_chapters:
        toc["parts"] = [
            {**p, "chapters": [e for e in p.get("chapters") or [] if not e["file"].startswith(CHAPTER_PREFIX)]}
            for p in toc.get("parts", [])
        ]
    toc["parts"] = [p for p in toc.get("parts", []) if p.get("chapters")]
    _write_if_changed(src / "_toc.yml", yaml.safe_dump(toc, sort_keys=False).encode())
    _write_if_changed(src / "_config.yml", (root / "_config.yml").read_bytes())
    keep = {src / "_toc.yml", src / "_config.yml"}
    for f in sorted((root / "book").rglob("*")):
        if f.is_file():
            target = src / f.relative_to(root)
            data = f.read_bytes()
            if f.name == "claims.md":
                data = data.replace(LEDGER_MARKER.encode(), claims_markdown(names).encode())
            _write_if_changed(target, data)
            keep.add(target)
    for name in names:
        executed = build / "executed" / f"{name}.ipynb"
        if not run.complete(name):
            raise run.RunError(f"{name} has no complete, current run to stage (a failed, interrupted or "
                               f"outdated run is never staged): run `python -m moderndl run {name}` first")
        target = src / "notebooks" / f"{name}.ipynb"
        _write_if_changed(target, executed.read_bytes())
        keep.add(target)
    for stale in [p for p in src.rglob("*") if p.is_file() and p not in keep and "_extra" not in p.parts]:
        if stale.suffix in (".md", ".ipynb", ".yml", ".bib"):
            stale.unlink()
    extra = src / "_extra"
    if not extra.is_symlink():
        extra.symlink_to(build / "vendor", target_is_directory=True)
    return src


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- the claims ledger ----------------------------------------------------------------
def _load_all(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: ledger.load(p) for p in sorted(folder.glob("*.json"))}


def _result(c: Mapping[str, Any] | None) -> str:
    """A measured value with its verdict: ``0.95 ✓`` or ``0.5 ✗``."""
    if not c:
        return "–"
    return f"{tables.cell(c['ours'])} {'✓' if c['holds'] else '✗'}"


def _provenance(data: Mapping[str, Any]) -> str:
    return (f"profile `{data['profile']}` on {data['device']}, {data['wall_s']:.1f} s, "
            f"commit `{data['commit']}`, {data['date']}, torch {data['torch']}")


def _title(name: str) -> str:
    """The chapter's H1 title, read from its notebook; the name if it has none."""
    path = paths.root() / "notebooks" / f"{name}.ipynb"
    if path.is_file():
        for cell in json.loads(path.read_text())["cells"]:
            for line in "".join(cell["source"]).splitlines() if cell["cell_type"] == "markdown" else ():
                if line.startswith("# "):
                    return line[2:].strip()
    return name


PROFILE_RECORDS = ("laptop", "full")  # committed under results/<profile>/


def _record_line(profile: str, record: Mapping[str, Any] | None, status: str) -> str:
    if record is None:
        return f"- {profile.capitalize()} record: none committed"
    return f"- {profile.capitalize()} record (**{status}**): {_provenance(record)}"


def claims_markdown(names: list[str]) -> str:
    """One table per chapter: this build's claims beside the committed laptop and full records.

    A result reads ``ours ✓`` when the claim holds and ``ours ✗`` when it does not. Each
    record is marked *current* when its code key equals today's, else *stale since <commit>*.
    """
    build = _load_all(paths.build() / "metrics")
    saved = {p: _load_all(paths.root() / "results" / p) for p in PROFILE_RECORDS}
    out = []
    if not names:
        out.append("No chapter is in this build yet, so there are no claims to show.\n")
    held = sum(c["holds"] for n in names if n in build for c in build[n]["claims"])
    total = sum(len(build[n]["claims"]) for n in names if n in build)
    if names:
        out.append(f"This build checks **{total}** claims; **{held}** hold. A result reads *ours ✓* when "
                   "the claim holds and *ours ✗* when it does not. The laptop and full columns come from "
                   "committed records; a record is *current* when the code it ran is today's code, and "
                   "*stale since* the commit it was made at otherwise.\n")
    if not saved["full"]:
        out.append(":::{note}\nNo full-profile (GPU) record is committed yet under `results/full/`, so the "
                   "full column is empty. See {doc}`reproduce` for how to produce and commit one.\n:::\n")
    for name in names:
        this = build.get(name)
        out.append(f"## {_title(name)}\n")
        out.append(f"Chapter: {{doc}}`../notebooks/{name}`\n")
        if this is None:
            out.append(f"No sidecar for `{name}` in this build.\n")
            continue
        records = {p: saved[p].get(name) for p in PROFILE_RECORDS}
        status = {p: run.record_status(name, r) if r else "" for p, r in records.items()}
        out.append(f"- This build: {_provenance(this)}")
        out.extend(_record_line(p, records[p], status[p]) for p in PROFILE_RECORDS)
        out.append("")
        heads = [f"{p} record ({status[p].split(' (')[0]})" if records[p] else f"{p} record"
                 for p in PROFILE_RECORDS]
        rows = ["| claim | paper | tolerance | asserted at | this build | " + " | ".join(heads) + " |",
                "|---|---|---|---|---|" + "---|" * len(heads)]
        ids = list(dict.fromkeys([c["id"] for c in this["claims"]]
                                 + [c["id"] for r in records.values() if r for c in r["claims"]]))
        by_id = {"this": {c["id"]: c for c in this["claims"]},
                 **{p: {c["id"]: c for c in (r or {}).get("claims", [])} for p, r in records.items()}}
        for cid in ids:
            c = by_id["this"].get(cid) or next(by_id[p][cid] for p in PROFILE_RECORDS if cid in by_id[p])
            statement = tables.cell(c["statement"]) + (f" *({tables.cell(c['note'])})*" if c.get("note") else "")
            cells = " | ".join(_result(by_id[p].get(cid)) for p in PROFILE_RECORDS)
            rows.append(f"| {statement} | {tables.cell(c['paper_value'])} | {tables.cell(c['tolerance'])} "
                        f"| {c['scope']} | {_result(by_id['this'].get(cid))} | {cells} |")
        out.extend(rows)
        out.append("")
    return "\n".join(out)
