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
