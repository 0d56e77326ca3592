"""The two image domains: procedural art and photo crops, and user folders through the core loader."""

import numpy as np
import pytest
import torch

from moderndl.gan import art, photos


def test_art_shape_dtype_and_seeded():
    x = art.generate(6, 32, seed=3)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x, art.generate(6, 32, seed=3))
    assert not torch.equal(x, art.generate(6, 32, seed=4))
    assert torch.equal(x[:4], art.generate(4, 32, seed=3))  # image i depends only on (seed, i)


def test_art_styles_are_distinct():
    """Grid images are flat: few distinct colours and mostly saturated primaries or white;
    dream images are smooth gradients with many colours."""
    grid, dream = art.generate(8, 64, style="grid", seed=0), art.generate(8, 64, style="dream", seed=0)

    def colours(im):
        return len(torch.unique(im.reshape(3, -1).T, dim=0))

    assert max(colours(im) for im in grid) <= len(art.GRID_FILLS) + 1  # fills plus black bars
    assert min(colours(im) for im in dream) > 200
    assert art.styles_of(4) == ["dream", "grid", "dream", "grid"]
    mixed = art.generate(4, 32, style="mixed", seed=0)
    assert colours(mixed[1]) <= len(art.GRID_FILLS) + 1 < colours(mixed[0])


def test_art_bad_inputs():
    with pytest.raises(ValueError, match="unknown art style 'cubist'.*dream, grid, mixed"):
        art.generate(2, 32, style="cubist")
    with pytest.raises(ValueError, match="n must be a positive int"):
        art.generate(0, 32)
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        art.generate(2, 4)


def test_photo_crops_seeded_and_match_a_source():
    x = photos.random_crops(5, 16, seed=1)
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.uint8
    assert torch.equal(x, photos.random_crops(5, 16, seed=1))
    assert torch.equal(x[:3], photos.random_crops(3, 16, seed=1))
    names = [name for name, _ in photos.sources()]
    assert {"astronaut", "coffee", "china.jpg", "flower.jpg", "camera"} <= set(names)
    assert all(im.shape[0] == 3 and im.min() >= 0 and im.max() <= 1 for _, im in photos.sources())


def test_held_out_photos_are_other_photographs():
    """The split is by source photograph: no held-out crop can come from a training photograph."""
    train, held = photos.split("train"), photos.split("held_out")
    assert len(photos.sources()) == 20 and len(train) == 15 and len(held) == 5
    assert {n for n, _ in train}.isdisjoint({n for n, _ in held}) and {n for n, _ in held} == set(photos.HELD_OUT)
    # every held-out crop matches a window of a held-out photo, and no window of a training photo
    x = photos.random_crops(6, 16, seed=2, which="held_out")
    for i in range(6):
        rng = np.random.default_rng([2, i])
        name, photo = held[rng.integers(len(held))]
        _, h, w = photo.shape
        side = min(min(h, w), max(8, int(rng.uniform(0.25, 0.8) * min(h, w))))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        assert torch.equal(x[i], photos.crop(photo, int(top), int(left), side, 16, flip=bool(rng.uniform() < 0.5)))
    grey = dict(photos.sources())["camera"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # a grey photo as RGB
    with pytest.raises(ValueError, match="unknown photo split 'test'"):
        photos.random_crops(2, 16, which="test")


def test_photo_crop_matches_pil_resize():
    """A crop is PIL's antialiased bilinear resize of the window (the reference)."""
    from PIL import Image

    name, photo = photos.sources()[0]
    assert name == "astronaut"
    ours = photos.crop(photo, 64, 96, 256, 32).permute(1, 2, 0).numpy().astype(np.float32)  # (32, 32, 3)
    pil = Image.fromarray((photo.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    ref = np.asarray(pil.crop((96, 64, 96 + 256, 64 + 256)).resize((32, 32), Image.BILINEAR), np.float32)
    assert np.abs(ours - ref).mean() < 1.0  # mean error below one grey level
    flipped = photos.crop(photo, 64, 96, 256, 32, flip=True)
    assert torch.equal(flipped, photos.crop(photo, 64, 96, 256, 32).flip(-1))


def test_user_folders(tmp_path):
    from PIL import Image

    folder = tmp_path / "chagall"
    folder.mkdir()
    with pytest.raises(ValueError, match=f"image folder {folder} holds no images"):
        art.load(4, 32, folder=folder)
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(folder / "a.png")
    got = art.load(4, 32, folder=folder)
    assert got.shape == (1, 3, 32, 32) and int(got.float().mean().round()) == 200
    bad = folder / "b.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=f"cannot read image {bad}"):
        photos.load(4, 32, folder=folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        photos.load(4, 32, folder=tmp_path / "missing")
