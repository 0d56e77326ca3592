"""``train.Loop`` under accelerate's DeepSpeed plugin on two gloo CPU ranks.

DeepSpeed's ZeRO stages 2 and 3 refuse a model prepared without its optimizer ("zero stage 2
requires an optimizer"); the Loop prepares both in one call. With a client ``torch.optim.Adam``
in fp32, ZeRO training on the global batch must equal one process's Adam on that batch.
"""

import pytest
import torch

from ..conftest import run_ranks

SCRIPT = """
import json, os, sys, torch
from accelerate.utils import DeepSpeedPlugin
from moderndl import train
from moderndl.seed import set_seed

stage = int(sys.argv[1])
# DeepSpeed's CPU accelerator would JIT-compile its shared-memory all-reduce kernel (about a
# minute on two cores, once per machine); only inference's all-reduce uses it, so skip it, as
# the ZeRO chapter's launches do.
__import__("deepspeed").ops.__compatible_ops__["deepspeed_shm_comm"] = False
g = torch.Generator().manual_seed(1)
x = torch.randn(64, 4, generator=g)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
config = train.TrainConfig(steps=5, log_every=1, progress=False)
ds = {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1,
      "zero_optimization": {"stage": stage, "stage3_param_persistence_threshold": 0},
      "gradient_clipping": 0.0,  # accelerate would fill in 1.0; torch Adam below does not clip
      "zero_allow_untested_optimizer": True, "bf16": {"enabled": False}, "fp16": {"enabled": False}}
acc = train.make_accelerator(config, deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=ds))
set_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.Adam(model.parameters(), lr=0.05)
loss_fn = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])
history, loop = train.fit(model, opt, loss_fn, train.batches(x, y, batch_size=8, seed=3), config, accelerator=acc)
engine = loop["model"]
with __import__("deepspeed").zero.GatheredParameters(list(engine.module.parameters())):
    params = {k: v.detach().clone() for k, v in engine.module.state_dict().items()}
rank = torch.distributed.get_rank()
torch.save({"params": params, "loss": [h["loss"] for h in history], "engine": type(engine).__name__},
           os.path.join(os.environ["OUT"], f"rank{rank}.pt"))
"""


def one_process_adam():
    from moderndl import train
    from moderndl.seed import set_seed

    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    set_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sampler = train.batches(x, y, batch_size=8, seed=3, rank=0, world_size=1)
    losses = []
    for t in range(5):
        xb, yb = sampler(t)
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        losses.append(float(loss))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict(), losses


@pytest.mark.slow
@pytest.mark.parametrize("stage", [3])  # stage 2 runs in the ZeRO chapter's dry run (ZeRO-Offload)
def test_zero_through_the_loop_equals_one_process_adam(stage, tmp_path):
    pytest.importorskip("deepspeed")
    run_ranks(SCRIPT, tmp_path, args=(str(stage),), timeout=400)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    params, losses = one_process_adam()
    for r in ranks:
        assert r["engine"] == "DeepSpeedEngine"
        for k, v in params.items():
            torch.testing.assert_close(r["params"][k], v, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(r["loss"]), torch.tensor(losses), rtol=1e-5, atol=1e-6)
