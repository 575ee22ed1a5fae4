"""Sampling modes of ``sample.py``, chosen by the model a checkpoint holds.

A mode is a module-level object with ``name``, ``matches(model_config) -> bool``, ``add_arguments(group)``
and ``run(args, model, model_config, info)``. The first registered mode whose ``matches`` is true is used
unless ``--mode`` names one.
"""
from __future__ import annotations

import importlib
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
