"""Multi-head attention with rotary positions (RoPE) and a key padding mask, for self- or cross-attention.

Used by the HS-MAD Conformer (self-attention with relative positions, spec §3) and by the MRCI U-Net
(self-attention and temporal cross-attention, spec §4). For temporal cross-attention (TCA) the queries
(U-Net features) and keys (symbol features) live on the SAME frame grid of one level, so both get
rotary phases from their frame index: the attention logit between query frame i and key frame j depends
on their contents and on i − j only. Without positions a cross-attention over a whole window is blind
to *which* frame a symbol sits in, and the frame-synchronous design of HS-MAD would be lost.

This is ``blocks.CrossAttention`` plus rotary phases and self-attention use; the masking rule is the
same (masked keys are ignored, a query whose every key is masked receives zeros).

Legend: b batch, n query frames, m key frames, d width, h heads, e head width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def rotary_cos_sin(length: int, dim_head: int, base: float, device: torch.device,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (n, e) of the rotary phases θ_{i,k} = i · base^(−2k/e) for frames i = 0..n−1
    (Su et al. 2021, RoFormer eq. 34; the two halves of the head are rotated as pairs)."""
    assert dim_head % 2 == 0, f"rotary positions need an even head width, got {dim_head}"
    inv_freq = base ** (-torch.arange(0, dim_head, 2, device=device, dtype=torch.float32) / dim_head)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)  # (n, e)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (b, h, n, e) rotated by the phases (n, e): x·cos + rotate_half(x)·sin."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class RotaryAttention(nn.Module):
    """Attention of queries (b, n, d) over keys/values (b, m, d_ctx) (themselves if no context).

    ``rotary``: rotary phases from frame indices on queries and keys (requires n == m for cross-attention:
    both sequences must be on one frame grid). ``zero_init``: the output projection starts at zero (the
    SCM gate W_zero). ``dropout``: attention-probability dropout in training.
    """

    def __init__(self, dim: int, context_dim: int | None = None, heads: int = 8, rotary: bool = True,
                 rotary_base: float = 10000.0, dropout: float = 0.0, zero_init: bool = False):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.dim_head = dim // heads
        if rotary and self.dim_head % 2 != 0:
            raise ValueError(f"rotary positions need an even head width; width {dim} / heads {heads} = {self.dim_head}")
        self.is_cross = context_dim is not None
        self.rotary = rotary
        self.rotary_base = rotary_base
        self.dropout = dropout
        if self.is_cross:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(context_dim, 2 * dim, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, n, d); context (b, m, d_ctx) for cross-attention; mask (b, m) bool, True on valid keys.
        Returns (b, n, d)."""
        if self.is_cross:
            assert context is not None, "cross-attention needs a context"
            q = rearrange(self.to_q(x), "b n (h e) -> b h n e", h=self.heads)
            k, v = rearrange(self.to_kv(context), "b m (two h e) -> two b h m e", two=2, h=self.heads)
        else:
            assert context is None, "self-attention takes no context"
            q, k, v = rearrange(self.to_qkv(x), "b n (three h e) -> three b h n e", three=3, h=self.heads)
        n, m = q.shape[2], k.shape[2]
        if self.rotary:
            assert n == m, (f"rotary cross-attention needs queries and keys on one frame grid, got {n} query and "
                            f"{m} key frames")
            cos, sin = rotary_cos_sin(n, self.dim_head, self.rotary_base, q.device, q.dtype)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attn_mask, empty = None, None
        if mask is not None:
            assert mask.shape == (k.shape[0], m), f"key mask {tuple(mask.shape)} does not match keys {(k.shape[0], m)}"
            mask = mask.bool()
            empty = ~mask.any(dim=1)  # (b,) items without a single valid key
            attn_mask = (mask | empty[:, None])[:, None, None, :]  # avoid NaN rows; zeroed below
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = self.to_out(rearrange(out, "b h n e -> b n (h e)"))
        if empty is not None:
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out
