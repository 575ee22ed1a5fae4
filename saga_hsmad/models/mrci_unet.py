"""MRCI U-Net: the HS-MAD denoiser with its hierarchical symbolic encoder inside (spec §3–§6, seed §2.3–2.5).

A symmetric 1D U-Net over latents at three levels (high T_H, middle T_M = T_H/R₁, bottleneck T_L = T_M/R₂):

    x ─ conv ─ [high stage] ─ skip_H ─ ↓R₁ ─ [middle stage] ─ skip_M ─ ↓R₂ ─ [bottleneck stage]
      ─ ↑R₂ ─ [middle decoder ← SCM(skip_M, F_local)] ─ ↑R₁ ─ [high decoder ← SCM(skip_H, F_event)] ─ conv ─ v

* stage = ResNet blocks (timestep + style by AdaLN) then transformer blocks
  (AdaLN → self-attention, AdaLN → temporal cross-attention (TCA) over that level's symbol features,
  AdaLN → feed-forward; each a residual).
* MRCI (seed §2.3.1): TCA reads F_event at the high level (down and up), F_local at the middle level (down
  and up), F_global at the bottleneck; the sites are the config list ``tca_levels``.
* SCM (seed §2.3.2): Z'_skip = Z_skip + W_zero(TCA(LN(Z_skip), F_l)) at the levels in ``scm_levels``; W_zero is
  the TCA's own output projection, zero-initialised (a second zero linear after it would be a redundant
  re-parametrisation), so at initialisation the model IS the plain U-Net (tested bitwise).
* Decoder level order (spec §4): SCM on the skip → concatenate → 1×1 projection → ResNet blocks with the
  timestep → transformer blocks (AdaLN style modulation, TCA with F_l as a residual).
* Style (seed §2.4): ``global_cond`` (b, style_dim) → MLP → added to the timestep embedding; that vector
  drives every AdaLN.
* Queries and keys of TCA share one frame grid per level; both carry rotary phases of their frame index
  (``rotary``), so cross-attention is time-relative (see ``rotary_attention``).

Symbol modes (``symbol_mode``; the baselines of seed §4.3 as configs, not forks):
* "hierarchical" (HS-MAD): 3-level encoder; defaults tca_levels = [high, middle, bottleneck],
  scm_levels = [high, middle]; any subsets are allowed (ablations "no SCM", "no MRCI at level l").
* "global" (Baseline-Global): 3-level encoder; the masked mean over time of F_global → MLP → added to the
  conditioning vector of the bottleneck stage only ("symbols pooled into the bottleneck"); no TCA, no SCM.
* "flat" (Baseline-Flat): the encoder builds stage 1 only (``encoder.num_levels`` = 1, no hierarchy, no
  local/global auxiliary heads); F_event is read by TCA at the high level (down and up); no SCM by default
  (``scm_levels`` may be [high]). Other levels have no symbol input.

Structure input: ``input_concat_cond`` (b, C, T_H) packed by ``structure_packing.pack_structure`` —
S_sync in channels [0, 384), the structure mask in channel 384, auxiliary labels after it in training.
Auxiliary losses (unweighted) land in ``self.aux_losses`` when labels are present, computed from the real
encoder outputs even for items whose structure is dropped.

Conditions for guidance (``condition_names``): "structure" (all symbol features → learned per-level null
tokens with an all-valid mask; the pooled vector → a learned null vector in "global" mode) and "style"
(the style embedding → a learned null vector; also used when no ``global_cond`` is routed).

Sampling cache: the encoder's output (with the structure nulls applied) depends on the conditioning only, never
on x_t or t. A sampler computes it once per run with ``precompute_conditioning`` (``guidance.GuidedVelocity``
does) and passes the returned ``symbol_contexts`` to every step's forward, which then skips the encoder; the
result is the same as recomputing it (the cache holds exactly what the forward would compute). Training
never passes it: the encoder runs in every training forward, with gradients and auxiliary losses.

Legend: b batch, c latent channels, n = T_H latent frames, w_l level widths, d_l encoder widths,
e conditioning width (``cond_dim``), s style width.
"""
from __future__ import annotations

import dataclasses
import math
import typing as tp

import torch
import torch.nn.functional as F
from stable_audio_tools.models.diffusion import ConditionedDiffusionModel
from torch import nn

