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


@pytest.mark.parametrize("n,window", [(37, 5), (64, 8), (10, 3)])
def test_windowed_attention_equals_band_masked_full_attention(n, window):
    """Block-wise local attention = full attention restricted to |i - j| <= window (written densely here)."""
    torch.manual_seed(0)
    local = RotaryAttention(16, context_dim=8, heads=2, window=window).eval()
    x, context = torch.randn(3, n, 16), torch.randn(3, n, 8)
    key_mask = torch.rand(3, n) > 0.5
    key_mask[2] = False
    key_mask[2, 0] = True  # most queries of item 2 see no valid key in their band
    out = local(x, context, key_mask)
    q = local.to_q(x).reshape(3, n, 2, 8).transpose(1, 2)
    k, v = local.to_kv(context).reshape(3, n, 2, 2, 8).permute(2, 0, 3, 1, 4)
    cos, sin = rotary_cos_sin(n, 8, 10000.0, x.device, x.dtype)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    i = torch.arange(n)
    allowed = ((i[:, None] - i[None, :]).abs() <= window)[None, None] & key_mask[:, None, None, :]
    logits = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(logits, dim=-1).nan_to_num(0.0)
    expected = local.to_out((probs @ v).transpose(1, 2).reshape(3, n, 16))
    expected = expected.masked_fill(~allowed.any(-1)[:, 0, :, None], 0.0)  # no valid key in the band: zeros
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


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
def _labels(b: int, t_m: int, t_l: int, generator: torch.Generator) -> dict:
    """Batched labels laid out as ``saga_hsmad.symbolic.labels.derive_labels`` gives them."""
    chroma = torch.rand(b, t_m, 12, generator=generator)
    key_mask = torch.rand(b, t_l, generator=generator) > 0.3
    return {
        "chroma": chroma / chroma.sum(-1, keepdim=True),
        "chroma_mask": torch.rand(b, t_m, generator=generator) > 0.3,
        "beat": (torch.rand(b, t_m, generator=generator) > 0.5).float(),
        "beat_mask": torch.rand(b, t_m, generator=generator) > 0.3,
        "downbeat": (torch.rand(b, t_m, generator=generator) > 0.8).float(),
        "downbeat_mask": torch.tensor([True, False, True])[:, None].expand(b, t_m),
        "tempo": torch.randn(b, t_l, generator=generator),
        "tempo_mask": torch.tensor([True, False, True])[:, None].expand(b, t_l),
        "key": torch.where(key_mask, torch.randint(0, 24, (b, t_l), generator=generator), -100),
        "key_mask": key_mask,
    }


def _bce(z, y):
    p = 1 / (1 + torch.exp(-z))
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def _heads(enc, levels):
    """Head outputs recomputed in float64 from the level features and the heads' weights."""
    def lin(name, x):
        head = enc.aux_heads[name]
        return (x.double() @ head.weight.double().T + head.bias.double()).detach()
    return (lin("chroma", levels.features["local"]), lin("beat", levels.features["local"]),
            lin("tempo", levels.features["global"])[..., 0], lin("key", levels.features["global"]))


def test_aux_losses_equal_hand_computed_values():
    enc = tiny_encoder()
    g = torch.Generator().manual_seed(3)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    labels = _labels(3, 16, 4, g)
    losses = enc.aux_losses(levels, labels)
    assert set(losses) == {"chroma", "beat", "tempo", "key"}
    chroma, beat, tempo, key = _heads(enc, levels)

    # chroma: KL(p || softmax) per frame, mean over valid frames
    p = labels["chroma"].double()
    log_q = chroma - torch.log(torch.exp(chroma).sum(-1, keepdim=True))
    kl = (p * torch.log(p) - p * log_q).sum(-1)
    torch.testing.assert_close(losses["chroma"].double(), kl[labels["chroma_mask"]].mean(), atol=1e-5, rtol=0)
    # beat: BCE over the beat entries with beat_mask and the downbeat entries with downbeat_mask
    b_terms = _bce(beat[..., 0], labels["beat"].double())[labels["beat_mask"]]
    d_terms = _bce(beat[..., 1], labels["downbeat"].double())[labels["downbeat_mask"]]
    torch.testing.assert_close(losses["beat"].double(), torch.cat([b_terms, d_terms]).mean(), atol=1e-5, rtol=0)
    # tempo: MSE per T_L frame over valid frames
    err = (tempo - labels["tempo"].double()) ** 2
    torch.testing.assert_close(losses["tempo"].double(), err[labels["tempo_mask"]].mean(), atol=1e-5, rtol=0)
    # key: cross-entropy per T_L frame over valid frames
    m = labels["key_mask"]
    nll = torch.log(torch.exp(key).sum(-1)) - key.gather(-1, labels["key"].clamp_min(0)[..., None])[..., 0]
    torch.testing.assert_close(losses["key"].double(), nll[m].mean(), atol=1e-5, rtol=0)


def test_chroma_bce_option_and_per_item_labels():
    enc = tiny_encoder(chroma_loss="bce")
    g = torch.Generator().manual_seed(4)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    labels = _labels(3, 16, 4, g)
    labels["chroma"] = labels["chroma"] / labels["chroma"].amax(-1, keepdim=True)  # "max" normalisation
    labels["tempo"], labels["tempo_mask"] = torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([True, True, False])
    losses = enc.aux_losses(levels, labels)
    chroma, _, tempo, _ = _heads(enc, levels)
    bce = _bce(chroma, labels["chroma"].double())[labels["chroma_mask"]]
    torch.testing.assert_close(losses["chroma"].double(), bce.mean(), atol=1e-5, rtol=0)
    # a per-item tempo counts for every T_L frame of the item
    expected = torch.cat([(tempo[0] + 1) ** 2, tempo[1] ** 2]).mean()
    torch.testing.assert_close(losses["tempo"].double(), expected, atol=1e-5, rtol=0)


def test_masked_labels_contribute_nothing():
    enc = tiny_encoder()
    g = torch.Generator().manual_seed(5)
    levels = enc(torch.rand(3, 384, 64, generator=g))
    labels = _labels(3, 16, 4, g)
    before = enc.aux_losses(levels, labels)
    changed = dict(labels)
    changed["chroma"] = torch.where(labels["chroma_mask"][..., None], labels["chroma"], torch.nan)
    changed["beat"] = torch.where(labels["beat_mask"], labels["beat"], 7.0)
    changed["downbeat"] = torch.where(labels["downbeat_mask"], labels["downbeat"], torch.nan)
    changed["tempo"] = torch.where(labels["tempo_mask"], labels["tempo"], 1e6)
    changed["key"] = torch.where(labels["key_mask"], labels["key"], 99)
    after = enc.aux_losses(levels, changed)
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_fully_masked_loss_is_exact_zero_with_graph():
    enc = tiny_encoder()
    levels = enc(torch.rand(2, 384, 64))
    labels = {"chroma": torch.rand(2, 16, 12), "chroma_mask": torch.zeros(2, 16, dtype=torch.bool),
              "tempo": torch.randn(2, 4), "tempo_mask": torch.zeros(2, 4, dtype=torch.bool)}
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
    sum(enc.aux_losses(levels, _labels(3, 16, 4, g)).values()).backward()
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
