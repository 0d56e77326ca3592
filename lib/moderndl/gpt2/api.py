"""The gpt-2-simple workflow on PyTorch: ``finetune(dataset, ...)`` then ``generate(run_name=...)``.

Woolf 2019 (gpt-2-simple) fine-tunes OpenAI's GPT-2 (Radford et al. 2019) on a text dataset
with Adam at a constant learning rate of 1e-4, sampling random windows of the encoded text,
accumulating gradients over several micro-batches, and writing checkpoints under
``checkpoint/<run_name>/``. Each step minimises the language-modelling loss (Radford et al.
2019, Sec. 2, Eq. 1) averaged over $M$ micro-batches:

$$\\mathcal{L}_t = \\frac{1}{M}\\sum_{m=1}^{M} -\\frac{1}{BT}\\sum_{b,\\tau}
\\log p_\\theta\\big(x^{(m,b)}_{\\tau+1} \\mid x^{(m,b)}_{\\le \\tau}\\big).$$

Here the training runs through ``moderndl.train.Loop`` (accelerate; bf16 autocast and
``torch.compile`` on GPU; DDP under ``torchrun``, each rank drawing its slice of the global
batch), the weights are saved with ``save_pretrained`` so any ``transformers`` code can load
them, and the loop's own checkpoint (optimizer, step, RNG, loss history) lets
``restore_from="latest"`` continue exactly where a run stopped. Run folders and restoring are
in :mod:`moderndl.gpt2.runs`, datasets in :mod:`moderndl.gpt2.dataset`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from moderndl import train
from moderndl.gpt2 import dataset as datasets
from moderndl.gpt2 import hub, lm, runs, sampling
from moderndl.gpt2.model import GPT, configure_optimizer, from_hf, to_hf

BACKENDS = ("compact", "hf")
UNTIL_INTERRUPTED = 1_000_000  # steps=-1 runs this many steps at most (a long night on a GPU), or until Ctrl-C
SAMPLE_DELIM = "=" * 20 + "\n"  # gpt-2-simple's separator between samples


@dataclass
class FinetuneResult:
    """What a call to :func:`finetune` did: where it saved, the loss history, the samples."""

    run_dir: Path
    step: int  # total completed steps, counting earlier runs restored from
    history: list[dict[str, float]]  # one row per step since the run began (restored rows included)
    backend: str
    restored: str = runs.FROM_BASE  # runs.FROM_CHECKPOINT, FROM_WEIGHTS or FROM_BASE
    interrupted: bool = False  # steps=-1 (or any run) stopped by Ctrl-C, after saving
    samples: list[str] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]


@dataclass
class LoadedModel:
    """A model kept in memory across :func:`generate` calls (gpt-2-simple's ``load_gpt2``)."""

    model: Any
    tokenizer: Any
    source: str | Path
    backend: str
    device: torch.device


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def load(model_name: str | Path, *, backend: str = "compact", dropout: float = 0.0) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a hub name, alias, base checkpoint or run folder.

    ``backend="compact"`` converts the ``GPT2LMHeadModel`` into our :class:`GPT`.
    """
    _check_backend(backend)
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


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _tokens(data: str | Path | torch.Tensor, tokenizer: Any, combine: int) -> torch.Tensor:
    """The dataset as one token stream ``(N,)``: ids as given, or read by :mod:`.dataset`."""
    if isinstance(data, torch.Tensor):
        if data.dim() != 1 or data.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"dataset tensor must be 1-D token ids, got {data.dtype} {tuple(data.shape)}")
        return data.long()
    return datasets.as_stream(datasets.load_dataset(data, tokenizer, combine), tokenizer.eos_token_id)


def finetune(
    dataset: str | Path | torch.Tensor,
    model_name: str | Path = "124M",
    steps: int = -1,
    *,
    combine: int = 50_000,
    run_name: str = "run1",
    checkpoint_dir: str | Path = "checkpoint",
    batch_size: int = 1,
    learning_rate: float = 1e-4,
    accumulate_gradients: int = 5,
    block_size: int | None = None,
    restore_from: str | Path = "latest",
    sample_every: int = 100,
    sample_length: int = 1023,
    sample_num: int = 1,
    sample_dir: str | Path = "samples",
    save_every: int = 1000,
    print_every: int = 1,
    max_checkpoints: int = 1,
    only_train_transformer_layers: bool = False,
    overwrite: bool = False,
    backend: str = "compact",
    mixed_precision: str = "auto",
    compile: bool | str = "auto",  # noqa: A002 - the switch's natural name
    seed: int = 0,
    cpu: bool = False,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune GPT-2 on ``dataset`` for ``steps`` more steps (gpt-2-simple's ``finetune``).

    Defaults are gpt-2-simple's (Woolf 2019): Adam, ``learning_rate=1e-4``, ``batch_size=1``
    (the global batch: under ``torchrun`` each rank takes its share), ``accumulate_gradients=5``,
    ``sample_every=100``, ``save_every=1000``, ``max_checkpoints=1``, ``steps=-1`` (train until
    Ctrl-C, then save).

    - ``dataset``: a text file, a folder, a glob, a ``.csv`` or an ``.npz`` (see
      :mod:`moderndl.gpt2.dataset`), or 1-D token ids.
    - ``model_name``: hub name, alias (``124M`` ...), or a local ``save_pretrained`` folder.
    - ``restore_from``: ``"latest"``, ``"fresh"`` or a folder (see :func:`runs.plan_restore`);
      the result's ``restored`` says which case applied, and a line on the console says so too.
    - ``block_size``: training window; defaults to the model's context (at most 1024).
    - ``print_every``/``sample_every``: a loss line / samples on the console (``tqdm.write``),
      samples also in ``sample_dir/run_name/samples-<step>``.
    - ``backend``: ``"compact"`` (our module: fused QKV, SDPA, fused AdamW) or ``"hf"``
      (``GPT2LMHeadModel``). ``mixed_precision``/``compile`` ``"auto"``: bf16 autocast and
      ``torch.compile`` on GPU, off on CPU.

    Every argument is checked, and the restore source decided, before anything on disk changes.
    """
    if steps != -1:
        _check_int("steps", steps)
    for name, value in dict(batch_size=batch_size, accumulate_gradients=accumulate_gradients).items():
        _check_int(name, value)
    for name, value in dict(sample_every=sample_every, save_every=save_every, print_every=print_every,
                            max_checkpoints=max_checkpoints, sample_num=sample_num,
                            sample_length=sample_length).items():
        _check_int(name, value, minimum=0)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    _check_backend(backend)
    cuda = torch.cuda.is_available() and not cpu
    precision = ("bf16" if cuda else "no") if mixed_precision == "auto" else mixed_precision
    if precision not in train.MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be 'auto' or one of {train.MIXED_PRECISION}, got {mixed_precision!r}")
    folder = runs.run_dir(checkpoint_dir, run_name)
    restore = runs.plan_restore(restore_from, folder, model_name, overwrite=overwrite)
    tokenizer = hub.load_tokenizer(restore.source)
    tokens = _tokens(dataset, tokenizer, combine)  # (N,)
    hf = hub.load_model(restore.source)
    n_positions = hf.config.n_positions
    block_size = min(n_positions, 1024) if block_size is None else block_size
    _check_int("block_size", block_size)
    if block_size > n_positions:
        raise ValueError(f"block_size={block_size} exceeds the model's context n_positions={n_positions}")
    if len(tokens) < block_size + 1:
        raise ValueError(f"dataset has {len(tokens)} tokens, fewer than one context window of block_size + 1 = "
                         f"{block_size + 1}; pass a longer text or a smaller block_size (no silent padding)")
    if sample_every and sample_num and sample_length > n_positions:  # gpt-2-simple refuses it too
        raise ValueError(f"sample_length={sample_length} exceeds the model's context n_positions={n_positions}")
    if restore.kind == runs.FROM_CHECKPOINT and runs.info(restore.source).get("backend", backend) != backend:
        raise ValueError(f"{restore.checkpoint} was trained with backend={runs.info(restore.source)['backend']!r}; "
                         f"pass that backend to continue it, not {backend!r}")
    model = from_hf(hf) if backend == "compact" else hf
    if only_train_transformer_layers:  # gpt-2-simple: train only the blocks, not embeddings or ln_f
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("transformer.h."))
    loop = _make_loop(model, restore, learning_rate=learning_rate, steps=steps, run_name=run_name, folder=folder,
                      save_every=save_every, print_every=print_every, precision=precision,
                      do_compile=cuda if compile == "auto" else bool(compile), cpu=cpu, cuda=cuda, progress=progress)

    # -- only now change the disk (main process), then let the other ranks through -------------
    main = loop.accelerator.is_main_process
    if main:
        if restore.kind == runs.FROM_BASE and folder.exists() and overwrite:
            for old in folder.iterdir():  # a replaced run: keep the folder, drop its files
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        if restore.kind == runs.FROM_CHECKPOINT:
            runs.copy_checkpoint(restore.checkpoint, folder)
    loop.accelerator.wait_for_everyone()
    if progress and main:
        tqdm.write(f"finetune {run_name}: {restore.describe()}; dataset has {len(tokens):,} tokens")

    def save(where: Path) -> None:
        save_pretrained(model, tokenizer, where)

    samples: list[str] = []
    sampler = lm.random_windows(tokens, block_size, batch_size, seed, micro_batches=accumulate_gradients)
    periodic = _Periodic(loop, model, tokenizer, save, folder, samples, run_name=run_name, print_every=print_every,
                         sample_every=sample_every, sample_num=sample_num, sample_length=sample_length,
                         sample_dir=Path(sample_dir), save_every=save_every, max_checkpoints=max_checkpoints,
                         seed=seed, verbose=progress)
    if restore.kind == runs.FROM_CHECKPOINT:
        _resume(loop, folder)
    interrupted = False
    try:
        loop.run(_accumulating_step(loop, accumulate_gradients, periodic), sampler)
    except KeyboardInterrupt:  # gpt-2-simple: Ctrl-C saves before returning
        interrupted = True
        if main:
            tqdm.write(f"finetune {run_name}: interrupted after step {loop.step}; saving")
        loop.save()
    if main:
        if periodic.saved_at != loop.step:
            runs.snapshot(save, folder, loop.step, max_checkpoints)
        runs.write_info(folder, {"model_name": str(model_name), "backend": backend, "step": loop.step,
                                 "restored": restore.kind, "block_size": block_size, "batch_size": batch_size,
                                 "accumulate_gradients": accumulate_gradients, "learning_rate": learning_rate,
                                 "only_train_transformer_layers": only_train_transformer_layers, "seed": seed,
                                 "dataset_tokens": len(tokens), "interrupted": interrupted})
    loop.accelerator.wait_for_everyone()
    return FinetuneResult(run_dir=folder, step=loop.step, history=list(loop.history), backend=backend,
                          restored=restore.kind, interrupted=interrupted, samples=samples)


