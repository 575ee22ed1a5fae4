"""A weight-free, exactly invertible pretransform for tests and CPU demos.

Folds ``patch_size`` consecutive samples of each channel into channels, then (optionally) mixes them
with a fixed orthogonal matrix so latent channels are not raw samples. Both steps are exactly
invertible; the orthogonal mix is invertible to float rounding (~1e-7). Nothing is learned or loaded.

Which mix matters for what a small model can learn. Under a random rotation every latent channel
carries every frequency, so a model's error decodes to white noise, which swamps the top octaves
(where music is 30–60 dB down). Under the DCT mix each latent channel is one frequency band of one
audio channel, so errors stay in their band and the level of the high band is a per-channel quantity.

Legend: b batch, c audio channels, p patch size, l latent frames.
"""
from __future__ import annotations

import typing as tp

import torch
from einops import rearrange
from stable_audio_tools.models.pretransforms import Pretransform
from torch import nn

from ..registry import PRETRANSFORMS


def dct_matrix(n: int) -> torch.Tensor:
    """(n, n) float64 orthonormal DCT-II: row k is sqrt(2/n) · cos(π (i + 1/2) k / n), row 0 scaled by 1/√2."""
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(torch.pi * (i[None, :] + 0.5) * i[:, None] / n) * (2.0 / n) ** 0.5
    m[0] /= 2.0 ** 0.5
    return m


@PRETRANSFORMS.register("patch")
class PatchPretransform(Pretransform):
    """audio (b, c, l·p) ⇄ latents (b, c·p, l).

    Args:
        channels: audio channels c.
        patch_size: samples per latent frame p (the downsampling ratio).
        orthogonal_mix: mix the c·p latent channels with a fixed orthogonal matrix (``mix_type``).
        mix_type: ``"random"`` (seeded random rotation of all c·p channels) or ``"dct"`` (orthonormal
            DCT-II of each channel's patch; latent channel c·p + k is frequency band k of audio channel c,
            whose basis tone is at k·sr / (2p)).
        scale: latents are divided by it on encode and multiplied on decode.
        seed: seed of the orthogonal matrix, so a config always gives the same transform.
    """

    def __init__(self, channels: int = 2, patch_size: int = 256, orthogonal_mix: bool = True,
                 mix_type: tp.Literal["random", "dct"] = "random", scale: float = 1.0, seed: int = 0):
        super().__init__(enable_grad=False, io_channels=channels, is_discrete=False)
        if patch_size < 1 or channels < 1:
            raise ValueError(f"patch pretransform needs channels >= 1 and patch_size >= 1, got {channels}, {patch_size}")
        self.channels = channels
        self.patch_size = patch_size
        self.downsampling_ratio = patch_size
        self.encoded_channels = channels * patch_size
        self.scale = scale
        n = self.encoded_channels
        if mix_type not in ("random", "dct"):
            raise ValueError(f"patch pretransform: mix_type must be 'random' or 'dct', got {mix_type!r}")
        if orthogonal_mix and mix_type == "dct":
            mix = torch.block_diag(*[dct_matrix(patch_size)] * channels).float()
        elif orthogonal_mix:
            g = torch.Generator().manual_seed(seed)
            q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
            q = q * torch.sign(torch.diagonal(r))  # unique, well-conditioned orthogonal matrix
            mix = q.float()
        else:
            mix = torch.eye(n)
        # A buffer, not a parameter: it is fixed and saved. stable-audio-tools 0.0.19's
        # generate_diffusion_cond reads the decode dtype from next(pretransform.parameters()),
        # which raises StopIteration on a parameter-free pretransform, so one frozen empty
        # parameter carries the dtype (saga_hsmad's own sampler does not need it).
        self.register_buffer("mix", mix, persistent=False)
        self.dtype_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, l·p) audio → (b, c·p, l) latents."""
        b, c, n = x.shape
        assert c == self.channels, f"patch pretransform built for {self.channels} channels, got {c}"
        assert n % self.patch_size == 0, f"audio length {n} is not a multiple of patch_size {self.patch_size}"
        z = rearrange(x, "b c (l p) -> b (c p) l", p=self.patch_size)
        z = torch.einsum("ij,bjl->bil", self.mix.to(z.dtype), z)
        return z / self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(b, c·p, l) latents → (b, c, l·p) audio."""
        z = torch.einsum("ji,bjl->bil", self.mix.to(z.dtype), z * self.scale)
        return rearrange(z, "b (c p) l -> b c (l p)", p=self.patch_size)
