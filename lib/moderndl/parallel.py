"""Independent CPU trainings side by side: one spawned process of one thread per core.

A chapter that trains several independent models on CPU (seeds of a study, baselines, an
ablation) can train ``workers`` of them at once. On a small machine this is worth more than
intra-op threads, whose small convolutions and matrix products scale poorly. Every task seeds
itself, so the results equal those of the serial loop, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")
_SHARED: dict[str, Any] = {}


def _init(shared: Any) -> None:
    torch.set_num_threads(1)  # one process per core
    _SHARED["value"] = shared


def _call(fn: Callable[[Any, Any], T], item: Any) -> T:
    return fn(_SHARED["value"], item)


def map_processes(fn: Callable[[Any, Any], T], items: Sequence[Any], *, shared: Any = None, workers: int = 2,
                  desc: str = "tasks", progress: bool = True) -> list[T]:
    """``[fn(shared, item) for item in items]``, computed in ``workers`` spawned processes.

    ``fn`` must be a module-level function, or a ``functools.partial`` of one (the workers
    import it by name). ``shared`` (for example the data set) travels to each worker once;
    tensors in it, in the items and in the results travel through shared memory, so a task may
    return a trained module whole. With ``workers <= 1`` or a single item, it runs here.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if workers == 1 or len(items) <= 1:
        return [fn(shared, item) for item in items]
    from concurrent.futures import ProcessPoolExecutor

    import torch.multiprocessing as mp
    from tqdm.auto import tqdm

    context = mp.get_context("spawn")  # a fresh interpreter: safe from a notebook's kernel
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=context, initializer=_init,
                             initargs=(shared,)) as pool:
        futures = [pool.submit(_call, fn, item) for item in items]
        with tqdm(total=len(futures), desc=f"{desc} ({workers} processes)", disable=not progress) as bar:
            results = []
            for future in futures:
                results.append(future.result())
                bar.update(1)
    return results