def _resume(loop: train.Loop, folder: Path) -> None:
    """Load the loop's checkpoint (weights, optimizer, step, RNG, history); name the file if it fails."""
    try:
        loop.load()
    except Exception as err:
        raise RuntimeError(f"checkpoint {folder / train.CHECKPOINT} could not be loaded ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}); delete it to continue from the saved "
                           "weights with a new optimizer") from err


def _make_loop(model: Any, restore: runs.Restore, *, learning_rate: float, steps: int, run_name: str, folder: Path,
               save_every: int, print_every: int, precision: str, do_compile: bool, cpu: bool, cuda: bool,
               progress: bool) -> train.Loop:
    """The training loop, with its step counter where the restored run left it."""
    optimizer = configure_optimizer(model, learning_rate, weight_decay=0.0, betas=(0.9, 0.999), fused=cuda)
    more = UNTIL_INTERRUPTED if steps == -1 else steps
    config = train.TrainConfig(steps=restore.start + more, log_every=max(1, print_every), checkpoint_dir=folder,
                               checkpoint_every=save_every, mixed_precision=precision, compile=do_compile,
                               desc=f"finetune {run_name}", cpu=cpu, progress=progress)
    loop = train.Loop(config, model=model, optimizer=optimizer)
    loop.step = restore.start  # FROM_CHECKPOINT: overwritten by the checkpoint's own step on load
    return loop


