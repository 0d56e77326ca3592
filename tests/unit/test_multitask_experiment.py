"""MultiMNIST composition, the hard-sharing model, Delta_m, and training through the core loop."""

import pytest
import torch

from moderndl import measure
from moderndl.multitask import analysis as A
from moderndl.multitask import experiment as E
from moderndl.multitask.model import HardSharingConfig, HardSharingNet, evaluate, task_losses
from moderndl.multitask.multimnist import (
    TASKS,
    TWO_TASKS,
    MultiMNISTConfig,
    Task,
    compose,
    load_digit_folder,
    load_multimnist,
)
from moderndl.train import batches


# -- data ----------------------------------------------------------------------------------
def _constant_digits(n=50):
    y = torch.arange(n) % 10
    x = ((y + 1).float() / 10).view(n, 1, 1, 1).expand(n, 1, 8, 8).clone()  # digit k is ink (k+1)/10
    return x, y


def test_canvas_layout_by_hand():
    x, y = _constant_digits()
    config = MultiMNISTConfig(n_train=20, n_test=5, shift=4, jitter=0)
    canvas, t = compose(x, y, 20, config, torch.Generator().manual_seed(0))
    assert canvas.shape == (20, 1, 8, 12) and config.canvas == (8, 12)
    ink_l, ink_r = (t["left"] + 1).float() / 10, (t["right"] + 1).float() / 10
    torch.testing.assert_close(canvas[:, 0, :, :4], ink_l.view(-1, 1, 1).expand(-1, 8, 4))  # left digit alone
    overlap = torch.maximum(ink_l, ink_r).view(-1, 1, 1).expand(-1, 8, 4)
    torch.testing.assert_close(canvas[:, 0, :, 4:8], overlap)  # both digits: max of the inks
    torch.testing.assert_close(canvas[:, 0, :, 8:], ink_r.view(-1, 1, 1).expand(-1, 8, 4))  # right digit alone
    torch.testing.assert_close(t["sum"], (t["left"] + t["right"]).float())


def _compose_reference(x, y, n, config, g):
    """The same draws as ``compose``, pasted one canvas at a time."""
    left, right = torch.randint(len(x), (n,), generator=g), torch.randint(len(x), (n,), generator=g)
    offsets = torch.randint(config.jitter + 1, (n, 4), generator=g)
    out = torch.zeros(n, 1, *config.canvas)
    for i in range(n):
        r0, c0, r1, c1 = offsets[i].tolist()
        out[i, :, r0:r0 + 8, c0:c0 + 8] = x[left[i]]
        c1 += config.shift
        out[i, :, r1:r1 + 8, c1:c1 + 8] = torch.maximum(out[i, :, r1:r1 + 8, c1:c1 + 8], x[right[i]])
    return out, y[left], y[right]


@pytest.mark.parametrize(("shift", "jitter"), [(4, 2), (8, 1), (2, 3)])
def test_vectorised_compose_equals_a_per_canvas_loop(shift, jitter):
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(40) % 10
    config = MultiMNISTConfig(shift=shift, jitter=jitter)
    canvas, t = compose(x, y, 64, config, torch.Generator().manual_seed(1))
    ref, yl, yr = _compose_reference(x, y, 64, config, torch.Generator().manual_seed(1))
    assert canvas.shape == (64, 1, 8 + jitter, 8 + shift + jitter)
    torch.testing.assert_close(canvas, ref)
    assert torch.equal(t["left"], yl) and torch.equal(t["right"], yr)


def test_test_canvases_use_only_held_out_digits():
    n = 200
    x = (torch.arange(n).float() / n).view(n, 1, 1, 1).expand(n, 1, 8, 8).clone()  # ink value = source id
    y = torch.arange(n) % 10
    config = MultiMNISTConfig(n_train=300, n_test=100, shift=8, jitter=0)
    (xtr, _), (xte, _) = load_multimnist(config, seed=0, source=(x, y))
    ids = lambda c: set((c[:, 0, 0, 0] * n).round().long().tolist()) | set((c[:, 0, 0, 8] * n).round().long().tolist())  # noqa: E731
    assert not ids(xtr) & ids(xte)


