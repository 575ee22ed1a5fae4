"""Building blocks shared by the SAGA-SR and HS-MAD backbones and conditioners.

Legend: b batch, n query length, m key/value length, d width, h heads, f Fourier frequencies.
"""
from __future__ import annotations

import math
import typing as tp

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class FourierEmbedding(nn.Module):
    """Learnable Fourier features of a scalar in [0, 1]: [x, sin(2πxW), cos(2πxW)] → Linear → width.

    The SAGA-SR roll-off embedder (128 frequencies, paper §3.2) and any other scalar condition.
    """

    def __init__(self, output_dim: int, num_frequencies: int = 128, std: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_frequencies) * std)
        self.proj = nn.Linear(2 * num_frequencies + 1, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b,) or (b, 1) → (b, output_dim)."""
        x = x.reshape(-1, 1).to(self.weight.dtype)
        angles = 2 * math.pi * x * self.weight[None, :]
        return self.proj(torch.cat([x, angles.sin(), angles.cos()], dim=-1))


class CrossAttention(nn.Module):
    """Multi-head attention of queries (b, n, d) over a context (b, m, d_ctx) with a key padding mask.

    Context positions where ``context_mask`` is False are ignored; a query whose whole context is masked
    receives zeros. ``zero_init`` makes the output projection start at zero (residual branches, SCM).
    """

    def __init__(self, dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int | None = None,
                 zero_init: bool = False):
        super().__init__()
        context_dim = dim if context_dim is None else context_dim
        dim_head = dim // heads if dim_head is None else dim_head
        assert dim_head * heads > 0, f"dim {dim} with {heads} heads gives no head width"
        inner = dim_head * heads
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, n, d), context (b, m, d_ctx), context_mask (b, m) bool → (b, n, d)."""
        q = rearrange(self.to_q(x), "b n (h e) -> b h n e", h=self.heads)
        k, v = rearrange(self.to_kv(context), "b m (two h e) -> two b h m e", two=2, h=self.heads)
        attn_mask = None
        empty = None
        if context_mask is not None:
            assert context_mask.shape == context.shape[:2], \
                f"context mask {tuple(context_mask.shape)} does not match context {tuple(context.shape[:2])}"
            context_mask = context_mask.bool()
            empty = ~context_mask.any(dim=1)  # (b,)
            # A fully masked row would give NaN; attend to everything there and zero the result below.
            safe = context_mask | empty[:, None]
            attn_mask = safe[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.to_out(rearrange(out, "b h n e -> b n (h e)"))
        if empty is not None and bool(empty.any()):
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out


class AdaLNModulation(nn.Module):
    """Scale and shift from a conditioning vector (timestep + style): y = norm(x)·(1 + scale) + shift.

    The projection is zero-initialised, so at initialisation the block sees plain normalisation.
    Works on (b, n, d) sequences; ``channels_first`` for (b, d, n) feature maps.
    """

    def __init__(self, dim: int, cond_dim: int, channels_first: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.to_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))
        nn.init.zeros_(self.to_scale_shift[-1].weight)
        nn.init.zeros_(self.to_scale_shift[-1].bias)
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (b, n, d) [or (b, d, n) if channels_first], cond (b, cond_dim) → same shape as x."""
        if self.channels_first:
            x = x.transpose(1, 2)
        scale, shift = self.to_scale_shift(cond)[:, None, :].chunk(2, dim=-1)
        y = self.norm(x) * (1 + scale) + shift
        return y.transpose(1, 2) if self.channels_first else y


class TimestepEmbedding(nn.Module):
    """Rectified-flow time t in [0, 1] (t = 1 is noise) → (b, dim) via Fourier features and an MLP."""

    def __init__(self, dim: int, num_frequencies: int = 128):
        super().__init__()
        self.fourier = FourierEmbedding(dim, num_frequencies)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.fourier(t))


def masked_mean(x: torch.Tensor, mask: tp.Optional[torch.Tensor], dim: int = 1) -> torch.Tensor:
    """Mean of x (b, n, d) over ``dim`` counting only positions where mask (b, n) is True."""
    if mask is None:
        return x.mean(dim=dim)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=dim) / w.sum(dim=dim).clamp_min(1.0)
