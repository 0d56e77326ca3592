"""``python -m moderndl.multitask [--name value ...]``: the chapter's runs and claims without Jupyter."""

import sys

import torch
from accelerate.state import PartialState

from moderndl import cli
from moderndl.multitask import scales, study

if __name__ == "__main__":
    # accelerate sees gloo ranks on a CPU-only machine only when its state starts with cpu=True;
    # the first PartialState() fixes the state for the whole process
    PartialState(cpu=not torch.cuda.is_available())
    sys.exit(cli.main("multitask", "multitask", scales.TABLE, study.experiment, ranges=scales.RANGES,
                      description="Multitask learning on MultiMNIST: weightings, baselines, Pareto sweep, "
                                  "three-task loss-scale study."))
