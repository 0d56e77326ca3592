"""RandWire data, training recipe (Sec. 4), Fig. 3 summary, noise bounds and benchmark."""

import math
import pickle
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

from moderndl.randwire import bench, cifar, graphs, shapes
from moderndl.randwire import data as rd
from moderndl.randwire import experiment as ex
from moderndl.randwire.model import RandWireConfig, multiply_adds
from moderndl.seed import generator as seed_generator

TINY = RandWireConfig(nodes=6, channels=4, head_channels=8, stem_strides=(1, 1), generator="WS", params=(2, 0.5))


pytestmark = pytest.mark.usefixtures("one_thread")


def _fake_cifar(folder, per_batch=4):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_cifar_directory_loads_in_channel_major_layout(tmp_path):
    root = _fake_cifar(tmp_path / "cifar-10-batches-py")
    x_train, y_train, x_test, y_test = cifar.load_cifar10(root)
    assert x_train.shape == (20, 3, 32, 32) and x_test.shape == (4, 3, 32, 32) and x_train.dtype == torch.uint8
    raw = pickle.loads((root / "data_batch_1").read_bytes())
    assert torch.equal(x_train[0, 1].flatten(), torch.from_numpy(raw[b"data"][0, 1024:2048]))  # green plane
    assert y_train.tolist()[:4] == list(raw[b"labels"])
    data = rd.load_dataset(root, 32)
    assert data.name == "cifar10" and data.in_channels == 3 and data.num_classes == 10


def test_cifar_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        cifar.load_cifar10(tmp_path / "nope")
    root = _fake_cifar(tmp_path / "c")
    (root / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"c lacks data_batch_3"):
        cifar.load_cifar10(root)
    (root / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"cannot read CIFAR-10 batch .*data_batch_3"):
        cifar.load_cifar10(root)
    (root / "data_batch_3").write_bytes(pickle.dumps({b"images": 1}))
    with pytest.raises(ValueError, match=r"data_batch_3 lacks b'data'"):
        cifar.load_cifar10(root)


def _folder(root, counts, loose=0):
    for c, n in counts.items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (20, 12), (40 * i % 255, 0, 200)).save(root / c / f"{i}.png")
    for i in range(loose):
        Image.new("RGB", (8, 8)).save(root / f"loose{i}.png")
    return root


def test_image_folder_dataset(tmp_path):
    data = rd.load_dataset(_folder(tmp_path / "imgs", {"red": 5, "blue": 5}), 8)
    assert data.num_classes == 2 and data.x_train.shape[1:] == (3, 8, 8) and len(data.x_test) == 2


@pytest.mark.parametrize("counts,loose,match", [
    ({"a": 3, "b": 3}, 1, r"has images at its top level \(loose0.png\); put every image in a sub-folder"),
    ({"a": 6}, 0, r"has 1 class sub-folder\(s\) with images \(a\); classification needs at least 2"),
    ({"a": 1, "b": 1}, 0, r"holds 2 images in 2 classes; a 0.2 test split needs at least 6"),
])
def test_bad_folders_are_clear_errors(tmp_path, counts, loose, match):
    with pytest.raises(ValueError, match=match):
        rd.load_dataset(_folder(tmp_path / "imgs", counts, loose), 8)
    with pytest.raises(FileNotFoundError, match=r"data_dir .*missing does not exist"):
        rd.load_dataset(tmp_path / "missing", 16)


