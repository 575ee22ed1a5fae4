"""SAGA-SR backbone: stable-audio-tools' DiT with the LR latent concatenated on the channel axis.

SAGA-SR (Im & Nam 2025, §2.1–2.3; spec §4) uses the Stable Audio Open DiT unchanged except for
``input_concat_dim`` = LR-latent channels (64): z_t (64) ⊕ z_l (64) → 1×1 conv (residual) → Linear →
transformer. This file composes stable-audio-tools' ``DiffusionTransformer`` (held as ``self.model``,
the same attribute name ``DiTWrapper`` uses, so state-dict keys equal a stock ``dit`` model's:
``model.model.transformer...``) and adds the paper's condition dropout, done here instead of in SAT's DiT:

* ``lr_latent`` (p = 0.1): the input-concat channels of the dropped samples become a constant null
  value (−5.0, official code), not zeros;
* ``text`` (p = 0.1): the WHOLE cross-attention sequence of the dropped samples — T5 tokens and the
  two roll-off tokens — becomes zeros. SAT's DiT ignores the cross-attention mask
  (``DiffusionTransformer.forward`` sets ``cross_attn_cond_mask = None``), so the mask is passed on
  unchanged and has no effect; zero tokens give zero keys and values (``to_cond_embed`` and the
  attention projections have no bias), so a fully zeroed sequence contributes exactly nothing;
* the global roll-off conditioning (projected, added to the timestep embedding, prepended as one
  token) is never dropped.

Draws are independent per condition and per sample. Training dropout is on iff ``cfg_dropout_prob > 0``
(SAT's training step passes the training config's value, validation passes 0); the probabilities are
this model's own ``cond_dropout``. The inner DiT always gets ``cfg_scale=1, cfg_dropout_prob=0``, so
SAT's own CFG and dropout (which would also zero ``prepend_cond``) never run.

Legend: b batch, c io channels (64), k input-concat channels (64), n latent frames,
m cross-attention tokens, D cond_token_dim (768), G global_cond_dim (1536).
"""
from __future__ import annotations

import typing as tp

import torch
from stable_audio_tools.models.diffusion import ConditionedDiffusionModel
from stable_audio_tools.models.dit import DiffusionTransformer

from ..inference.guidance import Guidance, guided_velocity
from ..registry import DIFFUSION_MODELS
from .condition_dropout import NullMask, apply_null, resolve_null_mask
from .prediction import Prediction, check_prediction, to_velocity

CONDITION_NAMES = ("lr_latent", "text")
DEFAULT_COND_DROPOUT = {"lr_latent": 0.1, "text": 0.1}


