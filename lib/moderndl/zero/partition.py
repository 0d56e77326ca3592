r"""A from-scratch ZeRO-DP partitioner on torch.distributed (gloo on CPU, NCCL on GPU).

Paper: Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", SC 2020, arXiv:1910.02054, Section 5 (ZeRO-DP) and Section 7 (communication).

Every layer's parameters live in one flat buffer, zero-padded to a multiple of $N_d$ so that
it splits into $N_d$ equal shards; rank $r$ owns shard $r$. The per-rank model states are

$$
\underbrace{b_p\,\Psi / N_d^{[s \ge 3]}}_{\text{parameters}}
+ \underbrace{b_g\,\Psi / N_d^{[s \ge 2]}}_{\text{gradients}}
+ \underbrace{K\,\Psi / N_d^{[s \ge 1]}}_{\text{fp32 master, } m,\ v}
$$

with $b_p = b_g = 2$ for 2-byte parameters and $K = 12$ (:mod:`moderndl.zero.memory`).

- Stage 0 (DP): all-reduce the gradients, every rank updates everything.
- Stage 1 ($P_{os}$): reduce-scatter the gradients; each rank updates the fp32 master
  weights and Adam moments of its shard only, then all-gathers the parameters.
- Stage 2 ($P_{os+g}$): as stage 1, but each layer's gradient is reduce-scattered as soon as
  backward produces it and only the shard is kept.
- Stage 3 ($P_{os+g+p}$): also keeps only the parameter shard; each layer is all-gathered
  just before its forward and again before its backward, and freed after each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd import Variable
from torch.utils._pytree import tree_flatten

from moderndl.zero import memory
from moderndl.zero.comm import Comm

SUPPORTED_OPTIMIZERS = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
GLOO_THREADS = 2  # worker threads of a ProcessGroupGloo (torch's default, ProcessGroupGloo._Options()._threads)


@dataclass(frozen=True)
class ZeroConfig:
    """One partitioned data-parallel run. Adam's defaults are Kingma & Ba's (arXiv:1412.6980)."""

    stage: int = 1
    world_size: int = 1  # N_d; must equal the number of launched ranks
    optimizer: str = "Adam"  # an element-wise optimizer whose state shards like the parameters
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    # The paper trains fp16 parameters and gradients (2 bytes each) with fp32 master weights.
    # bf16 has the same 2 bytes and needs no loss scaling; float32 gives an exact Adam reference.
    param_dtype: torch.dtype = torch.bfloat16
    memory_budget: float | None = None  # bytes per device; refused if below the stage-3 share
    # Stages 0-2 pack consecutive layers into flat buckets of at most this many elements (one
    # reduce-scatter and one all-gather per bucket; a larger layer is a bucket of its own);
    # DeepSpeed's default reduce_bucket_size is 5e8.
    # Stage 3 always keeps one flat group per layer, to gather each layer just in time.
    bucket_numel: int = 500_000_000

    def __post_init__(self):
        memory.validate(self.world_size, self.stage)
        name = getattr(self.optimizer, "__name__", self.optimizer)
        if name not in SUPPORTED_OPTIMIZERS or (not isinstance(self.optimizer, str)
                                                and self.optimizer is not SUPPORTED_OPTIMIZERS[name]):
            raise ValueError(f"optimizer {self.optimizer!r} is not supported by the partitioner; supported: "
                             f"{', '.join(SUPPORTED_OPTIMIZERS)} (element-wise, K = 12 bytes of fp32 state)")
        object.__setattr__(self, "optimizer", name)
        if not isinstance(self.bucket_numel, int) or self.bucket_numel < 1:
            raise ValueError(f"bucket_numel must be a positive int, got {self.bucket_numel!r}")
        if not self.param_dtype.is_floating_point:
            raise ValueError(f"param_dtype must be a floating dtype, got {self.param_dtype}")

    @property
    def memory_model(self) -> memory.MemoryModel:
        """The memory model of this configuration: $b_p = b_g$ = parameter bytes, $K = 12$."""
        size = torch.empty((), dtype=self.param_dtype).element_size()
        return memory.MemoryModel(param_bytes=size, grad_bytes=size, k=12)


class FlatGroup:
    """One bucket of parameters in a flat buffer padded to ``parts`` equal shards."""

    def __init__(self, params: list[nn.Parameter], parts: int, index: int, dtype: torch.dtype):
        self.params = params
        self.sizes = [p.numel() for p in params]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(params))]
        self.numel = sum(self.sizes)
        self.padded = math.ceil(self.numel / parts) * parts  # zero padding makes the shards equal
        self.shard_numel = self.padded // parts
        self.lo, self.hi = index * self.shard_numel, (index + 1) * self.shard_numel
        device = params[0].device  # CPU with gloo, CUDA with NCCL
        self.full = torch.zeros(self.padded, dtype=dtype, device=device)  # (padded,)
        for p, n, offset in zip(params, self.sizes, self.offsets, strict=True):
            self.full[offset:offset + n].copy_(p.detach().reshape(-1))  # (n,)
            p.data = self.full[offset:offset + n].view_as(p)  # (n,) -> p.shape, a view into the buffer
        self.materialized = True
        self.shard: torch.Tensor | None = None  # stage 3: (padded // parts,) parameter shard
        self.grad_full: torch.Tensor | None = None  # stages 0-1: (padded,)
        self.grad_shard: torch.Tensor | None = None  # stages 2-3: (padded // parts,)
        self.pending = len(params)  # parameters whose gradient has not arrived yet this backward

    def own(self, flat: torch.Tensor) -> torch.Tensor:
        return flat[self.lo:self.hi]  # (padded // parts,)

    def release(self) -> None:
        """Free the gathered parameters; the views stay valid and are refilled by ``gather``."""
        self.full.untyped_storage().resize_(0)
        self.materialized = False

    def gather(self, comm: Comm) -> None:
        if self.materialized:
            return
        self.full.untyped_storage().resize_(self.padded * self.full.element_size())
        comm.all_gather(self.full, self.shard)  # (padded // parts,) -> (padded,)
        self.materialized = True


class ZeroDataParallel:
    """Partition ``model``'s states over the ranks of ``group`` (default: all ranks) (Section 5).

    Usage per step: ``loss = loss_fn(model(x)); loss.backward(); engine.step(); engine.zero_grad()``.
    Gradients are averaged over ranks, so each rank's loss is the mean over its own batch.
    Every rank must run the same graph (the same parameters receive gradients, in the same
    order), as the collectives of stages 2-3 are issued from backward hooks. A parameter that
    receives no gradient keeps a zero gradient and, like under ``torch.optim.Adam`` with
    ``grad=None``, does not move while its moments are zero.
    """

    def __init__(self, model: nn.Module, config: ZeroConfig, group: dist.ProcessGroup | None = None):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("ZeroDataParallel needs torch.distributed.init_process_group(...) first")
        launched = dist.get_world_size(group)
        if config.world_size != launched:
            raise ValueError(f"ZeroConfig.world_size={config.world_size} does not match the {launched} launched "
                             f"ranks; set world_size={launched}")
        self.model, self.config = model.to(config.param_dtype), config
        self.rank, self.world_size, self.stage = dist.get_rank(group), launched, config.stage
        self.group, self.comm = group, Comm(launched, group)
        self.psi = sum(p.numel() for p in model.parameters())
        if config.memory_budget is not None:
            memory.require_budget(self.psi, launched, config.memory_budget, config.memory_model)
        parts, index = (launched, self.rank) if self.stage >= 1 else (1, 0)  # stage 0 owns everything
        self.flats = []
        for modules, params in _buckets(model, config.bucket_numel if self.stage < 3 else 1):
            flat = FlatGroup(params, parts, index, config.param_dtype)
            dist.broadcast(flat.full, group=self.group, group_src=0)  # rank 0's weights; not a step's traffic
            self.flats.append(flat)
            self._hook(modules, flat)
        # fp32 master weights of the owned shard: the optimizer never sees anything else.
        # (float64 parameters keep float64 masters: the exact-arithmetic trajectory check.)
        self.master_dtype = torch.promote_types(config.param_dtype, torch.float32)
        self.masters = [g.own(g.full).to(self.master_dtype).clone() for g in self.flats]  # [(padded // parts,)]
        hyper = {"lr": config.lr, "betas": config.betas, "eps": config.eps, "weight_decay": config.weight_decay}
        self.optimizer = SUPPORTED_OPTIMIZERS[config.optimizer](self.masters, **hyper)
        # Stages 2-3: one reduce bucket, reused: each gradient is copied into it as backward
        # produces it and freed; a full bucket is reduce-scattered during backward (DeepSpeed's
        # reduce bucket). It holds one flat group, so it is the largest group's size.
        self.bucket = (torch.zeros(max(g.padded for g in self.flats), dtype=config.param_dtype,
                                   device=self.flats[0].full.device) if self.stage >= 2 else None)  # (max padded,)
        self._filling: FlatGroup | None = None  # the group whose gradients the bucket holds
        self._end_queued = False
        for g in self.flats:
            if self.stage <= 1:
                g.grad_full = torch.zeros_like(g.full)  # (padded,)
                for p, n, offset in zip(g.params, g.sizes, g.offsets, strict=True):
                    p.grad = g.grad_full[offset:offset + n].view_as(p)  # autograd accumulates in place
            else:
                g.grad_shard = torch.zeros_like(g.own(g.full))  # (padded // N_d,)
            if self.stage == 3:
                g.shard = g.own(g.full).clone()  # (padded // N_d,)
                g.release()

    # -- hooks ---------------------------------------------------------------------------
    def _hook(self, modules: list[nn.Module], flat: FlatGroup) -> None:
        if self.stage >= 2:
            for p, offset in zip(flat.params, flat.offsets, strict=True):
                p.register_post_accumulate_grad_hook(lambda p, g=flat, o=offset: self._grad_ready(g, p, o))
        if self.stage == 3:
            (module,) = modules  # stage 3 groups hold exactly one layer
            module.register_forward_pre_hook(lambda m, args, g=flat: g.gather(self.comm))
            module.register_forward_hook(lambda m, args, out, g=flat: self._after_forward(g, out))

    def _after_forward(self, flat: FlatGroup, out: Any) -> None:
        flat.release()
        # The gradient w.r.t. any of the layer's outputs arrives before the layer's own backward:
        # gather the parameters again, in time for it (Section 5.3). Every output tensor gets the
        # hook (a layer may return a tuple, a dict, ...); the first one to fire gathers.
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.requires_grad:
                t.register_hook(lambda grad, g=flat: g.gather(self.comm))

    def _grad_ready(self, flat: FlatGroup, p: nn.Parameter, offset: int) -> None:
        """Stages 2-3: copy ``p.grad`` into the bucket and free it; reduce-scatter a full bucket."""
        if not self._end_queued:  # flush what is left when backward ends (parameters without gradients)
            Variable._execution_engine.queue_callback(self._end_backward)
            self._end_queued = True
        if self._filling is not flat:
            self._flush()  # a gradient of another group: reduce the bucket's partial sum first
            self._filling = flat
        self.bucket[offset:offset + p.numel()].add_(p.grad.reshape(-1))  # (n,)
        p.grad = None
        flat.pending -= 1
        if flat.pending == 0:
            self._flush()

    def _flush(self) -> None:
        """Reduce-scatter the bucket into the owned gradient shard of the group it holds."""
        flat, self._filling = self._filling, None
        if flat is None:
            return
        bucket = self.bucket[:flat.padded]  # (padded,)
        shard = bucket.new_empty(flat.shard_numel)  # (padded // N_d,)
        self.comm.reduce_scatter(shard, bucket)
        flat.grad_shard.add_(shard)  # partial sums of one group add up
        bucket.zero_()
        if self.stage == 3:
            flat.release()

    def _end_backward(self) -> None:
        self._flush()
        for g in self.flats:
            g.pending = len(g.params)
            if self.stage == 3 and g.materialized:
                g.release()  # gathered for a backward that produced no gradient for it
        self._end_queued = False

    # -- the step --------------------------------------------------------------------------
    def step(self) -> None:
        """Reduce what backward left unreduced, update the owned shard, share the result."""
        for g, master in zip(self.flats, self.masters, strict=True):
            if self.stage == 0:
                self.comm.all_reduce(g.grad_full)
                grad = g.grad_full  # (padded,)
            elif self.stage == 1:
                grad = g.grad_full.new_empty(g.shard_numel)  # (padded // N_d,)
                self.comm.reduce_scatter(grad, g.grad_full)
            else:
                grad = g.grad_shard  # (padded // N_d,)
            master.grad = grad.to(self.master_dtype).div_(self.world_size)  # mean over ranks
        self.optimizer.step()
        for g, master in zip(self.flats, self.masters, strict=True):
            master.grad = None
            if self.stage == 0:
                g.full.copy_(master)
            elif self.stage in (1, 2):
                self.comm.all_gather(g.full, master.to(g.full.dtype))  # (padded // N_d,) -> (padded,)
            else:
                g.shard.copy_(master)

    def zero_grad(self) -> None:
        for g in self.flats:
            (g.grad_full if self.stage <= 1 else g.grad_shard).zero_()

    # -- inspection (not counted as a step's communication) ----------------------------------
    def state_bytes(self) -> dict[str, int]:
        """Bytes this rank holds between steps, by storage: parameters, gradients, optimizer
        states (fp32 master shard, moments, step counters), and the stage 2-3 reduce bucket."""
        params = sum(_nbytes(g.full) + (_nbytes(g.shard) if g.shard is not None else 0) for g in self.flats)
        grads = sum(_nbytes(g.grad_full if self.stage <= 1 else g.grad_shard) for g in self.flats)
        states = [t for s in self.optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        optimizer = sum(_nbytes(m) for m in self.masters) + sum(_nbytes(t) for t in states)
        return {"params": params, "grads": grads, "optimizer": optimizer,
                "bucket": _nbytes(self.bucket) if self.bucket is not None else 0}

    def named_buffers(self, largest_param: int | None = None) -> dict[str, int]:
        """Working memory beyond the model states, by name, in bytes, at its largest during a step.

        - ``bucket`` (stages 2-3): the reduce bucket, the largest flat group;
        - ``reduced_shard`` (stage 1): the reduce-scatter outputs, (padded // N_d,) per group;
        - ``fresh_grad`` (stages 2-3): one parameter's gradient between autograd and the bucket;
        - ``gathered`` (stage 3): two layers gathered at once (the one in backward, the next);
        - ``fp32_grad``: the fp32 copies of the gradient shards the optimizer reads (2-byte dtypes);
        - ``adam_update``: ``torch.optim.Adam``'s temporaries (its single-tensor loop on CPU):
          ``sqrt(v)`` and the denominator of the shard being updated, while the previous shard's
          denominator is still held by the loop variable: three of the largest master shard;
        - ``gloo_copies`` (stages 1-3 on gloo): gloo's reduce-scatter and all-gather each copy the
          whole (padded,) tensor (measured: one full-size allocation per call; NCCL works in
          place). The worker thread that ran a collective drops it (and its copy) only after the
          caller has resumed, so each of gloo's ``GLOO_THREADS`` workers may still hold a finished
          collective's copy when the next one allocates: ``GLOO_THREADS + 1`` copies of the
          largest flat group.
        """
        b = self.flats[0].full.element_size()
        largest = max(g.padded for g in self.flats)
        # Every group's reduced shard and fp32 gradient stay alive (as master.grad) until the
        # optimizer has stepped every group: they add up over the groups.
        shard = sum(g.shard_numel for g in self.flats) if self.stage == 1 else 0
        masters = sum(m.numel() for m in self.masters)
        master = max(m.numel() for m in self.masters)
        largest_param = largest_param or max(p.numel() for g in self.flats for p in g.params)
        out = {"bucket": b * largest if self.stage >= 2 else 0,
               "reduced_shard": b * shard,
               "fresh_grad": b * largest_param if self.stage >= 2 else 0,
               "gathered": 2 * b * largest if self.stage == 3 else 0,
               "fp32_grad": 4 * masters if self.masters[0].dtype != self.flats[0].full.dtype else 0,
               "adam_update": 3 * self.masters[0].element_size() * master,
               "gloo_copies": ((GLOO_THREADS + 1) * b * largest
                               if self.stage >= 1 and dist.get_backend(self.group) == "gloo" else 0)}
        return out

    def optimizer_elements(self) -> int:
        """Elements of Adam's moments ``exp_avg`` and ``exp_avg_sq`` on this rank."""
        return sum(s[k].numel() for s in self.optimizer.state.values() for k in ("exp_avg", "exp_avg_sq") if k in s)

    def padded_psi(self) -> int:
        return sum(g.padded for g in self.flats)

    def full_parameters(self) -> dict[str, torch.Tensor]:
        """Every parameter, gathered, in fp32 (float64 stays float64), by name (for comparing with a reference)."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        out = {}
        for g in self.flats:
            flat = g.full
            if self.stage == 3:
                flat = g.shard.new_empty(g.padded)  # (padded,)
                dist.all_gather_single(flat, g.shard, group=self.group)
            offset = 0
            for p, n in zip(g.params, g.sizes, strict=True):
                piece = flat[offset:offset + n].to(self.master_dtype)  # (n,)
                out[names[id(p)]] = piece.view(p.shape).clone()  # (n,) -> p.shape
                offset += n
        return out


def _buckets(model: nn.Module, bucket_numel: int) -> list[tuple[list[nn.Module], list[nn.Parameter]]]:
    """Consecutive parameter-owning modules packed while a bucket stays within ``bucket_numel``
    elements; a module larger than that is a bucket of its own. Modules are taken in
    registration order, so a model that registers them in the order it uses them gets its
    gradients back bucket by bucket (backward visits them in reverse)."""
    out: list[tuple[list[nn.Module], list[nn.Parameter]]] = []
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if not params:
            continue
        size = sum(p.numel() for p in params)
        if not out or sum(p.numel() for p in out[-1][1]) + size > bucket_numel:
            out.append(([], []))
        out[-1][0].append(module)
        out[-1][1].extend(params)
    return out


def _nbytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()
