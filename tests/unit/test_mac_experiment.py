"""The chapter's experiment on a user's CLEVR folder: the time-to-98% monitor scores the user's questions."""

from __future__ import annotations

import shutil

import torch

from moderndl import profiles
from moderndl.mac import experiment, scales

from .test_mac_clevr_folder import QUESTIONS, make_clevr


def test_monitor_scores_the_users_clevr_not_the_generated_world(tmp_path):
    root = make_clevr(tmp_path / "CLEVR_v1.0", split="val")
    shutil.copytree(root / "images" / "val", root / "images" / "train")
    text = (root / "questions" / "CLEVR_val_questions.json").read_text().replace("CLEVR_val_", "CLEVR_train_")
    (root / "questions" / "CLEVR_train_questions.json").write_text(text)
    for f in (root / "images" / "train").iterdir():
        f.rename(f.with_name(f.name.replace("CLEVR_val_", "CLEVR_train_")))
    s = profiles.settings("smoke", scales.TABLE, {"clevr_dir": str(root), "eval_every": 1, "n_val": 2,
                                                  "n_train": 10, "n_test": 10})
    data = experiment.load_data(s, seed=0)
    assert data.world is None and data.test.questions == tuple(q[0] for q in QUESTIONS)
    monitor = experiment.monitor_for(s, data)
    assert monitor.val.questions == data.test.questions[-2:]  # the user's last two validation questions
    assert monitor.tokens.tolist() == data.test_tokens[-2:].tolist()
    assert monitor.val.answers.tolist() == data.test.answers[-2:].tolist()
    assert experiment.model_config(s, data).num_words == len(data.train.word_vocab)


def test_models_trained_two_at_a_time_equal_those_trained_one_after_another():
    """``workers=2`` (two CPU processes) gives the models of ``workers=1`` (the ablation trains
    through the same ``_train_jobs``)."""
    small = {"n_train": 200, "n_test": 50, "steps": 4, "baseline_steps": 3, "batch_size": 16}
    one = profiles.settings("smoke", scales.TABLE, {**small, "workers": 1})
    two = profiles.settings("smoke", scales.TABLE, {**small, "workers": 2})
    data = experiment.load_data(one, seed=0)
    serial = experiment.train_models(one, data, 0)
    pooled = experiment.train_models(two, data, 0)
    assert list(pooled) == list(serial)
    for name in serial:
        assert [h["loss"] for h in pooled[name]["history"]] == [h["loss"] for h in serial[name]["history"]]
        for a, b in zip(pooled[name]["model"].state_dict().values(), serial[name]["model"].state_dict().values(),
                        strict=True):
            assert torch.equal(a, b)
