"""Profiles: one notebook, two scales.

- ``smoke``: CPU, small data, at most 90 s per notebook on a 2-core machine (CI).
- ``full``: GPU, the paper's setting or the largest that fits one GPU in 30 minutes.
- ``auto``: ``full`` when CUDA is available, else ``smoke``.

A chapter declares its settings per profile; :func:`settings` fills every notebook
parameter left as ``None`` from the resolved profile and rejects unknown names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

PROFILES = ("smoke", "full", "auto")


def resolve(profile: str) -> str:
    """Map ``auto`` to ``full`` (CUDA present) or ``smoke``; validate the name."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    if profile == "auto":
        return "full" if torch.cuda.is_available() else "smoke"
    return profile


def device(profile: str) -> torch.device:
    """``cuda`` for ``full`` when available, else ``cpu``. ``smoke`` is always CPU."""
    if resolve(profile) == "full" and torch.cuda.is_available():
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


def settings(profile: str, table: Mapping[str, Mapping[str, Any]], **given: Any) -> Settings:
    """Resolve ``profile`` and fill each ``None`` in ``given`` from ``table[profile]``.

    ``table`` maps ``"smoke"`` and ``"full"`` to the chapter's defaults. Values given
    explicitly (not ``None``) win. Every given name must appear in the table, so a typo
    in a notebook's parameters cell fails here instead of being ignored. The result also
    carries ``profile`` (resolved) and ``device``.
    """
    resolved = resolve(profile)
    missing = {"smoke", "full"} - set(table)
    if missing:
        raise ValueError(f"profile table lacks {sorted(missing)}")
    defaults = dict(table[resolved])
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown} for profile {resolved!r}; valid: {', '.join(sorted(defaults))}"
        )
    values = {k: (defaults[k] if given.get(k) is None else given[k]) for k in defaults}
    values["profile"] = resolved
    values["device"] = device(resolved)
    return Settings(values)