from ..registry import DIFFUSION_MODELS
from .blocks import AdaLNModulation, TimestepEmbedding, masked_mean
from .condition_dropout import NullMask, resolve_null_mask
from .prediction import Prediction, check_prediction, to_velocity
from .hse import HierarchicalSymbolEncoder, SymbolLevels, strided_downsample
from .rotary_attention import RotaryAttention
from .structure_packing import unpack_structure

UNET_LEVELS = ("high", "middle", "bottleneck")
SYMBOL_LEVEL = {"high": "event", "middle": "local", "bottleneck": "global"}  # U-Net level → encoder level
SymbolMode = tp.Literal["hierarchical", "global", "flat"]
UNetLevel = tp.Literal["high", "middle", "bottleneck"]
DEFAULT_TCA_LEVELS = {"hierarchical": ["high", "middle", "bottleneck"], "flat": ["high"], "global": []}
DEFAULT_SCM_LEVELS = {"hierarchical": ["high", "middle"], "flat": [], "global": []}
DEFAULT_COND_DROPOUT = {"structure": 0.1, "style": 0.1}
Context = tp.Tuple[tp.Optional[torch.Tensor], tp.Optional[torch.Tensor]]  # (features (b, T_l, d_l), mask (b, T_l))


@dataclasses.dataclass(frozen=True)
class SymbolContexts:
    """What the U-Net reads from the symbolic encoder for one batch: per U-Net level the (features, mask) of
    TCA/SCM, (None, None) where nothing is read, and the pooled vector (b, d_global) of "global" mode, all with
    the structure nulls applied.

    They depend on the structure input and its null mask only, so a sampler computes them once per run
    (``MRCIUNet.precompute_conditioning``) and passes them to every step (``forward(symbol_contexts=...)``).
    ``structure`` and ``structure_nulls`` are the inputs they were computed from (the packed structure
    (b, C, n) or None; the ``null_conditions["structure"]`` tensor given, or None); the forward checks that
    it is called with the same ones."""

    contexts: dict[str, Context]
    pooled: torch.Tensor | None
    nulled: torch.Tensor                      # (b,) bool: the resolved structure null mask
    structure: torch.Tensor | None = None
    structure_nulls: torch.Tensor | None = None


class ResBlock1D(nn.Module):
    """1D ResNet block: [AdaLN(cond) → SiLU → conv] × 2 plus a (1×1 if widths differ) shortcut.

    AdaLN (``blocks.AdaLNModulation``) injects the timestep + style vector before each convolution."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.norm1 = AdaLNModulation(in_channels, cond_dim, channels_first=True)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm2 = AdaLNModulation(out_channels, cond_dim, channels_first=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.shortcut = (nn.Identity() if in_channels == out_channels
                         else nn.Conv1d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (b, w_in, n), cond (b, e) → (b, w_out, n)."""
        h = self.conv1(F.silu(self.norm1(x, cond)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h, cond))))
        return self.shortcut(x) + h


