"""Checkpoints: the model config travels inside every file, so a checkpoint alone rebuilds its model.

Two kinds are read:
* a Lightning training checkpoint (``train.py``): ``state_dict`` of the training wrapper
  (``diffusion.*``, EMA copies under ``diffusion_ema.ema_model.*`` and ``conditioner_ema.ema_model.*``),
  optimizer state, and ``model_config``;
* an inference checkpoint (``train.py --export``): ``state_dict`` of the model alone, EMA weights already
  in place, and ``model_config``; ``.ckpt`` (torch) or ``.safetensors`` (config in the metadata).
"""
from __future__ import annotations

import json
import os
import tempfile
import typing as tp
from pathlib import Path

import torch

EMA_PREFIXES = {"diffusion_ema.ema_model.": "model.", "conditioner_ema.ema_model.": "conditioner.conditioners."}


def atomic_write(path: str | os.PathLike, write: tp.Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and rename it into place, so a crash never
    leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_inference_checkpoint(path: str | os.PathLike, state_dict: dict, model_config: dict | None,
                              ema: bool, use_safetensors: bool = False) -> None:
    if model_config is None:
        raise ValueError("an inference checkpoint needs the model config; build the wrapper with from_config")
    if use_safetensors or str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        meta = {"model_config": json.dumps(model_config), "ema": json.dumps(ema)}
        atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp, meta))
    else:
        atomic_write(path, lambda tmp: torch.save(
            {"state_dict": state_dict, "model_config": model_config, "ema": ema}, tmp))


def read_checkpoint(path: str | os.PathLike, with_ema_flag: bool = False):
    """(state_dict, model_config or None, kind) where kind is "training" or "inference"; with
    ``with_ema_flag`` also whether an exported file records EMA weights (read in the same pass)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        config = json.loads(meta["model_config"]) if "model_config" in meta else None
        result = (load_file(str(path)), config, "inference")
        return (*result, json.loads(meta.get("ema", "false"))) if with_ema_flag else result
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path} cannot be read: {e}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {path} has no 'state_dict'; is it a saga-hsmad or stable-audio-tools checkpoint?")
    state = ckpt["state_dict"]
    kind = "training" if any(k.startswith("diffusion.") for k in state) else "inference"
    result = (state, ckpt.get("model_config"), kind)
    return (*result, bool(ckpt.get("ema", False))) if with_ema_flag else result


def model_state_dict(state: dict, kind: str, use_ema: bool = True) -> tuple[dict, bool]:
    """The model's own state dict from a checkpoint's, with EMA weights in place when asked and present."""
    if kind == "inference":
        return state, False
    model_state = {k[len("diffusion."):]: v for k, v in state.items() if k.startswith("diffusion.")}
    used_ema = False
    if use_ema:
        for prefix, target in EMA_PREFIXES.items():
            for k, v in state.items():
                if k.startswith(prefix):
                    model_state[target + k[len(prefix):]] = v
                    used_ema = True
    return model_state, used_ema


def load_model(path: str | os.PathLike, model_config: dict | None = None, use_ema: bool = True,
               device: str | torch.device = "cpu"):
    """(model in eval mode, model_config, info) from any checkpoint this project writes.

    ``model_config`` overrides the embedded one (needed only for checkpoints without it).
    """
    from .factory import create_model_from_config

    state, embedded, kind, exported_ema = read_checkpoint(path, with_ema_flag=True)
    config = model_config or embedded
    if config is None:
        raise ValueError(f"checkpoint {path} carries no model config; pass --model-config")
    model = create_model_from_config(config)
    model_state, used_ema = model_state_dict(state, kind, use_ema)
    missing, unexpected = model.load_state_dict(model_state, strict=False)
    # Frozen pretransform weights may legitimately be absent (loaded from their own path).
    missing = [k for k in missing if not k.startswith("pretransform.")]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit its model config: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}")
    info = {"kind": kind, "ema": used_ema if kind == "training" else exported_ema}
    return model.to(device).eval().requires_grad_(False), config, info