def test_real_multimnist_shapes_and_labels():
    (x, t), (xt, tt) = load_multimnist(MultiMNISTConfig(n_train=64, n_test=32))
    assert x.shape == (64, 1, 10, 14) and xt.shape == (32, 1, 10, 14)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert set(t) == {task.name for task in TASKS}
    assert int(t["left"].max()) <= 9 and float(t["sum"].max()) <= 18


def test_a_users_digit_folder(tmp_path):
    from PIL import Image

    for d in (3, 7):
        (tmp_path / str(d)).mkdir()
        for k in range(4):
            Image.new("RGB", (16, 16), (30 * d, 30 * d, 30 * d)).save(tmp_path / str(d) / f"{k}.png")
    x, y = load_digit_folder(tmp_path)
    assert x.shape == (8, 1, 8, 8) and sorted(y.tolist()) == [3] * 4 + [7] * 4
    torch.testing.assert_close(x[:, 0, 0, 0], (30 * y).float() / 255)  # grey level follows the folder
    (xtr, t), _ = load_multimnist(MultiMNISTConfig(n_train=16, n_test=4), source=tmp_path)
    assert set(t["left"].tolist()) <= {3, 7}
    (tmp_path / "x").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "x" / "0.png")
    with pytest.raises(ValueError, match=r"sub-folders must be named 0..9, found \['x'\]"):
        load_digit_folder(tmp_path)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shift": 0}, "shift must be in 1..8"), ({"jitter": -1}, "jitter must be >= 0"),
    ({"n_train": 0}, "n_train and n_test must be positive"),
])
def test_bad_data_config_is_an_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiMNISTConfig(**kwargs)


def test_bad_task_kind_is_an_error():
    with pytest.raises(ValueError, match="kind 'ranking' not in"):
        Task("x", "ranking", 1)


# -- model ----------------------------------------------------------------------------------
def test_task_losses_are_cross_entropy_and_mse():
    torch.manual_seed(0)
    out = {"left": torch.randn(4, 10), "right": torch.randn(4, 10), "sum": torch.randn(4, 1)}
    tgt = {"left": torch.tensor([1, 2, 3, 4]), "right": torch.tensor([0, 0, 9, 9]), "sum": torch.randn(4)}
    losses = task_losses(out, tgt, TASKS)
    ce = -torch.log_softmax(out["left"], 1)[torch.arange(4), tgt["left"]].mean()
    mse = ((out["sum"][:, 0] - tgt["sum"]) ** 2).mean()
    torch.testing.assert_close(losses[0], ce)
    torch.testing.assert_close(losses[2], mse)


def test_mismatched_heads_and_tasks_is_an_error():
    out = {"left": torch.randn(2, 10), "right": torch.randn(2, 10)}
    with pytest.raises(ValueError, match=r"2 heads \['left', 'right'\] do not match 3 tasks"):
        task_losses(out, {}, TASKS)


def test_evaluate_is_independent_of_its_batch_size_and_shared_layer_is_the_last_trunk_weight():
    torch.manual_seed(0)
    net = HardSharingNet(TASKS, HardSharingConfig(in_features=140, hidden=(16, 8)))
    (x, t), _ = load_multimnist(MultiMNISTConfig(n_train=50, n_test=10))
    assert evaluate(net, x, t, batch_size=7) == pytest.approx(evaluate(net, x, t, batch_size=1000))
    assert net.shared_layer()[0] is net.trunk[3].weight and net.shared_layer()[0].shape == (8, 16)


# -- Delta_m and tables -------------------------------------------------------------------
def test_delta_m_by_hand():
    tasks = [Task("a", "classification", 10), Task("s", "regression", 1)]
    # accuracy 0.5 -> 0.8 is +60 %; MAE 4 -> 2 (lower is better) is +50 %; mean 55 %
    assert E.delta_m({"a": 0.8, "s": 2.0}, {"a": 0.5, "s": 4.0}, tasks) == pytest.approx(55.0)


