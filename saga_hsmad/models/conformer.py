"""Conformer block (Gulati et al. 2020, Fig. 1 and eq. 1) for the HS-MAD symbolic encoder (spec §3).

    x' = x + ½ FFN(x)                      macaron feed-forward, first half
    x'' = x' + MHSA(LN(x'))                rotary relative positions, key padding mask
    x''' = x'' + Conv(x'')                 pointwise → GLU → depthwise (kernel 31) → norm → SiLU → pointwise
    y = LN(x''' + ½ FFN(x'''))             macaron feed-forward, second half, final LayerNorm

Positions: the paper (after Huang et al. 2018) asks for relative positions; rotary embeddings give the
attention logits a dependence on i − j only and run on ``F.scaled_dot_product_attention`` in O(n·d)
memory (Shaw-style relative embeddings need an n × n × d tensor).

Norm in the convolution module: Gulati et al. use BatchNorm, which mixes statistics across the batch and
across padded frames, so an item's output would depend on what it is batched with and on its padding.
This block uses a LayerNorm over channels per frame instead: results are independent of batch size and
padding (tested), at no cost in the normalisation's role (re-scaling the depthwise output before SiLU).

Masks travel with the sequence: padded frames are zeroed before each convolution, ignored as attention
keys, and zeroed in the block output.

Legend: b batch, n frames, d width, f feed-forward width, k depthwise kernel.
"""
from __future__ import annotations

import torch
from torch import nn

from .rotary_attention import RotaryAttention


def zero_padded(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x (b, n, d) with frames where mask (b, n) is False set to zero."""
    return x if mask is None else x.masked_fill(~mask[..., None], 0.0)


class FeedForward(nn.Module):
    """LN → Linear(d, f) → SiLU → dropout → Linear(f, d) → dropout (Conformer's feed-forward module)."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ffn_dim), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvolutionModule(nn.Module):
    """LN → pointwise (d → 2d) → GLU → depthwise conv (kernel k) → LayerNorm → SiLU → pointwise → dropout.

    Pointwise convolutions are per-frame linear maps (written as ``nn.Linear``); the depthwise convolution
    sees zeros on padded frames, exactly as if the sequence ended there.
    """

    def __init__(self, dim: int, kernel_size: int = 31, dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"conv_kernel must be odd so the convolution keeps frames aligned, got {kernel_size}")
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.depthwise_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Linear(dim, dim)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (b, n, d), mask (b, n) → (b, n, d)."""
        h = nn.functional.glu(self.pointwise_in(self.norm(x)), dim=-1)
        h = zero_padded(h, mask)
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)
        h = self.pointwise_out(self.act(self.depthwise_norm(h)))
        return self.dropout(h)


class ConformerBlock(nn.Module):
    """One macaron Conformer block on (b, n, d) with a padding mask (b, n) (True on valid frames)."""

    def __init__(self, dim: int, heads: int = 8, ffn_dim: int = 2048, conv_kernel: int = 31,
                 dropout: float = 0.1, attention_dropout: float = 0.0):
        super().__init__()
        self.ff1 = FeedForward(dim, ffn_dim, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = RotaryAttention(dim, heads=heads, rotary=True, dropout=attention_dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvolutionModule(dim, conv_kernel, dropout)
        self.ff2 = FeedForward(dim, ffn_dim, dropout)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, n, d), mask (b, n) bool or None (all valid) → (b, n, d), zero on padded frames."""
        assert x.ndim == 3, f"ConformerBlock expects (b, n, d), got {tuple(x.shape)}"
        if mask is not None:
            assert mask.shape == x.shape[:2], f"mask {tuple(mask.shape)} does not match x {tuple(x.shape[:2])}"
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), mask=mask))
        x = x + self.conv(zero_padded(x, mask), mask)
        x = x + 0.5 * self.ff2(x)
        return zero_padded(self.final_norm(x), mask)
