"""Initialise a SAGA-SR ``dit_concat`` model from a Stable Audio Open checkpoint (spec §4).

The official SAGA-SR config points at a Stable Audio Open (SAO) checkpoint prepared "for SR"; the paper does
not say. Loading goes through the project's one loader (``saga_hsmad.training.pretrained.load_pretrained``,
which copies every weight whose key and shape match and reports the rest); this file supplies the SAGA-SR
part, the widening of the input projections, which the loader finds as ``DiTConcat.adapt_pretrained_state``.

In SAT's ``DiffusionTransformer`` (``models/dit.py``) exactly two layers see the input channels
(z_t ⊕ z_l, dim_in = io + concat):

* ``preprocess_conv.weight`` (dim_in, dim_in, 1), applied as ``x + conv(x)``: the SAO block goes to
  [:io, :io], rows and columns of the concat channels are zero;
* ``transformer.project_in.weight`` (embed, dim_in · patch): after the ``b (t p) c -> b t (c p)`` patching the
  input index is c · patch + p, so SAO's io · patch columns are the first ones and the new columns are zero.

With an all-zero LR latent the widened model therefore computes exactly what the SAO model computes; the
new columns receive gradients as soon as the LR latent is non-zero. Everything else either matches (DiT,
``to_global_embed`` — SAO's seconds_start ⊕ seconds_total global input is 2 × 768 = 1536 wide like the two
roll-off embeddings —, ``to_cond_embed``, time embedding, and the VAE under ``pretransform.`` when the file
holds it), is new (the roll-off embedders), or is unused (SAO's ``seconds_*`` embedders).
SAO was trained with the v objective; SAGA-SR fine-tunes with rectified flow.
"""
from __future__ import annotations

import os
import typing as tp

import torch
from torch import nn

StateDict = tp.Dict[str, torch.Tensor]

# Keys relative to the dit_concat backbone (whose ``model`` is SAT's DiffusionTransformer).
PREPROCESS_KEY = "model.preprocess_conv.weight"
PROJECT_IN_KEY = "model.transformer.project_in.weight"


def widen_input_projections(state: StateDict, io_channels: int, input_concat_dim: int, patch_size: int
                            ) -> tuple[StateDict, list[str]]:
    """``state`` (backbone-relative keys) with the two input projections widened from ``io_channels`` to
    ``io_channels + input_concat_dim`` input channels, new weights zero. Keys already at the wide shape,
    or absent, are left alone. Returns (new state, widened keys)."""
    dim_in = io_channels + input_concat_dim
    state = dict(state)
    widened = []
    conv = state.get(PREPROCESS_KEY)
    if conv is not None and tuple(conv.shape) == (io_channels, io_channels, 1):
        new = conv.new_zeros(dim_in, dim_in, 1)
        new[:io_channels, :io_channels] = conv
        state[PREPROCESS_KEY] = new
        widened.append(PREPROCESS_KEY)
    proj = state.get(PROJECT_IN_KEY)
    if proj is not None and proj.ndim == 2 and proj.shape[1] == io_channels * patch_size:
        new = proj.new_zeros(proj.shape[0], dim_in * patch_size)
        new[:, :io_channels * patch_size] = proj
        state[PROJECT_IN_KEY] = new
        widened.append(PROJECT_IN_KEY)
    return state, widened


def load_pretrained(model: nn.Module, path: str | os.PathLike, verbose: bool = True):
    """Load a Stable Audio Open checkpoint (local ``.ckpt`` with ``state_dict``, or ``.safetensors``) into
    ``model`` (the diffusion wrapper whose ``.model`` is a ``dit_concat`` backbone).

    Returns the loader's report (``loaded``, ``widened``, ``mismatched``, ``new``, ``unused``; ``.summary()``)
    and prints it with ``verbose``. Raises if the DiT body loads but its input projections could be neither
    loaded nor widened (io_channels or patch_size differ). A DiT of other widths (``small.json``) only
    takes the matching tensors, e.g. the VAE, and the report says so.
    """
    from ..training.pretrained import load_pretrained as load_matching
    from .dit_concat import DiTConcat

    backbone = getattr(model, "model", None)
    if not isinstance(backbone, DiTConcat):
        raise TypeError(f"load_pretrained(SAO) expects a model whose backbone is dit_concat, got "
                        f"{type(backbone).__name__}")
    if not os.path.isfile(os.fspath(path)):
        raise FileNotFoundError(f"pretrained checkpoint {os.fspath(path)!r} does not exist; pass a local .ckpt or "
                                ".safetensors file (e.g. stable-audio-open-1.0/model.safetensors)")
    report = load_matching(model, os.fspath(path))
    projections = {f"model.{PREPROCESS_KEY}", f"model.{PROJECT_IN_KEY}"}
    bad = sorted(k for k in projections if k in report.mismatched)
    dit_keys = [k for k in model.state_dict() if k.startswith("model.model.")]
    body_loaded = sum(k.startswith("model.model.") for k in report.loaded) > len(dit_keys) // 2
    if bad and body_loaded:  # same DiT, but its input layers fit neither SAO's widths nor this model's
        raise ValueError(f"{path}: input projection(s) {bad} fit neither the SAO layout "
                         f"(io_channels={backbone.io_channels}) nor this model; check io_channels/patch_size "
                         f"against the checkpoint's model config")
    if verbose and not body_loaded:
        print(f"NOTE: {path}: this model's DiT widths differ from the checkpoint's; only matching tensors "
              "(e.g. the VAE) were loaded, the DiT keeps its initialisation")
    if verbose:
        n_pre = sum(k.startswith("pretransform.") for k in report.loaded)
        print(report.summary())
        print(f"  pretransform tensors loaded: {n_pre}"
              + ("" if n_pre else " (none in the file: the VAE keeps its initialisation; load its weights before "
                                   "training)"))
    return report
