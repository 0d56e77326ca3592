"""MultiMNIST from scikit-learn's 8x8 digits: two overlapping digits on one canvas.

Sabour, Frosst & Hinton (2017), "Dynamic Routing Between Capsules", arXiv:1710.09829,
overlaid two MNIST digits; Sener & Koltun (2018), arXiv:1810.04650, turned that into a
two-task benchmark (classify the top-left digit and the bottom-right digit). Here the
digits are scikit-learn's (no download): the left digit sits at column 0 and the right
digit ``shift`` columns further, so they overlap in ``8 - shift`` columns, each with a
random vertical and horizontal jitter. Pixels combine by the maximum, as ink does.

Two task sets:

- ``TWO_TASKS``, the published setting: ``left`` and ``right``, each the class of one digit
  (10-way classification, cross-entropy), losses of the same scale;
- ``THREE_TASKS`` adds ``sum``, the sum of the two digits, 0..18, as a regression (mean
  squared error), whose loss starts around :math:`\\mathbb{E}[s^2] \\approx 97` against
  :math:`\\ln 10 \\approx 2.3`: a study of mismatched loss scales.

Train and test canvases are built from disjoint source digits (``digits.split``), so no
test digit is ever seen in training, not even inside another pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from moderndl.data import digits, images


@dataclass(frozen=True)
class Task:
    """One task: its name, its kind (``classification`` or ``regression``) and output size."""

    name: str
    kind: str
    num_outputs: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} not in {KINDS}")
        if self.num_outputs <= 0:
            raise ValueError(f"task {self.name!r}: num_outputs must be positive, got {self.num_outputs}")

    @property
    def higher_is_better(self) -> bool:
        """Accuracy for classification (higher is better), MAE for regression (lower is better)."""
        return self.kind == "classification"


KINDS = ("classification", "regression")
THREE_TASKS = (Task("left", "classification", 10), Task("right", "classification", 10),
               Task("sum", "regression", 1))
TWO_TASKS = THREE_TASKS[:2]  # Sener & Koltun's MultiMNIST: left digit and right digit
TASKS = THREE_TASKS  # every target the canvases carry


@dataclass(frozen=True)
class MultiMNISTConfig:
    """How to compose the canvases. The defaults give 10 x 14 canvases with 4 shared columns."""

    n_train: int = 4000
    n_test: int = 1000
    shift: int = 4  # columns between the two digits' left edges: half of each 8-pixel digit overlaps
    jitter: int = 2  # extra random offset, 0..jitter pixels, per digit, vertically and horizontally
    test_fraction: float = 0.25  # of the 1,797 source digits, held out for test canvases

    def __post_init__(self):
        if not 0 < self.shift <= 8:
            raise ValueError(f"shift must be in 1..8 (columns of an 8-pixel digit), got {self.shift}")
        if self.jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {self.jitter}")
        if self.n_train <= 0 or self.n_test <= 0:
            raise ValueError(f"n_train and n_test must be positive, got {self.n_train}, {self.n_test}")

    @property
    def canvas(self) -> tuple[int, int]:
        """(height, width) of a canvas."""
        return 8 + self.jitter, 8 + self.shift + self.jitter


def compose(x: torch.Tensor, y: torch.Tensor, n: int, config: MultiMNISTConfig,
            generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` canvases from digit images ``x`` (N, 1, 8, 8) and labels ``y`` (N,).

    Returns images ``(n, 1, H, W)`` and targets ``{"left": (n,), "right": (n,), "sum": (n,)}``.
    """
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
        raise ValueError(f"digits must be (N, 1, 8, 8), got {tuple(x.shape)}")
    H, W = config.canvas
    j = config.jitter
    left = torch.randint(len(x), (n,), generator=generator)  # (n,)
    right = torch.randint(len(x), (n,), generator=generator)  # (n,)
    offsets = torch.randint(j + 1, (n, 4), generator=generator)  # (n, 4): rows and columns of both digits
    canvas = torch.zeros(n, 1, H, W)
    for r in range(j + 1):  # one vectorised paste per offset: (j + 1)^2 groups instead of n loops
        for c in range(j + 1):
            at = (offsets[:, 0] == r) & (offsets[:, 1] == c)  # (n,) left digits placed at (r, c)
            canvas[at, :, r:r + 8, c:c + 8] = x[left[at]]  # (k, 1, 8, 8)
    for r in range(j + 1):
        for c in range(j + 1):
            at = (offsets[:, 2] == r) & (offsets[:, 3] == c)  # (n,) right digits placed at (r, shift + c)
            cols = slice(config.shift + c, config.shift + c + 8)
            canvas[at, :, r:r + 8, cols] = torch.maximum(canvas[at, :, r:r + 8, cols], x[right[at]])  # ink: max
    targets = {"left": y[left], "right": y[right], "sum": (y[left] + y[right]).float()}
    return canvas, targets


def load_digit_folder(folder: str | Path, *, invert: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A user's digits: ``folder/<0..9>/*.png`` as ``(N, 1, 8, 8)`` ink in [0, 1] and ``(N,)`` labels.

    Images are resized to 8x8 and averaged to grey; ``invert`` for dark ink on a light page.
    """
    x, index, classes = images.load_folder(folder, 8, labelled=True)  # (N, 3, 8, 8) uint8, (N,)
    bad = [c for c in classes if c not in {str(d) for d in range(10)}]
    if bad:
        raise ValueError(f"digit folder {folder}: sub-folders must be named 0..9, found {bad}")
    grey = x.float().mean(dim=1, keepdim=True) / 255.0  # (N, 1, 8, 8)
    labels = torch.tensor([int(c) for c in classes])[index]  # class index -> digit, (N,)
    return (1.0 - grey if invert else grey), labels


def load_multimnist(config: MultiMNISTConfig | None = None, seed: int = 0,
                    source: tuple[torch.Tensor, torch.Tensor] | str | Path | None = None):
    """Train and test MultiMNIST: ``((x_train, y_train), (x_test, y_test))``.

    ``source`` replaces scikit-learn's digits with any ``(N, 1, 8, 8)`` images in [0, 1]
    and their ``(N,)`` labels 0..9 (downscaled MNIST), or with a folder of a user's own digit
    images (see :func:`load_digit_folder`). The source digits are split first, so test
    canvases only contain held-out digits.
    """
    config = config if config is not None else MultiMNISTConfig()
    if source is None:
        x, y = digits.load_digits()
    elif isinstance(source, (str, Path)):
        x, y = load_digit_folder(source)
    else:
        x, y = source
    if len(x) != len(y):
        raise ValueError(f"source images and labels differ in length: {len(x)} vs {len(y)}")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"source labels must be digits 0..9, got range {int(y.min())}..{int(y.max())}")
    train_idx, test_idx = digits.split(len(x), config.test_fraction, seed=seed)
    g = torch.Generator().manual_seed(seed)
    train = compose(x[train_idx], y[train_idx], config.n_train, config, g)
    test = compose(x[test_idx], y[test_idx], config.n_test, config, g)
    return train, test