def test_summarize_uses_sample_std_and_standard_errors_and_ranks():
    tasks = [Task("a", "classification", 10), Task("s", "regression", 1)]
    R = E.RunResult
    results = [R(E.SINGLE, 0, ("a",), {"a": 0.5}, []), R(E.SINGLE, 1, ("a",), {"a": 0.7}, []),
               R(E.SINGLE, 0, ("s",), {"s": 4.0}, []), R(E.SINGLE, 1, ("s",), {"s": 4.0}, []),
               R("equal", 0, ("a", "s"), {"a": 0.6, "s": 4.0}, []), R("equal", 1, ("a", "s"), {"a": 0.6, "s": 4.0}, []),
               R("mgda", 0, ("a", "s"), {"a": 0.9, "s": 2.0}, []), R("mgda", 1, ("a", "s"), {"a": 0.3, "s": 2.0}, [])]
    table = E.summarize(results, tasks)
    # 0.5 and 0.7: mean 0.6, sample std 0.1 sqrt 2 (ddof = 1), standard error 0.1
    assert table[E.SINGLE]["a"]["mean"] == pytest.approx(0.6)
    assert table[E.SINGLE]["a"]["std"] == pytest.approx(0.1 * 2 ** 0.5)
    assert table[E.SINGLE]["a"]["sem"] == pytest.approx(0.1)
    assert table["equal"]["delta_m"]["mean"] == pytest.approx(0.0)
    # mgda: seed 0 (50 % + 50 %)/2 = 50, seed 1 (-50 % + 50 %)/2 = 0: std 25 sqrt 2, s.e. 25
    assert table["mgda"]["delta_m"]["mean"] == pytest.approx(25.0)
    assert table["mgda"]["delta_m"]["sem"] == pytest.approx(25.0)
    assert E.ranking(table) == ["mgda", "equal"]


# -- training through the core loop ----------------------------------------------------------
@pytest.fixture(scope="module")
def small_data():
    return load_multimnist(MultiMNISTConfig(n_train=256, n_test=64))


SMALL = E.MultitaskRecipe(steps=12, batch_size=16, hidden=(16, 8), probe_every=4, log_every=4, cpu=True)


@pytest.mark.parametrize("method", ["equal", "uncertainty", "gradnorm", "pcgrad", "mgda", "random"])
def test_every_method_trains_through_the_loop(small_data, method, one_thread):
    r = E.train(method, TASKS, *small_data, SMALL, seed=0)
    assert len(r.history) == 12 and set(r.metrics) == {"left", "right", "sum"}
    assert all(f"weight/{t.name}" in r.history[-1] for t in TASKS)
    steps, cos = measure.series(r.history, "cos/left~right")
    assert list(steps) == [1, 5, 9] and ((-1 <= cos) & (cos <= 1)).all()
    for key in ("same/sum", "cross/left~sum", "cross/sum~left", "upd/right"):
        assert len(measure.series(r.history, key)[1]) == 3
    if method == "gradnorm":
        assert sum(r.history[-1][f"weight/{t.name}"] for t in TASKS) == pytest.approx(3.0, rel=1e-5)
    if method == "random":
        assert sum(r.history[-1][f"weight/{t.name}"] for t in TASKS) == pytest.approx(1.0, rel=1e-5)


def test_pcgrads_two_task_update_never_conflicts_with_a_task(small_data, one_thread):
    # two tasks: g_1 . (g_1^PC + g_2^PC) >= 0 and likewise for g_2 (Cauchy-Schwarz), on the trained update
    r = E.train("pcgrad", TWO_TASKS, *small_data, E.MultitaskRecipe(**{**SMALL.__dict__, "probe_every": 1}), seed=0)
    assert A.update_conflict_fraction(r, ["left", "right"]) == 0.0