def _check_widths(embed_dim: int, num_heads: int, cond_token_dim: int, project_cond_tokens: bool) -> None:
    """Width constraints of SAT's ContinuousTransformer, checked up front with a message naming the keys
    (SAT itself fails deep inside attention with a shape or zero-division error)."""
    where = "model.diffusion.config"
    if embed_dim % num_heads:
        raise ValueError(f"{where}: embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
    dim_heads = embed_dim // num_heads
    if dim_heads < 32:
        raise ValueError(f"{where}: embed_dim / num_heads = {dim_heads} < 32; SAT's rotary embedding covers "
                         f"at least 32 dims per head, use fewer heads or a wider embed_dim")
    context_dim = embed_dim if project_cond_tokens else cond_token_dim
    if cond_token_dim > 0 and (context_dim % dim_heads or num_heads % (context_dim // dim_heads)):
        raise ValueError(f"{where}: cross-attention context width {context_dim} must be a multiple of the head "
                         f"width {dim_heads} dividing num_heads {num_heads} (SAT uses context_dim / head width "
                         f"key/value heads); change cond_token_dim or set project_cond_tokens")


@DIFFUSION_MODELS.register("dit_concat")
class DiTConcat(ConditionedDiffusionModel):
    """SAT ``DiffusionTransformer`` with LR-latent input concat and per-condition dropout (SAGA-SR §2.3).

    Args (JSON ``model.diffusion.config``; anything not listed goes to SAT's ``DiffusionTransformer``,
    and through it to ``ContinuousTransformer``/``TransformerBlock``, which reject unknown keys):
        io_channels: latent channels c of z_t (64).
        input_concat_dim: LR-latent channels k concatenated to z_t (64). Must be > 0.
        embed_dim, depth, num_heads, cond_token_dim, global_cond_dim, project_cond_tokens,
        global_cond_type, patch_size: as SAT's ``DiffusionTransformer`` (paper: 1536, 24, 24, 768,
            1536, false, "prepend", 1).
        cond_dropout: per-condition training dropout probability, keys ⊆ {"lr_latent", "text"};
            missing keys take the paper value 0.1.
        lr_latent_null_value: constant the dropped LR latent becomes (official code: −5.0).
        text_null_value: constant the dropped cross-attention sequence becomes (0.0).
        use_checkpointing: SAT's ContinuousTransformer checkpoints every layer by default; False
            turns it off (small models on CPU). Only used while gradients are enabled.
        diffusion_objective: filled in by the factory from ``model.diffusion.diffusion_objective``.
        prediction: what the network outputs: "velocity" (default, the paper) or "x0", the clean latent,
            turned into the velocity (x − x̂0) / max(t, x0_t_min) (``models.prediction``).
        x0_t_min: the smallest t divided by with ``prediction: "x0"``.
    """

    condition_names: tuple[str, ...] = CONDITION_NAMES

    @staticmethod
    def check_config(config: dict) -> list[tuple[str, str]]:
        """Problems (key path, message) of a "dit_concat" model config: ``embed_dim`` must be at least
        ``io_channels + input_concat_dim``. The input projection is linear, so a narrower model sees only a
        projection of (z_t, LR latent) and cannot pass z_t's noise through in full: it can never remove the
        noise in the directions it drops (a tiny config with 128 + 128 channels at width 128 left the high
        band 36 dB too loud after 1,000 steps)."""
        diffusion = config.get("model", {}).get("diffusion", {})
        if diffusion.get("type") != "dit_concat":
            return []
        cfg = diffusion.get("config", {}) or {}
        need = int(cfg.get("io_channels", 64)) + int(cfg.get("input_concat_dim", 64))
        width = int(cfg.get("embed_dim", 1536))
        if width < need:
            return [("model.diffusion.config.embed_dim",
                     f"{width} is narrower than io_channels + input_concat_dim = {need}: the model cannot carry "
                     f"z_t and the LR latent through its input projection; use embed_dim >= {need}")]
        return []

    def __init__(self, io_channels: int = 64, input_concat_dim: int = 64, embed_dim: int = 1536,
                 depth: int = 24, num_heads: int = 24, cond_token_dim: int = 768,
                 global_cond_dim: int = 1536, project_cond_tokens: bool = False,
                 global_cond_type: tp.Literal["prepend", "adaLN"] = "prepend", patch_size: int = 1,
                 cond_dropout: tp.Optional[tp.Dict[str, float]] = None,
                 lr_latent_null_value: float = -5.0, text_null_value: float = 0.0,
                 use_checkpointing: bool = True,
                 diffusion_objective: tp.Literal["v", "rectified_flow", "rf_denoiser"] = "rectified_flow",
                 prediction: Prediction = "velocity", x0_t_min: float = 0.05,
                 **transformer_kwargs: tp.Any):
        super().__init__(supports_cross_attention=cond_token_dim > 0, supports_input_concat=True,
                         supports_global_cond=global_cond_dim > 0, supports_prepend_cond=False)
        if input_concat_dim <= 0:
            raise ValueError("model.diffusion.config.input_concat_dim must be > 0 for dit_concat "
                             "(the LR-latent channels); use type 'dit' for a model without input concat")
        _check_widths(embed_dim, num_heads, cond_token_dim, project_cond_tokens)
        dropout = dict(DEFAULT_COND_DROPOUT)
        unknown = set(cond_dropout or {}) - set(CONDITION_NAMES)
        if unknown:
            raise KeyError(f"model.diffusion.config.cond_dropout: unknown condition(s) {sorted(unknown)}; "
                           f"dit_concat's conditions are {list(CONDITION_NAMES)}")
        dropout.update({k: float(v) for k, v in (cond_dropout or {}).items()})
        for name, p in dropout.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"model.diffusion.config.cond_dropout.{name} must be in [0, 1], got {p}")
        check_prediction(prediction, x0_t_min, "model.diffusion.config")
        if prediction != "velocity" and diffusion_objective != "rectified_flow":
            raise ValueError(f"model.diffusion.config.prediction {prediction!r} needs the rectified_flow objective, "
                             f"got {diffusion_objective!r}")
        self.prediction, self.x0_t_min = prediction, float(x0_t_min)
        self.cond_dropout = dropout
        self.lr_latent_null_value = float(lr_latent_null_value)
        self.text_null_value = float(text_null_value)
        self.use_checkpointing = bool(use_checkpointing)
        self.io_channels = io_channels
        self.input_concat_dim = input_concat_dim
        self.cond_token_dim = cond_token_dim
        self.global_cond_dim = global_cond_dim
        self.length_multiple = int(patch_size)
        self.diffusion_objective = diffusion_objective
        self.model = DiffusionTransformer(
            io_channels=io_channels, input_concat_dim=input_concat_dim, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, cond_token_dim=cond_token_dim, global_cond_dim=global_cond_dim,
            project_cond_tokens=project_cond_tokens, global_cond_type=global_cond_type,
            patch_size=patch_size, diffusion_objective=diffusion_objective, **transformer_kwargs)

    def adapt_pretrained_state(self, state: tp.Dict[str, torch.Tensor]) -> tuple[dict, list[str]]:
        """Hook of ``training.pretrained.load_pretrained``: a stock (Stable Audio Open) DiT state with keys
        relative to this backbone → the same state with the input projections widened for the concat
        channels, new weights zero (see ``sao_init``). Returns (state, widened keys)."""
        from .sao_init import widen_input_projections

        return widen_input_projections(state, self.io_channels, self.input_concat_dim, self.length_multiple)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None, global_cond: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None, prepend_cond: torch.Tensor | None = None,
                prepend_cond_mask: torch.Tensor | None = None, cfg_dropout_prob: float = 0.0,
                cfg_scale: float = 1.0, null_conditions: NullMask | None = None,
                **kwargs: tp.Any) -> torch.Tensor:
        """Velocity v = noise − x0 (rectified flow, t = 1 is noise).

        x (b, c, n), t (b,), cross_attn_cond (b, m, D), global_cond (b, G), input_concat_cond (b, k, n)
        → (b, c, n). ``null_conditions`` (name → (b,) bool) nulls conditions explicitly (guided
        sampling); otherwise training dropout draws them iff ``cfg_dropout_prob > 0``. With
        ``cfg_scale != 1`` and no ``null_conditions``: plain CFG, (1 − s)·v(all nulled) + s·v(cond), in one
        batched forward. Unknown kwargs (SAT's ``mask``, ``batch_cfg``, ``negative_*``, ``scale_phi``...)
        are accepted and ignored: SAT's DiT ignores ``mask`` too (loss masking is the wrapper's job).
        """
        b = x.shape[0]
        assert x.ndim == 3 and x.shape[1] == self.io_channels, \
            f"x must be (b, {self.io_channels}, n), got {tuple(x.shape)}"
        assert x.shape[2] % self.length_multiple == 0, \
            f"latent length {x.shape[2]} is not a multiple of patch_size {self.length_multiple}"
        assert t.shape == (b,), f"t must be ({b},), got {tuple(t.shape)}"
        if input_concat_cond is None:
            raise ValueError("dit_concat needs input_concat_cond (the LR latent): route the 'lr_audio' "
                             "conditioner through model.diffusion.input_concat_ids")
        assert input_concat_cond.shape == (b, self.input_concat_dim, x.shape[2]), \
            f"input_concat_cond must be ({b}, {self.input_concat_dim}, {x.shape[2]}), " \
            f"got {tuple(input_concat_cond.shape)}"
        if cross_attn_cond is not None:
            assert cross_attn_cond.ndim == 3 and cross_attn_cond.shape[0] == b \
                and cross_attn_cond.shape[2] == self.cond_token_dim, \
                f"cross_attn_cond must be ({b}, m, {self.cond_token_dim}), got {tuple(cross_attn_cond.shape)}"
        if global_cond is not None:
            assert global_cond.shape == (b, self.global_cond_dim), \
                f"global_cond must be ({b}, {self.global_cond_dim}), got {tuple(global_cond.shape)}"

        inputs = dict(cross_attn_cond=cross_attn_cond, cross_attn_mask=cross_attn_mask, global_cond=global_cond,
                      input_concat_cond=input_concat_cond, prepend_cond=prepend_cond,
                      prepend_cond_mask=prepend_cond_mask)
        if cfg_scale != 1.0 and null_conditions is None:
            plain_cfg = Guidance(branches=(frozenset(self.condition_names), frozenset()),
                                 weights=(1.0 - cfg_scale, cfg_scale))
            return guided_velocity(self, x, t, inputs, plain_cfg, self.condition_names)

        nulled = resolve_null_mask(self.cond_dropout, b, x.device, training_dropout=cfg_dropout_prob > 0,
                                   null_conditions=null_conditions)
        input_concat_cond = apply_null(input_concat_cond, nulled["lr_latent"], self.lr_latent_null_value)
        if cross_attn_cond is not None:
            cross_attn_cond = apply_null(cross_attn_cond, nulled["text"], self.text_null_value)
        output = self.model(
            x, t, cross_attn_cond=cross_attn_cond, cross_attn_cond_mask=cross_attn_mask,
            input_concat_cond=input_concat_cond, global_embed=global_cond, prepend_cond=prepend_cond,
            prepend_cond_mask=prepend_cond_mask, cfg_scale=1.0, cfg_dropout_prob=0.0,
            use_checkpointing=self.use_checkpointing and torch.is_grad_enabled())
        return to_velocity(output, x, t, self.prediction, self.x0_t_min)