def _accumulating_step(loop: train.Loop, micro_batches: int, periodic: Any):
    """One optimizer step over ``micro_batches`` micro-batches (the equation in the module docstring).

    Under DDP, the gradients are all-reduced only on the last micro-batch (``no_sync`` before).
    """
    prepared, opt = loop["model"], loop["optimizer"]

    def step(batch: torch.Tensor, t: int) -> dict[str, torch.Tensor]:  # batch: (M, B_rank, T + 1)
        prepared.train()
        opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=batch.device)
        for m, micro in enumerate(batch):  # (B_rank, T + 1)
            sync = m == micro_batches - 1
            with contextlib.nullcontext() if sync else loop.accelerator.no_sync(prepared):
                with loop.autocast():
                    loss = lm.lm_loss(prepared, micro) / micro_batches
                loop.backward(loss)
            total += loss.detach()
        opt.step()
        periodic(t + 1, total)
        return {"loss": total}

    return step


class _Periodic:
    """gpt-2-simple's every-N-steps actions after a step: print, sample, save (main process)."""

    def __init__(self, loop: train.Loop, model: Any, tokenizer: Any, save: Any, folder: Path, samples: list[str], *,
                 run_name: str, print_every: int, sample_every: int, sample_num: int, sample_length: int,
                 sample_dir: Path, save_every: int, max_checkpoints: int, seed: int, verbose: bool):
        self.loop, self.model, self.tokenizer, self.save, self.folder = loop, model, tokenizer, save, folder
        self.samples, self.run_name, self.seed, self.verbose = samples, run_name, seed, verbose
        self.print_every, self.sample_every, self.save_every = print_every, sample_every, save_every
        self.sample_num, self.sample_length, self.sample_dir = sample_num, sample_length, sample_dir
        self.max_checkpoints = max_checkpoints
        self.start = time.perf_counter()
        self.avg = (0.0, 0.0)  # gpt-2-simple's running average of the loss, decay 0.99
        self.saved_at = -1

    def __call__(self, done: int, loss: torch.Tensor) -> None:
        main = self.loop.accelerator.is_main_process
        if self.print_every and done % self.print_every == 0 and main and self.verbose:
            value = float(loss)
            self.avg = (self.avg[0] * 0.99 + value, self.avg[1] * 0.99 + 1.0)
            tqdm.write(f"[{done} | {time.perf_counter() - self.start:.2f}] loss={value:.2f} "
                       f"avg={self.avg[0] / self.avg[1]:.2f}")
        sampling_now = self.sample_every and self.sample_num and done % self.sample_every == 0
        saving_now = self.save_every and done % self.save_every == 0
        if not (sampling_now or saving_now):
            return
        if main and sampling_now:
            self._sample(done)
        if main and saving_now:
            runs.snapshot(self.save, self.folder, done, self.max_checkpoints)
            self.saved_at = done
        self.loop.accelerator.wait_for_everyone()

    def _sample(self, done: int) -> None:
        texts = _sample_texts(self.model, self.tokenizer, self.sample_num, self.sample_length, seed=self.seed + done)
        self.samples.extend(texts)
        body = "\n".join(f"======== SAMPLE {i + 1} ========\n{t}\n" for i, t in enumerate(texts))
        out = self.sample_dir / self.run_name
        out.mkdir(parents=True, exist_ok=True)
        (out / f"samples-{done}").write_text(body, encoding="utf-8")
        if self.verbose:
            tqdm.write(body)


