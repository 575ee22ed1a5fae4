"""What a backbone's network predicts, turned into the rectified-flow velocity the training wrapper and the
samplers use.

stable-audio-tools' ``rectified_flow`` objective noises x_t = (1 − t)·x0 + t·ε and regresses the model output
on v = ε − x0. A backbone may instead let its network predict the clean latent x̂0 and return
v̂ = (x_t − x̂0) / t, which is the velocity when x̂0 = x0 (x_t − x0 = t·v). The loss stays the velocity loss;
only the network's target changes.

Why offer it: to output v the network must reproduce the noise ε it was given (at t = 1, v = x_t − x0), and
whatever part of ε a small network fails to copy stays in every sample as a residual noise floor. With
``prediction: "x0"`` the noise reaches the velocity exactly through x_t, and the network only has to model the
data, which is low-dimensional where the noise is not (Li & He 2025, "Back to Basics: Let Denoising Generative
Models Denoise"). ``x0_t_min`` bounds 1 / t near t = 0, where the division would blow up the network's error.
"""
from __future__ import annotations

import typing as tp

import torch

Prediction = tp.Literal["velocity", "x0"]
PREDICTIONS: tuple[str, ...] = tp.get_args(Prediction)


def check_prediction(prediction: str, t_min: float, where: str) -> None:
    """A clear error for an unknown ``prediction`` or a ``x0_t_min`` outside (0, 1)."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"{where}.prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
    if not 0.0 < float(t_min) < 1.0:
        raise ValueError(f"{where}.x0_t_min must be in (0, 1), got {t_min!r}")


def to_velocity(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: Prediction,
                t_min: float) -> torch.Tensor:
    """The velocity (b, c, n) for the network ``output`` (b, c, n) at latents ``x`` and times ``t`` (b,)."""
    if prediction == "velocity":
        return output
    return (x - output) / t.to(x.dtype).clamp_min(t_min).reshape(-1, *([1] * (x.ndim - 1)))
