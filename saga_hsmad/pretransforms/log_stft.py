"""A weight-free log-magnitude STFT latent, decoded with Griffin-Lim phase reconstruction.

Encode: the STFT of each audio channel (Hann window of ``n_fft`` samples, hop ``hop``, reflect-padded at the
ends; the frame centred on the last sample is dropped so that ``t`` samples give ``t / hop`` frames), its power
in dB relative to a full-scale sine, floored at ``floor_db``, then standardised per frequency bin with
``band_mean`` / ``band_std`` (computed from a corpus by ``python -m saga_hsmad.cli.latent_stats``).

Decode: the inverse standardisation, the magnitude, and ``griffin_lim_iters`` iterations of fast Griffin-Lim
(``torchaudio.functional.griffinlim``, momentum ``momentum``, zero initial phase, so decoding is deterministic).

Why, next to the exactly invertible ``mdct``: a sustained tone is one steady value per bin here, while its
MDCT coefficients oscillate from frame to frame with the tone's phase. A small model that gets those
oscillations slightly wrong makes the level of a held note flutter and leaves a broadband floor. In dB, the
model's error is relative: a silent bin that comes out a few dB wrong stays silent. The price is that
decode(encode(x)) is not x (the phase is rebuilt), so this latent suits generation from symbols (HS-MAD), not
tasks that must keep the input's waveform (SAGA-SR).

Legend: b batch, c audio channels, f frequency bins (n_fft / 2 + 1), l latent frames, t samples = l·hop.
"""
from __future__ import annotations

import math
import typing as tp

import torch
from einops import rearrange
from stable_audio_tools.models.pretransforms import Pretransform
from torch import nn

from ..registry import PRETRANSFORMS
from .mdct_pretransform import band_scale_problem