def _sample_texts(model: Any, tokenizer: Any, n: int, length: int, *, seed: int) -> list[str]:
    """``n`` unconditional samples of ``length`` tokens (gpt-2-simple's periodic samples)."""
    device = next(model.parameters()).device
    start = torch.full((n, 1), tokenizer.eos_token_id, dtype=torch.long, device=device)  # (n, 1)
    g = torch.Generator(device=device).manual_seed(seed)
    out = sampling.sample(model, start, length, temperature=1.0, top_k=40, generator=g,
                          n_positions=model.config.n_positions)  # (n, 1 + length)
    return [tokenizer.decode(row[1:].tolist()) for row in out]


def load_gpt2(run_name: str = "run1", checkpoint_dir: str | Path = "checkpoint", model_name: str | Path | None = None,
              *, backend: str = "compact", device: str | torch.device | None = None) -> LoadedModel:
    """Load a run (or ``model_name``) once, for repeated :func:`generate` calls (``sess=``).

    gpt-2-simple's ``load_gpt2(sess, run_name=...)``; a missing run is an error listing the runs.
    """
    _check_backend(backend)
    if model_name is None:
        source = runs.run_dir(checkpoint_dir, run_name)
        if not runs.has_weights(source):
            raise FileNotFoundError(f"no saved run {run_name!r} in {Path(checkpoint_dir)}; runs there: "
                                    f"{runs.available(checkpoint_dir) or 'none'}")
    else:
        source = model_name
    model, tokenizer = load(source, backend=backend)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return LoadedModel(model.to(dev).eval(), tokenizer, source, backend, dev)


