"""Euler integration of the rectified-flow ODE from t = 1 (noise) to t = 0 (data).

stable-audio-tools' convention: x_t = (1 − t)·x_0 + t·ε and the network predicts v = ε − x_0, so
x_{t'} = x_t + (t' − t)·v.
"""
from __future__ import annotations

import typing as tp

import torch

VelocityFn = tp.Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_euler(velocity: VelocityFn, noise: torch.Tensor, timesteps: torch.Tensor,
                 callback: tp.Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) along ``timesteps`` (decreasing, from 1 to 0); x starts at ``noise``."""
    ts = timesteps.to(device=noise.device, dtype=torch.float32)
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"timesteps must be a 1-D schedule with at least 2 values, got shape {tuple(ts.shape)}")
    if not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError("timesteps must be strictly decreasing (t = 1 is noise, t = 0 is data)")
    x = noise
    for i in range(ts.numel() - 1):
        t = ts[i].expand(x.shape[0])
        v = velocity(x, t)
        x = x + (ts[i + 1] - ts[i]).to(x.dtype) * v
        if callback is not None:
            callback(i, x)
    return x
