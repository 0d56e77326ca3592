"""Our compact GPT-2 against Hugging Face's GPT2LMHeadModel on the same weights."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from moderndl.gpt2 import lm, sampling
from moderndl.gpt2.model import GPT, GPTConfig, from_hf, hf_state_dict, to_hf

SMALL = dict(vocab_size=300, n_positions=48, n_embd=64, n_layer=3, n_head=4, bos_token_id=299, eos_token_id=299)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(**SMALL, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
    with torch.no_grad():  # non-trivial biases and LayerNorm affine, so a layout error would show
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return hf, from_hf(hf).eval()


def test_logits_allclose_to_hugging_face(pair):
    hf, ours = pair
    x = torch.randint(0, SMALL["vocab_size"], (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = hf(x).logits, ours(x)
    diff = (ref - got).abs().max().item()
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5), f"max abs diff {diff}"


def test_greedy_generation_matches_hugging_face(pair):
    hf, ours = pair
    prompt = torch.tensor([[5, 17, 42, 7]])
    ref = hf.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=299)
    got = sampling.sample(ours, prompt, 12, greedy=True, n_positions=SMALL["n_positions"])
    assert torch.equal(ref, got)


def test_round_trip_to_hugging_face_layout(pair):
    hf, ours = pair
    back = to_hf(ours)
    for name, tensor in hf.state_dict().items():
        if name in back.state_dict():
            assert torch.equal(back.state_dict()[name], tensor), name
    assert set(hf_state_dict(ours)) <= set(hf.state_dict())


def test_weight_tying_and_parameter_count(pair):
    _, ours = pair
    assert ours.lm_head.weight is ours.transformer["wte"].weight
    c, L, V, P = SMALL["n_embd"], SMALL["n_layer"], SMALL["vocab_size"], SMALL["n_positions"]
    per_block = 12 * c * c + 13 * c  # qkv + proj + mlp weights and biases, two LayerNorms
    assert ours.num_params(non_embedding=False) == V * c + P * c + L * per_block + 2 * c
    assert ours.num_params() == ours.num_params(non_embedding=False) - P * c


def test_loss_is_hugging_faces_loss(pair):
    hf, ours = pair
    w = torch.randint(0, SMALL["vocab_size"], (2, 33), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(w, labels=w).loss  # HF shifts labels internally
        assert torch.allclose(lm.lm_loss(ours, w), ref, atol=1e-5)


def test_perplexity_is_exp_mean_nll(pair):
    _, ours = pair
    tokens = torch.randint(0, SMALL["vocab_size"], (3 * 16 + 1,), generator=torch.Generator().manual_seed(3))
    windows = torch.stack([tokens[i * 16:i * 16 + 17] for i in range(3)])  # (3, 17)
    with torch.no_grad():
        expected = torch.exp(lm.lm_loss(ours, windows)).item()
    assert lm.perplexity(ours, tokens, block_size=16, batch_size=2) == pytest.approx(expected, rel=1e-5)


def test_unsupported_config_and_long_input_are_errors():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        GPTConfig.from_hf(GPT2Config(**SMALL, scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig(n_embd=10, n_head=3)
    model = GPT(GPTConfig(vocab_size=10, n_positions=4, n_embd=8, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="n_positions=4"):
        model(torch.zeros(1, 5, dtype=torch.long))


# -- the KV cache ------------------------------------------------------------------------------------

def test_cached_logits_equal_full_forward(pair):
    _, ours = pair
    x = torch.randint(0, SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = ours(x)  # (2, 20, V)
        cache = ours.new_cache(2)
        steps = [ours(x[:, :7], cache)]  # prefill 7 tokens
        steps += [ours(x[:, t:t + 1], cache) for t in range(7, 15)]  # one token at a time
        steps.append(ours(x[:, 15:], cache))  # a chunk after cached tokens: needs the offset mask
    assert cache.length == 20
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_cached_greedy_equals_hf_generate_on_several_prompts(pair):
    hf, ours = pair
    prompt = torch.randint(0, SMALL["vocab_size"], (4, 6), generator=torch.Generator().manual_seed(5))
    ref = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, do_sample=False,
                      pad_token_id=299, eos_token_id=None)
    assert torch.equal(sampling.sample(ours, prompt, 30, greedy=True), ref)


def test_past_the_window_the_cache_slides_like_the_uncached_decoder(pair):
    _, ours = pair
    prompt = torch.tensor([[1, 2, 3]])
    n = SMALL["n_positions"] + 10  # beyond the context: the window slides
    cached = sampling.sample(ours, prompt, n, greedy=True)
    plain = sampling.sample(ours, prompt, n, greedy=True, use_cache=False, n_positions=SMALL["n_positions"])
    assert torch.equal(cached, plain)


def test_cached_sampling_draws_what_the_uncached_sampler_draws(pair):
    _, ours = pair
    prompt = torch.tensor([[7, 8]] * 3)
    kw = dict(temperature=0.9, top_k=20, top_p=0.9)
    a = sampling.sample(ours, prompt, 12, generator=torch.Generator().manual_seed(0), **kw)
    b = sampling.sample(ours, prompt, 12, generator=torch.Generator().manual_seed(0), use_cache=False, **kw)
    assert torch.equal(a, b)
