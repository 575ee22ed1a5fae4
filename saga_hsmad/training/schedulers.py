"""Learning-rate schedulers a JSON config can name, stepped once per optimizer step.

``InverseLR`` replaces stable-audio-tools 0.0.19's, which passes ``verbose`` positionally to
``LRScheduler.__init__`` and so raises ``TypeError`` on torch >= 2.9.
"""
from __future__ import annotations

import math
import typing as tp

import torch
from torch.optim.lr_scheduler import LRScheduler

SCHEDULERS: dict[str, type] = {}


def _register(cls):
    SCHEDULERS[cls.__name__] = cls
    return cls


@_register
class InverseLR(LRScheduler):
    """lr = base · (1 − warmup^(step+1)) · max(final_lr/base, (1 + step/inv_gamma)^−power).

    The inverse decay with exponential warm-up of stable-audio-tools (used by SAGA-SR: inv_gamma 1e6,
    power 0.5, warmup 0.99)."""

    def __init__(self, optimizer: torch.optim.Optimizer, inv_gamma: float = 1.0, power: float = 1.0,
                 warmup: float = 0.0, final_lr: float = 0.0, last_epoch: int = -1):
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"InverseLR warmup must be in [0, 1), got {warmup}")
        self.inv_gamma, self.power, self.warmup, self.final_lr = inv_gamma, power, warmup, final_lr
        super().__init__(optimizer, last_epoch=last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        warm = 1.0 - self.warmup ** (step + 1)
        mult = (1.0 + step / self.inv_gamma) ** -self.power
        return [warm * max(self.final_lr, base * mult) for base in self.base_lrs]


@_register
class WarmupCosine(LRScheduler):
    """Linear warm-up over ``warmup_steps`` then cosine decay to ``final_lr_ratio``·base at ``total_steps``
    (HS-MAD: 10,000 warm-up steps then cosine)."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 10_000, total_steps: int = 1_000_000,
                 final_lr_ratio: float = 0.0, last_epoch: int = -1):
        if total_steps <= warmup_steps:
            raise ValueError(f"WarmupCosine needs total_steps > warmup_steps, got {total_steps} <= {warmup_steps}")
        self.warmup_steps, self.total_steps, self.final_lr_ratio = warmup_steps, total_steps, final_lr_ratio
        super().__init__(optimizer, last_epoch=last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step < self.warmup_steps:
            mult = (step + 1) / self.warmup_steps
        else:
            progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
            mult = self.final_lr_ratio + (1 - self.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return [base * mult for base in self.base_lrs]


def create_scheduler_from_config(config: dict, optimizer: torch.optim.Optimizer, where: str = "scheduler"):
    """``{"type": name, "config": {...}}``: one of ours, else any ``torch.optim.lr_scheduler`` class."""
    from ..factory import construct

    name = config.get("type")
    cls: tp.Any = SCHEDULERS.get(name) or getattr(torch.optim.lr_scheduler, str(name), None)
    if cls is None or not isinstance(cls, type):
        raise KeyError(f"{where}.type {name!r} is not a scheduler; ours: {sorted(SCHEDULERS)}, "
                       "or any class in torch.optim.lr_scheduler")
    return construct(cls, config.get("config", {}), f"{where}.config", optimizer=optimizer)