class TransformerBlock(nn.Module):
    """AdaLN → self-attention; AdaLN → TCA over the level's symbol features; AdaLN → feed-forward.

    Each sub-layer is a residual; self-attention and TCA are optional (``self_attention``,
    ``context_dim`` None = no TCA)."""

    def __init__(self, dim: int, cond_dim: int, heads: int, ffn_mult: int, self_attention: bool,
                 context_dim: int | None, dropout: float = 0.0, rotary: bool = True,
                 tca_window: int | None = None):
        super().__init__()
        self.self_attn = None
        if self_attention:
            self.sa_norm = AdaLNModulation(dim, cond_dim)
            self.self_attn = RotaryAttention(dim, heads=heads, rotary=rotary, dropout=dropout)
        self.tca = None
        if context_dim is not None:
            self.tca_norm = AdaLNModulation(dim, cond_dim)
            self.tca = RotaryAttention(dim, context_dim, heads=heads, rotary=rotary, dropout=dropout,
                                       window=tca_window)
        self.ff_norm = AdaLNModulation(dim, cond_dim)
        self.ff = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ffn_mult * dim, dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, n, w), cond (b, e), context (b, n, d_l), context_mask (b, n) → (b, n, w)."""
        if self.self_attn is not None:
            x = x + self.self_attn(self.sa_norm(x, cond))
        if self.tca is not None:
            assert context is not None, "this block has TCA but received no symbol features"
            assert context.shape[1] == x.shape[1], \
                f"TCA: symbol features have {context.shape[1]} frames, U-Net features {x.shape[1]}"
            x = x + self.tca(self.tca_norm(x, cond), context, context_mask)
        return x + self.ff(self.ff_norm(x, cond))


class SkipModulation(nn.Module):
    """SCM / GatedTCA (seed §2.3.2): Z'_skip = Z_skip + W_zero(TCA(LN(Z_skip), F_l)), W_zero zero-initialised."""

    def __init__(self, dim: int, context_dim: int, heads: int, rotary: bool = True, window: int | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.tca = RotaryAttention(dim, context_dim, heads=heads, rotary=rotary, zero_init=True, window=window)

    def forward(self, skip: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """skip (b, w, n), context (b, n, d_l), context_mask (b, n) → (b, w, n)."""
        modulation = self.tca(self.norm(skip.transpose(1, 2)), context, context_mask)
        return skip + modulation.transpose(1, 2)


class LevelStage(nn.Module):
    """ResNet blocks then transformer blocks at one U-Net level."""

    def __init__(self, in_channels: int, width: int, cond_dim: int, num_res_blocks: int,
                 num_transformer_blocks: int, self_attention: bool, context_dim: int | None, heads: int,
                 ffn_mult: int, dropout: float, rotary: bool, tca_window: int | None = None):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResBlock1D(in_channels if i == 0 else width, width, cond_dim, dropout=dropout)
            for i in range(num_res_blocks))
        if num_res_blocks == 0 and in_channels != width:
            raise ValueError("a level with 0 ResNet blocks cannot change width")
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(width, cond_dim, heads, ffn_mult, self_attention, context_dim, dropout, rotary,
                             tca_window)
            for _ in range(num_transformer_blocks))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, context: Context) -> torch.Tensor:
        """x (b, w_in, n), cond (b, e), context (features, mask) or (None, None) → (b, w, n)."""
        for block in self.res_blocks:
            x = block(x, cond)
        if len(self.transformer_blocks) > 0:
            h = x.transpose(1, 2)
            for block in self.transformer_blocks:
                h = block(h, cond, *context)
            x = h.transpose(1, 2)
        return x


class DecoderLevel(nn.Module):
    """Spec §4 decoder order: SCM on the skip → concat → 1×1 projection → ``LevelStage``."""

    def __init__(self, width: int, scm_context_dim: int | None, heads: int, rotary: bool,
                 tca_window: int | None = None, **stage_kwargs):
        super().__init__()
        self.scm = (None if scm_context_dim is None
                    else SkipModulation(width, scm_context_dim, heads, rotary, tca_window))
        self.fuse = nn.Conv1d(2 * width, width, 1)
        self.stage = LevelStage(width, width, heads=heads, rotary=rotary, tca_window=tca_window, **stage_kwargs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor, context: Context) -> torch.Tensor:
        """x (b, w, n) from below, skip (b, w, n) → (b, w, n)."""
        if self.scm is not None:
            skip = self.scm(skip, *context)
        return self.stage(self.fuse(torch.cat([x, skip], dim=1)), cond, context)


class Upsample(nn.Module):
    """Nearest-neighbour ×R then a 3-tap convolution: (b, w_in, n) → (b, w_out, R·n)."""

    def __init__(self, in_channels: int, out_channels: int, factor: int):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv1d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.repeat_interleave(self.factor, dim=-1))


class Downsample(nn.Module):
    """Strided convolution, kernel 2R, stride R, padding R/2 (as the encoder): (b, w_in, n) → (b, w_out, n/R)."""

    def __init__(self, in_channels: int, out_channels: int, factor: int):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=2 * factor, stride=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return strided_downsample(x, self.conv, self.factor)


