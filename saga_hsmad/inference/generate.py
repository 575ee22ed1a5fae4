"""Conditioning and generation shared by every sampling mode.

``conditioning_inputs`` is the ONE path from per-item metadata to the tensors a backbone receives; the
training step uses the same two calls (``model.conditioner`` then ``get_conditioning_inputs``), so training
and sampling cannot disagree on which conditions exist (the roll-off parity failure of seed 000).

``generate_latents`` integrates the rectified-flow ODE with our Euler sampler and optional multi-branch
guidance; ``decode`` runs the pretransform's decoder directly, which also avoids stable-audio-tools 0.0.19's
``generate_diffusion_cond`` crash on parameter-free pretransforms (it reads the dtype from
``next(pretransform.parameters())``).
"""
from __future__ import annotations

import typing as tp

import torch

from .guidance import Guidance, GuidedVelocity
from .sampler import sample_euler


def conditioning_inputs(model, metadata: tp.Sequence[dict], device: torch.device) -> dict:
    """Routed conditioning tensors (``cross_attn_cond``, ``global_cond``, ...) for a batch of metadata."""
    if model.conditioner is None:
        return {}
    return model.get_conditioning_inputs(model.conditioner(list(metadata), device))


def linear_schedule(steps: int) -> torch.Tensor:
    return torch.linspace(1.0, 0.0, steps + 1)


@torch.no_grad()
def generate_latents(model, inputs: dict, latent_shape: tuple[int, int, int], timesteps: torch.Tensor,
                     guidance: Guidance | None = None, cfg_scale: float = 1.0,
                     generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                     callback: tp.Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Latents (b, c, n) from noise, t = 1 → 0. ``guidance`` names branches of the backbone's conditions;
    without it the backbone's own ``cfg_scale`` applies (1 = no guidance)."""
    device = next(model.model.parameters()).device
    dtype = next(model.model.parameters()).dtype
    if noise is None:
        noise = torch.randn(latent_shape, generator=generator, device="cpu").to(device)
    noise = noise.to(device=device, dtype=dtype)
    inputs = {k: (v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                  if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    backbone = model.model
    if guidance is not None:
        velocity = GuidedVelocity(backbone, inputs, guidance, getattr(backbone, "condition_names", ()),
                                  noise.shape[0], noise.device)
    else:
        def velocity(x, t):
            return backbone(x, t, **inputs, cfg_scale=cfg_scale, batch_cfg=True)

    return sample_euler(velocity, noise, timesteps, callback=callback)


@torch.no_grad()
def decode(model, latents: torch.Tensor) -> torch.Tensor:
    """Audio (b, c, n·ratio) from latents; identity without a pretransform."""
    if model.pretransform is None:
        return latents
    return model.pretransform.decode(latents).float()


class NonFiniteOutput(ValueError):
    """The model produced NaN or infinite samples; nothing of that output may be written."""


def require_finite(audio: torch.Tensor, what: str) -> torch.Tensor:
    """``audio`` unchanged if every sample is finite, else ``NonFiniteOutput`` naming ``what`` was sampled."""
    if not bool(torch.isfinite(audio).all()):
        bad = int((~torch.isfinite(audio)).sum())
        raise NonFiniteOutput(f"the model produced {bad} NaN or infinite samples in {what}; nothing was written "
                              "(check the checkpoint, e.g. resample with --no-ema, and the guidance scales)")
    return audio


def latent_length(model, audio_samples: int) -> int:
    ratio = model.pretransform.downsampling_ratio if model.pretransform is not None else 1
    multiple = max(1, int(model.min_input_length // ratio)) if model.min_input_length else 1
    n = audio_samples // ratio
    return max(multiple, (n // multiple) * multiple)