def test_shapes_task_is_a_pure_function_of_seed_split_and_index():
    a, b = shapes.sample(64, 3, 7), shapes.sample(64, 3, 7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (64, 3, 32, 32) and 0 <= a[0].min() and a[0].max() <= 1
    test = shapes.sample(64, 3, 7, "test")
    assert not torch.equal(test[0], a[0])  # train and test are different streams
    other = shapes.sample(64, 4, 7)
    assert not torch.equal(other[0], a[0])
    x, y = shapes.test_set(2500, 0, chunk=1000)
    assert x.shape == (2500, 3, 32, 32) and torch.equal(x[1000:2000], shapes.sample(1000, 0, 1, "test")[0])
    counts = torch.bincount(y, minlength=10).float()
    # labels are uniform: a chi-square test against 10 equal classes (9 dof, 0.999 quantile 27.9)
    assert float(((counts - 250) ** 2 / 250).sum()) < 27.9


@pytest.mark.parametrize("c", range(shapes.NUM_CLASSES))
def test_every_shape_is_mirror_symmetric_and_the_ten_are_distinct(c):
    """A horizontal flip keeps every class (so flip augmentation keeps labels), and no two
    classes share a mask."""
    axis = torch.linspace(-1.2, 1.2, 49)
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    inside = shapes._field(c, u, v) < 0
    torch.testing.assert_close(shapes._field(c, -u, v), shapes._field(c, u, v))
    for other in range(c):
        assert (inside != (shapes._field(other, u, v) < 0)).float().mean() > 0.05


def test_shapes_dataset_sizes_and_normalisation():
    data = rd.load_dataset("", 16, train_size=300, test_size=200)
    assert data.name == "shapes" and data.num_classes == 10 and data.x_train.shape == (300, 3, 16, 16)
    assert len(data.x_test) == 200
    assert data.x_train.mean(dim=(2, 3)).abs().max() < 1e-5  # every image centred per channel
    torch.testing.assert_close(data.x_train.std(dim=(1, 2, 3)), torch.ones(300))
    raw = shapes.sample(200, 0, 0, "test", shapes.ShapesConfig(16))[0]
    centred = raw - raw.mean(dim=(2, 3), keepdim=True)
    expected = centred / centred.std(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(data.x_test, expected)


def test_augment_is_a_per_image_padded_crop_and_flip():
    """Against a loop over images: each image gets its own flip and its own crop offset."""
    x = torch.randn(16, 3, 8, 8)
    out = rd.augment(x, 0, 5, pad=2)
    g = seed_generator(0, 5)
    flip = torch.rand(16, generator=g) < 0.5
    dy, dx = torch.randint(0, 5, (16,), generator=g), torch.randint(0, 5, (16,), generator=g)
    for i in range(16):
        img = x[i].flip(-1) if flip[i] else x[i]
        padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
        assert torch.equal(out[i], padded[:, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8])
    assert len({(int(a), int(b)) for a, b in zip(dy, dx, strict=True)}) > 1
    assert torch.equal(out, rd.augment(x, 0, 5, pad=2))


def test_matched_channels_brings_every_setting_near_the_reference_flops():
    base = RandWireConfig(nodes=16, channels=16, head_channels=64, stem_strides=(2, 1), num_classes=10)
    settings = [("ER", (0.2,)), ("BA", (5,)), ("WS", (4, 0.0)), ("WS", (4, 0.75))]
    out = ex.matched_channels(base, settings, 32, seeds=[0, 1, 2])
    assert out["WS(4, 0.75)"]["channels"] == 16 and out["WS(4, 0.75)"]["ratio"] == pytest.approx(1.0)
    for label, row in out.items():
        name, params = graphs.parse(label)
        def madds(c, name=name, params=params):
            return np.mean([multiply_adds(RandWireConfig(generator=name, params=params, nodes=16, channels=c,
                                                         head_channels=64, stem_strides=(2, 1), num_classes=10,
                                                         seed=s), 32) for s in range(3)])
        target = madds(16) / row["ratio"] if label != "WS(4, 0.75)" else madds(16)
        # brute force over a wide range of widths finds the same best width
        best = min(range(8, 28), key=lambda c: abs(madds(c) - target))
        assert best == row["channels"], label


def test_noise_bounds_against_scipy():
    from scipy import stats as sps

    assert ex.binomial_se(0.8, 10_000) == pytest.approx(0.004)
    thr = ex.chance_threshold(3, 1000)
    assert sps.binom.sf(math.ceil(thr * 1000) - 1, 1000, 1 / 3) < 1e-6  # guessing almost never gets there
    assert ex.std_ratio_bound(5, 5) == pytest.approx(math.sqrt(sps.f.ppf(0.95, 4, 4)))
    assert ex.std_ratio_bound(5, 5) == pytest.approx(2.53, abs=0.01)


def test_cosine_schedule_is_half_period():
    model = torch.nn.Linear(2, 2)
    config = ex.RandWireRecipe(steps=10)
    opt, sched = ex.make_optimizer(model, config)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 5e-5
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5 * 0.1 * (1 + math.cos(math.pi * t / 10)) for t in range(10)])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_train_one_learns_and_is_reproducible():
    data = rd.load_dataset("", 8, train_size=1000, test_size=300)
    recipe = ex.RandWireRecipe(steps=60, batch_size=64, log_every=10)
    config = ex.model_config(TINY, "WS", (2, 0.5), 1, data)
    a = ex.train_one(config, data, recipe, progress=False)
    b = ex.train_one(config, data, recipe, progress=False)
    assert a["accuracy"] == b["accuracy"] and a["train_loss"] == b["train_loss"]
    assert a["history"][0]["loss"] > a["history"][-1]["loss"]
    assert a["generator"] == "WS(2, 0.5)" and len(a["edges"]) == 3


def test_grid_in_two_processes_equals_the_grid_in_one():
    """Two CPU worker processes give the rows of the sequential grid, in its order, with
    trained models whose outputs match."""
    data = rd.load_dataset("", 8, train_size=200, test_size=100)
    recipe = ex.RandWireRecipe(steps=5, batch_size=32, log_every=5)
    settings = [("WS", (2, 0.5)), ("ER", (0.3,))]
    one = ex.run_grid(settings, [0, 1], TINY, data, recipe, progress=False)
    two = ex.run_grid(settings, [0, 1], TINY, data, recipe, progress=False, workers=2)
    assert [(r["generator"], r["seed"]) for r in two] == [(r["generator"], r["seed"]) for r in one]
    assert [r["accuracy"] for r in two] == [r["accuracy"] for r in one]
    assert [r["train_loss"] for r in two] == [r["train_loss"] for r in one]
    x = data.x_test[:16]
    with torch.no_grad():
        torch.testing.assert_close(two[-1]["model"](x), one[-1]["model"](x))


