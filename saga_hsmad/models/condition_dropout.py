"""Per-condition dropout to null values, independent per sample: the training side of guidance.

A backbone names its conditions (SAGA-SR: ``lr_latent``, ``text``; HS-MAD: ``structure``, ``style``).
During training each condition is replaced by its null value for a random subset of samples, drawn
independently per condition with its own probability. At sampling, the guided sampler asks for the same
null values explicitly through ``null_conditions`` (name → bool per sample), so training and sampling use
one code path for "condition absent".
"""
from __future__ import annotations

import typing as tp

import torch

NullMask = tp.Dict[str, torch.Tensor]  # name → (b,) bool, True where the condition is nulled


def draw_null_mask(probabilities: tp.Mapping[str, float], batch_size: int, device: torch.device,
                   generator: torch.Generator | None = None) -> NullMask:
    """Independent Bernoulli(p) draws per condition and sample."""
    mask = {}
    for name, p in probabilities.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability for {name!r} must be in [0, 1], got {p}")
        mask[name] = torch.rand(batch_size, device=device, generator=generator) < p
    return mask


def resolve_null_mask(probabilities: tp.Mapping[str, float], batch_size: int, device: torch.device,
                      training_dropout: bool, null_conditions: NullMask | None) -> NullMask:
    """The null mask a backbone applies in this forward.

    Explicit ``null_conditions`` (guided sampling) win; otherwise random draws when ``training_dropout``
    (stable-audio-tools passes ``cfg_dropout_prob > 0`` only in training steps); otherwise nothing is nulled.
    """
    if null_conditions is not None:
        unknown = set(null_conditions) - set(probabilities)
        if unknown:
            raise KeyError(f"null_conditions names {sorted(unknown)}; this model's conditions are {sorted(probabilities)}")
        out = {}
        for name in probabilities:
            m = null_conditions.get(name)
            out[name] = (torch.zeros(batch_size, dtype=torch.bool, device=device) if m is None
                         else m.to(device=device, dtype=torch.bool).reshape(batch_size))
        return out
    if training_dropout:
        return draw_null_mask(probabilities, batch_size, device)
    return {name: torch.zeros(batch_size, dtype=torch.bool, device=device) for name in probabilities}


def apply_null(x: torch.Tensor, nulled: torch.Tensor, null_value: torch.Tensor | float) -> torch.Tensor:
    """x (b, ...) with the samples where ``nulled`` (b,) is True replaced by ``null_value``
    (a scalar, or a tensor broadcastable to one sample, e.g. a learned embedding)."""
    if not bool(nulled.any()):
        return x
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    null = torch.as_tensor(null_value, dtype=x.dtype, device=x.device)
    return torch.where(nulled.reshape(shape), null.expand_as(x) if null.ndim else null, x)
