import pytest
import torch
from PIL import Image

from moderndl import measure
from moderndl.data import digits, images


def test_digits_shapes_and_fixed_split():
    x, y = digits.load_digits()
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and set(y.tolist()) == set(range(10))
    tr, te = digits.split(len(x), 0.2, seed=0)
    tr2, te2 = digits.split(len(x), 0.2, seed=0)
    assert torch.equal(te, te2) and torch.equal(tr, tr2) and len(te) == 359
    assert not set(tr.tolist()) & set(te.tolist())
    with pytest.raises(ValueError, match="test_fraction"):
        digits.split(10, 1.5)


def test_image_folder_loads_labelled_and_names_bad_files(tmp_path):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 30), colour).save(tmp_path / cls / f"{i}.png")
    x, y, classes = images.load_folder(tmp_path, 16, labelled=True)
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.uint8
    assert classes == ["cats", "dogs"] and y.tolist() == [0, 0, 1, 1]
    assert int(x[0, 0].float().mean()) == 255 and int(x[2, 2].float().mean()) == 255

    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        images.load_folder(tmp_path, 16)


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        images.image_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no images"):
        images.image_files(tmp_path / "empty")


def test_measure_counts_against_hand_counts():
    lin = torch.nn.Linear(10, 5)
    tied = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)  # shared weights counted once
    assert measure.count_parameters(tied) == 55
    # one multiply-add per weight per example, counted as 2 FLOPs
    assert measure.count_flops(torch.nn.Linear(10, 5, bias=False), torch.randn(4, 10)) == 2 * 4 * 10 * 5
    stats = measure.time_it(lambda: sum(range(100)), warmup=1, repeats=5)
    assert stats["min_s"] <= stats["median_s"] <= stats["max_s"] and stats["repeats"] == 5
    with pytest.raises(ValueError, match="repeats"):
        measure.time_it(lambda: None, repeats=0)