def with_null(x: torch.Tensor, nulled: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """x (b, ...) with the samples where ``nulled`` (b,) is True replaced by the learned ``null`` (broadcast to
    one sample). Unlike ``condition_dropout.apply_null`` it always builds the ``where``, so the null
    parameter is in every step's graph (distributed training needs no unused-parameter search) and no
    host sync is needed."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return torch.where(nulled.reshape(shape), null.to(x.dtype), x)


def _check_levels(key: str, levels: tp.Sequence[str], allowed: tp.Sequence[str], why: str) -> list[str]:
    levels = list(levels)
    bad = sorted(set(levels) - set(allowed))
    if bad:
        raise ValueError(f"model.diffusion.config.{key}: {bad} not allowed; {why} (allowed: {list(allowed)})")
    return levels


@DIFFUSION_MODELS.register("mrci_unet")
class MRCIUNet(ConditionedDiffusionModel):
    """HS-MAD's MRCI U-Net backbone (diffusion type "mrci_unet") holding its ``HierarchicalSymbolEncoder``.

    Args (JSON keys of ``model.diffusion.config``):
        io_channels: latent channels c.
        widths: U-Net widths (w_H, w_M, w_L); paper 512 / 1024 / 1536.
        factors: (R₁, R₂); must equal ``encoder.factors`` (filled in if the encoder section omits them).
        num_res_blocks, num_transformer_blocks: per level (high, middle, bottleneck), used on the way down and
            again on the way up (the bottleneck stage once).
        self_attention_levels: levels whose transformer blocks have self-attention.
        heads, ffn_mult: attention heads and feed-forward multiplier of the transformer blocks.
        cond_dim: width e of the timestep + style conditioning vector.
        style_dim: width of ``global_cond`` (pooled style embedding); 0 = no style input.
        encoder: ``HierarchicalSymbolEncoder`` kwargs.
        symbol_mode: "hierarchical" | "global" | "flat" (module docstring).
        tca_levels, scm_levels: injection sites; None = the mode's default.
        cond_dropout: training dropout probability per condition, keys ⊆ {"structure", "style"}; a missing
            key takes the paper value 0.1.
        dropout: dropout inside the U-Net blocks.
        rotary: rotary frame positions in the U-Net's self-attention and TCA.
        tca_window: None (paper: TCA and SCM attend to the whole window) or a number of frames w: a U-Net frame
            attends only to symbol frames within ±w of it at its level, in O(n·w) time and memory (for long
            windows; ±w frames span w·R₁ latent frames at the middle level).
        diffusion_objective: given by the builder; the model returns the rectified-flow velocity.
        prediction: what the network outputs: "velocity" (default, the paper) or "x0", the clean latent,
            turned into the velocity (x − x̂0) / max(t, x0_t_min) (``models.prediction``).
        x0_t_min: the smallest t divided by with ``prediction: "x0"``.
    """

    condition_names: tuple[str, ...] = ("structure", "style")

    def __init__(self, io_channels: int, widths: tp.Sequence[int] = (512, 1024, 1536),
                 factors: tp.Sequence[int] = (4, 4), num_res_blocks: tp.Sequence[int] = (2, 2, 2),
                 num_transformer_blocks: tp.Sequence[int] = (1, 1, 1),
                 self_attention_levels: tp.Sequence[UNetLevel] = ("high", "middle", "bottleneck"),
                 heads: int = 8, ffn_mult: int = 4, cond_dim: int = 512, style_dim: int = 0,
                 encoder: dict | None = None, symbol_mode: SymbolMode = "hierarchical",
                 tca_levels: tp.Sequence[UNetLevel] | None = None, scm_levels: tp.Sequence[UNetLevel] | None = None,
                 cond_dropout: tp.Mapping[str, float] | None = None, dropout: float = 0.0, rotary: bool = True,
                 tca_window: int | None = None, diffusion_objective: str = "rectified_flow",
                 prediction: Prediction = "velocity", x0_t_min: float = 0.05):
        super().__init__(supports_global_cond=True, supports_input_concat=True)
        where = "model.diffusion.config"
        check_prediction(prediction, x0_t_min, where)
        self.prediction, self.x0_t_min = prediction, float(x0_t_min)
        for key, value, size in (("widths", widths, 3), ("factors", factors, 2), ("num_res_blocks", num_res_blocks, 3),
                                 ("num_transformer_blocks", num_transformer_blocks, 3)):
            if len(value) != size:
                raise ValueError(f"{where}.{key} needs {size} entries, got {list(value)}")
        if symbol_mode not in DEFAULT_TCA_LEVELS:
            raise ValueError(f"{where}.symbol_mode must be one of {list(DEFAULT_TCA_LEVELS)}, got {symbol_mode!r}")
        self.io_channels = io_channels
        self.widths = [int(w) for w in widths]
        self.factors = tuple(int(r) for r in factors)
        if any(r < 1 for r in self.factors):
            raise ValueError(f"{where}.factors must be positive, got {list(factors)}")
        self.length_multiple = math.prod(self.factors)
        self.symbol_mode = symbol_mode
        self.diffusion_objective = diffusion_objective

        # -- the encoder, aligned with the U-Net ------------------------------------------------
        encoder = dict(encoder or {})
        if "factors" in encoder and tuple(int(r) for r in encoder["factors"]) != self.factors:
            raise ValueError(
                f"{where}.encoder.factors {list(encoder['factors'])} differ from the U-Net's {where}.factors "
                f"{list(self.factors)}: symbol features and U-Net features must have equal lengths at every "
                f"level; set both to the same (R1, R2)")
        encoder["factors"] = list(self.factors)
        levels_needed = 1 if symbol_mode == "flat" else 3
        if encoder.setdefault("num_levels", levels_needed) != levels_needed:
            raise ValueError(f"{where}.encoder.num_levels = {encoder['num_levels']} does not fit symbol_mode "
                             f"{symbol_mode!r}, which needs {levels_needed}; remove the key or fix it")
        from ..factory import construct
        self.encoder: HierarchicalSymbolEncoder = construct(HierarchicalSymbolEncoder, encoder, f"{where}.encoder")

        # -- injection sites --------------------------------------------------------------------
        allowed = {"hierarchical": UNET_LEVELS, "flat": ("high",), "global": ()}[symbol_mode]
        why = {"hierarchical": "", "flat": "Baseline-Flat reads F_event at the high level only",
               "global": "Baseline-Global injects only the pooled vector (no TCA, no SCM)"}[symbol_mode]
        self.tca_levels = _check_levels("tca_levels", DEFAULT_TCA_LEVELS[symbol_mode] if tca_levels is None
                                        else tca_levels, allowed, why or "unknown level")
        self.scm_levels = _check_levels("scm_levels", DEFAULT_SCM_LEVELS[symbol_mode] if scm_levels is None
                                        else scm_levels, [lv for lv in allowed if lv != "bottleneck"],
                                        why or "SCM modulates skip connections, which exist at high and middle")
        sa_levels = _check_levels("self_attention_levels", self_attention_levels, UNET_LEVELS, "unknown level")
        for level in self.tca_levels:
            if num_transformer_blocks[UNET_LEVELS.index(level)] < 1:
                raise ValueError(f"{where}.tca_levels includes {level!r} but num_transformer_blocks for it is 0; "
                                 f"TCA lives in the transformer blocks")
        self.context_levels = [lv for lv in UNET_LEVELS if lv in self.tca_levels or lv in self.scm_levels]
        enc_width = dict(zip(self.encoder.level_names, self.encoder.widths))

        # -- conditions and their learned null values -------------------------------------------
        unknown = sorted(set(cond_dropout or {}) - set(self.condition_names))
        if unknown:
            raise KeyError(f"{where}.cond_dropout: unknown condition(s) {unknown}; mrci_unet's conditions are "
                           f"{list(self.condition_names)}")
        cond_dropout = {**DEFAULT_COND_DROPOUT, **(cond_dropout or {})}
        for name, p in cond_dropout.items():
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{where}.cond_dropout.{name} must be in [0, 1], got {p}")
        self.cond_dropout = {k: float(v) for k, v in cond_dropout.items()}
        self.null_symbols = nn.ParameterDict()
        if symbol_mode == "global":
            self.null_symbols["pooled"] = nn.Parameter(torch.randn(enc_width["global"]))
            self.pooled_proj = nn.Sequential(nn.Linear(enc_width["global"], cond_dim), nn.SiLU(),
                                             nn.Linear(cond_dim, cond_dim))
        else:
            for level in self.context_levels:
                self.null_symbols[SYMBOL_LEVEL[level]] = nn.Parameter(torch.randn(enc_width[SYMBOL_LEVEL[level]]))
        self.style_dim = style_dim
        self.style_proj = None
        if style_dim > 0:
            self.style_proj = nn.Sequential(nn.Linear(style_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.null_style = nn.Parameter(0.02 * torch.randn(cond_dim))
        self.timestep_embed = TimestepEmbedding(cond_dim)

        # -- the U-Net ---------------------------------------------------------------------------
        def stage_kwargs(i: int, level: str) -> dict:
            return dict(cond_dim=cond_dim, num_res_blocks=int(num_res_blocks[i]),
                        num_transformer_blocks=int(num_transformer_blocks[i]), self_attention=level in sa_levels,
                        context_dim=enc_width[SYMBOL_LEVEL[level]] if level in self.tca_levels else None,
                        ffn_mult=ffn_mult, dropout=dropout)

        if tca_window is not None and int(tca_window) < 1:
            raise ValueError(f"{where}.tca_window must be a positive number of frames or null, got {tca_window}")

        w_h, w_m, w_l = self.widths
        self.input_proj = nn.Conv1d(io_channels, w_h, 3, padding=1)
        self.down = nn.ModuleDict({
            "high": LevelStage(w_h, w_h, heads=heads, rotary=rotary, tca_window=tca_window,
                               **stage_kwargs(0, "high")),
            "middle": LevelStage(w_m, w_m, heads=heads, rotary=rotary, tca_window=tca_window,
                                 **stage_kwargs(1, "middle")),
        })
        self.downsample = nn.ModuleDict({"high": Downsample(w_h, w_m, self.factors[0]),
                                         "middle": Downsample(w_m, w_l, self.factors[1])})
        self.bottleneck = LevelStage(w_l, w_l, heads=heads, rotary=rotary, tca_window=tca_window,
                                     **stage_kwargs(2, "bottleneck"))
        self.upsample = nn.ModuleDict({"middle": Upsample(w_l, w_m, self.factors[1]),
                                       "high": Upsample(w_m, w_h, self.factors[0])})
        self.up = nn.ModuleDict({
            level: DecoderLevel(width, enc_width[SYMBOL_LEVEL[level]] if level in self.scm_levels else None,
                                heads=heads, rotary=rotary, tca_window=tca_window, **stage_kwargs(i, level))
            for i, (level, width) in enumerate((("high", w_h), ("middle", w_m)))
        })
        self.output_norm = AdaLNModulation(w_h, cond_dim, channels_first=True)
        self.output_proj = nn.Conv1d(w_h, io_channels, 3, padding=1)
        self.aux_losses: dict[str, torch.Tensor] = {}

    # -- conditions -------------------------------------------------------------------------------
    def null_mask(self, batch_size: int, device: torch.device, cfg_dropout_prob: float = 0.0,
                  null_conditions: NullMask | None = None) -> NullMask:
        """Which conditions are nulled per sample in this forward (``condition_dropout.resolve_null_mask``
        with this model's ``cond_dropout`` probabilities; random only if ``cfg_dropout_prob > 0``)."""
        return resolve_null_mask(self.cond_dropout, batch_size, device, training_dropout=cfg_dropout_prob > 0,
                                 null_conditions=null_conditions)

    def encode_symbols(self, structure: torch.Tensor) -> tuple[SymbolLevels, dict[str, torch.Tensor] | None]:
        """Packed structure (b, C, T_H) → encoder levels and the unpacked labels (None without labels)."""
        srm, mask, labels = unpack_structure(structure, self.encoder.in_channels, factors=self.factors)
        enc_mask = None if bool(mask.all()) else mask  # all valid: let attention run without a mask
        return self.encoder(srm, enc_mask), labels

    def _symbol_contexts(self, structure: torch.Tensor | None, b: int, n: int,
                         nulled: torch.Tensor) -> SymbolContexts:
        """Per U-Net level (features, mask) for TCA/SCM, and the pooled vector ("global" mode), with the
        structure null applied; fills ``self.aux_losses``."""
        lengths = {"high": n, "middle": n // self.factors[0], "bottleneck": n // self.length_multiple}
        contexts: dict[str, Context] = {level: (None, None) for level in UNET_LEVELS}
        if structure is None:  # no structure routed: every item uses the null structure
            for level in self.context_levels:
                null = self.null_symbols[SYMBOL_LEVEL[level]]
                contexts[level] = (null.expand(b, lengths[level], -1), None)
            pooled = self.null_symbols["pooled"].expand(b, -1) if self.symbol_mode == "global" else None
            return SymbolContexts(contexts, pooled, nulled)

        levels, labels = self.encode_symbols(structure)
        if labels is not None and len(self.encoder.aux_heads) > 0:
            self.aux_losses = self.encoder.aux_losses(levels, labels)
        all_valid = bool(levels.masks[self.encoder.level_names[0]].all())
        if self.symbol_mode == "global":
            pooled = masked_mean(levels.features["global"], levels.masks["global"])
            return SymbolContexts(contexts, with_null(pooled, nulled, self.null_symbols["pooled"]), nulled)
        for level in self.context_levels:
            name = SYMBOL_LEVEL[level]
            features = with_null(levels.features[name], nulled, self.null_symbols[name])
            mask = None if all_valid else levels.masks[name] | nulled[:, None]
            assert features.shape[1] == lengths[level], \
                f"{name} features have {features.shape[1]} frames, the U-Net's {level} level {lengths[level]}"
            contexts[level] = (features, mask)
        return SymbolContexts(contexts, None, nulled)

    def precompute_conditioning(self, inputs: tp.Mapping[str, tp.Any],
                                null_conditions: NullMask | None = None) -> dict[str, SymbolContexts]:
        """The forward kwargs that hold the work depending only on the conditioning, for one sampling run:
        ``{"symbol_contexts": SymbolContexts}``, the encoder's output for ``inputs["input_concat_cond"]`` with the
        structure nulls of ``null_conditions`` applied (module docstring, "Sampling cache").

        ``inputs`` and ``null_conditions`` are those of the steps' forwards (for guidance: already repeated over
        the branches); pass the result to every step together with them. Not for training: a training forward
        must run the encoder itself (gradients, auxiliary losses, fresh condition dropout)."""
        structure = inputs.get("input_concat_cond")
        if structure is None:
            return {}  # no structure routed: the forward uses the null tokens, there is no encoder work to save
        b, _, n = structure.shape
        self._check_length(n)
        nulled = self.null_mask(b, structure.device, 0.0, null_conditions)["structure"]
        symbols = self._symbol_contexts(structure, b, n, nulled)
        self.aux_losses = {}  # sampling: no auxiliary losses
        given = None if null_conditions is None else null_conditions.get("structure")
        return {"symbol_contexts": dataclasses.replace(symbols, structure=structure, structure_nulls=given)}

    def _check_symbol_contexts(self, symbols: SymbolContexts, structure: torch.Tensor | None,
                               null_conditions: NullMask | None, nulled: torch.Tensor, b: int,
                               cfg_dropout_prob: float) -> None:
        """The cached ``symbols`` must belong to this forward's structure input and structure null mask."""
        where = "MRCIUNet(symbol_contexts=...)"
        if cfg_dropout_prob > 0:
            raise ValueError(f"{where}: cached symbol features cannot be combined with training condition dropout "
                             f"(cfg_dropout_prob = {cfg_dropout_prob}); training forwards run the encoder")
        if symbols.nulled.shape != (b,):
            raise ValueError(f"{where}: computed for a batch of {symbols.nulled.shape[0]}, called with {b}; "
                             f"precompute with this forward's (guidance-repeated) inputs")
        if symbols.structure is not structure and (
                symbols.structure is None or structure is None or symbols.structure.shape != structure.shape
                or not torch.equal(symbols.structure, structure)):
            raise ValueError(f"{where}: computed for a different input_concat_cond (structure); precompute once per "
                             f"sampling run with the inputs every step passes")
        given = None if null_conditions is None else null_conditions.get("structure")
        if given is not symbols.structure_nulls and not torch.equal(symbols.nulled, nulled):
            raise ValueError(f"{where}: computed with a different structure null mask than this forward's "
                             f"null_conditions['structure']")

    def _style(self, global_cond: torch.Tensor | None, nulled: torch.Tensor, b: int) -> torch.Tensor:
        """Style embedding (b, e); the learned null where ``nulled`` or when no style is routed."""
        if self.style_proj is None or global_cond is None:
            return self.null_style.expand(b, -1)
        if global_cond.ndim == 3 and global_cond.shape[1] == 1:
            global_cond = global_cond[:, 0]
        if global_cond.shape != (b, self.style_dim):
            raise ValueError(f"global_cond (style) has shape {tuple(global_cond.shape)}, expected ({b}, "
                             f"{self.style_dim}) = model.diffusion.config.style_dim; route one pooled embedding")
        return with_null(self.style_proj(global_cond), nulled, self.null_style)

    def _check_length(self, n: int) -> None:
        if n % self.length_multiple != 0:
            raise ValueError(
                f"MRCIUNet: latent length n = {n} is not a multiple of R1·R2 = {self.factors[0]}·{self.factors[1]} = "
                f"{self.length_multiple}; choose sample_size so that sample_size / pretransform downsampling ratio "
                f"is a multiple of {self.length_multiple}")

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None, global_cond: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None, prepend_cond: torch.Tensor | None = None,
                prepend_cond_mask: torch.Tensor | None = None, cfg_dropout_prob: float = 0.0, cfg_scale: float = 1.0,
                null_conditions: NullMask | None = None, symbol_contexts: SymbolContexts | None = None,
                **kwargs) -> torch.Tensor:
        """Velocity v (b, c, n) for latents x (b, c, n) at rectified-flow times t (b,).

        input_concat_cond: packed structure (b, C, n); global_cond: style (b, s). Cross-attention and prepend
        inputs are not used by this model. ``cfg_scale != 1`` without ``null_conditions``: plain CFG,
        (1 − s)·v(∅) + s·v(all), in one batched forward. Unknown kwargs (stable-audio-tools') are ignored,
        including its latent padding ``mask``: symbol padding travels in the packed structure mask, and
        masking the loss is the training wrapper's job. ``symbol_contexts``: the encoder output cached for this
        sampling run by ``precompute_conditioning`` with the same structure input and null conditions (the
        encoder is then skipped); None (training, one-off calls) runs the encoder.
        """
        self.aux_losses = {}
        if cfg_scale != 1.0 and null_conditions is None:
            if symbol_contexts is not None:
                raise ValueError("MRCIUNet: symbol_contexts with cfg_scale != 1 (plain CFG doubles the batch); "
                                 "precompute for a guided sampler's branches (guidance.GuidedVelocity) instead")
            from ..inference.guidance import Guidance, guided_velocity  # here: guidance imports this package

            guidance = Guidance(branches=(frozenset(self.condition_names), frozenset()),
                                weights=(1.0 - cfg_scale, cfg_scale))
            inputs = {"global_cond": global_cond, "input_concat_cond": input_concat_cond}
            return guided_velocity(self, x, t, inputs, guidance, self.condition_names, cfg_scale=1.0,
                                   cfg_dropout_prob=0.0)
        if x.ndim != 3 or x.shape[1] != self.io_channels:
            raise ValueError(f"MRCIUNet expects latents (b, {self.io_channels}, n), got {tuple(x.shape)}")
        b, _, n = x.shape
        self._check_length(n)
        if input_concat_cond is not None and input_concat_cond.shape[-1] != n:
            raise ValueError(
                f"MRCIUNet: structure input has {input_concat_cond.shape[-1]} frames but the latent has {n}; the "
                f"structure conditioner must render S_sync at the latent rate (T_H = latent frames)")
        t = t.reshape(-1).to(x.dtype).expand(b) if t.numel() in (1, b) else t
        assert t.shape == (b,), f"t must be (b,) or a scalar, got {tuple(t.shape)}"

        nulls = self.null_mask(b, x.device, cfg_dropout_prob, null_conditions)
        if symbol_contexts is None:
            symbols = self._symbol_contexts(input_concat_cond, b, n, nulls["structure"])
        else:
            self._check_symbol_contexts(symbol_contexts, input_concat_cond, null_conditions, nulls["structure"], b,
                                        cfg_dropout_prob)
            symbols = symbol_contexts
        contexts, pooled = symbols.contexts, symbols.pooled
        cond = self.timestep_embed(t) + self._style(global_cond, nulls["style"], b)
        bottleneck_cond = cond if pooled is None else cond + self.pooled_proj(pooled)

        h = self.input_proj(x)
        skips = {}
        for level in ("high", "middle"):
            h = self.down[level](h, cond, contexts[level])
            skips[level] = h
            h = self.downsample[level](h)
        h = self.bottleneck(h, bottleneck_cond, contexts["bottleneck"])
        for level in ("middle", "high"):
            h = self.up[level](self.upsample[level](h), skips[level], cond, contexts[level])
        return to_velocity(self.output_proj(F.silu(self.output_norm(h, cond))), x, t, self.prediction, self.x0_t_min)
