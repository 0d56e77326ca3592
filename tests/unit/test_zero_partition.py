"""The from-scratch ZeRO partitioner: every stage equals single-process Adam; bytes and traffic
match the formulas of arXiv:1910.02054 (Sections 5 and 7); bad input fails loudly."""

import pytest
import torch
import torch.distributed as dist
from torch import nn

from moderndl.zero import experiments as ex
from moderndl.zero import memory, report
from moderndl.zero.launch import free_port
from moderndl.zero.partition import ZeroConfig, ZeroDataParallel
from moderndl.zero.workload import Workload, loss_fn

WORK = Workload(sizes=(64, 24, 17, 10), batch_size=24, steps=3)


@pytest.fixture
def one_rank():
    """A one-process gloo group in this process (N_d = 1): hooks, buffers and counters, fast."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("stage", memory.STAGES)
def test_one_rank_every_stage_equals_adam(one_rank, stage):
    reference, ref_loss = ex.reference_adam(WORK)
    record = ex.train_stage(0, 1, WORK, stage, "float32", tensors=None)
    for name, ref in reference.items():
        torch.testing.assert_close(record["params"][name], ref, rtol=1e-5, atol=1e-6)
    assert record["loss"] == pytest.approx(ref_loss, rel=1e-5)
    assert record["comm_elements"][-1] == report.COMM_FACTOR[stage] * record["psi"]
    states = record["bytes"]["params"] + record["bytes"]["grads"] + record["bytes"]["optimizer"]
    assert states == pytest.approx(
        memory.model_state_bytes(record["psi"], 1, stage, memory.MemoryModel(4, 4, 12)), rel=1e-3)
    bucket = {0: 0, 1: 0, 2: record["psi"], 3: WORK.largest_layer()}[stage]  # stage 2: one group; 3: a layer
    assert record["bytes"]["bucket"] == 4 * bucket


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_one_rank_layer_sized_buckets_equal_adam(one_rank, stage):
    """bucket_numel=1 gives one flat bucket per layer: stage 2 reduce-scatters layer by layer in backward."""
    reference, _ = ex.reference_adam(WORK)
    model = WORK.model()
    engine = ZeroDataParallel(model, ZeroConfig(stage=stage, world_size=1, lr=WORK.lr, param_dtype=torch.float32,
                                                bucket_numel=1))
    assert len(engine.flats) == 3
    data = WORK.data()
    for t in range(WORK.steps):
        loss_fn(model, data(t)).backward()
        engine.step()
        engine.zero_grad()
    for name, ref in reference.items():
        torch.testing.assert_close(engine.full_parameters()[name], ref, rtol=1e-5, atol=1e-6)


def test_stage3_frees_gathered_parameters_between_uses(one_rank):
    model = WORK.model()
    engine = ZeroDataParallel(model, ZeroConfig(stage=3, world_size=1, param_dtype=torch.float32,
                                                bucket_numel=1))
    batch = WORK.data()(0)
    loss_fn(model, batch).backward()
    engine.step()
    assert all(f.full.untyped_storage().nbytes() == 0 for f in engine.flats)  # only shards remain
    assert len(engine.flats) == 3  # one flat group per Linear layer


def test_world_size_mismatch_names_both_values(one_rank):
    with pytest.raises(ValueError, match=r"world_size=2 does not match the 1 launched ranks"):
        ZeroDataParallel(WORK.model(), ZeroConfig(stage=1, world_size=2))


def test_memory_budget_below_stage3_share_is_refused(one_rank):
    with pytest.raises(ValueError, match=r"memory budget 100 bytes.*stage-3 share"):
        ZeroDataParallel(WORK.model(), ZeroConfig(stage=3, world_size=1, memory_budget=100))


def test_needs_an_initialised_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(RuntimeError, match="init_process_group"):
        ZeroDataParallel(WORK.model(), ZeroConfig())


@pytest.mark.parametrize("optimizer", ["SGD", torch.optim.SGD, "LBFGS", "Adafactor"])
def test_unsupported_optimizer_names_the_value(optimizer):
    with pytest.raises(ValueError, match=r"optimizer .*(SGD|LBFGS|Adafactor).* not supported.*Adam, AdamW"):
        ZeroConfig(optimizer=optimizer)


def test_supported_optimizer_given_as_class_is_normalised():
    assert ZeroConfig(optimizer=torch.optim.AdamW).optimizer == "AdamW"


@pytest.mark.parametrize(("field", "value", "pattern"), [("world_size", 0, "N_d.*0"), ("stage", 4, "stage.*4"),
                                                         ("world_size", -2, "N_d.*-2"), ("stage", 1.0, "stage.*1.0"),
                                                         ("stage", True, "stage.*True")])
def test_bad_config_names_the_value(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        ZeroConfig(**{field: value})


def test_plan_rejects_a_bad_stage_before_spawning():
    with pytest.raises(ValueError, match=r"stage must be one of .*got 5"):
        ex.Plan(workload=WORK, stages=(5,))
    with pytest.raises(ValueError, match=r"unknown method"):
        ex.Plan(workload=WORK, methods=("ddp", "zero4"))


class WithUnused(nn.Module):
    """A layer that never takes part in forward: its parameters never receive a gradient."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.unused, self.b = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class Split(nn.Module):
    """One layer, two outputs (a tuple): stage 3 must gather it again for its backward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 32)

    def forward(self, x):
        y = self.lin(x)
        return y[:, :16], y[:, 16:]


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.split, self.head = Split(), nn.Linear(16, 3)

    def forward(self, x):
        a, b = self.split(x)
        return self.head(torch.tanh(a) * b)


def _train(model, step_fn, steps=3):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 8, generator=g), torch.randint(0, 3, (12,), generator=g)
    for _ in range(steps):
        nn.functional.cross_entropy(model(x), y).backward()
        step_fn()


def _adam(make):
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step():
        opt.step()
        opt.zero_grad(set_to_none=True)

    _train(model, step)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("bucket_numel", [1, 10**6])
def test_parameter_without_gradient_still_reduces_the_rest(one_rank, stage, bucket_numel):
    """The unused layer's gradient never arrives; the others must still be reduced and applied."""
    ours = _one_rank_equals_adam(WithUnused, stage, bucket_numel)
    torch.testing.assert_close(ours["unused.weight"], WithUnused().unused.weight.detach())  # never moved


