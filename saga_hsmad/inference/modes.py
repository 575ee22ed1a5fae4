"""Sampling modes of ``sample.py``, chosen by the model a checkpoint holds.

A mode is a module-level object with ``name``, ``matches(model_config) -> bool``, ``add_arguments(group)``
and ``run(args, model, model_config, info)``. The first registered mode whose ``matches`` is true is used
unless ``--mode`` names one.
"""
from __future__ import annotations

import argparse
import importlib
import json
import typing as tp

MODE_MODULES = (
    "saga_hsmad.inference.super_resolution",
    "saga_hsmad.inference.midi_to_audio",
    "saga_hsmad.inference.generate_mode",
)


class SampleMode(tp.Protocol):
    name: str

    def matches(self, model_config: dict) -> bool: ...
    def add_arguments(self, group) -> None: ...
    def run(self, args, model, model_config: dict, info: dict) -> int: ...


def available_modes() -> list[SampleMode]:
    modes = []
    for name in MODE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # the mode is not part of this installation (yet)
                continue
            raise
        modes.append(module.MODE)
    return modes


def diffusion_type(model_config: dict) -> str | None:
    return model_config.get("model", {}).get("diffusion", {}).get("type")


def choose_mode(modes: tp.Sequence[SampleMode], model_config: dict, name: str | None = None) -> SampleMode:
    """The mode named ``name`` (``--mode``), else the first whose ``matches`` accepts the model."""
    return next(m for m in modes if (m.name == name if name else m.matches(model_config)))


def mode_flags(mode: SampleMode) -> set[str]:
    """The option strings ``mode`` defines, on a parser of its own (modes share some, e.g. ``--crossfade``)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    mode.add_arguments(parser.add_argument_group(mode.name))
    return {option for action in parser._actions for option in action.option_strings}


def foreign_flag(given: tp.Iterable[str], mode: SampleMode, modes: tp.Sequence[SampleMode]) -> tuple[str, str] | None:
    """(flag, the mode it belongs to) for the first given flag that another mode defines and ``mode`` does not."""
    own = mode_flags(mode)
    others = {m.name: mode_flags(m) for m in modes if m is not mode}
    for flag in given:
        if flag in own:
            continue
        owner = next((name for name, flags in others.items() if flag in flags), None)
        if owner is not None:
            return flag, owner
    return None


def checkpoint_config(path: str) -> dict | None:
    """The model config stored in a checkpoint, read without building the model (a safetensors export's
    metadata; a torch checkpoint memory-mapped, tensors only), or None when it cannot be read this way (the
    full load then reports why). Used to pick the mode before the weights are loaded."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                text = (f.metadata() or {}).get("model_config")
            return json.loads(text) if text else None
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        config = ckpt.get("model_config") if isinstance(ckpt, dict) else None
        return config if isinstance(config, dict) else None
    except Exception:
        return None
