"""Training wrapper ``diffusion_cond_aux``: the rectified-flow loss plus weighted auxiliary losses.

HS-MAD (spec §5): total = flow-matching MSE + Σ_k w_k · aux_k, every term logged (``train/aux_<name>``,
``train/flow_loss``, ``train/total_loss``). The backbone fills ``aux_losses`` (unweighted scalars) during
its forward; this subclass adds them to the loss upstream's step returns. Weights come from the config
(``aux_loss_weights``, 0.1 each by default); a loss the backbone reports without a weight is an error,
not silently dropped.
"""
from __future__ import annotations

import torch

from ..registry import TRAINING_WRAPPERS
from .diffusion_cond import DiffusionCondTrainingWrapper

DEFAULT_AUX_WEIGHTS = {"chroma": 0.1, "beat": 0.1, "tempo": 0.1, "key": 0.1}


@TRAINING_WRAPPERS.register("diffusion_cond_aux")
class AuxLossTrainingWrapper(DiffusionCondTrainingWrapper):
    """``DiffusionCondTrainingWrapper`` whose loss also includes the backbone's auxiliary losses.

    Args (beyond the parent's): aux_loss_weights — name → weight; names must match the backbone's.
    """

    def __init__(self, model, aux_loss_weights: dict[str, float] | None = None, **kwargs):
        super().__init__(model, **kwargs)
        self.aux_loss_weights = dict(DEFAULT_AUX_WEIGHTS if aux_loss_weights is None else aux_loss_weights)

    def weighted_aux_loss(self) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """(Σ w·aux or None, the unweighted terms) from the backbone's last forward."""
        terms = dict(getattr(self.diffusion.model, "aux_losses", {}) or {})
        unknown = sorted(set(terms) - set(self.aux_loss_weights))
        if unknown:
            raise KeyError(f"the backbone reports auxiliary losses {unknown} with no weight in "
                           f"training.aux_loss_weights {self.aux_loss_weights}")
        if not terms:
            return None, terms
        total = sum(self.aux_loss_weights[k] * v for k, v in terms.items())
        return total, terms

    def training_step(self, batch, batch_idx):
        flow_loss = super().training_step(batch, batch_idx)
        aux, terms = self.weighted_aux_loss()
        if aux is None:
            return flow_loss
        total = flow_loss + aux
        log = {f"train/aux_{k}": v.detach() for k, v in terms.items()}
        log.update({"train/flow_loss": flow_loss.detach(), "train/total_loss": total.detach()})
        self.log_dict(log, prog_bar=False, on_step=True)
        return total