def band_mean_problem(band_mean: tp.Sequence[float] | None, channels: int) -> str | None:
    """What is wrong with a per-bin mean list for ``channels`` latent channels, or None."""
    if band_mean is None:
        return None
    if not isinstance(band_mean, (list, tuple)) or len(band_mean) != channels:
        return f"band_mean must be a list of {channels} numbers (one per latent channel), got " \
               f"{type(band_mean).__name__} of length {len(band_mean) if hasattr(band_mean, '__len__') else '?'}"
    bad = [j for j, v in enumerate(band_mean) if not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        return f"band_mean[{bad[0]}] = {band_mean[bad[0]]!r}: every entry must be a finite number"
    return None


@PRETRANSFORMS.register("log_stft")
class LogSTFTPretransform(Pretransform):
    """audio (b, c, l·hop) → latents (b, c·f, l) → audio (module docstring); latent channel c·f + k is bin k
    (k · sr / n_fft Hz) of audio channel c.

    Args:
        channels: audio channels c.
        n_fft: STFT window and FFT size (even); f = n_fft / 2 + 1 bins.
        hop: samples per latent frame (the downsampling ratio); at most n_fft / 2.
        floor_db: power floor in dB relative to a full-scale sine; quieter bins encode as the floor.
        band_mean, band_std: optional per-latent-channel mean and std (c·f numbers each) of the dB values;
            encode subtracts the mean and divides by the std. Without them: mean floor_db / 2, std -floor_db / 4.
        griffin_lim_iters: phase-reconstruction iterations on decode.
        momentum: fast Griffin-Lim momentum in [0, 1).
    """

    def __init__(self, channels: int = 1, n_fft: int = 512, hop: int = 128, floor_db: float = -100.0,
                 band_mean: tp.Sequence[float] | None = None, band_std: tp.Sequence[float] | None = None,
                 griffin_lim_iters: int = 32, momentum: float = 0.99):
        super().__init__(enable_grad=False, io_channels=channels, is_discrete=False)
        if channels < 1 or n_fft < 4 or n_fft % 2 or not 1 <= hop <= n_fft // 2:
            raise ValueError(f"log_stft pretransform needs channels >= 1, an even n_fft >= 4 and 1 <= hop <= "
                             f"n_fft / 2, got {channels}, {n_fft}, {hop}")
        if not (isinstance(floor_db, (int, float)) and math.isfinite(floor_db) and floor_db < 0):
            raise ValueError(f"log_stft pretransform: floor_db must be a finite number < 0, got {floor_db!r}")
        if not (isinstance(griffin_lim_iters, int) and griffin_lim_iters >= 1):
            raise ValueError(f"log_stft pretransform: griffin_lim_iters must be an integer >= 1, got "
                             f"{griffin_lim_iters!r}")
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"log_stft pretransform: momentum must be in [0, 1), got {momentum!r}")
        bins = n_fft // 2 + 1
        for problem in (band_mean_problem(band_mean, channels * bins), band_scale_problem(band_std, channels * bins)):
            if problem:
                raise ValueError(f"log_stft pretransform: {problem}")
        self.channels, self.n_fft, self.hop, self.bins = channels, n_fft, hop, bins
        self.floor_db = float(floor_db)
        self.griffin_lim_iters, self.momentum = griffin_lim_iters, float(momentum)
        self.downsampling_ratio = hop
        self.encoded_channels = channels * bins
        # a crop decodes on its own (no context frames); its phase is rebuilt independently of its neighbours
        self.decode_context_frames = 0
        mean = torch.full((channels * bins,), floor_db / 2) if band_mean is None else torch.tensor(band_mean)
        std = torch.full((channels * bins,), -floor_db / 4) if band_std is None else torch.tensor(band_std)
        # Buffers, not parameters: fixed and rebuilt from the config (not saved in the state dict).
        self.register_buffer("latent_mean", mean.float()[:, None], persistent=False)
        self.register_buffer("latent_std", std.float()[:, None], persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, dtype=torch.float64).float(), persistent=False)
        # stable-audio-tools 0.0.19's generate_diffusion_cond reads the decode dtype from
        # next(pretransform.parameters()); one frozen empty parameter carries it.
        self.dtype_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    @property
    def full_scale_power(self) -> float:
        """|X|² of a full-scale sine's peak bin: (sum of the window / 2)²."""
        return (float(self.window.sum()) / 2) ** 2

    def power_db(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, l·hop) audio → (b, c, f, l) power in dB re a full-scale sine, floored at ``floor_db``."""
        b, c, t = x.shape
        assert c == self.channels, f"log_stft pretransform built for {self.channels} channels, got {c}"
        assert t % self.hop == 0, f"audio length {t} is not a multiple of the log_stft hop {self.hop}"
        spec = torch.stft(rearrange(x.float(), "b c t -> (b c) t"), self.n_fft, self.hop, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True)[..., :t // self.hop]
        power = spec.abs().square() / self.full_scale_power
        db = 10 * torch.log10(power + 10 ** (self.floor_db / 10))
        return rearrange(db, "(b c) f l -> b c f l", b=b)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, l·hop) audio → (b, c·f, l) latents."""
        db = rearrange(self.power_db(x), "b c f l -> b (c f) l")
        return ((db - self.latent_mean) / self.latent_std).to(x.dtype)

    def magnitude(self, z: torch.Tensor) -> torch.Tensor:
        """(b, c·f, l) latents → (b·c, f, l) STFT magnitudes (the floor removed)."""
        db = z.float() * self.latent_std + self.latent_mean
        power = (10 ** (db / 10) - 10 ** (self.floor_db / 10)).clamp_min(0.0)
        return rearrange((power * self.full_scale_power).sqrt(), "b (c f) l -> (b c) f l", f=self.bins)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(b, c·f, l) latents → (b, c, l·hop) audio, phase rebuilt by Griffin-Lim."""
        import torchaudio.functional as AF

        b, _, frames = z.shape
        magnitude = self.magnitude(z)
        # the frame centred on the sample after the end was dropped by encode; repeat the last one in its place
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
        audio = AF.griffinlim(magnitude, self.window, self.n_fft, self.hop, self.n_fft, power=1.0,
                              n_iter=self.griffin_lim_iters, momentum=self.momentum, length=frames * self.hop,
                              rand_init=False)
        return rearrange(audio, "(b c) t -> b c t", b=b).to(z.dtype)