@pytest.mark.parametrize("stage", [2, 3])
def test_layer_with_two_outputs_equals_adam(one_rank, stage):
    _one_rank_equals_adam(TwoOutputs, stage, bucket_numel=1)


def _one_rank_equals_adam(model_cls, stage, bucket_numel):
    """Train ``model_cls`` with one ZeRO rank; its parameters must equal plain Adam's. Returns them."""
    reference = _adam(model_cls)
    model = model_cls()
    engine = ZeroDataParallel(model, ZeroConfig(stage=stage, world_size=1, lr=1e-2, param_dtype=torch.float32,
                                                bucket_numel=bucket_numel))

    def step():
        engine.step()
        engine.zero_grad()

    _train(model, step)
    ours = engine.full_parameters()
    for name, ref in reference.items():
        torch.testing.assert_close(ours[name], ref, rtol=1e-5, atol=1e-6)
    return ours


def test_stage2_frees_each_gradient_into_a_bucket(one_rank):
    """After backward, stage 2 holds no p.grad: each was copied into the bucket and freed."""
    model = WORK.model()
    engine = ZeroDataParallel(model, ZeroConfig(stage=2, world_size=1, param_dtype=torch.float32, bucket_numel=1))
    loss_fn(model, WORK.data()(0)).backward()
    assert all(p.grad is None for p in model.parameters())
    assert engine.bucket.numel() == max(g.padded for g in engine.flats) == 64 * 24 + 24
    assert engine.comm.calls == 3  # one reduce-scatter per layer bucket, during backward


TRANSFORMER = Workload(kind="transformer", width=32, layers=2, heads=4, seq_len=8, batch_size=4, steps=2)


@pytest.mark.parametrize("stage", memory.STAGES)
def test_transformer_every_stage_equals_adam(one_rank, stage):
    reference, _ = ex.reference_adam(TRANSFORMER)
    record = ex.train_stage(0, 1, TRANSFORMER, stage, "float32", tensors=None, bucket_numel=20_000)
    for name, ref in reference.items():
        torch.testing.assert_close(record["params"][name], ref, rtol=1e-5, atol=1e-6)
    assert record["comm_elements"][-1] == report.COMM_FACTOR[stage] * record["psi"]  # no partial flushes


