"""Spectral roll-off conditioner of SAGA-SR (paper §2.2 / spec §2): a scalar in [0, 1) → one token.

Each item is the normalised roll-off (bin / 1025, see ``saga_hsmad.dsp.rolloff``) of the LR input
(``f_l``, conditioner id ``"rolloff_in"``) or of the HR target (``f_h``, id ``"rolloff_target"``). The two
ids are two instances of this class, so each has its own learnable Fourier embedder (128 frequencies,
[x, sin 2πxw, cos 2πxw] → Linear → ``output_dim``; 768 in the paper config).

How the two embeddings reach the DiT (checked in stable-audio-tools 0.0.19, ``models/diffusion.py``
``ConditionedDiffusionModelWrapper.get_conditioning_inputs`` and ``models/dit.py``
``DiffusionTransformer._forward``), with the model JSON

    "cross_attention_cond_ids": ["prompt", "rolloff_in", "rolloff_target"],
    "global_cond_ids": ["rolloff_in", "rolloff_target"],
    config "global_cond_dim": 2 · cond_dim, "global_cond_type": "prepend"

(a) cross-attention: the (b, 1, D) outputs are concatenated after the T5 tokens on the sequence axis
    → (b, 128 + 2, D), masks likewise → each token goes through ``to_cond_embed`` inside every
    cross-attention layer's context;
(b) global: the same (b, 1, D) outputs (index [0] of each pair) are concatenated on the channel axis
    → (b, 1, 2D) → squeezed to (b, 2D) → ``to_global_embed`` (Linear → SiLU → Linear, 2D → embed_dim)
    → added to the timestep embedding → with ``global_cond_type == "prepend"`` that sum is
    prepended to the latent sequence as ONE token (mask True); no adaLN is involved.
The same embedding tensor feeds both routes, as in the official code.

Legend: b batch, D output_dim.
"""
from __future__ import annotations

import math
import numbers
import typing as tp

import numpy as np
import torch
from stable_audio_tools.models.conditioners import Conditioner

from ..models.blocks import FourierEmbedding
from ..registry import CONDITIONERS

RolloffValue = tp.Union[float, int, np.floating, np.ndarray, torch.Tensor]


def rolloff_values_to_tensor(values: tp.Sequence[RolloffValue], device: torch.device | str) -> torch.Tensor:
    """Per-item roll-off values (floats, 0-d/1-element tensors or arrays) → (b,) float32 tensor.

    Raises ``ValueError`` for a value that is not one finite number in [0, 1].
    """
    if isinstance(values, torch.Tensor):  # a collated (b,) or (b, 1) tensor
        values = list(values.reshape(-1))
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (torch.Tensor, np.ndarray)):
            count = v.numel() if isinstance(v, torch.Tensor) else v.size
            if count != 1:
                raise ValueError(f"roll-off item {i} must hold exactly one number, got shape {tuple(v.shape)}")
            v = float(v.reshape(-1)[0])
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            v = float(v)
        else:
            raise ValueError(f"roll-off item {i} must be a number in [0, 1), got {type(v).__name__}: {v!r}")
        if not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise ValueError(f"roll-off item {i} is {v}; normalised roll-offs lie in [0, 1) "
                             f"(bin / 1025, saga_hsmad.dsp.rolloff.spectral_rolloff)")
        out.append(v)
    return torch.tensor(out, dtype=torch.float32, device=device)


@CONDITIONERS.register("rolloff")
class RolloffConditioner(Conditioner):
    """Normalised spectral roll-off → learnable Fourier embedding, one token per item.

    Args:
        output_dim: token width D (the model's ``cond_dim``; 768 in the paper).
        num_frequencies: learnable Fourier frequencies (128 in the paper and official code).
        std: standard deviation of the initial frequencies (N(0, std²); official: 1).
    """

    def __init__(self, output_dim: int, num_frequencies: int = 128, std: float = 1.0):
        super().__init__(output_dim, output_dim)  # proj_out is Identity: the embedder projects itself
        self.embedder = FourierEmbedding(output_dim, num_frequencies=num_frequencies, std=std)

    def forward(self, values: tp.Sequence[RolloffValue], device: torch.device | str) -> list[torch.Tensor]:
        """``values``: b per-item roll-offs in [0, 1) → [embeddings (b, 1, D), mask (b, 1) bool (all True)]."""
        weight_device = self.embedder.weight.device
        x = rolloff_values_to_tensor(values, weight_device)  # (b,)
        emb = self.embedder(x)  # (b, D)
        assert emb.shape == (x.shape[0], self.output_dim), f"roll-off embedding shape {tuple(emb.shape)}"
        emb = emb[:, None, :].to(device)  # (b, 1, D)
        mask = torch.ones(emb.shape[0], 1, dtype=torch.bool, device=emb.device)
        return [emb, mask]
