"""Hierarchical symbolic encoder (HSE) of HS-MAD: S_sync → {F_event, F_local, F_global} (spec §3, seed §2.2).

    S_sync (b, C_in, T_H) ─ Linear ─ stage 1 (Conformer × depth₁, width d₁) ─→ F_event  (b, T_H, d₁)
        ─ strided Conv1d (kernel 2R₁, stride R₁, padding R₁/2) ─ stage 2 (width d₂) ─→ F_local  (b, T_M, d₂)
        ─ strided Conv1d (kernel 2R₂, stride R₂, padding R₂/2) ─ stage 3 (width d₃) ─→ F_global (b, T_L, d₃)

with T_M = T_H / R₁ and T_L = T_M / R₂ EXACTLY: T_H must be a multiple of R₁·R₂ (else ``ValueError``).
For odd R the padding is split (⌊R/2⌋ left, ⌈R/2⌉ right) so the length rule still holds.

Masks. Each level carries a padding mask (b, T_l), True on valid frames. A downsampled frame covers R
input frames and is valid iff ANY of them is valid (a window whose last frames are padding still yields
its partial last frame; padded input frames were zeroed, so that frame sees exactly what an unpadded
sequence ending there would). Padded frames are zeroed before every convolution and in every output, so
outputs do not depend on padding content or on batch composition (tested).

Auxiliary heads (spec §3, seed §2.2.3), each a linear read-out of one level's frames, so the level
features themselves carry the information. Labels are ``saga_hsmad.symbolic.labels.derive_labels``'s,
batched (masks True = use):
  local (T_M):  "chroma" 12 logits — target "chroma" (b, T_M, 12) + "chroma_mask" (b, T_M). Default
                ``chroma_loss="kl"``: KL(target ‖ softmax(logits)) with the target normalised to sum 1
                (derive_labels' default "sum" chroma; = the seed's soft-target cross-entropy minus the
                target's entropy, a constant); ``"bce"``: per-class BCE with logits (for "max" chroma).
                "beat" 2 logits (beat, downbeat) — BCE with logits against "beat" (b, T_M) with
                "beat_mask" and "downbeat" (b, T_M) with "downbeat_mask" (downbeats need a time
                signature, so their mask may differ); one loss averaged over the valid entries of both.
  global (T_L): "tempo" 1 value per frame — MSE against "tempo" (b, T_L), the normalised tempo
                log2(BPM / 120), with "tempo_mask" (b, T_L);
                "key" 24 logits per frame — cross-entropy against "key" (b, T_L) int (0..11 major, 12..23
                minor; −100 or anything where "key_mask" is False is ignored).
  Per-item values (b,) are accepted for tempo/key and their masks and count for every frame.
Each loss is the mean over valid entries (label mask AND level padding mask); a fully masked loss is an
exact 0 that keeps the graph; a head whose label is absent computes nothing.

Legend: b batch, T_H/T_M/T_L frames per level, C_in input channels (3 × 128), d_l level widths.
"""
from __future__ import annotations

import dataclasses
import math
import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

from .conformer import ConformerBlock, zero_padded

LEVELS = ("event", "local", "global")
AUX_HEAD_LEVELS = {"chroma": "local", "beat": "local", "tempo": "global", "key": "global"}
AUX_HEAD_SIZES = {"chroma": 12, "beat": 2, "tempo": 1, "key": 24}
AUX_LABELS = {"chroma": ("chroma",), "beat": ("beat", "downbeat"), "tempo": ("tempo",), "key": ("key",)}
AuxHead = tp.Literal["chroma", "beat", "tempo", "key"]


@dataclasses.dataclass
class SymbolLevels:
    """Encoder outputs: ``features[name]`` (b, T_l, d_l) and ``masks[name]`` (b, T_l) bool, for the built
    levels among "event" (T_H), "local" (T_M), "global" (T_L)."""

    features: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]


