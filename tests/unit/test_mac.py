"""MAC units against the paper's equations written out by hand; network, baselines, bad input, EMA."""

from __future__ import annotations

import pytest
import torch

from moderndl.mac import ControlUnit, MACCell, MACConfig, MACNetwork, OptimConfig, ReadUnit, WriteUnit
from moderndl.mac.attention import attention_on_references
from moderndl.mac.baselines import CNNLSTM, QuestionLSTM
from moderndl.mac.training import EMA, questions_per_second


def cfg(**kw) -> MACConfig:
    base = dict(num_words=20, num_classes=7, image_size=16, d=8, p=3, embed_dim=6, stem_channels=4, stem_layers=2,
                dropout=0.0)
    return MACConfig(**{**base, **kw})


def batch(c: MACConfig, B: int = 4, T: int = 6):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (B, 3, c.image_size, c.image_size), dtype=torch.uint8, generator=g)
    lengths = torch.tensor([T, T - 1, 3, T][:B])
    tokens = torch.randint(2, c.num_words, (B, T), generator=g)
    tokens[torch.arange(T)[None] >= lengths[:, None]] = 0
    return images, tokens, lengths


def test_paper_defaults():
    c, o = MACConfig(num_words=10, num_classes=5), OptimConfig()
    assert (c.d, c.p, c.embed_dim, c.grid) == (512, 12, 300, 14)
    assert (o.lr, o.batch_size, o.ema_decay, o.grad_clip) == (1e-4, 64, 0.999, 8.0)


def test_control_unit_matches_equations_c1_to_c2():
    torch.manual_seed(0)
    c = cfg()
    unit = ControlUnit(c)
    B, S, d = 2, 5, c.d
    c_prev, q, words = torch.randn(B, d), torch.randn(B, d), torch.randn(B, S, d)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    out, cv = unit(1, c_prev, q, words, mask)
    for b in range(B):
        q_i = unit.position_aware[1].weight @ q[b] + unit.position_aware[1].bias  # q_i = W_i q + b_i
        cq = unit.combine.weight @ torch.cat([c_prev[b], q_i]) + unit.combine.bias  # c1
        n = int(mask[b].sum())
        ca = torch.stack([unit.score.weight[0] @ (cq * words[b, s]) + unit.score.bias[0] for s in range(n)])  # c2.1
        weights = torch.exp(ca - ca.max()) / torch.exp(ca - ca.max()).sum()  # c2.2
        torch.testing.assert_close(cv[b, :n], weights)
        assert (cv[b, n:] == 0).all()
        torch.testing.assert_close(out[b], (weights[:, None] * words[b, :n]).sum(0))  # c2.3


def test_read_unit_matches_equations_r1_to_r3():
    torch.manual_seed(1)
    c = cfg()
    unit = ReadUnit(c).eval()
    B, N, d = 2, 4, c.d
    ctrl, mem, kb = torch.randn(B, d), torch.randn(B, d), torch.randn(B, N, d)
    r, rv = unit(ctrl, mem, kb)
    for b in range(B):
        ra = []
        for n in range(N):
            inter = (unit.memory_proj.weight @ mem[b] + unit.memory_proj.bias) * \
                    (unit.kb_proj.weight @ kb[b, n] + unit.kb_proj.bias)  # r1
            inter2 = unit.combine.weight @ torch.cat([inter, kb[b, n]]) + unit.combine.bias  # r2
            ra.append(unit.score.weight[0] @ (ctrl[b] * inter2) + unit.score.bias[0])  # r3.1
        weights = torch.softmax(torch.stack(ra), 0)  # r3.2
        torch.testing.assert_close(rv[b], weights)
        torch.testing.assert_close(r[b], (weights[:, None] * kb[b]).sum(0))  # r3.3


def test_write_unit_w1_and_the_memory_gate_w3():
    torch.manual_seed(2)
    d = 8
    ctrl, r, m = torch.randn(2, d), torch.randn(2, d), torch.randn(2, d)
    plain = WriteUnit(cfg())
    expected = torch.cat([r, m], -1) @ plain.combine.weight.T + plain.combine.bias  # w1
    torch.testing.assert_close(plain(ctrl, r, m, [], []), expected)
    gated = WriteUnit(cfg(memory_gate=True))
    gated.combine.load_state_dict(plain.combine.state_dict())
    gate = torch.sigmoid(ctrl @ gated.gate.weight.T + gated.gate.bias)  # w3.1
    torch.testing.assert_close(gated(ctrl, r, m, [], []), gate * m + (1 - gate) * expected)  # w3.2
    with torch.no_grad():
        gated.gate.bias.fill_(50.0)  # a closed gate keeps the previous memory
    torch.testing.assert_close(gated(ctrl, r, m, [], []), m)


