"""``python -m moderndl.randwire [--name value ...]``: the chapter's study without Jupyter."""

import sys

from moderndl import cli
from moderndl.randwire import scales, study

if __name__ == "__main__":
    sys.exit(cli.main("randwire", "randwire", scales.TABLE, study.experiment, ranges=scales.RANGES,
                      description="Randomly wired networks (Xie et al. 2019): the Fig. 3 generator study."))
