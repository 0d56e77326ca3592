"""MAC networks (Hudson & Manning 2018, arXiv:1803.03067): compositional attention for visual reasoning.

- ``config``: ``MACConfig`` and ``OptimConfig`` with the paper's defaults.
- ``cell``: ``ControlUnit``, ``ReadUnit``, ``WriteUnit`` and ``MACCell`` (Sec. 3.2).
- ``network``: the input unit, knowledge-base stem, output unit and ``MACNetwork`` (Sec. 3).
- ``baselines``: CLEVR's question-only LSTM and CNN+LSTM (Johnson et al. 2017).
- ``training``: Adam + gradient clip + EMA through ``moderndl.train.fit``; accuracy per family.
- ``attention``: scoring and plotting the control and read attentions.
"""

from moderndl.mac.cell import ControlUnit, MACCell, ReadUnit, WriteUnit
from moderndl.mac.config import MACConfig, OptimConfig
from moderndl.mac.network import MACNetwork

__all__ = ["ControlUnit", "ReadUnit", "WriteUnit", "MACCell", "MACNetwork", "MACConfig", "OptimConfig"]