def test_peak_is_bounded_by_states_buffers_and_activations(one_rank):
    """Measured peak per stage: at least the formula, at most formula + named buffers + A."""
    records = {s: ex.train_stage(0, 1, TRANSFORMER, s, "float32", tensors=None, bucket_numel=20_000)
               for s in memory.STAGES}
    for row in report.peak_rows(records.values()):
        assert row["peak_bytes"] >= row["formula_bytes"], row
        assert row["holds"], row
    # At N_d = 1 the gradient shard is the whole gradient, so stage 2 cannot save anything: it
    # costs at most its bucket more than stage 1 (the saving at N_d >= 2 is the chapter's claim).
    assert records[2]["peak_bytes"] <= records[1]["peak_bytes"] + records[2]["bytes"]["bucket"]


@pytest.mark.slow
def test_two_and_three_ranks_match_adam_bytes_and_traffic():
    """Real gloo ranks; N_d = 3 does not divide Psi, so the flat buffers are padded."""
    plan = ex.Plan(workload=WORK, n_ds=(2, 3), dtypes=("float32", "bfloat16"), methods=())
    result = ex.run(plan)
    reference, _ = ex.reference_adam(WORK)
    assert WORK.num_params() % 3 != 0
    for row in report.trajectory_rows(result["runs"], reference):
        if row["dtype"] == "float32":
            assert row["allclose"], row
    assert len([r for r in result["runs"] if r["rank"] == 0]) == 2 * 2 * 4
    for row in report.memory_rows(result["runs"]):
        assert row["ratio"] == pytest.approx(1.0, abs=0.01), row
        assert row["ratio"] >= 1.0  # padding only ever adds
    for row in report.comm_rows(result["runs"]):
        assert row["ratio"] == pytest.approx(1.0, abs=0.01), row
    moments = {(r["n_d"], r["stage"]) : r["moments"] for r in result["runs"] if r["dtype"] == "float32"}
    psi = WORK.num_params()
    padded = {n: sum(-(-(a * b + b) // n) * n for a, b in zip(WORK.sizes[:-1], WORK.sizes[1:], strict=True))
              for n in (2, 3)}
    assert moments[(3, 3)] == 2 * padded[3] // 3  # stage 3: per-layer padding, 2 moments per owned element
    assert moments[(2, 1)] == 2 * (-(-psi // 2))  # stages 1-2: one padded bucket


@pytest.mark.parametrize("stage", memory.STAGES)
def test_float64_every_stage_equals_float64_adam(one_rank, stage):
    """float64 parameters keep float64 masters and moments: the chapter's exact trajectory check."""
    from moderndl.zero.chapter import TRAJ_EXACT_ATOL
    from moderndl.zero.libraries import build

    reference, _ = ex.reference_adam(TRANSFORMER, dtype=torch.float64)
    runner = build(f"ours{stage}", TRANSFORMER, 1, 20_000, dtype=torch.float64)
    data = TRANSFORMER.data()
    for t in range(TRANSFORMER.steps):
        runner.step(data(t))
    params = runner.parameters()
    for name, ref in reference.items():
        assert params[name].dtype == ref.dtype == torch.float64
        torch.testing.assert_close(params[name], ref, rtol=0, atol=TRAJ_EXACT_ATOL)


@pytest.mark.slow
def test_two_ranks_every_method_in_float64_equals_float64_adam():
    """The side-by-side run on two gloo ranks: ours 0-3, DDP, ZeroRedundancyOptimizer and FSDP2
    in float64 against one-process float64 Adam, to the chapter's float64 tolerance."""
    from moderndl.zero.chapter import TRAJ_EXACT_ATOL

    plan = ex.Plan(workload=TRANSFORMER, n_ds=(2,), stages=(0,), dtypes=("float32",), bucket_numel=20_000,
                   rounds=1, repeats=1)
    result = ex.run(plan)
    reference, _ = ex.reference_adam(TRANSFORMER)
    exact, _ = ex.reference_adam(TRANSFORMER, dtype=torch.float64)
    rows = report.side_rows(result["side"], reference, exact, exact_atol=TRAJ_EXACT_ATOL)
    assert {r["method"] for r in rows} == set(plan.methods)
    for row in rows:
        assert row["f64_ok"], row
