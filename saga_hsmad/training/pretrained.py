"""``train.py --pretrained-ckpt-path``: initialise a model from another checkpoint and say what happened.

Weights whose name and shape match are copied. A backbone may adapt the incoming state first through a
method ``adapt_pretrained_state(state) -> (state, widened_names)`` (SAGA-SR's DiT widens its input
projections for the concatenated LR-latent channels, new weights zero). Nothing is skipped silently:
the report lists loaded, widened, mismatched (left as initialised) and new (absent from the checkpoint)
parameters. stable-audio-tools' own loader silently skips mismatches.
"""
from __future__ import annotations

import dataclasses

import torch

from ..checkpoints import model_state_dict, read_checkpoint


@dataclasses.dataclass
class PretrainedReport:
    path: str
    loaded: list[str]
    widened: list[str]
    mismatched: list[str]
    new: list[str]
    unused: list[str]

    def summary(self) -> str:
        def show(names):
            return ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")

        return "\n".join([
            f"initialised from {self.path}:",
            f"  loaded     {len(self.loaded):5d}",
            f"  widened    {len(self.widened):5d}  {show(self.widened)}",
            f"  mismatched {len(self.mismatched):5d}  {show(self.mismatched)}  (shapes differ; left as initialised)",
            f"  new        {len(self.new):5d}  {show(self.new)}  (not in the checkpoint; left as initialised)",
            f"  unused     {len(self.unused):5d}  {show(self.unused)}  (in the checkpoint, not in the model)",
        ])


def load_pretrained(model: torch.nn.Module, path: str, use_ema: bool = True, trust: bool = False) -> PretrainedReport:
    """Copies the weights of the checkpoint at ``path`` whose names and shapes match; ``trust`` allows full
    unpickling (``--trust-checkpoint``)."""
    state, _, kind = read_checkpoint(path, trust=trust)
    state, _ = model_state_dict(state, kind, use_ema)
    widened: list[str] = []
    adapt = getattr(getattr(model, "model", None), "adapt_pretrained_state", None)
    if adapt is not None:
        # The backbone sees its own keys (without the wrapper's "model." prefix).
        inner = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        inner, widened_inner = adapt(inner)
        state = {**{k: v for k, v in state.items() if not k.startswith("model.")},
                 **{f"model.{k}": v for k, v in inner.items()}}
        widened = [f"model.{k}" for k in widened_inner]
    own = model.state_dict()
    loaded, mismatched = [], []
    with torch.no_grad():
        for name, value in state.items():
            if name not in own:
                continue
            if own[name].shape != value.shape:
                mismatched.append(name)
                continue
            own[name].copy_(value.to(own[name].dtype))
            loaded.append(name)
    new = [k for k in own if k not in state]
    unused = [k for k in state if k not in own]
    return PretrainedReport(str(path), [k for k in loaded if k not in widened], widened, mismatched, new, unused)


def load_pretransform(model: torch.nn.Module, path: str, trust: bool = False) -> PretrainedReport:
    """Load only the pretransform's weights: a file holding the pretransform's own state dict (an
    unwrapped VAE, keys as in ``model.pretransform.model``) or a whole model checkpoint (keys under
    ``pretransform.``). Strict: every pretransform weight must be present with its shape. ``trust`` as in
    ``load_pretrained``."""
    if getattr(model, "pretransform", None) is None:
        raise ValueError(f"--pretransform-ckpt-path {path}: the model has no pretransform")
    state, _, kind = read_checkpoint(path, trust=trust)
    state, _ = model_state_dict(state, kind)
    own = model.pretransform.state_dict()
    layouts = (
        {k[len("pretransform."):]: v for k, v in state.items() if k.startswith("pretransform.")},  # whole model
        state,  # the pretransform's own state dict
        {f"model.{k}": v for k, v in state.items()},  # an unwrapped autoencoder
    )
    candidate = next((c for c in layouts if c and set(own) <= set(c)), layouts[1])
    missing = sorted(set(own) - set(candidate))
    mismatched = [k for k in own if k in candidate and candidate[k].shape != own[k].shape]
    if missing or mismatched:
        raise ValueError(f"{path} does not hold this pretransform's weights: missing {missing[:6]}, "
                         f"shape mismatches {mismatched[:6]}")
    with torch.no_grad():
        for k in own:
            own[k].copy_(candidate[k].to(own[k].dtype))
    return PretrainedReport(str(path), [f"pretransform.{k}" for k in own], [], [], [], [])
