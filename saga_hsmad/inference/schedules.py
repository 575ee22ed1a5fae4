"""Time schedules for the Euler sampler of SAGA-SR (spec §5); t = 1 is noise, t = 0 is data.

Linear-quadratic schedule (Movie Gen; official code ``TorchJaekwon sampler.time_sampler``): with N steps,
the first L = N // 2 steps follow a ``reference_steps``-step linear schedule from 1,

    t_i = 1 - i / reference_steps,  i = 0 .. L            (so t_mid = t_L = 1 - L / reference_steps),

and the remaining Q = N - L steps go quadratically to 0,

    t_{L + j} = t_mid (1 - (j / Q)^2),  j = 1 .. Q.

For N = 100: 1.000, 0.999, ..., 0.950, then 0.95 (1 - (1/50)^2) = 0.94962, ..., 0.95 (1 - (49/50)^2) =
0.037620, 0. Odd N gives the extra step to the quadratic half (L = floor(N / 2)), as the official code does.
"""
from __future__ import annotations

import torch


def linear_quadratic_schedule(steps: int = 100, reference_steps: int = 1000,
                              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(steps + 1,) times from 1 to 0, strictly decreasing. See the module docstring."""
    assert steps >= 1, f"steps must be >= 1, got {steps}"
    n_linear = steps // 2
    n_quadratic = steps - n_linear
    assert n_linear < reference_steps, (
        f"the linear half ({n_linear} steps of 1/{reference_steps}) would reach t <= 0; "
        f"use reference_steps > {n_linear}")
    t_linear = 1.0 - torch.arange(n_linear + 1, dtype=torch.float64) / reference_steps
    s = torch.arange(1, n_quadratic + 1, dtype=torch.float64) / n_quadratic
    t_quadratic = t_linear[-1] * (1.0 - s.square())
    return torch.cat([t_linear, t_quadratic]).to(dtype)


def linear_schedule(steps: int = 100, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(steps + 1,) times evenly spaced from 1 to 0."""
    assert steps >= 1, f"steps must be >= 1, got {steps}"
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).to(dtype)
