"""MAC training on ``moderndl.train.Loop``: the EMA is checkpointed and a resumed run matches."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from moderndl.mac import MACConfig, MACNetwork, MACRecipe
from moderndl.mac.questions import generate
from moderndl.mac.training import accuracy_by_family, make_ema, predict, train
from moderndl.mac.world import WorldConfig

WORLD = WorldConfig(image_size=16, colors=("red", "blue"), shapes=("circle", "square"), max_objects=3, max_hops=1,
                    max_count=2, questions_per_scene=2, cells=2, resolution=2, radii=(0.1, 0.2))


def setup(seed=0):
    data = generate(WORLD, 96, seed=seed)
    tokens, lengths = data.encode()
    config = MACConfig(num_words=len(data.word_vocab), num_classes=len(data.answer_vocab), image_size=16, d=8, p=2,
                    embed_dim=4, stem="patch", patch=8, stem_channels=4, kb_kernel=1, dropout=0.0)
    return data, tokens, lengths, config


@pytest.mark.slow
def test_ema_resume_matches_an_uninterrupted_run(tmp_path):
    data, tokens, lengths, config = setup()
    opt = MACRecipe(lr=1e-3, batch_size=16, ema_decay=0.9, steps=6)
    torch.manual_seed(0)
    full, ema_full = train(MACNetwork(config), data, tokens, lengths, opt, seed=0, cpu=True, progress=False)
    torch.manual_seed(0)
    train(MACNetwork(config), data, tokens, lengths, replace(opt, steps=3), seed=0,
          checkpoint_dir=tmp_path, cpu=True, progress=False)
    assert "ema" in torch.load(tmp_path / "checkpoint.pt", weights_only=False)["objects"]
    torch.manual_seed(123)  # a different init: everything must come back from the checkpoint
    resumed, ema_resumed = train(MACNetwork(config), data, tokens, lengths, opt, seed=0, checkpoint_dir=tmp_path,
                                 resume=True, cpu=True, progress=False)
    assert [round(r["loss"], 5) for r in resumed] == [round(r["loss"], 5) for r in full]
    for a, b in zip(ema_full.parameters(), ema_resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_accuracy_by_family_against_a_hand_count():
    data, tokens, lengths, config = setup()
    pred = data.answers.clone()
    pred[::2] = (pred[::2] + 1) % len(data.answer_vocab)  # every other question wrong
    acc = accuracy_by_family(pred, data)
    assert abs(acc["overall"] - 0.5) < 1e-6
    for f, name in enumerate(data.family_names):
        sel = torch.nonzero(data.families == f).squeeze(1)
        if len(sel):
            assert abs(acc[name] - float((sel % 2 == 1).float().mean())) < 1e-6
    assert predict(MACNetwork(config), data, tokens, lengths, batch_size=40).shape == (len(data),)


def test_accuracy_monitor_records_the_curve_and_first_crossing():
    from moderndl.mac.training import AccuracyMonitor

    data, tokens, lengths, config = setup()
    ema = make_ema(MACNetwork(config), decay=0.5).module
    chance = AccuracyMonitor(data, tokens, lengths, every=2, target=0.0)
    never = AccuracyMonitor(data, tokens, lengths, every=2, target=1.01)
    for step in range(5):
        chance(ema, step)
        never(ema, step)
    assert [c[0] for c in chance.curve] == [2, 4] and chance.reached[0] == 2 and never.reached is None
    acc = float((predict(ema, data, tokens, lengths) == data.answers).float().mean())
    assert abs(chance.curve[0][2] - acc) < 1e-6


def test_accuracy_per_hop_count():
    data, tokens, lengths, config = setup()
    relate = data.families == data.family_names.index("relate")
    pred = data.answers.clone()
    pred[relate & (data.hops == 1)] = -1  # every 1-hop relate question wrong
    acc = accuracy_by_family(pred, data)
    assert acc["relate_1"] == 0.0 and "relate_multi" not in acc  # this world has 1-hop chains only
