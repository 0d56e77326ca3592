"""MAC networks (Hudson & Manning 2018, arXiv:1803.03067): compositional attention for visual reasoning.

- ``config``: ``MACConfig`` (the network) and ``MACRecipe`` (its training) with the paper's defaults.
- ``cell``: ``ControlUnit``, ``ReadUnit``, ``WriteUnit`` and ``MACCell`` (Sec. 3.2).
- ``network``: the input unit, knowledge-base stem, output unit and ``MACNetwork`` (Sec. 3).
- ``baselines``: CLEVR's question-only LSTM and CNN+LSTM (Johnson et al. 2017).
- ``training``: Adam + gradient clip + EMA on ``moderndl.train.Loop``; accuracy per family and hop count.
- ``attention``: the read attention against the object-only prior, and along relate chains.
- ``world``, ``questions``: the generated CLEVR-like world; ``clevr_folder``: real CLEVR from a folder.
- ``chance``: chance given the question type, and the blind question-text lookup.
- ``experiment``: the chapter's experiment (notebook and ``python -m moderndl.mac``); ``scales``: its profiles.
"""

from moderndl.mac.cell import ControlUnit, MACCell, ReadUnit, WriteUnit
from moderndl.mac.config import MACConfig, MACRecipe
from moderndl.mac.network import MACNetwork

__all__ = ["ControlUnit", "ReadUnit", "WriteUnit", "MACCell", "MACNetwork", "MACConfig", "MACRecipe"]