def test_write_unit_self_attention_w2():
    torch.manual_seed(3)
    d = 8
    unit = WriteUnit(cfg(self_attention=True))
    ctrl, r, m = torch.randn(1, d), torch.randn(1, d), torch.randn(1, d)
    past_c, past_m = [torch.randn(1, d) for _ in range(3)], [torch.randn(1, d) for _ in range(3)]
    info = torch.cat([r, m], -1) @ unit.combine.weight.T + unit.combine.bias  # w1
    sa = torch.softmax(torch.stack([unit.sa_score(ctrl * cj)[0, 0] for cj in past_c]), 0)  # w2.1
    m_sa = sum(w * mj for w, mj in zip(sa, past_m, strict=True))  # w2.2
    expected = m_sa @ unit.sa_proj.weight.T + info @ unit.info_proj.weight.T + unit.info_proj.bias  # w2.3
    torch.testing.assert_close(unit(ctrl, r, m, past_c, past_m), expected)


def test_cell_shares_weights_across_steps_and_returns_attentions():
    c = cfg(p=5)
    cell = MACCell(c)
    B, S, N = 2, 4, 9
    m, cv, rv = cell(torch.randn(B, c.d), torch.randn(B, S, c.d), torch.ones(B, S, dtype=torch.bool),
                     torch.randn(B, N, c.d))
    assert m.shape == (B, c.d) and cv.shape == (B, 5, S) and rv.shape == (B, 5, N)
    torch.testing.assert_close(rv.sum(-1), torch.ones(B, 5))
    assert len(cell.control.position_aware) == 5  # only q_i is per step (Sec. 3.2.1)


def test_network_shapes_and_padding_invariance():
    c = cfg()
    torch.manual_seed(0)
    model = MACNetwork(c).eval()
    images, tokens, lengths = batch(c)
    logits, att = model(images, tokens, lengths, attention=True)
    assert logits.shape == (4, 7) and att["control"].shape == (4, 3, 6) and att["read"].shape == (4, 3, 4, 4)
    padded = torch.cat([tokens, torch.zeros(4, 3, dtype=torch.int64)], dim=1)  # extra PAD columns
    torch.testing.assert_close(model(images, padded, lengths), logits)
    single = model(images[1:2], tokens[1:2], lengths[1:2])  # no leakage across the batch
    torch.testing.assert_close(single, logits[1:2], atol=1e-5, rtol=1e-4)


def test_bad_input_errors_name_it():
    with pytest.raises(ValueError, match="p .*must be an int >= 1"):
        cfg(p=0)
    c = cfg()
    model = MACNetwork(c)
    images, tokens, lengths = batch(c)
    with pytest.raises(ValueError, match="image of size"):
        model(torch.zeros(4, 3, 20, 20), tokens, lengths)
    bad = tokens.clone()
    bad[0, 0] = 99
    with pytest.raises(ValueError, match="question token id 99"):
        model(images, bad, lengths)
    lenient = MACNetwork(cfg(unknown="unk")).eval()
    mapped = bad.clone()
    mapped[0, 0] = 1
    torch.testing.assert_close(lenient(images, bad, lengths), lenient(images, mapped, lengths))


def test_baselines():
    c = cfg()
    images, tokens, lengths = batch(c)
    blind = QuestionLSTM(c).eval()
    torch.testing.assert_close(blind(images, tokens, lengths), blind(255 - images, tokens, lengths))
    seeing = CNNLSTM(c).eval()
    out = seeing(images, tokens, lengths)
    assert out.shape == (4, 7) and not torch.allclose(out, seeing(255 - images, tokens, lengths))


def test_ema_is_the_moving_average():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.75)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.model.weight, 0.75 * start + 0.25 * model.weight)
    other = EMA(torch.nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.75 and torch.equal(other.model.weight, ema.model.weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_attention_score_uniform_and_focused():
    coverage = torch.zeros(1, 4, 4)
    coverage[0, 1, 2] = 1.0
    coverage[0, 0, 0] = 0.5
    uniform = torch.full((1, 2, 4, 4), 1 / 16)
    focused = torch.zeros(1, 2, 4, 4)
    focused[0, :, 1, 2] = 1.0
    s = attention_on_references(uniform, coverage)
    torch.testing.assert_close(s["mean"], s["uniform"])
    assert float(attention_on_references(focused, coverage)["mean"]) == 1.0


def test_throughput_benchmark_runs_on_cpu():
    c = cfg()
    images, tokens, lengths = batch(c)
    qps = questions_per_second(MACNetwork(c), (images, tokens, lengths, torch.zeros(4, dtype=torch.int64)), steps=2)
    assert qps > 0


def test_patch_stem_with_1x1_projection_keeps_cells_local():
    from moderndl.mac.network import Stem

    c = cfg(stem="patch", patch=4, kb_kernel=1, coords=True)  # 16 px images -> 4 x 4 cells
    stem = Stem(c).eval()
    images, _, _ = batch(c)
    changed = images.clone()
    changed[:, :, 4:8, 8:12] = 0  # the patch at row 1, column 2
    diff = (stem(changed) - stem(images)).abs().sum(-1)  # (B, 16)
    assert c.grid == 4 and (diff[:, 1 * 4 + 2] > 0).all()
    assert torch.count_nonzero(diff[:, [i for i in range(16) if i != 6]]) == 0
    with pytest.raises(ValueError, match="stride"):
        cfg(stem="patch", patch=5)
