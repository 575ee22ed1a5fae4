"""The roll-off conditioner: (b, 1, D) tokens from scalars, distinct values → distinct embeddings, learnable,
and its two routes into the DiT (cross-attention tokens after the text, and the prepended global token)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import saga_hsmad
import saga_hsmad.conditioners.rolloff  # noqa: F401  (registers "rolloff")
import saga_hsmad.models.dit_concat  # noqa: F401
from saga_hsmad.conditioners.rolloff import RolloffConditioner


def test_shapes_mask_and_fourier_features_by_hand():
    torch.manual_seed(0)
    cond = RolloffConditioner(output_dim=8, num_frequencies=4)
    emb, mask = cond([0.25, 0.5, 0.0], "cpu")
    assert emb.shape == (3, 1, 8) and mask.shape == (3, 1)
    assert mask.dtype == torch.bool and bool(mask.all())
    # [x, sin 2πxw, cos 2πxw] → Linear, computed independently
    w = cond.embedder.weight.detach()
    lin = cond.embedder.proj
    for i, x in enumerate([0.25, 0.5, 0.0]):
        feats = torch.tensor([x] + [math.sin(2 * math.pi * x * wi) for wi in w]
                             + [math.cos(2 * math.pi * x * wi) for wi in w])
        torch.testing.assert_close(emb[i, 0], lin(feats), rtol=1e-5, atol=1e-6)


def test_accepts_floats_tensors_and_numpy_and_rejects_bad_values():
    cond = RolloffConditioner(output_dim=16)
    a, _ = cond([0.3, 0.7], "cpu")
    b, _ = cond([torch.tensor(0.3), np.float32(0.7)], "cpu")
    c, _ = cond([np.array([0.3]), torch.tensor([0.7], dtype=torch.float64)], "cpu")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    for bad in ([1.5], [-0.1], [float("nan")], ["0.3"], [torch.zeros(2)]):
        with pytest.raises(ValueError, match="roll-off item 0"):
            cond(bad, "cpu")


def test_different_values_give_different_embeddings_and_two_ids_are_independent():
    torch.manual_seed(0)
    a, b = RolloffConditioner(32), RolloffConditioner(32)
    values = [0.1, 0.1000 + 1 / 1025, 0.5, 0.9]  # one roll-off bin apart, and far apart
    ea, _ = a(values, "cpu")
    assert (ea[0] - ea[1]).abs().max() > 1e-4
    assert min((ea[i] - ea[j]).abs().max() for i in range(4) for j in range(i + 1, 4)) > 1e-4
    eb, _ = b(values, "cpu")
    assert not torch.allclose(ea, eb)  # separate learnable embedders


def test_gradients_reach_frequencies_and_projection():
    cond = RolloffConditioner(16, num_frequencies=8)
    emb, _ = cond([0.2, 0.8], "cpu")
    emb.square().sum().backward()
    assert cond.embedder.weight.grad is not None and cond.embedder.weight.grad.abs().sum() > 0
    assert cond.embedder.proj.weight.grad.abs().sum() > 0


def small_config() -> dict:
    """tiny.json's routing (roll-off twice, cross-attention after the text, global prepend) without T5,
    whose stand-in is covered elsewhere; a "number" conditioner plays the text token."""
    return {"model_type": "diffusion_cond", "sample_size": 4096, "sample_rate": 44100, "audio_channels": 2,
            "model": {"pretransform": {"type": "patch", "config": {"channels": 2, "patch_size": 64}},
                      "io_channels": 128,
                      "conditioning": {"cond_dim": 64, "configs": [
                          {"id": "prompt", "type": "number", "config": {"min_val": 0, "max_val": 1}},
                          {"id": "rolloff_in", "type": "rolloff", "config": {}},
                          {"id": "rolloff_target", "type": "rolloff", "config": {}},
                          {"id": "lr_audio", "type": "pretransform",
                           "config": {"use_model_pretransform": True, "sample_rate": 44100, "output_dim": 128}}]},
                      "diffusion": {"type": "dit_concat", "diffusion_objective": "rectified_flow",
                                    "cross_attention_cond_ids": ["prompt", "rolloff_in", "rolloff_target"],
                                    "global_cond_ids": ["rolloff_in", "rolloff_target"],
                                    "input_concat_ids": ["lr_audio"],
                                    "config": {"io_channels": 128, "input_concat_dim": 128, "embed_dim": 64,
                                               "depth": 1, "num_heads": 2, "cond_token_dim": 64,
                                               "global_cond_dim": 128, "use_checkpointing": False}}}}


def test_routes_cross_attention_tokens_and_prepended_global_token():
    """What SAT's get_conditioning_inputs and DiffusionTransformer do with the two roll-off embeddings:
    (a) appended after the text token for cross-attention, (b) concatenated (2D) → to_global_embed → added to
    the timestep embedding → ONE prepended token."""
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(small_config()).eval()
    meta = [{"prompt": 0.5, "rolloff_in": 0.2, "rolloff_target": 0.7, "lr_audio": torch.randn(2, 4096)},
            {"prompt": 0.1, "rolloff_in": 0.4, "rolloff_target": 0.9, "lr_audio": torch.randn(2, 4096)}]
    cond = model.conditioner(meta, "cpu")
    inputs = model.get_conditioning_inputs(cond)
    e_in, e_tgt = cond["rolloff_in"][0], cond["rolloff_target"][0]  # (2, 1, 64) each
    assert inputs["cross_attn_cond"].shape == (2, 3, 64)
    torch.testing.assert_close(inputs["cross_attn_cond"][:, 1:2], e_in)
    torch.testing.assert_close(inputs["cross_attn_cond"][:, 2:3], e_tgt)
    torch.testing.assert_close(inputs["global_cond"], torch.cat([e_in, e_tgt], dim=-1)[:, 0])
    assert inputs["input_concat_cond"].shape == (2, 128, 64)

    # the prepended token seen by the first transformer layer = to_global_embed(global) + timestep embedding
    dit = model.model.model
    seen = {}
    dit.transformer.layers[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    x, t = torch.randn(2, 128, 64), torch.tensor([0.3, 0.8])
    with torch.no_grad():
        model.model(x, t, **inputs)
        expected = dit.to_global_embed(inputs["global_cond"]) + dit.to_timestep_embed(dit.timestep_features(t[:, None]))
    assert seen["x"].shape == (2, 1 + 64, 64)  # one prepended token + 64 latent frames
    torch.testing.assert_close(seen["x"][:, 0], expected)