def test_summarize_is_mean_and_sample_std():
    rows = [{"generator": "ER(0.2)", "accuracy": a} for a in (0.5, 0.7)] + [{"generator": "BA(5)", "accuracy": 0.9}]
    out = ex.summarize(rows)
    assert [r["generator"] for r in out] == ["ER(0.2)", "BA(5)"]
    assert out[0]["mean"] == pytest.approx(0.6) and out[0]["std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert out[0]["sem"] == pytest.approx(statistics.stdev([0.5, 0.7]) / math.sqrt(2))
    assert math.isnan(out[1]["std"])


def test_benchmark_uses_the_recipe_optimizer_and_rejects_unknown_variants():
    config = RandWireConfig(nodes=6, channels=4, head_channels=8, num_classes=10)
    out = bench.benchmark(config, batch_size=4, image_size=32, warmup=1, repeats=2, device="cpu",
                          variants=("eager_fp32",))
    row = out["eager_fp32"]
    assert row["items_per_s"] == pytest.approx(4 / row["median_s"]) and "speedup" not in out
    assert row["effective_mixed_precision"] == "no" and row["items_per_step"] == 4
    with pytest.raises(ValueError, match=r"unknown benchmark variant\(s\) \['fp8'\]"):
        bench.benchmark(config, variants=("fp8",))


def test_full_profile_switches_train_on_cpu():
    """channels_last + augmentation + a bf16 request (CPU runs it in fp32) go through the same path."""
    x = torch.randn(64, 3, 8, 8)
    data = rd.Dataset("fake", x, torch.arange(64) % 10, x[:16], torch.arange(16) % 10, 10)
    config = ex.RandWireRecipe(steps=3, batch_size=16, augment=True, channels_last=True, mixed_precision="bf16")
    out = ex.train_one(ex.model_config(TINY, "BA", (2,), 0, data), data, config, progress=False)
    assert 0.0 <= out["accuracy"] <= 1.0 and len(out["history"]) == 3
    assert out["input_nodes"] == [2, 2, 2]  # BA(2): two input nodes per stage


def test_digits_source_is_the_fixed_split_of_scikit_learn_digits():
    from moderndl.data import digits

    data = rd.load_dataset("digits", 16)
    x, y = digits.load_digits()
    train_idx, test_idx = digits.split(len(x), 0.2, 0)
    assert data.name == "digits" and data.x_train.shape[1:] == (1, 16, 16)
    assert torch.equal(data.y_test, y[test_idx]) and torch.equal(data.y_train, y[train_idx])


def _study(accuracies):
    from moderndl.randwire import study

    rows = [{"generator": g, "seed": k, "accuracy": a, "channels": 12, "multiply_adds": 1, "params": 1,
             "edges": [], "input_nodes": [], "clustering": 0.0, "path_length": 0.0}
            for g, accs in accuracies.items() for k, a in enumerate(accs)]
    y = torch.zeros(10_000, dtype=torch.long)
    data = rd.Dataset("shapes", torch.zeros(1, 3, 8, 8), y[:1], torch.zeros(1, 3, 8, 8), y, 10)
    return study.Study(data, {}, rows, ex.summarize(rows))


@pytest.mark.parametrize("spread, holds", [(0.001, True), (0.08, False)])
def test_study_claims_leave_the_control_out_of_the_gap_and_explain_a_miss(tmp_path, spread, holds):
    """The 3-point and 1-point claims read the three random generators; the lattice control
    only calibrates the seed std; a miss says which setting and how wide its seeds spread."""
    from moderndl import ledger, profiles
    from moderndl.randwire import scales, study

    accs = {"ER(0.2)": [0.80 + spread * k / 4 for k in range(5)], "BA(5)": [0.80] * 5,
            "WS(4, 0.75)": [0.79] * 4 + [0.79 - spread], "WS(4, 0)": [0.50, 0.51, 0.49, 0.50, 0.50]}
    led = ledger.open("randwire", profiles.settings("laptop", scales.TABLE), tmp_path / "m.json")
    study.record(led, _study(accs), profiles.settings("laptop", scales.TABLE))
    claims = {c["id"]: c for c in led.data["claims"]}
    assert claims["within_few_points"]["holds"] is holds  # the control's 30-point gap never counts
    assert claims["seed_std_small"]["holds"] is holds
    if not holds:
        assert "widest seed range of one setting is 8.0 points" in claims["within_few_points"]["note"]
        assert "control" in claims["seed_std_small"]["note"]
