"""Profiles: one notebook, four scales, each of them run somewhere.

| profile  | where   | budget                                  | claims                               |
|----------|---------|-----------------------------------------|--------------------------------------|
| ``smoke``  | CI, CPU | at most 90 s per chapter on 2 cores     | asserted by ``make test``            |
| ``laptop`` | any CPU | at most 10 min per chapter, 60 for all  | recorded in ``results/laptop/``      |
| ``full``   | one GPU | at most 30 min per chapter on an H100   | recorded in ``results/full/``        |
| ``dry``    | CI, CPU | at most 60 s per chapter                | none: the full code paths must finish |

``auto`` is ``full`` on a CUDA device with at least 40 GB of memory (an H100 or A100-40GB;
a Colab T4 has 15 GB and gets ``laptop``), and ``laptop`` otherwise.

A chapter declares its settings in a table with one entry per profile. ``dry`` is written
as ``dict(TABLE["full"], steps=2, ...)``: the full settings with only steps and sizes cut,
so a new full-profile switch cannot escape the dry run. :func:`settings` fills every
parameter left as ``None`` from the resolved profile, checks every given value against the
type of its profile default (and an optional declared range), and applies ``threads``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

SCALES = ("smoke", "laptop", "full", "dry")
PROFILES = (*SCALES, "auto")
FULL_MIN_GPU_BYTES = 40 * 10**9  # an A100-40GB or an H100; a T4 (15 GB) runs the laptop profile
CPU_PROFILES = ("smoke", "laptop")  # always on CPU, so a smoke or laptop record means the same everywhere


def resolve(profile: str) -> str:
    """Map ``auto`` to ``full`` (a CUDA device with >= 40 GB) or ``laptop``; validate the name."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    if profile == "auto":
        return "full" if _big_gpu() else "laptop"
    return profile


def _big_gpu() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_properties(0).total_memory >= FULL_MIN_GPU_BYTES


def device(profile: str) -> torch.device:
    """``cuda`` for ``full`` and ``dry`` when available, else ``cpu``; smoke and laptop are CPU."""
    if resolve(profile) not in CPU_PROFILES and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


class Settings(Mapping):
    """A read-only bag of resolved settings: ``s.steps`` or ``s["steps"]``."""

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}; settings: {', '.join(self._values)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are read-only")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Settings({body})"

    def __reduce__(self):  # picklable, so that worker processes (moderndl.parallel) get a copy
        return Settings, (dict(self._values),)


def check_table(table: Mapping[str, Mapping[str, Any]]) -> None:
    """Every scale present, and every scale with the same parameter names."""
    missing = [p for p in SCALES if p not in table]
    if missing:
        raise ValueError(f"profile table lacks {missing}; it needs {list(SCALES)}")
    names = set(table["full"])
    for p in SCALES:
        if set(table[p]) != names:
            raise ValueError(f"profile {p!r} differs from 'full' in {sorted(set(table[p]) ^ names)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def check_value(name: str, value: Any, default: Any, bounds: tuple[Any, Any] | None = None) -> Any:
    """``value`` if it has the type of the profile ``default`` (an int is a valid float) and
    lies within ``bounds`` (inclusive, ``None`` for open); else a ``ValueError`` naming both."""
    want, got = _kind(default), _kind(value)
    if default is not None and not (want == got or (want == "float" and got == "int")):
        raise ValueError(f"parameter {name}={value!r} is a {got}; it must be a {want} like {default!r}")
    if want == "float" and got == "int":
        value = float(value)
    if bounds is not None and got in ("int", "float"):
        low, high = bounds
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise ValueError(f"parameter {name}={value!r} is out of range; valid: {span}")
    return value


def check(table: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any], profile: str = "full",
          ranges: Mapping[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """Check ``given`` (names and values) against the table; return them typed.

    The runner calls this before a kernel starts, so ``-p seeds 1.5`` fails in a second with a
    message naming the parameter instead of deep in a cell.
    """
    check_table(table)
    defaults = table[resolve(profile)]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(defaults))}")
    ranges = ranges or {}
    return {k: check_value(k, v, defaults[k], ranges.get(k)) for k, v in given.items() if v is not None}


def settings(profile: str, table: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any] | None = None,
             *, ranges: Mapping[str, tuple[Any, Any]] | None = None) -> Settings:
    """Resolve ``profile`` and read each parameter of ``table`` from ``given``.

    ``given`` is the notebook's namespace (``globals()``) or the CLI's parsed values: each
    name of the table found there and not ``None`` overrides the profile's value, after a
    type (and range) check. Names in ``given`` that the table does not hold are ignored here
    (a namespace holds much else); the runner and the CLI reject unknown names up front.
    The result also carries ``profile`` (resolved) and ``device``. A ``threads`` setting
    above 0 sets torch's intra-op threads.
    """
    resolved = resolve(profile)
    check_table(table)
    given = given or {}
    chosen = {k: given[k] for k in table[resolved] if given.get(k) is not None}
    values = {**table[resolved], **check(table, chosen, resolved, ranges)}
    values["profile"] = resolved
    values["device"] = device(resolved)
    if values.get("threads"):
        torch.set_num_threads(int(values["threads"]))
    return Settings(values)