def strided_downsample(x: torch.Tensor, conv: nn.Conv1d, factor: int) -> torch.Tensor:
    """x (b, d, T) → (b, d', T / factor) with ``conv`` (kernel 2R, stride R, no built-in padding) after
    padding ⌊R/2⌋ left and ⌈R/2⌉ right (= padding R/2 for even R)."""
    return conv(F.pad(x, (factor // 2, factor - factor // 2)))


def downsample_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """(b, T) → (b, T / factor): a frame is valid iff any of its ``factor`` input frames is."""
    return mask.reshape(mask.shape[0], -1, factor).any(dim=-1)


def masked_average(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ values·weights / Σ weights, and an exact 0 (still attached to the graph) when Σ weights = 0."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


class HierarchicalSymbolEncoder(nn.Module):
    """HSE: Conformer stages at T_H, T_M, T_L joined by strided convolutions, plus auxiliary heads.

    Args (JSON keys of the backbone's ``encoder`` section):
        in_channels: S_sync channels (3 × 128 = 384).
        widths: stage widths (d₁, d₂, d₃); paper 512 / 1024 / 1536.
        depths: Conformer blocks per stage; paper 6 / 6 / 6.
        heads, ffn_dim, conv_kernel: Conformer block sizes; paper 8, 2048, 31.
        factors: (R₁, R₂) down factors; must equal the U-Net's.
        dropout: dropout in the Conformer blocks.
        num_levels: 3 (event, local, global); 1 builds stage 1 only (Baseline-Flat). ``widths``/``depths``
            need at least ``num_levels`` entries.
        aux_heads: which auxiliary heads to build; None = every head whose level is built; [] = none
            (ablation "no auxiliary losses").
        chroma_loss: "kl" or "bce" (see the module docstring).
    """

    def __init__(self, in_channels: int = 384, widths: tp.Sequence[int] = (512, 1024, 1536),
                 depths: tp.Sequence[int] = (6, 6, 6), heads: int = 8, ffn_dim: int = 2048, conv_kernel: int = 31,
                 factors: tp.Sequence[int] = (4, 4), dropout: float = 0.1, num_levels: tp.Literal[1, 2, 3] = 3,
                 aux_heads: tp.Sequence[AuxHead] | None = None, chroma_loss: tp.Literal["kl", "bce"] = "kl"):
        super().__init__()
        if num_levels not in (1, 2, 3):
            raise ValueError(f"encoder.num_levels must be 1, 2 or 3, got {num_levels}")
        if len(widths) < num_levels or len(depths) < num_levels:
            raise ValueError(f"encoder.widths {list(widths)} and encoder.depths {list(depths)} need at least "
                             f"num_levels={num_levels} entries")
        if len(factors) != 2 or any(int(r) < 1 for r in factors):
            raise ValueError(f"encoder.factors must be two positive integers (R1, R2), got {list(factors)}")
        if chroma_loss not in ("kl", "bce"):
            raise ValueError(f"encoder.chroma_loss must be 'kl' or 'bce', got {chroma_loss!r}")
        self.in_channels = in_channels
        self.num_levels = num_levels
        self.level_names = LEVELS[:num_levels]
        self.widths = [int(w) for w in widths[:num_levels]]
        self.factors = tuple(int(r) for r in factors)
        self.chroma_loss = chroma_loss

        self.input_proj = nn.Linear(in_channels, self.widths[0])
        self.stages = nn.ModuleList(
            nn.ModuleList(ConformerBlock(w, heads, ffn_dim, conv_kernel, dropout) for _ in range(int(depth)))
            for w, depth in zip(self.widths, depths)
        )
        self.downsamples = nn.ModuleList(
            nn.Conv1d(self.widths[i], self.widths[i + 1], kernel_size=2 * self.factors[i], stride=self.factors[i])
            for i in range(num_levels - 1)
        )

        if aux_heads is None:
            aux_heads = [h for h, level in AUX_HEAD_LEVELS.items() if level in self.level_names]
        unknown = sorted(set(aux_heads) - set(AUX_HEAD_LEVELS))
        if unknown:
            raise ValueError(f"encoder.aux_heads: unknown head(s) {unknown}; known: {sorted(AUX_HEAD_LEVELS)}")
        missing_level = sorted(h for h in aux_heads if AUX_HEAD_LEVELS[h] not in self.level_names)
        if missing_level:
            raise ValueError(f"encoder.aux_heads {missing_level} read levels this encoder does not build "
                             f"(num_levels={num_levels}); drop them or raise num_levels")
        width_of = dict(zip(self.level_names, self.widths))
        self.aux_heads = nn.ModuleDict({
            h: nn.Linear(width_of[AUX_HEAD_LEVELS[h]], AUX_HEAD_SIZES[h]) for h in AUX_HEAD_LEVELS if h in aux_heads
        })

    @property
    def length_multiple(self) -> int:
        """T_H must be a multiple of this (the product of the factors of the built downsamplings)."""
        return math.prod(self.factors[: self.num_levels - 1])

    def forward(self, srm: torch.Tensor, mask: torch.Tensor | None = None) -> SymbolLevels:
        """S_sync (b, C_in, T_H) and its padding mask (b, T_H) (True on valid frames; None = all valid)
        → ``SymbolLevels`` with F_event (b, T_H, d₁), F_local (b, T_H/R₁, d₂), F_global (b, T_H/(R₁R₂), d₃)."""
        if srm.ndim != 3 or srm.shape[1] != self.in_channels:
            raise ValueError(f"HierarchicalSymbolEncoder expects S_sync (b, {self.in_channels}, T_H), "
                             f"got {tuple(srm.shape)}")
        b, _, length = srm.shape
        if length % self.length_multiple != 0:
            raise ValueError(
                f"HierarchicalSymbolEncoder: T_H = {length} is not a multiple of "
                f"{' x '.join(map(str, self.factors[: self.num_levels - 1]))} = {self.length_multiple} (encoder "
                f"factors {list(self.factors)}); choose windows whose latent length is a multiple of "
                f"{self.length_multiple}")
        if mask is not None:
            if mask.shape != (b, length):
                raise ValueError(f"structure mask {tuple(mask.shape)} does not match S_sync {(b, length)}")
            mask = mask.bool()

        features, masks = {}, {}
        h = zero_padded(self.input_proj(srm.transpose(1, 2)), mask)
        for i, name in enumerate(self.level_names):
            if i > 0:
                factor = self.factors[i - 1]
                h = strided_downsample(h.transpose(1, 2), self.downsamples[i - 1], factor).transpose(1, 2)
                if mask is not None:
                    mask = downsample_mask(mask, factor)
                h = zero_padded(h, mask)
                assert h.shape[1] == length // math.prod(self.factors[:i]), "downsampled length mismatch"
            for block in self.stages[i]:
                h = block(h, mask)
            features[name] = h
            masks[name] = (mask if mask is not None
                           else torch.ones(b, h.shape[1], dtype=torch.bool, device=h.device))
        return SymbolLevels(features, masks)

    # -- auxiliary tasks ------------------------------------------------------------------------
    def aux_predictions(self, levels: SymbolLevels) -> dict[str, torch.Tensor]:
        """Head outputs per frame: "chroma" (b, T_M, 12) and "beat" (b, T_M, 2) logits, "tempo" (b, T_L),
        "key" (b, T_L, 24) logits — for the heads this encoder has."""
        out = {}
        for name, head in self.aux_heads.items():
            y = head(levels.features[AUX_HEAD_LEVELS[name]])
            out[name] = y.squeeze(-1) if name == "tempo" else y
        return out

    def aux_losses(self, levels: SymbolLevels, labels: tp.Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unweighted auxiliary losses for the heads whose labels are in ``labels`` (module docstring).

        ``labels[k + "_mask"]`` (bool) selects valid entries; a missing mask means all valid.
        """
        predictions = self.aux_predictions(levels)
        losses = {}
        for name, pred in predictions.items():
            keys = [k for k in AUX_LABELS[name] if k in labels]
            if not keys:
                continue
            frame_mask = levels.masks[AUX_HEAD_LEVELS[name]]
            targets, valids = [], []
            for key in AUX_LABELS[name]:
                if key in labels:
                    targets.append(self._framewise(labels[key], frame_mask, key, name == "chroma"))
                    mask = labels.get(key + "_mask")
                    valid = (torch.ones_like(frame_mask) if mask is None
                             else self._framewise(mask, frame_mask, key + "_mask", False).bool())
                    valids.append(valid & frame_mask)
                else:  # e.g. beats without downbeats: that channel is all masked
                    targets.append(torch.zeros_like(frame_mask, dtype=pred.dtype))
                    valids.append(torch.zeros_like(frame_mask))
            if name == "beat":
                target, valid = torch.stack(targets, dim=-1), torch.stack(valids, dim=-1)
            else:
                target, valid = targets[0], valids[0]
            losses[name] = getattr(self, f"_{name}_loss")(pred, target, valid)
        return losses

    @staticmethod
    def _framewise(value: torch.Tensor, frame_mask: torch.Tensor, key: str, has_classes: bool) -> torch.Tensor:
        """A label as (b, T_l[, k]) on the level's frames; per-item (b,) labels are broadcast over frames."""
        b, frames = frame_mask.shape
        value = value.to(frame_mask.device)
        if value.shape == (b,) and not has_classes:
            return value[:, None].expand(b, frames)
        expected = (b, frames, 12) if has_classes else (b, frames)
        if tuple(value.shape) != expected:
            raise ValueError(f"label {key!r} has shape {tuple(value.shape)}, expected {expected}: one entry per "
                             f"frame of its level (T_M = T_H/R1 for chroma/beat, T_L = T_H/(R1 R2) for tempo/key)")
        return value

    def _chroma_loss(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = torch.where(valid[..., None], target.to(logits.dtype), 0.0)
        if self.chroma_loss == "bce":
            per_class = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return masked_average(per_class, valid[..., None].expand_as(per_class))
        total = target.sum(dim=-1, keepdim=True)
        valid = valid & (total[..., 0] > 0)
        p = target / total.clamp_min(torch.finfo(target.dtype).tiny)
        per_frame = (torch.xlogy(p, p) - p * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
        return masked_average(per_frame, valid)

    def _beat_loss(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = torch.where(valid, target.to(logits.dtype), 0.0)
        return masked_average(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), valid)

    def _tempo_loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = torch.where(valid, target.to(pred.dtype), 0.0)
        return masked_average((pred - target) ** 2, valid)

    def _key_loss(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = torch.where(valid, target.long(), 0).clamp(0, logits.shape[-1] - 1)
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, target[..., None]).squeeze(-1)
        return masked_average(nll, valid)
