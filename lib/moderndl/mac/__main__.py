"""``python -m moderndl.mac [--name value ...]``: the MAC chapter's experiment without Jupyter.

The flags are the notebook's parameters (see ``moderndl.mac.scales``); the run writes the
notebook's sidecar. Under ``torchrun --nproc_per_node N`` each rank trains on its slice of
the global batch.
"""

import sys

from moderndl import cli
from moderndl.mac import scales
from moderndl.mac.experiment import experiment

if __name__ == "__main__":
    sys.exit(cli.main("mac", "mac", scales.TABLE, experiment, ranges=scales.RANGES,
                      description="MAC networks (Hudson & Manning 2018) on a generated CLEVR-like world"))
