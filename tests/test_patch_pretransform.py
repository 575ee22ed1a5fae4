"""The weight-free pretransform is exactly invertible and fits the stable-audio-tools interfaces."""
from __future__ import annotations

import torch

from saga_hsmad.pretransforms.patch_pretransform import PatchPretransform


def test_round_trip_is_exact_up_to_rounding():
    p = PatchPretransform(channels=2, patch_size=64)
    x = torch.randn(3, 2, 64 * 10)
    z = p.encode(x)
    assert z.shape == (3, 128, 10)
    assert torch.allclose(p.decode(z), x, atol=1e-5)
    plain = PatchPretransform(channels=2, patch_size=64, orthogonal_mix=False)
    assert torch.equal(plain.decode(plain.encode(x)), x)


def test_mix_is_orthogonal_and_seeded():
    a, b, c = PatchPretransform(2, 16, seed=0), PatchPretransform(2, 16, seed=0), PatchPretransform(2, 16, seed=1)
    assert torch.equal(a.mix, b.mix) and not torch.equal(a.mix, c.mix)
    assert torch.allclose(a.mix @ a.mix.T, torch.eye(32), atol=1e-5)


def test_scale_divides_latents():
    p = PatchPretransform(2, 8, scale=4.0)
    x = torch.randn(1, 2, 64)
    assert torch.allclose(p.encode(x) * 4.0, PatchPretransform(2, 8).encode(x), atol=1e-6)
    assert torch.allclose(p.decode(p.encode(x)), x, atol=1e-5)


def test_has_a_dtype_for_upstream_generation_but_nothing_trainable():
    p = PatchPretransform(2, 8)
    assert next(p.parameters()).dtype == torch.float32
    assert not any(q.requires_grad for q in p.parameters())


def test_dct_mix_puts_each_frequency_band_in_its_own_channel():
    import numpy as np
    import pytest
    from scipy.fft import dct

    p = PatchPretransform(channels=2, patch_size=16, mix_type="dct")
    x = torch.randn(2, 2, 16 * 5, dtype=torch.float32)
    z = p.encode(x)
    # independent reference: scipy's orthonormal DCT-II of each channel's 16-sample patches
    ref = dct(x.numpy().reshape(2, 2, 5, 16), type=2, norm="ortho", axis=-1)          # (b, c, l, k)
    assert np.allclose(z.numpy(), ref.transpose(0, 1, 3, 2).reshape(2, 32, 5), atol=1e-5)
    assert torch.allclose(p.decode(z), x, atol=1e-5)
    # a tone at band 12's basis frequency (12 · sr / 32) lands only in channel 12 of its audio channel
    n = torch.arange(16 * 40, dtype=torch.float64)
    tone = torch.cos(torch.pi * 12 * (n + 0.5) / 16).float()
    energy = p.encode(torch.stack([tone, torch.zeros_like(tone)])[None]).pow(2).sum(-1)[0]
    assert energy[12] / energy.sum() > 0.999 and energy[16:].sum() == 0
    with pytest.raises(ValueError, match="mix_type"):
        PatchPretransform(2, 16, mix_type="wavelet")