def generate(
    run_name: str = "run1",
    checkpoint_dir: str | Path = "checkpoint",
    model_name: str | Path | None = None,
    *,
    sess: LoadedModel | None = None,
    return_as_list: bool = False,
    truncate: str | None = None,
    destination_path: str | Path | None = None,
    sample_delim: str = SAMPLE_DELIM,
    prefix: str | None = None,
    seed: int | None = None,
    nsamples: int = 1,
    batch_size: int = 1,
    length: int = 1023,
    temperature: float = 0.7,
    top_k: int = 0,
    top_p: float = 0.0,
    include_prefix: bool = True,
    backend: str = "compact",
    device: str | torch.device | None = None,
) -> list[str] | None:
    """Generate ``nsamples`` texts (gpt-2-simple's ``generate``, same defaults).

    The model is ``sess`` (from :func:`load_gpt2`, kept in memory) or else loaded from
    ``checkpoint_dir/run_name`` (or ``model_name``) with ``from_pretrained``. Decoding:
    temperature, top-k (0 = off) and nucleus ``top_p`` (0 or 1 = off). ``backend="compact"``
    decodes with our KV cache; ``"hf"`` calls ``GPT2LMHeadModel.generate``.

    - ``length``: new tokens after the prefix (gpt-2-simple counts the prefix in ``length``).
    - Output: written to ``destination_path`` (each text followed by ``sample_delim``), returned
      with ``return_as_list=True``, and otherwise shown on the console.
    - ``truncate`` cuts each text at the first occurrence of that string after the prefix;
      ``include_prefix=False`` drops the prefix; ``seed`` makes the draws reproducible.
    """
    sampling.check_decoding(temperature, top_k, top_p)
    _check_int("length", length)
    _check_int("nsamples", nsamples)
    _check_int("batch_size", batch_size)
    if nsamples % batch_size:
        raise ValueError(f"nsamples={nsamples} must be a multiple of batch_size={batch_size}")
    if sess is None:
        sess = load_gpt2(run_name, checkpoint_dir, model_name, backend=backend, device=device)
    tokenizer, dev = sess.tokenizer, sess.device
    context = tokenizer(prefix)["input_ids"] if prefix else [tokenizer.eos_token_id]
    if not context:
        raise ValueError(f"prefix={prefix!r} encodes to no tokens")
    texts: list[str] = []
    for b in range(nsamples // batch_size):
        idx = torch.tensor([context] * batch_size, dtype=torch.long, device=dev)  # (batch_size, T0)
        out = _decode(sess, idx, length, temperature=temperature, top_k=top_k, top_p=top_p,
                      seed=None if seed is None else seed + b)  # (batch_size, T0 + length)
        for row in out.tolist():
            body = tokenizer.decode(row[len(context):])
            if truncate:
                cut = body.find(truncate)
                body = body[:cut] if cut != -1 else body
            texts.append((prefix + body) if (prefix and include_prefix) else body)
    delim = "" if nsamples == 1 else sample_delim  # gpt-2-simple drops it for one sample
    if destination_path is not None:
        Path(destination_path).expanduser().write_text("".join(f"{t}\n{delim}" for t in texts), encoding="utf-8")
    elif not return_as_list:
        for t in texts:
            tqdm.write(f"{t}\n{delim}", end="")
    return texts if return_as_list else None


def _decode(sess: LoadedModel, idx: torch.Tensor, length: int, *, temperature: float, top_k: int, top_p: float,
            seed: int | None) -> torch.Tensor:
    """``(B, T0 + length)`` tokens from either back end's own cached decoder."""
    if sess.backend == "compact":
        g = torch.Generator(device=sess.device).manual_seed(seed) if seed is not None else None
        return sampling.sample(sess.model, idx, length, temperature=temperature, top_k=top_k, top_p=top_p,
                               generator=g)
    n_positions = sess.model.config.n_positions
    if idx.shape[1] + length > n_positions:
        raise ValueError(f"backend='hf' generates at most n_positions={n_positions} tokens including the prefix "
                         f"({idx.shape[1]}); got length={length}. Use backend='compact', which slides the window")
    if seed is not None:
        torch.manual_seed(seed)  # HF's sampler draws from the global generator
    eos = sess.tokenizer.eos_token_id
    # eos_token_id=None: run all ``length`` steps without stopping at <|endoftext|>, as the compact path does
    return sess.model.generate(idx, attention_mask=torch.ones_like(idx), do_sample=True, max_new_tokens=length,
                               temperature=float(temperature), top_k=top_k, top_p=float(top_p) or 1.0,
                               pad_token_id=eos, eos_token_id=None)


def generate_to_file(run_name: str = "run1", checkpoint_dir: str | Path = "checkpoint",
                     model_name: str | Path | None = None, *, destination_path: str | Path = "gpt_2_gen_texts.txt",
                     **kwargs: Any) -> Path:
    """:func:`generate` into ``destination_path`` (gpt-2-simple's ``generate_to_file``)."""
    generate(run_name, checkpoint_dir, model_name, destination_path=destination_path, **kwargs)
    return Path(destination_path)
