"""Multi-branch classifier-free guidance in one batched forward, shared by SAGA-SR and HS-MAD.

A guided velocity is a weighted sum of K branches that differ only in which conditions are nulled:

    v = Σ_k w_k · v(x, t; conditions except null_k)

The K branches are stacked on the batch axis and evaluated in a single forward. The two papers' formulas
are instances (their weights sum to 1, so v stays an unbiased velocity when all branches agree):

* SAGA-SR eq. 4:  u = u(∅,∅) + s_a[u(z_l,∅) − u(∅,∅)] + s_t[u(z_l,c) − u(z_l,∅)]
* HS-MAD §6:      v = v(∅,∅) + w_H[v(C_H,∅) − v(∅,∅)] + w_S[v(∅,C_S) − v(∅,∅)]
"""
from __future__ import annotations

import dataclasses
import typing as tp

import torch

if tp.TYPE_CHECKING:  # models import this module; a runtime import would be circular
    from ..models.condition_dropout import NullMask


@dataclasses.dataclass(frozen=True)
class Guidance:
    """K branches (sets of nulled condition names) and their weights."""

    branches: tuple[frozenset[str], ...]
    weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.branches) != len(self.weights) or not self.branches:
            raise ValueError(f"guidance needs one weight per branch, got {len(self.branches)} branches "
                             f"and {len(self.weights)} weights")

    def null_masks(self, conditions: tp.Iterable[str], batch_size: int, device: torch.device) -> "NullMask":
        """name → (K·b,) bool: True in the branches that null that condition."""
        masks = {}
        for name in conditions:
            per_branch = torch.tensor([name in branch for branch in self.branches], device=device)
            masks[name] = per_branch.repeat_interleave(batch_size)
        return masks


def saga_sr_guidance(cfg_acoustic: float, cfg_text: float, text: bool = True) -> Guidance:
    """SAGA-SR eq. 4 with s_a = ``cfg_acoustic`` (LR latent) and s_t = ``cfg_text``.

    u = (1 − s_a)·u(∅,∅) + (s_a − s_t)·u(z_l,∅) + s_t·u(z_l,c); ∅ for text also removes the roll-off
    cross-attention tokens (the whole cross-attention sequence), the prepended roll-off token stays.
    Without a caption (``text`` False) the text is null in every branch, u(z_l,c) becomes u(z_l,∅) and
    the formula u = (1 − s_a)·u(∅,∅) + s_a·u(z_l,∅) needs two branches; s_t has no effect.
    """
    if not text:
        return Guidance(branches=(frozenset({"lr_latent", "text"}), frozenset({"text"})),
                        weights=(1.0 - cfg_acoustic, cfg_acoustic))
    return Guidance(
        branches=(frozenset({"lr_latent", "text"}), frozenset({"text"}), frozenset()),
        weights=(1.0 - cfg_acoustic, cfg_acoustic - cfg_text, cfg_text),
    )


def decoupled_guidance(w_structure: float, w_style: float) -> Guidance:
    """HS-MAD §6: v = (1 − w_H − w_S)·v(∅,∅) + w_H·v(C_H,∅) + w_S·v(∅,C_S)."""
    return Guidance(
        branches=(frozenset({"structure", "style"}), frozenset({"style"}), frozenset({"structure"})),
        weights=(1.0 - w_structure - w_style, w_structure, w_style),
    )


def _repeat(value: tp.Any, k: int) -> tp.Any:
    if isinstance(value, torch.Tensor):
        return value.repeat(k, *([1] * (value.ndim - 1)))
    if isinstance(value, (list, tuple)):
        return type(value)(_repeat(v, k) for v in value)
    if isinstance(value, dict):
        return {key: _repeat(v, k) for key, v in value.items()}
    return value


class GuidedVelocity:
    """v(x, t) with guidance for fixed conditioning: the K-fold repeated inputs and the branch null masks
    are built once (they do not change between sampler steps), each call repeats only x and t and runs
    ONE forward over K·b items.

    ``inputs`` are the routed conditioning tensors (``cross_attn_cond`` ...), ``conditions`` the names the
    backbone understands in ``null_conditions``.

    Conditioning cache (``cache_conditioning``, default on): a backbone with a method
    ``precompute_conditioning(inputs, null_conditions) -> dict`` (HS-MAD's ``MRCIUNet``: its symbolic encoder)
    is asked once, here, for the work that depends only on the conditioning; the returned kwargs go to every
    step's forward. The cache lives in this object, i.e. for one sampling run. Backbones without the method
    (SAGA-SR's DiT) are called exactly as before.
    """

    def __init__(self, backbone: torch.nn.Module, inputs: dict, guidance: Guidance, conditions: tp.Iterable[str],
                 batch_size: int, device: torch.device, cache_conditioning: bool = True, **kwargs):
        self.backbone, self.guidance, self.kwargs = backbone, guidance, kwargs
        self.k, self.b = len(guidance.branches), batch_size
        self.plain = self.k == 1 and not guidance.branches[0]
        if self.plain:
            self.inputs, self.nulls = inputs, None
        else:
            self.inputs = _repeat(inputs, self.k)
            self.nulls = guidance.null_masks(tuple(conditions), batch_size, device)
        self.weights = torch.tensor(guidance.weights, device=device)
        precompute = getattr(backbone, "precompute_conditioning", None) if cache_conditioning else None
        if precompute is not None:
            self.kwargs = {**kwargs, **precompute(self.inputs, self.nulls)}

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.b:
            raise ValueError(f"guided velocity built for batch {self.b}, called with {x.shape[0]}")
        if self.plain:
            return self.guidance.weights[0] * self.backbone(x, t, **self.inputs, **self.kwargs)
        out = self.backbone(_repeat(x, self.k), _repeat(t, self.k), **self.inputs, null_conditions=self.nulls,
                            **self.kwargs)
        out = out.reshape(self.k, self.b, *out.shape[1:])
        return torch.einsum("k,kb...->b...", self.weights.to(out.dtype), out)


def guided_velocity(backbone: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, inputs: dict,
                    guidance: Guidance, conditions: tp.Iterable[str], **kwargs) -> torch.Tensor:
    """The guided velocity for x (b, c, n) at times t (b,), from ONE forward over K·b items (one-off use, so
    nothing is cached; samplers build a ``GuidedVelocity`` once per run)."""
    return GuidedVelocity(backbone, inputs, guidance, conditions, x.shape[0], x.device, cache_conditioning=False,
                          **kwargs)(x, t)
