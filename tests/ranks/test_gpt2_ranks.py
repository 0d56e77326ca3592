"""GPT-2 fine-tuning on two gloo ranks equals one process with the same global batch."""

import json

import pytest

from ..conftest import run_ranks

SCRIPT = r'''
import json, os, sys
from pathlib import Path
import torch
from accelerate.state import PartialState
from moderndl.gpt2 import api, lm, pretrain

out = Path(os.environ["OUT"])
state = PartialState(cpu=True)  # PartialState() alone does not detect gloo CPU ranks
tokens = torch.arange(4000) % 500
# the sampler: this rank's rows of the global batch
sampler = lm.random_windows(tokens, 16, 4, seed=3, micro_batches=2)
mine = sampler(5)
(out / f"windows-{state.process_index}.json").write_text(json.dumps(mine.tolist()))
(out / "global.json").write_text(json.dumps(sampler.global_batch(5).tolist()))
# fine-tuning: 3 steps, global batch 2 x 2 micro-batches, DDP over the ranks
base = Path(sys.argv[1])
data = out / "data.txt"
run = api.finetune(data, base, 3, run_name="r", checkpoint_dir=out / f"ckpt-{state.num_processes}",
                   batch_size=2, accumulate_gradients=2, block_size=16, learning_rate=1e-2, sample_every=0,
                   save_every=2, max_checkpoints=2, print_every=0, progress=False, cpu=True)
if state.is_main_process:
    (out / "losses.json").write_text(json.dumps(run.losses))
'''


@pytest.mark.slow
def test_two_ranks_see_the_global_batch_and_train_like_one(tmp_path):
    import torch

    from moderndl.data import text
    from moderndl.gpt2 import api, pretrain

    tiny = pretrain.BaseConfig(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=2, block_size=16,
                               batch_size=4, steps=2, warmup=1)
    base = pretrain.base_checkpoint(tiny, root=tmp_path / "base")
    (tmp_path / "data.txt").write_text(text.license_texts(max_chars=8_000))
    torch.set_num_threads(1)
    run_ranks(SCRIPT, tmp_path, nproc=2, args=(str(base),), timeout=240)
    w0, w1 = (json.loads((tmp_path / f"windows-{r}.json").read_text()) for r in (0, 1))
    whole = json.loads((tmp_path / "global.json").read_text())
    # each rank keeps half of every micro-batch; together they are the global batch, in order
    assert [a + b for a, b in zip(w0, w1, strict=True)] == whole
    assert all(x not in b for a, b in zip(w0, w1, strict=True) for x in a)
    two = api.load(tmp_path / "ckpt-2" / "r")[0]
    ranks_losses = json.loads((tmp_path / "losses.json").read_text())
    one_run = api.finetune(tmp_path / "data.txt", base, 3, run_name="r", checkpoint_dir=tmp_path / "ckpt-1",
                           batch_size=2, accumulate_gradients=2, block_size=16, learning_rate=1e-2, sample_every=0,
                           save_every=2, max_checkpoints=2, print_every=0, progress=False, cpu=True)
    one = api.load(one_run.run_dir)[0]
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    assert ranks_losses == pytest.approx(one_run.losses, abs=1e-5)  # logged losses: averaged over the ranks
    # files written once, by the main process: two snapshots pruned by step number
    assert sorted(p.name for p in (tmp_path / "ckpt-2" / "r").glob("step-*")) == ["step-000002", "step-000003"]
