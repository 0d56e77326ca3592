"""``python -m moderndl.<chapter> [--name value ...]``: a chapter's experiment without Jupyter.

The flags are the notebook's parameter names, read from the chapter's profile table, with
the same profiles and the same checks; the run writes the same sidecar. It works under
``torchrun --nproc_per_node N`` and ``accelerate launch --multi_gpu --num_processes N``: the
training loops take the rank from the launch, each rank draws its slice of the global batch,
and only the main process writes files. Several machines need nothing of ours: add
``--num_machines``, ``--machine_rank`` and ``--main_process_ip`` as accelerate documents.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from moderndl import ledger, profiles

Experiment = Callable[[profiles.Settings, "ledger.Ledger", int], Any]


def parse_value(text: str) -> Any:
    """``100`` is an int, ``"[ER, WS]"`` a list, ``true`` a bool, anything else a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parser(name: str, table: Mapping[str, Mapping[str, Any]], description: str = "") -> argparse.ArgumentParser:
    """One ``--name`` flag per parameter of ``table``; its help shows each profile's value."""
    profiles.check_table(table)
    p = argparse.ArgumentParser(prog=f"python -m moderndl.{name}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="auto", choices=profiles.PROFILES,
                   help="auto: full on a CUDA GPU with >= 40 GB, else laptop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics", type=Path, default=None, help="where to write the sidecar JSON")
    for key in table["full"]:
        shown = ", ".join(f"{prof} {table[prof][key]!r}" for prof in ("smoke", "laptop", "full"))
        p.add_argument(f"--{key}", type=parse_value, default=None, metavar="VALUE", help=shown)
    return p


def main(name: str, notebook: str, table: Mapping[str, Mapping[str, Any]], experiment: Experiment,
         argv: Sequence[str] | None = None, *, ranges: Mapping[str, tuple[Any, Any]] | None = None,
         description: str = "") -> int:
    """Parse flags, resolve the settings, open the sidecar (main process only) and run."""
    p = parser(name, table, description)
    args = p.parse_args(argv)
    given = {k: getattr(args, k) for k in table["full"]}
    try:
        s = profiles.settings(args.profile, table, given, ranges=ranges)
    except ValueError as err:
        p.error(str(err))
    from moderndl.train import ranks

    main_process = ranks()[0] == 0  # from the launch; accelerate's state is made later, by the loops
    led = ledger.open(notebook, s, path=args.metrics, write=main_process)
    experiment(s, led, args.seed)
    if main_process:
        sys.stderr.write(f"{notebook}: {len(led.data['claims'])} claims, sidecar at {led.path}\n")
    return 0
