"""The metrics sidecar: every number a chapter reports, and every claim it checks.

A notebook calls :func:`open` once in its Setup cell, which returns a :class:`Ledger`, then
``Ledger.record`` for metrics and ``Ledger.claim`` for claims. Each call rewrites
``_build/metrics/<notebook>.json`` (or ``$MODERNDL_METRICS`` when the runner sets it) and
glues the value for the page.

Sidecar schema (``SCHEMA_KEYS``)::

    {notebook, profile, device, torch, commit, date, wall_s, metrics: {name: value},
     claims: [{id, statement, paper_value, ours, tolerance, profile, holds, scope, note}]}

``scope`` says at which profile a claim is asserted: ``"all"``, ``"smoke"``, ``"laptop"`` or
``"full"``. A claim measured outside its scope is still recorded, with its honest ``holds``,
but only claims in scope are asserted; nothing is asserted at ``dry``. The runner adds
``parameters`` and ``code_key`` (see ``moderndl.run``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from moderndl import paths

SCHEMA_KEYS = ("notebook", "profile", "device", "torch", "commit", "date", "wall_s", "metrics", "claims")
CLAIM_KEYS = ("id", "statement", "paper_value", "ours", "tolerance", "profile", "holds", "scope", "note")
SCOPES = ("all", "smoke", "laptop", "full")

def device_name(device: torch.device | str | None = None) -> str:
    """A human name for the device: the GPU's model, or the CPU and its core count."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def git_commit(where: Path | None = None) -> str:
    """``HEAD``'s short hash, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    cwd = where or paths.root()
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def sidecar_path(notebook: str) -> Path:
    """Where the sidecar goes: ``$MODERNDL_METRICS`` (set by the runner) or ``_build/metrics``."""
    if env := os.environ.get("MODERNDL_METRICS"):
        return Path(env)
    return paths.build() / "metrics" / f"{notebook}.json"


def new_sidecar(notebook: str, profile: str, device: torch.device | str | None = None) -> dict[str, Any]:
    """An empty sidecar with this run's provenance (also the runner's, for a notebook without a ledger)."""
    return {
        "notebook": notebook,
        "profile": profile,
        "device": device_name(device),
        "torch": torch.__version__,
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "wall_s": 0.0,
        "metrics": {},
        "claims": [],
    }


class Ledger:
    """The sidecar one run writes: its metrics and claims, rewritten on every call.

    A notebook opens one in its Setup cell (``led = ledger.open("mac", s)``) and calls
    ``led.record`` and ``led.claim``; the runner reads the file it leaves behind.
    """

    def __init__(self, notebook: str, settings: Mapping[str, Any], path: Path | None = None, *,
                 write: bool = True):
        self._started = time.perf_counter()
        self.data = new_sidecar(notebook, settings["profile"], settings.get("device"))
        self.path = Path(path) if path is not None else sidecar_path(notebook)
        self.write = write  # False on the other ranks of a multi-process run: only the main one writes
        self._write()

    def record(self, name: str, value: Any) -> Any:
        """Record a metric in the sidecar and glue it for the page. Returns ``value``."""
        self.data["metrics"][name] = jsonable(value)
        self._write()
        _glue(name, value)
        return value

    def claim(
        self,
        id: str,  # noqa: A002 - the sidecar's field name
        statement: str,
        ours: Any,
        *,
        holds: bool | None = None,
        paper_value: Any = None,
        tolerance: Any = None,
        scope: str = "all",
        note: str = "",
    ) -> dict[str, Any]:
        """Record a claim. ``holds`` is computed when not given.

        With ``holds=None``, ``paper_value`` and a numeric relative ``tolerance`` are needed:
        the claim holds when ``|ours - paper_value| <= tolerance * |paper_value|``. Otherwise the
        notebook computes ``holds`` in view of the reader and passes it, with ``tolerance``
        describing the test (e.g. ``"atol=1e-6"``). ``paper_value`` is the paper's own number
        or ``None``; a target of ours is a tolerance, not a paper value.
        """
        if scope not in SCOPES:
            raise ValueError(f"claim {id!r}: scope {scope!r} not in {SCOPES}")
        if holds is None:
            if not isinstance(paper_value, (int, float)) or not isinstance(tolerance, (int, float)):
                raise ValueError(f"claim {id!r}: pass holds=, or a numeric paper_value and relative tolerance")
            holds = abs(float(ours) - paper_value) <= tolerance * abs(paper_value)
        entry = {
            "id": id,
            "statement": statement,
            "paper_value": jsonable(paper_value),
            "ours": jsonable(ours),
            "tolerance": jsonable(tolerance),
            "profile": self.data["profile"],
            "holds": bool(holds),
            "scope": scope,
            "note": note,
        }
        self.data["claims"] = [c for c in self.data["claims"] if c["id"] != id] + [entry]
        self._write()
        _glue(f"claim_{id}", entry["ours"])
        return entry

    def show(self):
        """The claims so far as a Markdown table, for the notebook's Claims section."""
        from moderndl import tables

        rows = [{"claim": c["statement"], "paper": c["paper_value"], "ours": c["ours"], "tolerance": c["tolerance"],
                 "asserted at": c["scope"], "holds": c["holds"]} for c in self.data["claims"]]
        return tables.show(rows)

    def _write(self) -> None:
        if not self.write:
            return
        self.data["wall_s"] = round(time.perf_counter() - self._started, 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, allow_nan=False))
        tmp.replace(self.path)


def open(notebook: str, settings: Mapping[str, Any], path: Path | None = None, *,  # noqa: A001
         write: bool = True) -> Ledger:
    """Start the sidecar for ``notebook`` with the resolved ``settings`` (profile, device)."""
    return Ledger(notebook, settings, path, write=write)


def asserted(claim_entry: Mapping[str, Any]) -> bool:
    """Whether a recorded claim is in scope at the profile it was measured at (never at ``dry``)."""
    return claim_entry["profile"] != "dry" and claim_entry["scope"] in ("all", claim_entry["profile"])


def load(path: Path) -> dict[str, Any]:
    """Read a sidecar and check its schema; a missing key is an error naming it."""
    data = json.loads(Path(path).read_text())
    missing = [k for k in SCHEMA_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: sidecar lacks {missing}")
    for c in data["claims"]:
        lacking = [k for k in CLAIM_KEYS if k not in c]
        if lacking:
            raise ValueError(f"{path}: claim {c.get('id')!r} lacks {lacking}")
    return data


def jsonable(value: Any) -> Any:
    """Numbers, strings, lists and dicts as JSON; tensors and NumPy scalars become floats."""
    if hasattr(value, "tolist"):  # torch / numpy scalars and arrays
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _glue(name: str, value: Any) -> None:
    """Glue for the page when running inside a kernel with myst-nb installed."""
    try:
        from IPython import get_ipython
        from myst_nb import glue
    except ImportError:
        return
    if get_ipython() is not None:
        glue(name, jsonable(value), display=False)