def test_probes_do_not_change_the_training(small_data, one_thread):
    quiet = E.MultitaskRecipe(**{**SMALL.__dict__, "probe_every": 0})
    for method in ("pcgrad", "uncertainty"):
        a = E.train(method, TASKS, *small_data, SMALL, seed=1)
        b = E.train(method, TASKS, *small_data, quiet, seed=1)
        assert a.metrics == b.metrics
        assert [h["loss/sum"] for h in a.history] == [h["loss/sum"] for h in b.history]
        assert not any(k.startswith("cos/") for h in b.history for k in h)


@pytest.mark.slow
def test_resume_continues_exactly(small_data, tmp_path):
    for method in ("pcgrad", "random"):
        straight = E.train(method, TASKS, *small_data, SMALL, seed=0)
        half = E.MultitaskRecipe(**{**SMALL.__dict__, "steps": 6})
        E.train(method, TASKS, *small_data, half, seed=0, checkpoint_dir=tmp_path / method)
        resumed = E.train(method, TASKS, *small_data, SMALL, seed=0, checkpoint_dir=tmp_path / method, resume=True)
        assert resumed.history == straight.history
        assert resumed.metrics == straight.metrics


def test_unknown_method_in_train_and_grid(small_data):
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['sgd'\]; valid methods: equal, uncertainty"):
        E.train("sgd", TASKS, *small_data, SMALL, seed=0)
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nash'\]"):
        E.run_grid(["equal", "nash"], [0], TASKS, *small_data, SMALL)


def test_empty_seeds_or_methods_is_an_error(small_data):
    with pytest.raises(ValueError, match="seeds is empty"):
        E.run_grid(["equal"], [], TASKS, *small_data, SMALL)
    with pytest.raises(ValueError, match="methods is empty"):
        E.run_grid([], [0], TASKS, *small_data, SMALL)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        E.run_grid(["equal"], [0, 0], TASKS, *small_data, SMALL)


def test_nan_loss_stops_training_at_its_step(small_data, one_thread):
    (x, t), test = small_data
    sampler = batches(x, batch_size=SMALL.batch_size, seed=0)
    poisoned = sampler._perm if sampler(0) is not None else None  # epoch 0's permutation
    k = int(poisoned[5 * SMALL.batch_size])  # an example first drawn at step index 5, i.e. step 6
    bad = {**t, "sum": t["sum"].clone()}
    bad["sum"][k] = float("nan")
    with pytest.raises(FloatingPointError, match=r"non-finite task loss at step 6: sum=nan"):
        E.train("equal", TASKS, (x, bad), test, SMALL, seed=0)


@pytest.mark.parametrize(("override", "match"), [
    ({"methods": ["equal", "nash"]}, r"unknown method\(s\) \['nash'\]"),
    ({"methods": []}, "methods is empty"),
    ({"normalizations": ["l1"]}, r"normalizations \['l1'\] not in"),
    ({"sweep": [0.5, 1.5]}, r"sweep weights must lie in \[0, 1\]"),
])
def test_bad_chapter_settings_fail_before_training(override, match):
    from moderndl.multitask import scales, study

    with pytest.raises(ValueError, match=match):
        study.check_settings({**scales.TABLE["smoke"], **override})
    study.check_settings(scales.TABLE["smoke"])


def test_a_grid_in_two_processes_equals_the_grid_in_one(small_data, one_thread):
    from dataclasses import replace

    one = E.run_grid(["equal", "uncertainty"], [0, 1], TWO_TASKS, *small_data, SMALL)
    two = E.run_grid(["equal", "uncertainty"], [0, 1], TWO_TASKS, *small_data, replace(SMALL, workers=2))
    assert [(r.method, r.seed, r.tasks) for r in two] == [(r.method, r.seed, r.tasks) for r in one]
    assert [r.metrics for r in two] == [r.metrics for r in one]
    assert [r.history for r in two] == [r.history for r in one]
