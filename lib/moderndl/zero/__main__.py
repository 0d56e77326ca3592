"""``python -m moderndl.zero [--name value ...]``: the ZeRO chapter's measurements without Jupyter.

The chapter spawns its own gloo ranks (and DeepSpeed's launcher), so run it as one process::

    python -m moderndl.zero --profile smoke --metrics zero.json
"""

import sys

from moderndl import cli
from moderndl.zero import scales
from moderndl.zero.chapter import experiment

if __name__ == "__main__":
    sys.exit(cli.main("zero", "zero", scales.TABLE, experiment, ranges=scales.RANGES,
                      description=__doc__.splitlines()[0]))
