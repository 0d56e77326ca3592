"""finetune/generate: the gpt-2-simple workflow on a tiny base checkpoint built here."""

import json
import subprocess
import sys
import time

import pytest
import torch

from moderndl.data import text
from moderndl.gpt2 import api, hub, pretrain, runs

TINY = pretrain.BaseConfig(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=2, block_size=32,
                           batch_size=4, steps=4, warmup=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrain.base_checkpoint(TINY, root=tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "licenses.txt"
    path.write_text(text.license_texts(max_chars=20_000))
    return path


def _ft(dataset, base, ckpt, steps, **kw):
    args = dict(run_name="r", checkpoint_dir=ckpt, batch_size=2, accumulate_gradients=2, block_size=16,
                learning_rate=1e-3, sample_every=0, print_every=0, save_every=0, progress=False)
    return api.finetune(dataset, base, steps, **(args | kw))


def test_base_checkpoint_tokenizer_and_cache(base):
    tok = hub.load_tokenizer(base)
    assert len(tok) == TINY.vocab_size  # the transformers-5 vocab_file/merges_file trap gives 0 here
    ids = tok("def f(x):\n    return x")["input_ids"]
    assert tok.decode(ids) == "def f(x):\n    return x"
    assert pretrain.base_checkpoint(TINY, root=base.parent) == base  # cached: not rebuilt
    assert json.loads((base / "pretrain.json").read_text())["config"]["vocab_size"] == TINY.vocab_size


def test_backends_agree(dataset, base, tmp_path):
    ours = _ft(dataset, base, tmp_path, 3, backend="compact", run_name="a")
    ref = _ft(dataset, base, tmp_path, 3, backend="hf", run_name="b")
    assert torch.allclose(torch.tensor(ours.losses), torch.tensor(ref.losses), atol=1e-4)


def test_restore_latest_continues_the_loss_curve(dataset, base, tmp_path):
    whole = _ft(dataset, base, tmp_path / "one", 4)
    _ft(dataset, base, tmp_path / "two", 2, max_checkpoints=2)
    rest = _ft(dataset, base, tmp_path / "two", 2, restore_from="latest", max_checkpoints=2)
    assert rest.step == 4 and [r["step"] for r in rest.history] == [1, 2, 3, 4]
    assert torch.allclose(torch.tensor(rest.losses), torch.tensor(whole.losses), atol=1e-6)
    run = tmp_path / "two" / "r"
    assert (run / "config.json").is_file() and (run / "tokenizer.json").is_file()
    assert sorted(p.name for p in run.glob("step-*")) == ["step-000002", "step-000004"]


def test_generate_options(dataset, base, tmp_path):
    run = _ft(dataset, base, tmp_path, 1, sample_every=1, sample_length=4, sample_dir=tmp_path / "samples")
    assert len(run.samples) == 1 and isinstance(run.samples[0], str)  # gpt-2-simple's periodic samples
    assert run.samples[0] in (tmp_path / "samples" / "r" / "samples-1").read_text()
    kw = dict(run_name="r", checkpoint_dir=tmp_path, length=8, seed=3, return_as_list=True)
    a = api.generate(**kw, prefix="The", nsamples=2, batch_size=2, top_k=5, top_p=0.9)
    assert len(a) == 2 and all(s.startswith("The") for s in a)
    assert a == api.generate(**kw, prefix="The", nsamples=2, batch_size=2, top_k=5, top_p=0.9)  # seeded
    whole = api.generate(**kw, prefix="The", top_k=5)[0]
    assert whole == "The" + api.generate(**kw, prefix="The", include_prefix=False, top_k=5)[0]
    cut = api.generate(**kw, truncate=" ")[0]
    assert " " not in cut
    with pytest.raises(ValueError, match="multiple of batch_size"):
        api.generate(**kw, nsamples=3, batch_size=2)
    with pytest.raises(FileNotFoundError, match=r"no saved run 'missing'.*runs there: \['r'\]"):
        api.generate(run_name="missing", checkpoint_dir=tmp_path)
    # gpt-2-simple's outputs: a file with sample_delim between texts, generate_to_file, no list by default
    dest = tmp_path / "out.txt"
    # (top_k=1 where two calls are compared: a near-uniform toy model's draws can flip on float rounding)
    listless = kw | {"return_as_list": False, "top_k": 1}
    assert api.generate(**listless, nsamples=2, destination_path=dest, sample_delim="@@\n") is None
    assert dest.read_text().count("@@\n") == 2
    again = api.generate_to_file(run_name="r", checkpoint_dir=tmp_path, destination_path=tmp_path / "f.txt",
                                 length=8, seed=3, nsamples=2, sample_delim="@@\n", top_k=1)
    assert again.read_text() == dest.read_text()  # same settings, same texts
    # load_gpt2: one model in memory for repeated calls gives what reloading gives
    sess = api.load_gpt2(run_name="r", checkpoint_dir=tmp_path)
    assert api.generate(sess=sess, **kw, top_k=1) == api.generate(**kw, top_k=1)
    # top_p=0.0 is gpt-2-simple's "off": the same draws as top_p=1.0
    assert api.generate(**kw, top_p=0.0) == api.generate(**kw, top_p=1.0)


@pytest.mark.slow
def test_generate_from_a_fresh_process(dataset, base, tmp_path):
    _ft(dataset, base, tmp_path, 1)
    code = ("from moderndl.gpt2 import generate; import sys; print(repr(generate(run_name='r', "
            "checkpoint_dir=sys.argv[1], length=6, seed=1, top_k=3, return_as_list=True)[0]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(api.generate(run_name="r", checkpoint_dir=tmp_path, length=6, seed=1,
                                                   top_k=3, return_as_list=True)[0])


# -- bad input: each is a clear error, and nothing saved is lost ---------------------------------------

@pytest.fixture(scope="module")
def saved_run(dataset, base, tmp_path_factory):
    """One saved run shared by the bad-input tests; each checks that its bytes are unchanged."""
    where = tmp_path_factory.mktemp("saved")
    _ft(dataset, base, where, 1)
    run = where / "r"
    return run, {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _unchanged(saved_run):
    run, before = saved_run
    after = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert after == before


def test_missing_and_empty_dataset(saved_run, base, tmp_path):
    ckpt = saved_run[0].parent
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        _ft(tmp_path / "missing.txt", base, ckpt, 1)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        _ft(empty, base, ckpt, 1)
    _unchanged(saved_run)


def test_text_shorter_than_a_context_window(saved_run, base, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Too short.")
    with pytest.raises(ValueError, match="fewer than one context window"):
        _ft(short, base, saved_run[0].parent, 1)
    _unchanged(saved_run)


@pytest.mark.parametrize("steps", [0, -2])
def test_nonpositive_steps(saved_run, dataset, base, steps):
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        _ft(dataset, base, saved_run[0].parent, steps)
    _unchanged(saved_run)


def test_unknown_model_alias(saved_run, dataset):
    with pytest.raises(ValueError, match="unknown model alias model_name='118M'.*124M"):
        _ft(dataset, "118M", saved_run[0].parent, 1, restore_from="fresh", run_name="other")
    with pytest.raises(ValueError, match="unknown model_name='gtp2'"):
        hub.resolve("gtp2")
    assert hub.resolve("355M") == "gpt2-medium"
    assert hub.resolve("117M") == "gpt2" and hub.resolve("345M") == "gpt2-medium"  # OpenAI's first names
    _unchanged(saved_run)


@pytest.mark.parametrize("kwargs, match", [({"top_p": -0.1}, "top_p"), ({"top_p": 1.01}, "top_p"),
                                           ({"temperature": 0.0}, "temperature"),
                                           ({"temperature": -0.5}, "temperature")])
def test_bad_generate_knobs(saved_run, kwargs, match):
    with pytest.raises(ValueError, match=match):
        api.generate(run_name="r", checkpoint_dir=saved_run[0].parent, length=4, **kwargs)
    _unchanged(saved_run)


def test_fresh_on_an_existing_run_needs_overwrite(saved_run, dataset, base, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _ft(dataset, base, saved_run[0].parent, 1, restore_from="fresh")
    _unchanged(saved_run)
    _ft(dataset, base, tmp_path, 2)  # a run of its own, replaced only when asked to
    again = _ft(dataset, base, tmp_path, 1, restore_from="fresh", overwrite=True)
    assert again.step == 1 and [r["step"] for r in again.history] == [1]


def test_offline_without_cache_fails_fast_naming_the_alias(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(hub.HubUnreachableError, match=r"model_name='124M' \(hub name 'gpt2'\).*local folder"):
        hub.load_model("124M")
    assert time.perf_counter() - started < 5


def test_unreachable_hub_is_detected_within_seconds(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://127.0.0.1:9")  # nothing listens on port 9
    started = time.perf_counter()
    assert "127.0.0.1:9" in hub.check_reachable(timeout=1.0)
    assert time.perf_counter() - started < 3


def test_token_ids_as_dataset_and_a_folder_without_a_checkpoint(dataset, base, tmp_path):
    ids = hub.load_tokenizer(base)(dataset.read_text())["input_ids"]
    from_ids = _ft(torch.tensor(ids), base, tmp_path / "ids", 2, combine=0)
    from_file = _ft(dataset, base, tmp_path / "file", 2, combine=0)
    assert from_ids.losses == from_file.losses  # a file at least `combine` long is encoded whole, exactly like this
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(OSError, match="holds no tokenizer"):
        _ft(dataset, tmp_path / "empty_model", tmp_path / "x", 1)


# -- restoring: a fine-tuned model is never thrown away ---------------------------------------------

def test_latest_without_checkpoint_pt_continues_from_the_runs_weights(dataset, base, tmp_path):
    first = _ft(dataset, base, tmp_path, 3)
    run = first.run_dir
    (run / "checkpoint.pt").unlink()  # a copy of the folder without the large optimizer file
    ref = api.load(run)[0]
    more = _ft(dataset, base, tmp_path, 1, learning_rate=1e-12)  # a step that barely moves the weights
    assert more.restored == "weights" and more.step == 4  # steps go on from run.json's 3
    got = api.load(run)[0]
    for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name  # the fine-tuned weights, not the base model's
    base_model = api.load(base)[0]
    assert not torch.allclose(base_model.lm_head.weight, got.lm_head.weight, atol=1e-4)


def test_latest_with_checkpoint_pt_says_so_and_resumes(dataset, base, tmp_path):
    _ft(dataset, base, tmp_path, 2)
    again = _ft(dataset, base, tmp_path, 1)
    assert again.restored == "checkpoint" and again.step == 3 and len(again.history) == 3
    assert _ft(dataset, base, tmp_path / "new", 1).restored == "base"


def test_pruning_keeps_the_highest_step_numbers(tmp_path):
    for step in (999_999, 1_000_000, 5):
        (tmp_path / f"step-{step:06d}").mkdir()
    deleted = runs.prune_snapshots(tmp_path, keep=2)
    assert [p.name for p in deleted] == ["step-000005"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-1000000", "step-999999"]


def test_corrupt_checkpoint_names_the_file(dataset, base, tmp_path):
    run = _ft(dataset, base, tmp_path, 1).run_dir
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"checkpoint .*r/checkpoint.pt is corrupt"):
        _ft(dataset, base, tmp_path, 1)


def test_restore_from_a_folder(dataset, base, tmp_path):
    src = _ft(dataset, base, tmp_path, 2, run_name="src")
    other = _ft(dataset, base, tmp_path, 1, run_name="dst", restore_from=src.run_dir)
    assert other.restored == "checkpoint" and other.step == 3
    with pytest.raises(FileNotFoundError, match="restore_from="):
        _ft(dataset, base, tmp_path, 1, run_name="x", restore_from=tmp_path / "nowhere")


def test_steps_minus_one_trains_until_interrupted_and_saves(dataset, base, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = api.lm.lm_loss

    def loss_then_interrupt(model, windows):
        calls["n"] += 1
        if calls["n"] > 6:  # three steps of two micro-batches, then Ctrl-C
            raise KeyboardInterrupt
        return real(model, windows)

    monkeypatch.setattr(api.lm, "lm_loss", loss_then_interrupt)
    run = _ft(dataset, base, tmp_path, -1)
    assert run.interrupted and run.step == 3
    assert (run.run_dir / "checkpoint.pt").is_file() and json.loads((run.run_dir / "run.json").read_text())["step"] == 3


def test_only_train_transformer_layers_freezes_embeddings(dataset, base, tmp_path):
    run = _ft(dataset, base, tmp_path, 2, only_train_transformer_layers=True)
    before, after = api.load(base)[0], api.load(run.run_dir)[0]
    assert torch.equal(before.transformer["wte"].weight, after.transformer["wte"].weight)
    assert torch.equal(before.transformer["ln_f"].weight, after.transformer["ln_f"].weight)
    assert not torch.equal(before.transformer["h"][0].attn.c_attn.weight, after.transformer["h"][0].attn.c_attn.weight)
