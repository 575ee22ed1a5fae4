"""Multi-head attention with rotary positions (RoPE) and a key padding mask, for self- or cross-attention.

Used by the HS-MAD Conformer (self-attention with relative positions, spec §3) and by the MRCI U-Net
(self-attention and temporal cross-attention, spec §4). For temporal cross-attention (TCA) the queries
(U-Net features) and keys (symbol features) live on the SAME frame grid of one level, so both get
rotary phases from their frame index: the attention logit between query frame i and key frame j depends
on their contents and on i − j only. Without positions a cross-attention over a whole window is blind
to *which* frame a symbol sits in, and the frame-synchronous design of HS-MAD would be lost.

This is ``blocks.CrossAttention`` plus rotary phases and self-attention use; the masking rule is the
same (masked keys are ignored, a query whose every key is masked receives zeros).

``window`` (optional) restricts a query at frame i to keys at frames |i − j| ≤ window, computed block-wise
(blocks of ``window`` queries against their three neighbouring key blocks), so cost and memory grow as
O(n · window) instead of O(n²). Results equal full attention with that band mask (tested).

Legend: b batch, n query frames, m key frames, d width, h heads, e head width.
"""
from __future__ import annotations

import math

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


def _blocks(x: torch.Tensor, window: int, value: float | bool = 0.0) -> torch.Tensor:
    """(..., n, e) → (..., n_b, w, e), zero/``value``-padded at the end to a multiple of w."""
    n = x.shape[-2]
    pad = math.ceil(n / window) * window - n
    x = F.pad(x, (0, 0, 0, pad), value=value)
    return x.reshape(*x.shape[:-2], -1, window, x.shape[-1])


def _neighbours(x: torch.Tensor, value: float | bool = 0.0) -> torch.Tensor:
    """(..., n_b, w, e) → (..., n_b, 3w, e): each block with its left and right neighbour blocks."""
    xp = F.pad(x, (0, 0, 0, 0, 1, 1), value=value)
    return torch.cat([xp[..., :-2, :, :], xp[..., 1:-1, :, :], xp[..., 2:, :, :]], dim=-2)


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                    window: int, dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention restricted to |i − j| ≤ window for q, k, v (b, h, n, e) on one frame grid and a key mask
    (b, n) → output (b, h, n, e) and the queries (b, n) without a single valid key in their band (their
    output is meaningless: the caller zeroes it)."""
    b, h, n, e = q.shape
    qb, kb, vb = _blocks(q, window), _neighbours(_blocks(k, window)), _neighbours(_blocks(v, window))
    n_b = qb.shape[2]
    valid = (torch.ones(b, n, dtype=torch.bool, device=q.device) if key_mask is None else key_mask.bool())
    valid = _neighbours(_blocks(valid[..., None], window, False), False)[..., 0]  # (b, n_b, 3w)
    i = torch.arange(window, device=q.device)[:, None]
    j = torch.arange(3 * window, device=q.device)[None, :] - window
    band = (j - i).abs() <= window  # (w, 3w): key offset from the query within the window
    mask = valid[:, :, None, :] & band  # (b, n_b, w, 3w)
    empty = ~mask.any(dim=-1, keepdim=True)
    mask = (mask | empty).reshape(b * n_b, 1, window, 3 * window)

    def fold(x: torch.Tensor) -> torch.Tensor:  # (b, h, n_b, m, e) → (b·n_b, h, m, e)
        return x.transpose(1, 2).reshape(b * n_b, h, x.shape[3], e)

    out = F.scaled_dot_product_attention(fold(qb), fold(kb), fold(vb), attn_mask=mask, dropout_p=dropout_p)
    out = out.reshape(b, n_b, h, window, e).transpose(1, 2).reshape(b, h, n_b * window, e)[:, :, :n]
    return out, empty.reshape(b, n_b * window)[:, :n]


class RotaryAttention(nn.Module):
    """Attention of queries (b, n, d) over keys/values (b, m, d_ctx) (themselves if no context).

    ``rotary``: rotary phases from frame indices on queries and keys (requires n == m for cross-attention:
    both sequences must be on one frame grid). ``zero_init``: the output projection starts at zero (the
    SCM gate W_zero). ``dropout``: attention-probability dropout in training. ``window``: attend only to
    keys within ±window frames (None = all; needs queries and keys on one grid).
    """

    def __init__(self, dim: int, context_dim: int | None = None, heads: int = 8, rotary: bool = True,
                 rotary_base: float = 10000.0, dropout: float = 0.0, zero_init: bool = False,
                 window: int | None = None):
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"attention window must be a positive number of frames or None, got {window}")
        self.window = window
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
        dropout_p = self.dropout if self.training else 0.0
        if mask is not None:
            assert mask.shape == (k.shape[0], m), f"key mask {tuple(mask.shape)} does not match keys {(k.shape[0], m)}"
        if self.window is not None and self.window < max(n, m) - 1:
            assert n == m, f"windowed attention needs queries and keys on one frame grid, got {n} and {m} frames"
            out, empty = local_attention(q, k, v, mask, self.window, dropout_p)
            return self.to_out(rearrange(out, "b h n e -> b n (h e)")).masked_fill(empty[..., None], 0.0)
        attn_mask, empty = None, None
        if mask is not None:
            mask = mask.bool()
            empty = ~mask.any(dim=1)  # (b,) items without a single valid key
            attn_mask = (mask | empty[:, None])[:, None, None, :]  # avoid NaN rows; zeroed below
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        out = self.to_out(rearrange(out, "b h n e -> b n (h e)"))
        if empty is not None:
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out
