"""One small training loop for every chapter, on Hugging Face ``accelerate``.

- ``Loop`` owns an ``Accelerator``: it prepares the models and optimizers (DDP under
  ``accelerate launch`` or ``torchrun``), runs a step function for ``steps`` steps behind a
  tqdm bar, keeps a per-step history, and checkpoints everything (weights, optimizer and
  scheduler state, RNG streams, history) so that ``resume=True`` continues exactly.
- ``fit`` is the common supervised case on top of it.
- ``batches`` makes a step-indexed sampler, so the batch at step ``t`` is a pure function
  of ``(seed, t)``: resuming at step ``t`` sees the batches an uninterrupted run would.

Data parallel: ``batch_size`` is always the *global* batch. Under ``torchrun`` or
``accelerate launch`` each rank draws the same global batch and keeps its own slice
(:func:`rank_slice`), so N ranks see exactly the examples one rank would, and DDP's
gradient average over ranks equals the one-process gradient of the global batch. Logged
scalars are averaged over ranks; only modules with trainable parameters are DDP-wrapped.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DummyOptim, DummyScheduler
from tqdm import tqdm

from moderndl.seed import generator as seed_generator

log = logging.getLogger(__name__)

History = list[dict[str, float]]
MIXED_PRECISION = ("no", "bf16", "fp16")
CHECKPOINT = "checkpoint.pt"  # the one file a Loop writes into its checkpoint_dir


@dataclass(frozen=True)
class TrainConfig:
    """How to run a loop; the optimizer and its hyperparameters belong to the chapter."""

    steps: int
    log_every: int = 10  # history values are synced from the device every this many steps
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 0  # 0: only at the end (when checkpoint_dir is set)
    mixed_precision: str = "no"  # "bf16" on GPU
    compile: bool = False  # torch.compile the prepared models
    grad_clip: float | None = None  # max global grad norm, for ``fit``
    desc: str = "train"
    cpu: bool = False  # force CPU even when CUDA is present
    progress: bool = True  # the tqdm bar (spawned worker ranks turn it off)

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision {self.mixed_precision!r} not in {MIXED_PRECISION}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")


# Optimizers, and the placeholders a DeepSpeed config's own optimizer and scheduler stand behind.
_PREPARED = (torch.optim.Optimizer, DummyOptim, DummyScheduler)


class Loop:
    """Prepared state plus a step runner. ``state`` names everything to checkpoint.

    Modules and optimizers in ``state`` are passed through ``accelerator.prepare``;
    anything else with ``state_dict``/``load_state_dict`` (schedulers, EMA, weighting
    modules) is checkpointed as is. Access prepared objects as ``loop["model"]``.
    """

    def __init__(self, config: TrainConfig, *, accelerator: Accelerator | None = None, **state: Any):
        self.config = config
        self.accelerator = accelerator if accelerator is not None else make_accelerator(config)
        state = {k: v for k, v in state.items() if v is not None}  # e.g. fit(scheduler=None)
        # Modules with trainable parameters and optimizers go through one prepare call: DDP
        # wraps the modules, and DeepSpeed needs the model and its optimizer together. A module
        # with nothing to train (a fixed loss weighting, say) is only moved: DDP refuses it.
        names = [k for k, v in state.items() if isinstance(v, _PREPARED)
                 or (isinstance(v, torch.nn.Module) and any(p.requires_grad for p in v.parameters()))]
        prepared = self.accelerator.prepare(*(state[k] for k in names)) if names else ()
        prepared = prepared if isinstance(prepared, tuple) else (prepared,)
        done = dict(zip(names, prepared, strict=True))
        self._prepared: dict[str, Any] = {}
        for name, obj in state.items():
            if name in done:
                obj = done[name]
                if config.compile and isinstance(obj, torch.nn.Module):
                    obj = torch.compile(obj)
            elif isinstance(obj, torch.nn.Module):
                obj = obj.to(self.accelerator.device)
            self._prepared[name] = obj
        self.history: History = []
        self.step = 0  # completed steps

    def __getitem__(self, name: str) -> Any:
        return self._prepared[name]

    def unwrap(self, name: str) -> Any:
        """The object behind ``loop[name]`` without DDP's or compile's wrapper, for reading
        a chapter's own attributes."""
        obj = self._prepared[name]
        return self.accelerator.unwrap_model(obj) if isinstance(obj, torch.nn.Module) else obj

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def autocast(self):
        return self.accelerator.autocast()

    # -- checkpoints -------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        d = self.config.checkpoint_dir
        return Path(d) / CHECKPOINT if d is not None else None

    def state_dict(self) -> dict[str, Any]:
        unwrap = self.accelerator.unwrap_model
        objects = {}
        for name, obj in self._prepared.items():
            obj = unwrap(obj) if isinstance(obj, torch.nn.Module) else obj
            objects[name] = obj.state_dict()
        return {
            "step": self.step,
            "objects": objects,
            "history": self.history,
            "rng": _rng_state(),
        }

    def save(self) -> Path | None:
        """Write the checkpoint atomically (tmp file, then rename); main process only."""
        path = self.checkpoint_path
        if path is None:
            return None
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(self.state_dict(), tmp)
            tmp.replace(path)
        return path

    def load(self) -> bool:
        """Restore from the checkpoint if there is one; returns whether it did."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return False
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        unknown = set(ckpt["objects"]) ^ set(self._prepared)
        if unknown:
            raise ValueError(f"checkpoint {path} holds {sorted(ckpt['objects'])}, loop has {sorted(self._prepared)}")
        unwrap = self.accelerator.unwrap_model
        for name, obj in self._prepared.items():
            obj = unwrap(obj) if isinstance(obj, torch.nn.Module) else obj
            obj.load_state_dict(ckpt["objects"][name])
        self.step, self.history = ckpt["step"], ckpt["history"]
        _set_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def _mean_over_ranks(self, pending: list) -> list[list[float]]:
        """The logged scalars of ``pending`` steps, each averaged over ranks in one all-reduce."""
        rows = [[v.detach().float().mean() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                 for v in logs.values()] for _, logs in pending]
        world = ranks()[1]
        if world == 1 or not any(rows):
            return [[float(v) for v in row] for row in rows]
        flat = torch.stack([v.to(self.device) for row in rows for v in row])  # (sum of row widths,)
        torch.distributed.all_reduce(flat)
        flat = (flat / world).cpu().tolist()
        out, i = [], 0
        for row in rows:
            out.append(flat[i:i + len(row)])
            i += len(row)
        return out

    # -- running -------------------------------------------------------------------
    def run(self, step_fn: Callable[[Any, int], Mapping[str, Any]], data: Callable[[int], Any],
            *, resume: bool = False) -> History:
        """Call ``step_fn(batch, t)`` for t in [start, steps); ``data(t)`` gives the batch.

        ``step_fn`` returns a mapping of scalars (tensors are fine: they are synced every
        ``log_every`` steps). Returns the history, one dict per completed step.
        """
        config = self.config
        if resume:
            self.load()
        if self.step >= config.steps:
            return self.history
        pending: list[tuple[int, Mapping[str, Any]]] = []
        bar = tqdm(total=config.steps, initial=self.step, desc=config.desc, mininterval=2.0, file=sys.stderr,
                   disable=not (config.progress and self.accelerator.is_local_main_process))
        for t in range(self.step, config.steps):
            logs = step_fn(to_device(data(t), self.device), t)
            pending.append((t + 1, logs))
            self.step = t + 1
            if self.step % config.log_every == 0 or self.step == config.steps:
                self._flush(pending, bar)
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self._flush(pending, bar)
                self.save()
            bar.update(1)
        self._flush(pending, bar)
        bar.close()
        self.save()
        return self.history

    def _flush(self, pending: list, bar) -> None:
        if pending:
            values = self._mean_over_ranks(pending)  # (len(pending), n_keys)
            for (step, logs), row_values in zip(pending, values, strict=True):
                row = {"step": step}
                for k, value in zip(logs, row_values, strict=True):
                    if not np.isfinite(value):
                        raise FloatingPointError(f"{self.config.desc}: {k} is {value} at step {step}")
                    row[k] = float(value)
                self.history.append(row)
        if pending and len(self.history):
            bar.set_postfix({k: f"{v:.4g}" for k, v in self.history[-1].items() if k != "step"}, refresh=False)
        pending.clear()


def checkpoint_step(checkpoint_dir: str | Path) -> int:
    """Completed steps saved in a loop's checkpoint folder; 0 when there is none.

    Memory-maps the file, so asking costs nothing like loading the weights.
    """
    path = Path(checkpoint_dir) / CHECKPOINT
    if not path.is_file():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["step"])


def make_accelerator(config: TrainConfig, **kwargs: Any) -> Accelerator:
    """An ``Accelerator`` for ``config``: CPU runs use full precision, GPU runs ``mixed_precision``.

    accelerate keeps its state in a per-process singleton that refuses a second precision;
    outside a distributed launch it is reset, so one process (a notebook) can build loops
    with different precisions, e.g. to benchmark fp32 against bf16. ``kwargs`` go to
    ``Accelerator`` (a ``deepspeed_plugin``, say).
    """
    from accelerate.state import AcceleratorState, PartialState

    cpu = config.cpu or not torch.cuda.is_available()
    precision = "no" if cpu else config.mixed_precision
    if kwargs.get("deepspeed_plugin") is not None:
        # accelerate hands a run to DeepSpeed only with cpu=False; on a machine without CUDA,
        # DeepSpeed's own CPU accelerator (DS_ACCELERATOR=cpu) then places it on the CPU.
        return Accelerator(mixed_precision=precision, cpu=False, **kwargs)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", precision) != precision and not PartialState().use_distributed:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=precision, cpu=cpu, **kwargs)


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.nn.Module, Any], Any], data: Callable[[int], Any], config: TrainConfig,
        *, scheduler: Any = None, after_step: Callable[[torch.nn.Module, int], None] | None = None,
        resume: bool = False, **extra_state: Any) -> tuple[History, Loop]:
    """Supervised training: ``loss_fn(model, batch)`` returns a loss or ``(loss, logs)``.

    Each step: zero grads, backward through accelerate, optional global-norm clip,
    optimizer step, scheduler step, then ``after_step(unwrapped_model, t)`` (e.g. an EMA
    update). ``extra_state`` (e.g. that EMA) is checkpointed with the rest.
    Returns the history and the loop (for the prepared model and device).
    """
    loop = Loop(config, model=model, optimizer=optimizer, scheduler=scheduler, **extra_state)
    prepared, opt = loop["model"], loop["optimizer"]

    def step(batch: Any, t: int) -> Mapping[str, Any]:
        prepared.train()
        with loop.autocast():
            out = loss_fn(prepared, batch)
        loss, logs = (out, {}) if isinstance(out, torch.Tensor) else out
        opt.zero_grad(set_to_none=True)
        loop.backward(loss)
        if config.grad_clip is not None:
            loop.accelerator.clip_grad_norm_(prepared.parameters(), config.grad_clip)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        if after_step is not None:
            after_step(loop.accelerator.unwrap_model(prepared), t)
        return {"loss": loss.detach(), **logs}

    return loop.run(step, data, resume=resume), loop


def ranks(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else the launch's, else ``(0, 1)``.

    The launch is read from ``torch.distributed`` once a process group exists (accelerate
    under DeepSpeed on CPU reports one process even then), else from ``RANK`` and
    ``WORLD_SIZE``, which ``torchrun`` and ``accelerate launch`` set. Asking accelerate's state
    here would fix it too early: on a CPU-only machine it is multi-process only when created
    with ``cpu=True``.
    """
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            launch = dist.get_rank(), dist.get_world_size()
        else:
            launch = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        rank = launch[0] if rank is None else rank
        world_size = launch[1] if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    return rank, world_size


