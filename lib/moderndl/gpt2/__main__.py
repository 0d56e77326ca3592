"""``python -m moderndl.gpt2 [--name value ...]``: the fine-tuning experiment without Jupyter.

Works under ``torchrun --nproc_per_node N`` and ``accelerate launch --multi_gpu``: each rank
takes its slice of the global batch, and only the main process writes the run folder.
"""

import sys

from moderndl import cli
from moderndl.gpt2 import experiment, scales

if __name__ == "__main__":
    sys.exit(cli.main("gpt2", "gpt2_finetune", scales.TABLE, experiment.run, ranges=scales.RANGES,
                      description=__doc__.splitlines()[0]))
