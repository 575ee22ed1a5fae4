"""A weight-free, exactly invertible lapped transform (MDCT) with per-band normalisation.

Implements the modified discrete cosine transform (Princen & Bradley 1986) with a sine window, applied
circularly to each window of audio: frame l covers samples [l·N, l·N + 2N) (wrapping round at the end),
hop N, N coefficients per frame and channel. With the sine window and the sqrt(2/N) scale the transform is
orthogonal (time-domain aliasing cancels between neighbouring frames), so decode(encode(x)) == x to float
rounding and white noise in the latent is white noise in the audio at the same power.

Unlike the block DCT of the ``patch`` pretransform (non-overlapping 64-sample blocks), an error in one band
is windowed smoothly instead of producing block-edge discontinuities, which leak broadband energy into
the quiet top octaves.

Per-band statistics. One global ``scale`` leaves bands whose variances differ by 30–60 dB on music, while
the diffusion prior is unit noise in every band. ``band_std`` (one value per latent channel, computed from
a corpus by ``python -m saga_hsmad.cli.latent_stats``) whitens them: encode divides channel j by
``scale · band_std[j]``, decode multiplies it back.

Magnitude compression. Whitening equalises the bands' average power, not the dynamic range within a band:
the quiet frames between transients of a top band sit 30–50 dB below its average, and an error of 0.1 in a
unit-variance latent is only 20 dB down, so a model's small latent errors fill those gaps with audible noise
and dominate log-spectral measures. ``compression`` = α < 1 maps each whitened coefficient u to
sign(u)·|u|^α (the power-law compression used on spectrogram inputs of diffusion speech enhancement),
halving the dB range at α = 0.5; decode applies the exact inverse sign(y)·|y|^(1/α). α = 1 (default) is the
plain whitened MDCT.

Legend: b batch, c audio channels, n hop (coefficients per frame), l latent frames, t samples = l·n.
"""
from __future__ import annotations

import math
import typing as tp

import torch
from einops import rearrange
from stable_audio_tools.models.pretransforms import Pretransform
from torch import nn

from ..registry import PRETRANSFORMS


