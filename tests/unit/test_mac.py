"""MAC units against the paper's equations written out by hand; network, baselines, bad input, EMA,
the reference-code variant, and the benchmark's step against torch's own Adam."""

from __future__ import annotations

import pytest
import torch

from moderndl.mac import ControlUnit, MACCell, MACConfig, MACNetwork, MACRecipe, ReadUnit, WriteUnit
from moderndl.mac.baselines import CNNLSTM, QuestionLSTM
from moderndl.mac.network import cross_entropy
from moderndl.mac.training import make_ema, throughput


def config(**kw) -> MACConfig:
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
    c, o = MACConfig(num_words=10, num_classes=5), MACRecipe()
    assert (c.d, c.p, c.embed_dim, c.grid) == (512, 12, 300, 14)
    assert (o.lr, o.batch_size, o.ema_decay, o.grad_clip) == (1e-4, 64, 0.999, 8.0)


def test_control_unit_matches_equations_c1_to_c2():
    torch.manual_seed(0)
    c = config()
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
    c = config()
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
    plain = WriteUnit(config())
    expected = torch.cat([r, m], -1) @ plain.combine.weight.T + plain.combine.bias  # w1
    torch.testing.assert_close(plain(ctrl, r, m, [], []), expected)
    gated = WriteUnit(config(memory_gate=True))
    gated.combine.load_state_dict(plain.combine.state_dict())
    gate = torch.sigmoid(ctrl @ gated.gate.weight.T + gated.gate.bias)  # w3.1
    torch.testing.assert_close(gated(ctrl, r, m, [], []), gate * m + (1 - gate) * expected)  # w3.2
    with torch.no_grad():
        gated.gate.bias.fill_(50.0)  # a closed gate keeps the previous memory
    torch.testing.assert_close(gated(ctrl, r, m, [], []), m)


def test_write_unit_self_attention_w2():
    torch.manual_seed(3)
    d = 8
    unit = WriteUnit(config(self_attention=True))
    ctrl, r, m = torch.randn(1, d), torch.randn(1, d), torch.randn(1, d)
    past_c, past_m = [torch.randn(1, d) for _ in range(3)], [torch.randn(1, d) for _ in range(3)]
    info = torch.cat([r, m], -1) @ unit.combine.weight.T + unit.combine.bias  # w1
    sa = torch.softmax(torch.stack([unit.sa_score(ctrl * cj)[0, 0] for cj in past_c]), 0)  # w2.1
    m_sa = sum(w * mj for w, mj in zip(sa, past_m, strict=True))  # w2.2
    expected = m_sa @ unit.sa_proj.weight.T + info @ unit.info_proj.weight.T + unit.info_proj.bias  # w2.3
    torch.testing.assert_close(unit(ctrl, r, m, past_c, past_m), expected)


def test_cell_shares_weights_across_steps_and_returns_attentions():
    c = config(p=5)
    cell = MACCell(c)
    B, S, N = 2, 4, 9
    m, cv, rv = cell(torch.randn(B, c.d), torch.randn(B, S, c.d), torch.ones(B, S, dtype=torch.bool),
                     torch.randn(B, N, c.d))
    assert m.shape == (B, c.d) and cv.shape == (B, 5, S) and rv.shape == (B, 5, N)
    torch.testing.assert_close(rv.sum(-1), torch.ones(B, 5))
    assert len(cell.control.position_aware) == 5  # only q_i is per step (Sec. 3.2.1)


def test_network_shapes_and_padding_invariance():
    c = config()
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
        config(p=0)
    with pytest.raises(TypeError, match=r"MACConfig\.p must be an int, got True"):
        config(p=True)
    with pytest.raises(TypeError, match=r"MACConfig\.d must be an int, got '64'"):
        config(d="64")
    with pytest.raises(TypeError, match=r"MACConfig\.dropout must be a float"):
        config(dropout="0.1")
    with pytest.raises(ValueError, match="variant"):
        config(variant="tf")
    with pytest.raises(TypeError, match=r"MACRecipe\.steps must be an int"):
        MACRecipe(steps=10.0)
    c = config()
    model = MACNetwork(c)
    images, tokens, lengths = batch(c)
    with pytest.raises(ValueError, match="image of size"):
        model(torch.zeros(4, 3, 20, 20), tokens, lengths)
    bad = tokens.clone()
    bad[0, 0] = 99
    with pytest.raises(ValueError, match="question token id 99"):
        model(images, bad, lengths)
    lenient = MACNetwork(config(unknown="unk")).eval()
    mapped = bad.clone()
    mapped[0, 0] = 1
    torch.testing.assert_close(lenient(images, bad, lengths), lenient(images, mapped, lengths))


def test_baselines():
    c = config()
    images, tokens, lengths = batch(c)
    blind = QuestionLSTM(c).eval()
    torch.testing.assert_close(blind(images, tokens, lengths), blind(255 - images, tokens, lengths))
    seeing = CNNLSTM(c).eval()
    out = seeing(images, tokens, lengths)
    assert out.shape == (4, 7) and not torch.allclose(out, seeing(255 - images, tokens, lengths))


