"""The gpt-2-simple workflow on PyTorch: ``finetune(dataset, ...)`` then ``generate(run_name=...)``.

Woolf 2019 (gpt-2-simple) fine-tunes OpenAI's GPT-2 (Radford et al. 2019) on one text file
with Adam at a constant learning rate of 1e-4, sampling random windows of the encoded file,
accumulating gradients over several micro-batches, and writing checkpoints under
``checkpoint/<run_name>/``. Each step minimises the language-modelling loss (Radford et al.
2019, Sec. 2, Eq. 1) averaged over $M$ micro-batches:

$$\\mathcal{L}_t = \\frac{1}{M}\\sum_{m=1}^{M} -\\frac{1}{BT}\\sum_{b,\\tau}
\\log p_\\theta\\big(x^{(m,b)}_{\\tau+1} \\mid x^{(m,b)}_{\\le \\tau}\\big).$$

Here the training runs through ``moderndl.train.Loop`` (accelerate; bf16 autocast and
``torch.compile`` on GPU), the weights are saved with ``save_pretrained`` so any
``transformers`` code can load them, and the loop's own checkpoint (optimizer, step, RNG,
loss history) lets ``restore_from="latest"`` continue exactly where a run stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from moderndl import train
from moderndl.data import text as text_data
from moderndl.gpt2 import hub, lm, sampling
from moderndl.gpt2.model import GPT, configure_optimizer, from_hf, to_hf

log = logging.getLogger(__name__)

BACKENDS = ("compact", "hf")
RESTORE = ("latest", "fresh")


@dataclass
class FinetuneResult:
    """What a call to :func:`finetune` did: where it saved, the loss history, the samples."""

    run_dir: Path
    step: int  # total completed steps, counting earlier runs restored from
    history: list[dict[str, float]]  # one row per step since the run began (restored rows included)
    backend: str
    samples: list[str] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]


def _cuda(cpu: bool) -> bool:
    return torch.cuda.is_available() and not cpu


def _pick_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def load(model_name: str | Path, *, backend: str = "compact", dropout: float = 0.0) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a hub name, alias, base checkpoint or run folder.

    ``backend="compact"`` converts the ``GPT2LMHeadModel`` into our :class:`GPT`.
    """
    backend = _pick_backend(backend)
    tokenizer = hub.load_tokenizer(model_name)
    hf = hub.load_model(model_name, dropout=dropout)
    return (from_hf(hf, dropout=dropout) if backend == "compact" else hf), tokenizer


