"""``python -m moderndl.gan [--name value ...]``: the chapter's experiment and claims without Jupyter."""

import sys

from moderndl import cli
from moderndl.gan import experiment, scales

if __name__ == "__main__":
    sys.exit(cli.main("gan", "style_gan", scales.TABLE, experiment.experiment, ranges=scales.RANGES,
                      description="DCGAN on procedural art, CycleGAN from held-out photos to art over seeds, "
                                  "with a colour-aware SWD, a colour-transfer baseline and a style classifier."))