def test_ema_is_the_moving_average_of_parameters_and_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = make_ema(model, decay=0.75)
    assert not any(p.requires_grad for p in ema.parameters())
    ema.update_parameters(model)  # the first update copies
    start = [t.detach().clone() for t in (*model.parameters(), model[1].running_mean)]
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()(torch.randn(8, 3))  # moves the BatchNorm statistics
    ema.update_parameters(model)
    now = (*model.parameters(), model[1].running_mean)
    averaged = (*ema.module.parameters(), ema.module[1].running_mean)
    for a, before, after in zip(averaged, start, now, strict=True):
        torch.testing.assert_close(a, 0.75 * before + 0.25 * after.detach())
    with pytest.raises(ValueError, match="decay"):
        make_ema(model, decay=1.0)


def test_benchmark_times_the_training_step_torch_adam_would_take():
    """``throughput`` runs warmup + repeats real steps: Adam + clip + EMA, equal to torch's own loop."""
    c = config()
    images, tokens, lengths = batch(c)
    answers = torch.tensor([0, 1, 2, 3])
    recipe = MACRecipe(lr=1e-2, batch_size=4, steps=1, grad_clip=0.5)
    torch.manual_seed(0)
    timed = MACNetwork(c)
    reference = MACNetwork(c)
    reference.load_state_dict(timed.state_dict())
    result = throughput(timed, (images, tokens, lengths, answers), recipe, warmup=1, repeats=2, cpu=True)
    assert result["items_per_step"] == 4 and result["repeats"] == 2
    assert result["items_per_s"] == pytest.approx(4 / result["median_s"])
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for _ in range(3):  # warmup + repeats
        loss, _ = cross_entropy(reference.train(), (images, tokens, lengths, answers))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        optimizer.step()
    for a, b in zip(timed.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_reference_variant_follows_the_authors_code():
    torch.manual_seed(4)
    c = config(variant="reference", memory_gate=True, self_attention=True)
    unit = ControlUnit(c)
    q, words = torch.randn(2, c.d), torch.randn(2, 5, c.d)
    mask = torch.ones(2, 5, dtype=torch.bool)
    a, _ = unit(0, torch.randn(2, c.d), q, words, mask)
    b, _ = unit(0, torch.randn(2, c.d), q, words, mask)
    torch.testing.assert_close(a, b)  # no c_{i-1} input
    cq = torch.tanh(unit.position_aware[0](q))  # the reference's control input
    ca = unit.score(cq[:, None] * words).squeeze(-1)
    torch.testing.assert_close(a, torch.einsum("bs,bsd->bd", torch.softmax(ca, -1), words))
    write = WriteUnit(c)
    torch.testing.assert_close(torch.sigmoid(-write.gate.bias), torch.sigmoid(torch.tensor([1.0])))
    cell, kb = MACCell(c).eval(), torch.randn(2, 4, c.d)
    before = cell(q, words, mask, kb)[0]
    with torch.no_grad():
        cell.c0.add_(5.0)  # unused: the reference starts from the question
    torch.testing.assert_close(cell(q, words, mask, kb)[0], before)
    read = ReadUnit(c).eval()
    ctrl, mem, kb = torch.randn(2, c.d), torch.randn(2, c.d), torch.randn(2, 4, c.d)
    inter = torch.nn.functional.elu(read.combine(torch.cat(
        [read.memory_proj(mem)[:, None] * read.kb_proj(kb), kb], -1)))  # ELU after r2
    ra = read.score(torch.nn.functional.elu(ctrl[:, None] * inter)).squeeze(-1)  # and after the control product
    torch.testing.assert_close(read(ctrl, mem, kb)[1], torch.softmax(ra, -1))


def test_variational_memory_dropout_keeps_one_mask_for_all_steps():
    c = config(variant="reference", dropout=0.5, p=4)
    cell = MACCell(c).train()
    masks = []
    cell.read.register_forward_hook(lambda mod, args, out: masks.append(args[3]))
    cell(torch.randn(3, c.d), torch.randn(3, 5, c.d), torch.ones(3, 5, dtype=torch.bool), torch.randn(3, 4, c.d))
    assert len(masks) == 4 and all(torch.equal(m, masks[0]) for m in masks)
    assert set(masks[0].unique().tolist()) <= {0.0, 2.0}


def test_patch_stem_with_1x1_projection_keeps_cells_local():
    from moderndl.mac.network import Stem

    c = config(stem="patch", patch=4, kb_kernel=1, coords=True)  # 16 px images -> 4 x 4 cells
    stem = Stem(c).eval()
    images, _, _ = batch(c)
    changed = images.clone()
    changed[:, :, 4:8, 8:12] = 0  # the patch at row 1, column 2
    diff = (stem(changed) - stem(images)).abs().sum(-1)  # (B, 16)
    assert c.grid == 4 and (diff[:, 1 * 4 + 2] > 0).all()
    assert torch.count_nonzero(diff[:, [i for i in range(16) if i != 6]]) == 0
    with pytest.raises(ValueError, match="stride"):
        config(stem="patch", patch=5)
