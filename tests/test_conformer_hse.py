"""Conformer block and hierarchical symbolic encoder (HS-MAD spec §3): exact level lengths, padding and
batch invariance, auxiliary losses against hand-written formulas."""
from __future__ import annotations

import math

import pytest
import torch

from saga_hsmad.models.conformer import ConformerBlock
from saga_hsmad.models.hse import HierarchicalSymbolEncoder
from saga_hsmad.models.rotary_attention import RotaryAttention, apply_rotary, rotary_cos_sin

TINY = dict(in_channels=384, widths=[32, 48, 64], depths=[1, 1, 1], heads=2, ffn_dim=64, conv_kernel=31,
            dropout=0.0)


def tiny_encoder(**overrides) -> HierarchicalSymbolEncoder:
    torch.manual_seed(0)
    return HierarchicalSymbolEncoder(**{**TINY, **overrides}).eval()


# -- Conformer block -------------------------------------------------------------------------------
def test_conformer_block_ignores_padding_and_batch():
    torch.manual_seed(0)
    block = ConformerBlock(32, heads=4, ffn_dim=64, conv_kernel=31, dropout=0.0).eval()
    x = torch.randn(1, 20, 32)
    alone = block(x)
    padded = torch.cat([x, 100 * torch.randn(1, 13, 32)], dim=1)
    mask = torch.arange(33)[None] < 20
    other = torch.randn(1, 33, 32)
    batch = block(torch.cat([padded, other]), torch.cat([mask, torch.ones_like(mask)]))
    torch.testing.assert_close(batch[0, :20], alone[0], atol=1e-5, rtol=0)
    assert torch.equal(batch[0, 20:], torch.zeros(13, 32)), "padded frames must be zero in the output"


def test_rotary_logits_depend_on_frame_offset_only():
    """Rotary phases (relative positions): the same query and key content at every frame gives logits
    that are constant along each diagonal i - j = const."""
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 10, 8)
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 10, 8)
    cos, sin = rotary_cos_sin(10, 8, 10000.0, q.device, q.dtype)
    logits = (apply_rotary(q, cos, sin) @ apply_rotary(k, cos, sin).transpose(-1, -2))[0, 0]
    for offset in range(-9, 10):
        diag = torch.diagonal(logits, offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), atol=1e-5, rtol=0)
    assert not torch.allclose(logits[0, 0], logits[0, 5])  # but they do depend on the offset


def test_attention_with_fully_masked_context_gives_zeros():
    torch.manual_seed(0)
    attn = RotaryAttention(16, context_dim=8, heads=2).eval()
    out = attn(torch.randn(2, 6, 16), torch.randn(2, 6, 8), torch.tensor([[False] * 6, [True] * 6]))
    assert torch.equal(out[0], torch.zeros(6, 16)) and out[1].abs().sum() > 0


