r"""ZeRO: memory analysis, a from-scratch partitioner, and DeepSpeed side by side.

Paper: Rajbhandari, Rasley, Ruwase, He, "ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models", SC 2020, arXiv:1910.02054. Per-device model states under mixed-precision
Adam with $\Psi$ parameters on $N_d$ devices, stage 3:
$$ \frac{(2 + 2 + K)\,\Psi}{N_d}, \quad K = 12. $$

- :mod:`moderndl.zero.memory`: the memory model, Tables 1 and 2, DeepSpeed's estimators.
- :mod:`moderndl.zero.comm`: collectives that count their traffic (Section 7).
- :mod:`moderndl.zero.partition`: stages 0-3 on torch.distributed with flat padded buffers.
- :mod:`moderndl.zero.peak`: peak memory during a step, from the allocator's events.
- :mod:`moderndl.zero.workload`: the MLP and the small transformer every method trains.
- :mod:`moderndl.zero.libraries`: DDP, ZeroRedundancyOptimizer and FSDP2 on the same ranks.
- :mod:`moderndl.zero.launch`, :mod:`moderndl.zero.experiments`: spawn gloo ranks, measure, time.
- :mod:`moderndl.zero.deepspeed_side`: the same workload under DeepSpeed's own launcher.
- :mod:`moderndl.zero.offload`: ZeRO-Offload on one GPU through accelerate (full profile).
- :mod:`moderndl.zero.chapter`, :mod:`moderndl.zero.scales`, :mod:`moderndl.zero.bench`: the
  chapter's experiment and claims, its profiles, and its part of ``make gpu-check``.
"""
