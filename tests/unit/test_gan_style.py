"""The style classifier and the mode-coverage numbers, against cases whose answer is known."""

import pytest
import torch

from moderndl.gan import art, style

pytestmark = pytest.mark.usefixtures("one_thread")


def test_labels_follow_the_generator():
    assert style.labels_of(4).tolist() == [0, 1, 0, 1]
    assert style.labels_of(3, "grid").tolist() == [1, 1, 1]
    assert art.STYLES == ("dream", "grid")


@pytest.fixture(scope="module")
def classifier():
    torch.set_num_threads(1)
    images = art.generate(256, 16, seed=0)
    return style.train_classifier(images, style.labels_of(256), style.StyleClassifierConfig(steps=60, width=8))


def test_classifier_tells_the_styles_apart_on_new_art(classifier):
    held = art.generate(128, 16, seed=7)
    pred = style.probabilities(classifier, held).argmax(1)
    assert (pred == style.labels_of(128)).float().mean() > 0.95


def test_coverage_of_a_collapsed_and_a_balanced_generator(classifier):
    data_labels = style.labels_of(100)  # 50 % each
    collapsed = art.generate(64, 16, style="grid", seed=3)  # every sample one style: mode collapse
    cov = style.coverage(classifier, collapsed, data_labels)
    assert cov["share"]["grid"] > 90 and cov["data_share"] == {"dream": 50.0, "grid": 50.0}
    assert cov["gap"] == pytest.approx(abs(cov["share"]["grid"] - 50))
    balanced = style.coverage(classifier, art.generate(64, 16, seed=5), data_labels)
    assert balanced["gap"] < 10 and balanced["confident"] > 0.9
    # float input in [-1, 1] gives the probabilities of its uint8 form
    x = art.generate(8, 16, seed=9)
    assert torch.allclose(style.probabilities(classifier, x), style.probabilities(classifier, x.float() / 127.5 - 1))
    # noise images: the coverage reports the classifier's own confidence, whatever it is
    flat = torch.full((16, 3, 16, 16), 128, dtype=torch.uint8)
    cov = style.coverage(classifier, flat, data_labels, threshold=1.01)
    assert cov["confident"] == 0.0 and sum(cov["share"].values()) == pytest.approx(100)


def test_training_is_seeded():
    images = art.generate(64, 16, seed=0)
    config = style.StyleClassifierConfig(steps=3, width=4, batch_size=16)
    a = style.train_classifier(images, style.labels_of(64), config, seed=1)
    b = style.train_classifier(images, style.labels_of(64), config, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
