"""RandWire data, training recipe (Sec. 4), Fig. 3 summary and benchmark."""

import math
import pickle
import statistics
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from moderndl.data import cifar
from moderndl.randwire import experiment as ex
from moderndl.randwire.model import RandWireConfig

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
    data = ex.load_dataset(root, 32)
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


def test_load_dataset_errors_and_loud_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_dir .*missing does not exist"):
        ex.load_dataset(tmp_path / "missing", 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = ex.load_dataset("", 16)  # smoke: digits by design, no note
    assert quiet.note == "" and quiet.x_train.shape[1:] == (1, 16, 16)
    assert len(quiet.x_train) + len(quiet.x_test) == 1797 and len(quiet.x_test) == 359
    with pytest.warns(UserWarning, match="falls back to scikit-learn's 8x8 digits"):
        loud = ex.load_dataset("", 16, want_folder=True)
    assert "NOT CIFAR-10" in loud.note
    assert torch.equal(quiet.y_test, loud.y_test)  # the same fixed split
    assert quiet.x_train.mean().abs() < 1e-4 and (quiet.x_train.std() - 1).abs() < 1e-2


def test_image_folder_dataset(tmp_path):
    for c, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (20, 12), colour).save(tmp_path / "imgs" / c / f"{i}.png")
    data = ex.load_dataset(tmp_path / "imgs", 8)
    assert data.num_classes == 2 and data.x_train.shape[1:] == (3, 8, 8) and len(data.x_test) == 2


def test_cosine_schedule_is_half_period():
    model = torch.nn.Linear(2, 2)
    cfg = ex.TrainSettings(steps=10)
    opt, sched = ex.make_optimizer(model, cfg)
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
    data = ex.load_dataset("", 8)
    cfg = ex.TrainSettings(steps=100, batch_size=64, log_every=10)  # BN running stats need ~100 steps
    config = ex.model_config(TINY, "WS", (2, 0.5), 1, data)
    a = ex.train_one(config, data, cfg)
    b = ex.train_one(config, data, cfg)
    assert a["accuracy"] == b["accuracy"] and a["train_loss"] == b["train_loss"]
    assert a["accuracy"] > 0.3  # chance is 0.1
    assert a["history"][0]["loss"] > a["history"][-1]["loss"]
    assert a["generator"] == "WS(2, 0.5)" and len(a["edges"]) == 3


def test_summarize_is_mean_and_sample_std():
    rows = [{"generator": "ER(0.2)", "accuracy": a} for a in (0.5, 0.7)] + [{"generator": "BA(5)", "accuracy": 0.9}]
    out = ex.summarize(rows)
    assert [r["generator"] for r in out] == ["ER(0.2)", "BA(5)"]
    assert out[0]["mean"] == pytest.approx(0.6) and out[0]["std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert math.isnan(out[1]["std"])


def test_augment_keeps_shape_and_is_seeded():
    x = torch.randn(8, 3, 16, 16)
    a, b = ex.augment(x, 0, 5), ex.augment(x, 0, 5)
    assert a.shape == x.shape and torch.equal(a, b)


def test_benchmark_runs_on_cpu_and_rejects_unknown_variants():
    cfg = RandWireConfig(nodes=6, channels=4, head_channels=8, num_classes=10)
    out = ex.benchmark(cfg, batch_size=4, image_size=32, warmup=1, repeats=2, device="cpu", variants=("eager_fp32",))
    assert out["eager_fp32"]["images_per_s"] > 0 and "speedup" not in out
    assert out["eager_fp32"]["effective_mixed_precision"] == "no"
    with pytest.raises(ValueError, match=r"unknown benchmark variant\(s\) \['fp8'\]"):
        ex.benchmark(cfg, variants=("fp8",))


def test_full_profile_switches_train_on_cpu():
    """channels_last + augmentation + a bf16 request (CPU runs it in fp32) go through the same path."""
    x = torch.randn(64, 3, 8, 8)
    data = ex.Dataset("fake", x, torch.arange(64) % 10, x[:16], torch.arange(16) % 10, 10)
    cfg = ex.TrainSettings(steps=3, batch_size=16, augment=True, channels_last=True, mixed_precision="bf16")
    out = ex.train_one(ex.model_config(TINY, "BA", (2,), 0, data), data, cfg)
    assert 0.0 <= out["accuracy"] <= 1.0 and len(out["history"]) == 3
