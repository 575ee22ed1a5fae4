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
