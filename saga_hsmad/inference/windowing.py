"""Long inputs in overlapping windows, joined by a crossfade without a seam (both models).

``plan_windows`` places fixed-length windows over a signal; ``OverlapAdd`` writes each window's output
into one preallocated buffer as it arrives, so memory is the output buffer plus one window.

The crossfade is equal-power (cos/sin) with a correlation correction: two overlapping outputs of the same
input are partly correlated (SAGA-SR's low band, HS-MAD's shared score), and a plain equal-power fade of
correlated signals bulges by up to +3 dB mid-overlap. With ρ the measured correlation of the two
overlapping segments (per channel, clamped to [0, 1]) the fade gains are scaled by 1/√(1 + ρ·sin 2θ),
which is the plain equal-power fade for uncorrelated signals and an equal-gain fade for identical ones,
keeping the expected power constant across the join in both cases.
"""
from __future__ import annotations

import math
import typing as tp

import torch

Curve = tp.Literal["equal_power", "linear"]


def plan_windows(total: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of length ``window`` that cover [0, total) with at least ``overlap``
    samples shared by neighbours; the last window ends at ``total``. A signal no longer than one window
    gets the single start 0 (the caller pads it)."""
    if window <= 0 or not 0 <= overlap < window:
        raise ValueError(f"need window > 0 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    if total <= window:
        return [0]
    hop = window - overlap
    count = math.ceil((total - window) / hop) + 1
    starts = [i * hop for i in range(count - 1)] + [total - window]
    return sorted(set(starts))


def fade_gains(n: int, curve: Curve, rho: torch.Tensor | float = 0.0, device=None,
               dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Gains (fade_out, fade_in) over an overlap of n samples; rho (c,) or scalar correlation.

    Returns tensors of shape (c, n) (or (1, n) for a scalar rho)."""
    u = (torch.arange(n, device=device, dtype=dtype) + 0.5) / n
    rho = torch.as_tensor(rho, device=device, dtype=dtype).reshape(-1, 1).clamp(0.0, 1.0)
    if curve == "linear":
        out, inn = 1.0 - u, u
        return out.expand(rho.shape[0], n), inn.expand(rho.shape[0], n)
    if curve != "equal_power":
        raise ValueError(f"unknown crossfade curve {curve!r}; use 'equal_power' or 'linear'")
    theta = 0.5 * math.pi * u
    gain = torch.rsqrt(1.0 + rho * torch.sin(2 * theta)[None, :])
    return torch.cos(theta)[None, :] * gain, torch.sin(theta)[None, :] * gain


def correlation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-channel normalised correlation of (c, n) segments (zero-mean not enforced: audio)."""
    num = (a * b).sum(-1)
    den = torch.sqrt((a * a).sum(-1) * (b * b).sum(-1)).clamp_min(eps)
    return num / den


class OverlapAdd:
    """Accumulates window outputs into ``out`` (c, total) with crossfades where windows overlap.

    Windows must arrive in increasing start order; each is written once, so the buffer is the only
    thing that grows with the signal length.
    """

    def __init__(self, out: torch.Tensor, curve: Curve = "equal_power"):
        self.out = out
        self.curve = curve
        self.written_until = 0

    def add(self, start: int, chunk: torch.Tensor) -> None:
        """Write chunk (c, n) at ``start``; the part overlapping what is already written is crossfaded."""
        total = self.out.shape[-1]
        chunk = chunk[..., : max(0, total - start)].to(self.out.dtype)
        end = start + chunk.shape[-1]
        if start > self.written_until:
            raise ValueError(f"window at {start} leaves a gap after {self.written_until}")
        overlap = max(0, self.written_until - start)
        overlap = min(overlap, chunk.shape[-1])
        if overlap:
            old = self.out[..., start:start + overlap]
            new = chunk[..., :overlap]
            rho = correlation(old, new) if self.curve == "equal_power" else 0.0
            g_out, g_in = fade_gains(overlap, self.curve, rho, device=old.device, dtype=old.dtype)
            self.out[..., start:start + overlap] = old * g_out + new * g_in
        self.out[..., start + overlap:end] = chunk[..., overlap:]
        self.written_until = max(self.written_until, end)