def rank_slice(batch_size: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """This rank's rows of a global batch of ``batch_size``: ``[rank * b, (rank + 1) * b)``
    with ``b = batch_size // world_size``. Generated data (noise, text windows) draws the
    global batch from a step-indexed generator and keeps this slice."""
    rank, world_size = ranks(rank, world_size)
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} (global) is not divisible by the {world_size} ranks")
    local = batch_size // world_size
    return slice(rank * local, (rank + 1) * local)


class batches:  # noqa: N801 - reads as a function at call sites
    """A step-indexed sampler over tensors: ``batches(x, y, batch_size=64, seed=0)(t)``.

    ``batch_size`` is the global batch. Epoch ``e`` is a permutation drawn from a generator
    seeded with ``(seed, e)``; the global batch at step ``t`` is slice ``t mod steps_per_epoch``
    of it, and this rank keeps its :func:`rank_slice` (rank and world size from the launch
    unless given). Incomplete final batches are dropped, so every step has ``batch_size``
    examples over all ranks.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int, rank: int | None = None,
                 world_size: int | None = None):
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} examples")
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed
        self.rows = rank_slice(batch_size, rank, world_size)
        self.steps_per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = seed_generator(self.seed, epoch)
            self._perm, self._epoch = torch.randperm(len(self.tensors[0]), generator=g), epoch
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size][self.rows]  # (batch_size // world_size,)
        return tuple(t[idx.to(t.device)] for t in self.tensors)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in a (nested) tuple, list or dict to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
