"""The core loop: exact resume after a crash, deterministic sampling, loud failures."""

import pytest
import torch

from moderndl import train
from moderndl.seed import set_seed


def _setup(seed=0):
    set_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(96, 8, generator=g), torch.randint(0, 3, (96,), generator=g)
    return model, opt, sched, train.batches(x, y, batch_size=16, seed=3)


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.cross_entropy(model(x), y)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    model, opt, sched, data = _setup()
    reference, _ = train.fit(model, opt, _loss, data, train.TrainConfig(steps=12, log_every=5), scheduler=sched)
    ref_params = [p.detach().clone() for p in model.parameters()]

    def crashing(m, batch, calls=[0]):  # noqa: B006 - counts calls across steps
        calls[0] += 1
        if calls[0] == 10:
            raise KeyboardInterrupt("simulated crash at step 10")
        return _loss(m, batch)

    config = train.TrainConfig(steps=12, log_every=5, checkpoint_dir=tmp_path, checkpoint_every=4)
    model, opt, sched, data = _setup()
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, opt, crashing, data, config, scheduler=sched)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 8

    set_seed(123)  # a fresh process would not share the crashed one's RNG state
    model, opt, sched, data = _setup(seed=99)  # different init: resume must overwrite it
    resumed, loop = train.fit(model, opt, _loss, data, config, scheduler=sched, resume=True)
    assert loop.step == 12
    assert [r["step"] for r in resumed] == list(range(1, 13))
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in reference], abs=0, rel=1e-6)
    for p, q in zip(model.parameters(), ref_params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert sched.last_epoch == 12


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    model, opt, _, data = _setup()
    hist, loop = train.fit(model, opt, _loss, data, train.TrainConfig(steps=3, checkpoint_dir=tmp_path), resume=True)
    assert loop.step == 3 and len(hist) == 3 and (tmp_path / "checkpoint.pt").is_file()


def test_batches_are_a_function_of_seed_and_step():
    x = torch.arange(20)
    a, b = train.batches(x, batch_size=4, seed=0), train.batches(x, batch_size=4, seed=0)
    assert all(torch.equal(a(t)[0], b(t)[0]) for t in (7, 0, 3, 12))
    epoch0 = torch.cat([a(t)[0] for t in range(5)])
    assert sorted(epoch0.tolist()) == list(range(20))
    shards = [train.batches(x, batch_size=2, seed=0, rank=r, world_size=2)(1)[0] for r in (0, 1)]
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    with pytest.raises(ValueError, match="exceeds"):
        train.batches(x, batch_size=32, seed=0)
    with pytest.raises(ValueError, match="differ in length"):
        train.batches(x, torch.arange(3), batch_size=2, seed=0)


def test_nan_loss_stops_with_the_step():
    model, opt, _, data = _setup()
    calls = []

    def nan_at_third_step(m, batch):
        calls.append(1)
        loss = _loss(m, batch)
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(FloatingPointError, match="loss is nan at step 3"):
        train.fit(model, opt, nan_at_third_step, data, train.TrainConfig(steps=5, log_every=1))


def test_config_validation():
    with pytest.raises(ValueError, match="steps"):
        train.TrainConfig(steps=0)
    with pytest.raises(ValueError, match="mixed_precision"):
        train.TrainConfig(steps=1, mixed_precision="fp8")


def test_loops_of_different_precision_share_one_process(monkeypatch):
    from accelerate.state import AcceleratorState

    train.make_accelerator(train.TrainConfig(steps=1))
    AcceleratorState._shared_state["_mixed_precision"] = "bf16"  # as a GPU bf16 loop would leave it
    acc = train.make_accelerator(train.TrainConfig(steps=1, mixed_precision="bf16"))  # on CPU: full precision
    assert acc.mixed_precision == "no"


def test_a_given_accelerator_is_used_and_progress_can_be_silenced(capsys):
    acc = train.make_accelerator(train.TrainConfig(steps=1))
    model, opt, _, data = _setup()
    loop = train.Loop(train.TrainConfig(steps=2, progress=False), accelerator=acc, model=model, optimizer=opt)
    assert loop.accelerator is acc
    loop.run(lambda batch, t: {"x": 1.0}, data)
    assert "it/s" not in capsys.readouterr().err


def test_checkpoint_step_reads_the_saved_step(tmp_path):
    assert train.checkpoint_step(tmp_path) == 0
    model, opt, _, data = _setup()
    train.fit(model, opt, _loss, data, train.TrainConfig(steps=4, checkpoint_dir=tmp_path))
    assert train.checkpoint_step(tmp_path) == 4