def save_pretrained(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Weights (either back end, in Hugging Face layout) and tokenizer, by ``save_pretrained``."""
    out = Path(out_dir)
    eos = tokenizer.eos_token_id
    hf = to_hf(model, bos_token_id=eos, eos_token_id=eos) if isinstance(model, GPT) else model
    hf.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _run_dir(checkpoint_dir: str | Path, run_name: str) -> Path:
    if not isinstance(run_name, str) or not run_name or any(c in run_name for c in "/\\") or run_name in (".", ".."):
        raise ValueError(f"run_name must be a plain folder name, got {run_name!r}")
    return Path(checkpoint_dir).expanduser() / run_name


def _tokens(dataset: str | Path | torch.Tensor, tokenizer: Any) -> torch.Tensor:
    """The dataset as token ids ``(N,)``: a text file (encoded whole) or ids already."""
    if isinstance(dataset, torch.Tensor):
        if dataset.dim() != 1 or dataset.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"dataset tensor must be 1-D token ids, got {dataset.dtype} {tuple(dataset.shape)}")
        return dataset.long()
    text = text_data.load_text_file(dataset)
    return torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)


def _snapshot(model: Any, tokenizer: Any, run_dir: Path, step: int, max_checkpoints: int) -> None:
    """``save_pretrained`` to the run folder (latest) and to ``step-NNNNNN/``, keeping the newest few."""
    save_pretrained(model, tokenizer, run_dir)
    if max_checkpoints == 0:
        return
    save_pretrained(model, tokenizer, run_dir / f"step-{step:06d}")
    for old in sorted(run_dir.glob("step-*"))[:-max_checkpoints]:
        shutil.rmtree(old)


def finetune(
    dataset: str | Path | torch.Tensor,
    model_name: str | Path = "gpt2",
    steps: int = 1000,
    *,
    run_name: str = "run1",
    checkpoint_dir: str | Path = "checkpoint",
    batch_size: int = 1,
    learning_rate: float = 1e-4,
    accumulate_gradients: int = 5,
    block_size: int | None = None,
    sample_every: int = 100,
    sample_length: int = 1023,
    sample_num: int = 1,
    save_every: int = 1000,
    print_every: int = 1,
    restore_from: str = "latest",
    max_checkpoints: int = 1,
    overwrite: bool = False,
    backend: str = "compact",
    mixed_precision: str = "auto",
    compile: bool | str = "auto",  # noqa: A002 - the switch's natural name
    seed: int = 0,
    cpu: bool = False,
) -> FinetuneResult:
    """Fine-tune GPT-2 on ``dataset`` for ``steps`` more steps (gpt-2-simple's ``finetune``).

    Defaults are gpt-2-simple's (Woolf 2019): Adam, ``learning_rate=1e-4``, ``batch_size=1``,
    ``accumulate_gradients=5``, ``sample_every=100``, ``save_every=1000``, ``max_checkpoints=1``.

    - ``dataset``: a UTF-8 text file (encoded whole), or 1-D token ids.
    - ``model_name``: hub name, alias (``124M`` ...), or a local ``save_pretrained`` folder.
    - ``restore_from="latest"`` continues ``checkpoint_dir/run_name`` when it holds a run
      (weights, optimizer, step, RNG, history); ``"fresh"`` starts from ``model_name`` and
      refuses to replace an existing run unless ``overwrite=True``.
    - ``block_size``: training window; defaults to the model's context (at most 1024).
    - ``backend``: ``"compact"`` (our module, the fast path: fused QKV, SDPA, fused AdamW) or
      ``"hf"`` (plain ``GPT2LMHeadModel``). ``mixed_precision``/``compile`` ``"auto"``: bf16
      autocast and ``torch.compile`` on GPU, off on CPU.

    Every argument is checked before anything on disk is touched.
    """
    # -- validate everything first: a bad call must not touch an existing run ------------------
    _check_finetune_args(steps=steps, batch_size=batch_size, accumulate_gradients=accumulate_gradients,
                         sample_every=sample_every, save_every=save_every, print_every=print_every,
                         max_checkpoints=max_checkpoints, sample_num=sample_num, sample_length=sample_length,
                         learning_rate=learning_rate, restore_from=restore_from)
    backend = _pick_backend(backend)
    cuda = _cuda(cpu)
    precision = ("bf16" if cuda else "no") if mixed_precision == "auto" else mixed_precision
    if precision not in train.MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be 'auto' or one of {train.MIXED_PRECISION}, got {mixed_precision!r}")
    do_compile = cuda if compile == "auto" else bool(compile)
    run_dir = _run_dir(checkpoint_dir, run_name)
    loop_ckpt = run_dir / train.CHECKPOINT  # weights, optimizer, step, RNG, history
    occupied = run_dir.is_dir() and any(run_dir.iterdir())
    if restore_from == "fresh" and occupied and not overwrite:
        raise FileExistsError(
            f"run_name={run_name!r} already holds a run in {run_dir}; restore_from='fresh' would replace it. "
            "Pass restore_from='latest' to continue it, another run_name, or overwrite=True to discard it.")
    resume = restore_from == "latest" and loop_ckpt.is_file()
    source = run_dir if resume else model_name
    tokenizer = hub.load_tokenizer(source)
    tokens = _tokens(dataset, tokenizer)  # (N,)
    n_positions = _context_length(source)
    block_size = min(n_positions, 1024) if block_size is None else block_size
    _check_positive_int("block_size", block_size)
    if block_size > n_positions:
        raise ValueError(f"block_size={block_size} exceeds the model's context n_positions={n_positions}")
    if len(tokens) < block_size + 1:
        raise ValueError(f"dataset has {len(tokens)} tokens, fewer than one context window of block_size + 1 = "
                         f"{block_size + 1}; pass a longer text or a smaller block_size (no silent padding)")
    hf = hub.load_model(source)
    model = from_hf(hf) if backend == "compact" else hf

    # -- only now change the disk ------------------------------------------------------------
    if restore_from == "fresh" and occupied:  # overwrite=True was given explicitly
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = train.checkpoint_step(run_dir) if resume else 0
    optimizer = configure_optimizer(model, learning_rate, weight_decay=0.0, betas=(0.9, 0.999), fused=cuda)
    config = train.TrainConfig(steps=start + steps, log_every=max(1, print_every), checkpoint_dir=run_dir,
                               checkpoint_every=save_every, mixed_precision=precision, compile=do_compile,
                               desc=f"finetune {run_name}", cpu=cpu)
    loop = train.Loop(config, model=model, optimizer=optimizer)
    samples: list[str] = []
    sampler = lm.random_windows(tokens, block_size, batch_size, seed, micro_batches=accumulate_gradients)
    periodic = _periodic(model, tokenizer, run_dir, samples, print_every=print_every, sample_every=sample_every,
                         sample_num=sample_num, sample_length=sample_length, save_every=save_every,
                         max_checkpoints=max_checkpoints, seed=seed)
    step = _accumulating_step(loop, accumulate_gradients, periodic)
    history = loop.run(step, sampler, resume=resume)
    if not (save_every and loop.step % save_every == 0):
        _snapshot(model, tokenizer, run_dir, loop.step, max_checkpoints)
    info = {"model_name": str(model_name), "backend": backend, "step": loop.step, "block_size": block_size,
            "batch_size": batch_size, "accumulate_gradients": accumulate_gradients, "learning_rate": learning_rate,
            "seed": seed, "dataset_tokens": len(tokens)}
    (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    return FinetuneResult(run_dir=run_dir, step=loop.step, history=list(history), backend=backend, samples=samples)


def _check_finetune_args(*, steps: int, batch_size: int, accumulate_gradients: int, learning_rate: float,
                         restore_from: str, **counts: int) -> None:
    """The scalar arguments of :func:`finetune`; ``counts`` are the ``*_every``/``sample_*`` knobs (0 = off)."""
    _check_positive_int("steps", steps)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("accumulate_gradients", accumulate_gradients)
    for name, value in counts.items():
        _check_positive_int(name, value, minimum=0)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    if restore_from not in RESTORE:
        raise ValueError(f"restore_from must be one of {RESTORE}, got {restore_from!r}")


def _accumulating_step(loop: train.Loop, micro_batches: int, periodic: Any):
    """One optimizer step over ``micro_batches`` micro-batches (the equation in the module docstring)."""
    prepared, opt = loop["model"], loop["optimizer"]

    def step(batch: torch.Tensor, t: int) -> dict[str, torch.Tensor]:  # batch: (M, B, T + 1)
        prepared.train()
        opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=batch.device)
        for micro in batch:  # (B, T + 1)
            with loop.autocast():
                loss = lm.lm_loss(prepared, micro) / micro_batches
            loop.backward(loss)
            total += loss.detach()
        opt.step()
        periodic(t + 1, total)
        return {"loss": total}

    return step


def _periodic(model: Any, tokenizer: Any, run_dir: Path, samples: list[str], *, print_every: int, sample_every: int,
              sample_num: int, sample_length: int, save_every: int, max_checkpoints: int, seed: int):
    """gpt-2-simple's every-N-steps actions after step ``done``: print, sample, save."""

    def after(done: int, loss: torch.Tensor) -> None:
        if print_every and done % print_every == 0:
            log.info("[%d] loss=%.4f", done, float(loss))
        if sample_every and sample_num and done % sample_every == 0:
            texts = _sample_texts(model, tokenizer, sample_num, sample_length, seed=seed + done)
            samples.extend(texts)
            log.info("[%d] sample: %s", done, texts[0][:200])
        if save_every and done % save_every == 0:
            _snapshot(model, tokenizer, run_dir, done, max_checkpoints)

    return after


def _sample_texts(model: Any, tokenizer: Any, n: int, length: int, *, seed: int) -> list[str]:
    """``n`` unconditional samples of ``length`` tokens (gpt-2-simple's periodic samples)."""
    device = next(model.parameters()).device
    start = torch.full((n, 1), tokenizer.eos_token_id, dtype=torch.long, device=device)  # (n, 1)
    g = torch.Generator(device=device).manual_seed(seed)
    out = sampling.sample(model, start, length, temperature=1.0, top_k=40, generator=g,
                          n_positions=_n_positions(model))  # (n, 1 + length)
    return [tokenizer.decode(row[1:].tolist()) for row in out]


def _context_length(source: str | Path) -> int:
    """``n_positions`` from the checkpoint's config, without loading its weights."""
    from transformers import GPT2Config

    return GPT2Config.from_pretrained(hub.resolve(source)).n_positions


def _n_positions(model: Any) -> int:
    return model.config.n_positions


def generate(
    run_name: str = "run1",
    *,
    checkpoint_dir: str | Path = "checkpoint",
    model_name: str | Path | None = None,
    prefix: str | None = None,
    length: int = 1023,
    temperature: float = 0.7,
    top_k: int = 0,
    top_p: float = 1.0,
    nsamples: int = 1,
    batch_size: int = 1,
    truncate: str | None = None,
    include_prefix: bool = True,
    seed: int | None = None,
    backend: str = "compact",
    device: str | torch.device | None = None,
) -> list[str]:
    """Generate ``nsamples`` texts from a run (gpt-2-simple's ``generate``, ``return_as_list=True``).

    Loads ``checkpoint_dir/run_name`` (or ``model_name``, when given) with
    ``from_pretrained``, so it works from a fresh process. Decoding: temperature, top-k
    (0 = off) and nucleus ``top_p`` in (0, 1] (1 = off; gpt-2-simple's "0 = off" is not
    accepted, to keep one meaning per value). Without ``prefix`` the context is
    ``<|endoftext|>``. ``truncate`` cuts each text at the first occurrence of that string
    after the prefix; ``include_prefix=False`` drops the prefix. ``seed`` makes the draws
    reproducible.
    """
    sampling.check_decoding(temperature, top_k, top_p)
    _check_positive_int("length", length)
    _check_positive_int("nsamples", nsamples)
    _check_positive_int("batch_size", batch_size)
    if nsamples % batch_size:
        raise ValueError(f"nsamples={nsamples} must be a multiple of batch_size={batch_size}")
    if model_name is None:
        source = _run_dir(checkpoint_dir, run_name)
        if not (source / "config.json").is_file():
            runs = sorted(p.name for p in Path(checkpoint_dir).glob("*/config.json")) if Path(
                checkpoint_dir).is_dir() else []
            raise FileNotFoundError(f"no saved run {run_name!r} in {Path(checkpoint_dir)}; runs there: "
                                    f"{[Path(r).parent.name for r in runs] or 'none'}")
    else:
        source = model_name
    model, tokenizer = load(source, backend=backend)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(dev).eval()
    context = tokenizer(prefix)["input_ids"] if prefix else [tokenizer.eos_token_id]
    if not context:
        raise ValueError(f"prefix={prefix!r} encodes to no tokens")
    g = torch.Generator(device=dev).manual_seed(seed) if seed is not None else None
    texts: list[str] = []
    for _ in range(nsamples // batch_size):
        idx = torch.tensor([context] * batch_size, dtype=torch.long, device=dev)  # (batch_size, T0)
        out = sampling.sample(model, idx, length, temperature=temperature, top_k=top_k, top_p=top_p,
                              generator=g, n_positions=_n_positions(model))  # (batch_size, T0 + length)
        for row in out.tolist():
            body = tokenizer.decode(row[len(context):])
            if truncate:
                cut = body.find(truncate)
                body = body[:cut] if cut != -1 else body
            texts.append((prefix + body) if (prefix and include_prefix) else body)
    return texts
