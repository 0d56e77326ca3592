"""MAC on two gloo CPU ranks: the ranks split each global batch of questions, and training (Adam,
clip, EMA) equals one process with the global batch. The patch stem has no BatchNorm, so the
parameters must agree; the conv stem's BatchNorm would make ranks normalise their halves apart."""

import torch

from ..conftest import run_ranks

SHIFT_INVARIANT = ("cell.read.combine.bias", "cell.read.score.bias")

SETUP = """
import torch
from moderndl.mac import MACConfig, MACNetwork, MACRecipe
from moderndl.mac.questions import generate
from moderndl.mac.world import WorldConfig

def setup():
    world = WorldConfig(image_size=16, colors=("red", "blue"), shapes=("circle", "square"), max_objects=3,
                        max_hops=1, max_count=2, questions_per_scene=2, cells=2, resolution=2, radii=(0.1, 0.2))
    data = generate(world, 64, seed=0)
    tokens, lengths = data.encode()
    config = MACConfig(num_words=len(data.word_vocab), num_classes=len(data.answer_vocab), image_size=16, d=8, p=2,
                       embed_dim=4, stem="patch", patch=8, stem_channels=4, kb_kernel=1, dropout=0.0)
    return data, tokens, lengths, config, MACRecipe(lr=1e-2, batch_size=8, ema_decay=0.5, steps=3)
"""
exec(SETUP)  # the same problem here and in the ranks' script

SCRIPT = SETUP + """
import os
from moderndl.mac.training import sampler, train
from moderndl.seed import set_seed

data, tokens, lengths, config, recipe = setup()
data_at = sampler(data, tokens, lengths, batch_size=recipe.batch_size, seed=0)
seen = [data_at(t)[1] for t in range(recipe.steps)]  # this rank's token rows at each step
set_seed(0)
history, ema = train(MACNetwork(config), data, tokens, lengths, recipe, seed=0, cpu=True, progress=False)
rank = torch.distributed.get_rank()
torch.save({"seen": seen, "loss": [h["loss"] for h in history],
            "ema": {k: v.clone() for k, v in ema.state_dict().items()}},
           os.path.join(os.environ["OUT"], f"rank{rank}.pt"))
"""


def test_two_ranks_split_the_batch_and_train_like_one_process(tmp_path, one_thread):
    from moderndl.mac.network import MACNetwork
    from moderndl.mac.training import sampler, train
    from moderndl.seed import set_seed

    run_ranks(SCRIPT, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    data, tokens, lengths, config, recipe = setup()  # noqa: F821 - defined by exec(SETUP)
    data_at = sampler(data, tokens, lengths, batch_size=recipe.batch_size, seed=0)
    for t in range(recipe.steps):
        whole = data_at(t)[1]  # (8, T): the one-process global batch
        halves = [r["seen"][t] for r in ranks]  # (4, T) each
        assert all(len(h) == recipe.batch_size // 2 for h in halves)
        torch.testing.assert_close(torch.cat(halves), whole)
    set_seed(0)
    history, ema = train(MACNetwork(config), data, tokens, lengths, recipe, seed=0, cpu=True, progress=False)
    for r in ranks:  # logged losses are averaged over ranks: the global batch's mean loss
        torch.testing.assert_close(torch.tensor(r["loss"]), torch.tensor([h["loss"] for h in history]),
                                   atol=1e-5, rtol=1e-4)
        bad = [k for k, v in ema.state_dict().items() if not torch.allclose(r["ema"][k], v, atol=1e-5, rtol=1e-4)]
        assert set(bad) <= set(SHIFT_INVARIANT), bad
    # r2's bias and r3.1's bias add the same logit to every region, so the read softmax cancels
    # them: their gradient is zero in exact arithmetic, and Adam scales float noise up to full steps.
    model = MACNetwork(config)
    from moderndl.mac.network import cross_entropy

    cross_entropy(model, data_at(0))[0].backward()
    grads = dict(model.named_parameters())
    for name in SHIFT_INVARIANT:
        assert grads[name].grad.abs().max() < 1e-6, name