# -- level alignment ---------------------------------------------------------------------------------
@pytest.mark.parametrize("factors,length", [((4, 4), 64), ((2, 3), 48), ((3, 2), 30)])
def test_level_lengths_are_exact(factors, length):
    enc = tiny_encoder(factors=factors)
    levels = enc(torch.rand(2, 384, length))
    r1, r2 = factors
    assert levels.features["event"].shape == (2, length, 32)
    assert levels.features["local"].shape == (2, length // r1, 48)
    assert levels.features["global"].shape == (2, length // (r1 * r2), 64)
    assert [levels.masks[k].shape[1] for k in ("event", "local", "global")] == [length, length // r1,
                                                                                length // (r1 * r2)]


def test_length_not_multiple_raises_clear_error():
    enc = tiny_encoder()
    with pytest.raises(ValueError, match=r"T_H = 70 .*4 x 4 = 16"):
        enc(torch.rand(1, 384, 70))


def test_mask_downsampling_rule_any():
    enc = tiny_encoder()
    mask = torch.arange(64)[None] < 20  # 20 valid frames
    levels = enc(torch.rand(1, 384, 64), mask)
    assert int(levels.masks["event"].sum()) == 20
    assert int(levels.masks["local"].sum()) == 5  # ceil(20 / 4)
    assert int(levels.masks["global"].sum()) == 2  # ceil(5 / 4)
    for name in ("event", "local", "global"):
        invalid = ~levels.masks[name][0]
        assert torch.equal(levels.features[name][0][invalid], torch.zeros_like(levels.features[name][0][invalid]))


# -- padding and batch invariance --------------------------------------------------------------------
def test_encoder_outputs_unchanged_by_padding_and_batch():
    enc = tiny_encoder()
    torch.manual_seed(1)
    item = torch.rand(1, 384, 32)
    alone = enc(item)
    garbage = 50 * torch.randn(1, 384, 32)
    padded = torch.cat([item, garbage], dim=-1)  # 64 frames, 32 valid
    other = torch.rand(2, 384, 64)
    batch_in = torch.cat([other[:1], padded, other[1:]])
    mask = torch.ones(3, 64, dtype=torch.bool)
    mask[1, 32:] = False
    mask[2, 48:] = False
    batch = enc(batch_in, mask)
    for name, frames in (("event", 32), ("local", 8), ("global", 2)):
        torch.testing.assert_close(batch.features[name][1, :frames], alone.features[name][0], atol=1e-5, rtol=0)
        assert bool(batch.masks[name][1, :frames].all()) and not bool(batch.masks[name][1, frames:].any())
    # and the item in a batch of one with padding gives the same as in the batch of three
    single = enc(padded, mask[1:2])
    torch.testing.assert_close(single.features["global"][0], batch.features["global"][1], atol=1e-5, rtol=0)


# -- auxiliary losses --------------------------------------------------------------------------------
def _labels(b: int, t_m: int, generator: torch.Generator) -> dict:
    return {
        "chroma": torch.rand(b, t_m, 12, generator=generator),
        "chroma_mask": torch.rand(b, t_m, generator=generator) > 0.3,
        "beat": (torch.rand(b, t_m, 2, generator=generator) > 0.5).float(),
        "beat_mask": torch.rand(b, t_m, generator=generator) > 0.3,
        "tempo": torch.randn(b, generator=generator),
        "tempo_mask": torch.tensor([True, False, True]),
        "key": torch.randint(0, 24, (b,), generator=generator),
        "key_mask": torch.tensor([True, True, False]),
    }


def _bce(z, y):
    p = 1 / (1 + torch.exp(-z.double()))
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def test_aux_losses_equal_hand_computed_values():
    enc = tiny_encoder()
    g = torch.Generator().manual_seed(3)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    labels = _labels(3, 16, g)
    losses = enc.aux_losses(levels, labels)
    assert set(losses) == {"chroma", "beat", "tempo", "key"}
    local = levels.features["local"].double()
    pooled = levels.features["global"].double().mean(dim=1)  # all frames valid
    heads = {k: (h.weight.double(), h.bias.double()) for k, h in enc.aux_heads.items()}

    def lin(name, x):
        w, b = heads[name]
        return x @ w.T + b

    chroma = _bce(lin("chroma", local), labels["chroma"].double())
    m = labels["chroma_mask"]
    torch.testing.assert_close(losses["chroma"].double(), chroma[m].mean(), atol=1e-5, rtol=0)
    beat = _bce(lin("beat", local), labels["beat"].double())
    m = labels["beat_mask"]
    torch.testing.assert_close(losses["beat"].double(), beat[m].mean(), atol=1e-5, rtol=0)
    tempo = lin("tempo", pooled)[:, 0]
    expected = ((tempo[0] - labels["tempo"][0]) ** 2 + (tempo[2] - labels["tempo"][2]) ** 2) / 2
    torch.testing.assert_close(losses["tempo"].double(), expected.double(), atol=1e-5, rtol=0)
    logits = lin("key", pooled).detach()
    nll = [math.log(float(torch.exp(logits[i]).sum())) - float(logits[i, labels["key"][i]]) for i in (0, 1)]
    assert abs(float(losses["key"].detach()) - sum(nll) / 2) < 1e-5


def test_chroma_kl_and_bpm_tempo_options():
    enc = tiny_encoder(chroma_loss="kl", tempo_label="bpm")
    g = torch.Generator().manual_seed(4)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    labels = _labels(3, 16, g)
    labels["chroma"][0, 0] = 0.0  # silent frame: skipped by KL
    labels["tempo"] = torch.tensor([60.0, 90.0, 240.0])
    losses = enc.aux_losses(levels, labels)
    local = levels.features["local"].double()
    w, b = enc.aux_heads["chroma"].weight.double(), enc.aux_heads["chroma"].bias.double()
    log_q = torch.log_softmax(local @ w.T + b, dim=-1)
    y = labels["chroma"].double()
    p = y / y.sum(-1, keepdim=True).clamp_min(1e-30)
    kl = (torch.where(p > 0, p * torch.log(p.clamp_min(1e-30)), 0.0) - p * log_q).sum(-1)
    m = labels["chroma_mask"] & (y.sum(-1) > 0)
    torch.testing.assert_close(losses["chroma"].double(), kl[m].mean(), atol=1e-5, rtol=0)
    pooled = levels.features["global"].double().mean(dim=1)
    tempo = pooled @ enc.aux_heads["tempo"].weight.double().T + enc.aux_heads["tempo"].bias.double()
    target = torch.tensor([math.log2(60 / 120), math.log2(240 / 120)], dtype=torch.double)
    expected = ((tempo[[0, 2], 0] - target) ** 2).mean()
    torch.testing.assert_close(losses["tempo"].double(), expected, atol=1e-5, rtol=0)


def test_masked_labels_contribute_nothing():
    enc = tiny_encoder()
    g = torch.Generator().manual_seed(5)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    labels = _labels(3, 16, g)
    before = enc.aux_losses(levels, labels)
    changed = dict(labels)
    changed["chroma"] = torch.where(labels["chroma_mask"][..., None], labels["chroma"], torch.nan)
    changed["beat"] = torch.where(labels["beat_mask"][..., None], labels["beat"], 7.0)
    changed["tempo"] = torch.where(labels["tempo_mask"], labels["tempo"], 1e6)
    changed["key"] = torch.where(labels["key_mask"], labels["key"], -5)
    after = enc.aux_losses(levels, changed)
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_fully_masked_loss_is_exact_zero_with_graph():
    enc = tiny_encoder()
    levels = enc(torch.rand(2, 384, 64))
    labels = {"chroma": torch.rand(2, 16, 12), "chroma_mask": torch.zeros(2, 16, dtype=torch.bool),
              "tempo": torch.randn(2), "tempo_mask": torch.zeros(2, dtype=torch.bool)}
    losses = enc.aux_losses(levels, labels)
    assert set(losses) == {"chroma", "tempo"}  # heads without labels compute nothing
    for value in losses.values():
        assert float(value.detach()) == 0.0 and value.requires_grad
    sum(losses.values()).backward()  # keeps the graph; gradients are exactly zero
    assert float(enc.aux_heads["chroma"].weight.grad.abs().sum()) == 0.0


def test_aux_gradients_reach_heads_and_encoder():
    enc = tiny_encoder()
    g = torch.Generator().manual_seed(6)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    sum(enc.aux_losses(levels, _labels(3, 16, g)).values()).backward()
    for name, head in enc.aux_heads.items():
        assert float(head.weight.grad.abs().sum()) > 0, name
    assert float(enc.input_proj.weight.grad.abs().sum()) > 0
    assert float(enc.downsamples[1].weight.grad.abs().sum()) > 0


def test_aux_heads_switch_off_and_level_check():
    assert len(tiny_encoder(aux_heads=[]).aux_heads) == 0
    assert set(tiny_encoder(aux_heads=["beat"]).aux_heads) == {"beat"}
    flat = tiny_encoder(num_levels=1)
    assert len(flat.aux_heads) == 0 and list(flat(torch.rand(1, 384, 12)).features) == ["event"]
    with pytest.raises(ValueError, match="aux_heads"):
        tiny_encoder(num_levels=1, aux_heads=["chroma"])