def mdct_basis(n: int) -> torch.Tensor:
    """(n, 2n) float64 windowed MDCT basis: row k is sqrt(2/n) · w(i) · cos(π/n (i + 1/2 + n/2)(k + 1/2)),
    w(i) = sin(π (i + 1/2) / 2n). Analysis is ``frame @ basis.T``; synthesis is ``coeffs @ basis`` followed by
    overlap-add at hop n."""
    i = torch.arange(2 * n, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    window = torch.sin(math.pi * (i + 0.5) / (2 * n))
    return math.sqrt(2.0 / n) * window[None, :] * torch.cos(math.pi / n * (i[None, :] + 0.5 + n / 2) * (k[:, None] + 0.5))


def band_scale_problem(band_std: tp.Sequence[float] | None, channels: int, key: str = "band_std") -> str | None:
    """What is wrong with a per-band std list for ``channels`` latent channels, or None."""
    if band_std is None:
        return None
    if not isinstance(band_std, (list, tuple)) or len(band_std) != channels:
        return f"{key} must be a list of {channels} positive numbers (one per latent channel), got " \
               f"{type(band_std).__name__} of length {len(band_std) if hasattr(band_std, '__len__') else '?'}"
    bad = [j for j, v in enumerate(band_std) if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0]
    if bad:
        return f"{key}[{bad[0]}] = {band_std[bad[0]]!r}: every entry must be a finite number > 0"
    return None


@PRETRANSFORMS.register("mdct")
class MDCTPretransform(Pretransform):
    """audio (b, c, l·n) ⇄ latents (b, c·n, l); latent channel c·n + k is band k (centre (k + 1/2)·sr / 2n)
    of audio channel c.

    Args:
        channels: audio channels c.
        hop: coefficients per frame n, which is the hop and the downsampling ratio (frames are 2n long).
        scale: latents are divided by it on encode and multiplied on decode (after ``band_std``).
        band_std: optional per-latent-channel std (c·n positive numbers) computed from the training corpus;
            encode divides channel j by it, so every band has about unit variance.
        compression: exponent α in (0, 1] applied to the magnitude of each whitened coefficient (1: none).
    """

    def __init__(self, channels: int = 2, hop: int = 64, scale: float = 1.0,
                 band_std: tp.Sequence[float] | None = None, compression: float = 1.0):
        super().__init__(enable_grad=False, io_channels=channels, is_discrete=False)
        if channels < 1 or hop < 2 or hop % 2:
            raise ValueError(f"mdct pretransform needs channels >= 1 and an even hop >= 2, got {channels}, {hop}")
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"mdct pretransform: scale must be a finite number > 0, got {scale!r}")
        if not (isinstance(compression, (int, float)) and 0 < compression <= 1):
            raise ValueError(f"mdct pretransform: compression must be a number in (0, 1], got {compression!r}")
        problem = band_scale_problem(band_std, channels * hop)
        if problem:
            raise ValueError(f"mdct pretransform: {problem}")
        self.channels = channels
        self.hop = hop
        self.downsampling_ratio = hop
        # a crop of latent frames decodes exactly only with the frame before it (block l also receives the second
        # half of frame l - 1); windowed decoders (sample.py --midi) pass that many frames of context
        self.decode_context_frames = 1
        self.encoded_channels = channels * hop
        self.scale = scale
        self.compression = float(compression)
        std = torch.ones(channels * hop) if band_std is None else torch.tensor(band_std, dtype=torch.float64)
        # Buffers, not parameters: fixed and rebuilt from the config (not saved in the state dict).
        self.register_buffer("basis", mdct_basis(hop).float(), persistent=False)
        self.register_buffer("latent_std", (std * scale).float()[:, None], persistent=False)
        # stable-audio-tools 0.0.19's generate_diffusion_cond reads the decode dtype from
        # next(pretransform.parameters()); one frozen empty parameter carries it.
        self.dtype_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def _compress(self, u: torch.Tensor) -> torch.Tensor:
        """whitened coefficients → sign(u)·|u|^α."""
        return u if self.compression == 1.0 else torch.sign(u) * u.abs().pow(self.compression)

    def _expand(self, y: torch.Tensor) -> torch.Tensor:
        """the inverse of :meth:`_compress`: sign(y)·|y|^(1/α)."""
        return y if self.compression == 1.0 else torch.sign(y) * y.abs().pow(1.0 / self.compression)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, l·n) audio → (b, c·n, l) latents."""
        b, c, t = x.shape
        assert c == self.channels, f"mdct pretransform built for {self.channels} channels, got {c}"
        assert t % self.hop == 0, f"audio length {t} is not a multiple of the mdct hop {self.hop}"
        n = self.hop
        wrapped = torch.cat([x, x[..., :n]], dim=-1)  # circular: the last frame reaches round to the start
        frames = wrapped.unfold(-1, 2 * n, n)  # (b, c, l, 2n)
        z = torch.einsum("bcli,ki->bckl", frames, self.basis.to(x.dtype))
        return self._compress(rearrange(z, "b c k l -> b (c k) l") / self.latent_std.to(x.dtype))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(b, c·n, l) latents → (b, c, l·n) audio (overlap-add of the windowed frames, circular)."""
        n = self.hop
        coeffs = rearrange(self._expand(z) * self.latent_std.to(z.dtype), "b (c k) l -> b c l k", k=n)
        frames = torch.einsum("bclk,ki->bcli", coeffs, self.basis.to(z.dtype))  # (b, c, l, 2n)
        # sample block l receives the first half of frame l and the second half of frame l - 1
        blocks = frames[..., :n] + torch.roll(frames[..., n:], shifts=1, dims=2)
        return rearrange(blocks, "b c l n -> b c (l n)")
