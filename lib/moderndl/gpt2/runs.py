"""Run folders: ``checkpoint/<run_name>/``, what they hold, and how a run restarts from one.

A run folder is an ordinary ``save_pretrained`` folder (``config.json``, weights, tokenizer),
so any ``transformers`` code loads it, plus, when the training loop saved it, the loop's own
``checkpoint.pt`` (optimizer moments, step, RNG streams, loss history), ``run.json`` (the
arguments) and up to ``max_checkpoints`` snapshots ``step-NNNNNN/``.

gpt-2-simple (Woolf 2019) restores with ``restore_from="latest"`` (the run's newest
checkpoint, else the base model), ``"fresh"`` (the base model) or a checkpoint folder. Here
the weights and the optimizer state are separate files, so a folder copied without the large
``checkpoint.pt`` still holds the fine-tuned model: :func:`plan_restore` then loads those
weights and starts a new optimizer, and says so, instead of falling back to the base model.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moderndl import train

SNAPSHOT = re.compile(r"^step-(\d+)$")

# What a restarted run continues from; FinetuneResult.restored holds one of these.
FROM_CHECKPOINT = "checkpoint"  # the run's weights, optimizer, step, RNG and history
FROM_WEIGHTS = "weights"  # the run's weights only (no checkpoint.pt): new optimizer, steps go on from run.json
FROM_BASE = "base"  # model_name: a new run


def run_dir(checkpoint_dir: str | Path, run_name: str) -> Path:
    """``checkpoint_dir/run_name``; ``run_name`` must be a plain folder name."""
    if not isinstance(run_name, str) or not run_name or any(c in run_name for c in "/\\") or run_name in (".", ".."):
        raise ValueError(f"run_name must be a plain folder name, got {run_name!r}")
    return Path(checkpoint_dir).expanduser() / run_name


def has_weights(folder: Path) -> bool:
    """Whether ``folder`` holds a ``save_pretrained`` model (its ``config.json``)."""
    return (folder / "config.json").is_file()


def available(checkpoint_dir: str | Path) -> list[str]:
    """Names of the saved runs in ``checkpoint_dir`` (folders with a saved model)."""
    root = Path(checkpoint_dir).expanduser()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and has_weights(p)) if root.is_dir() else []


def checkpoint_step(folder: Path) -> int:
    """Steps saved in ``folder/checkpoint.pt``; a corrupt file is an error that names it."""
    path = folder / train.CHECKPOINT
    try:
        return train.checkpoint_step(folder)
    except Exception as err:  # torch raises several types for a truncated or foreign file
        raise RuntimeError(
            f"checkpoint {path} is corrupt or not a training checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Delete it to continue from the saved weights "
            f"in {folder} with a new optimizer, or pass restore_from='fresh', overwrite=True.") from err


@dataclass(frozen=True)
class Restore:
    """Where a :func:`~moderndl.gpt2.api.finetune` call takes its weights and state from."""

    source: str | Path  # what hub.load_model reads: the run folder, a given folder, or model_name
    kind: str  # FROM_CHECKPOINT, FROM_WEIGHTS or FROM_BASE
    checkpoint: Path | None  # the checkpoint.pt to resume from (FROM_CHECKPOINT only)
    start: int  # completed steps before this call

    def describe(self) -> str:
        if self.kind == FROM_CHECKPOINT:
            return f"resuming from {self.checkpoint} at step {self.start} (weights, optimizer, RNG, history)"
        if self.kind == FROM_WEIGHTS:
            return (f"continuing from the weights in {self.source} (step {self.start}); no {train.CHECKPOINT} there, "
                    "so the optimizer starts anew")
        return f"starting from {self.source}"


def plan_restore(restore_from: str | Path, folder: Path, model_name: str | Path, *, overwrite: bool) -> Restore:
    """Decide what to load, before anything on disk changes (gpt-2-simple's ``restore_from``).

    - ``"latest"``: this run's checkpoint when it has one; else this run's saved weights (with a
      new optimizer; steps numbered on from :func:`saved_step`); else ``model_name``.
    - ``"fresh"``: ``model_name``; an existing run is replaced only with ``overwrite=True``.
    - a folder: its weights (and its ``checkpoint.pt`` when present), into this run.
    """
    occupied = folder.is_dir() and any(folder.iterdir())
    if restore_from == "latest":
        if (folder / train.CHECKPOINT).is_file():
            if not has_weights(folder):
                raise FileNotFoundError(f"{folder} holds {train.CHECKPOINT} but no saved model (config.json)")
            return Restore(folder, FROM_CHECKPOINT, folder / train.CHECKPOINT, checkpoint_step(folder))
        if has_weights(folder):
            return Restore(folder, FROM_WEIGHTS, None, saved_step(folder))
        if occupied and not overwrite:
            raise FileExistsError(f"{folder} holds files but no saved model; pass overwrite=True to replace them")
        return Restore(model_name, FROM_BASE, None, 0)
    if occupied and not overwrite and Path(str(restore_from)).expanduser().resolve() != folder.resolve():
        raise FileExistsError(
            f"{folder} already holds a run; restore_from={str(restore_from)!r} would replace it. Pass "
            "restore_from='latest' to continue it, another run_name, or overwrite=True to discard it.")
    if restore_from == "fresh":
        return Restore(model_name, FROM_BASE, None, 0)
    given = Path(restore_from).expanduser()
    if not given.is_dir() or not has_weights(given):
        raise FileNotFoundError(f"restore_from={str(restore_from)!r} is not a folder with a saved model "
                                "(config.json); valid: 'latest', 'fresh' or such a folder")
    if (given / train.CHECKPOINT).is_file():
        return Restore(given, FROM_CHECKPOINT, given / train.CHECKPOINT, checkpoint_step(given))
    return Restore(given, FROM_WEIGHTS, None, saved_step(given))


def info(folder: str | Path) -> dict[str, Any]:
    """The run's ``run.json`` (the arguments it was trained with), or ``{}``."""
    path = Path(folder) / "run.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def saved_step(folder: Path) -> int:
    """The step of the weights in ``folder`` without a loop checkpoint: ``run.json``'s step, else
    the newest snapshot's, else 0. A run continued from its weights numbers its steps after it,
    so its snapshots sort after the old ones."""
    step = info(folder).get("step")
    if isinstance(step, int) and step >= 0:
        return step
    snaps = [int(m.group(1)) for p in folder.iterdir() if (m := SNAPSHOT.match(p.name))] if folder.is_dir() else []
    return max(snaps, default=0)


def prune_snapshots(folder: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` snapshots with the highest step numbers; return the deleted.

    By step number, not by name: ``step-1000000`` is newer than ``step-999999``.
    """
    snaps = sorted((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := SNAPSHOT.match(p.name)))
    doomed = [p for _, p in snaps[:-keep]] if keep > 0 else [p for _, p in snaps]
    for p in doomed:
        shutil.rmtree(p)
    return doomed


def snapshot(save: Any, folder: Path, step: int, max_checkpoints: int) -> None:
    """``save(folder)`` (the latest weights) and ``save(folder/step-NNNNNN)``, keeping the newest
    ``max_checkpoints`` snapshots (0: no snapshots). Call on the main process only."""
    save(folder)
    if max_checkpoints == 0:
        return
    save(folder / f"step-{step:06d}")
    prune_snapshots(folder, max_checkpoints)


def write_info(folder: Path, info: dict[str, Any]) -> None:
    (folder / "run.json").write_text(json.dumps(info, indent=1, default=str))


def copy_checkpoint(src: Path, folder: Path) -> None:
    """Copy a restored checkpoint.pt into this run's folder, where the loop reads it."""
    if src.resolve() != (folder / train.CHECKPOINT).resolve():
        shutil.copyfile(src, folder / train.CHECKPOINT)

