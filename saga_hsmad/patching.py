"""``install()``: make stable-audio-tools' own factories build our registered types.

Besides the model and training-wrapper factories it replaces the data-loader and demo-callback factories
that stable-audio-tools' own ``train.py`` calls (``saga_hsmad.sat_scripts``).

stable-audio-tools imports several factories by value (``from .factory import
create_pretransform_from_config`` and so on), so replacing the defining module's attribute is not
enough: every module that holds the original function object gets the replacement. Modules imported
later read the patched attribute of the defining module and so get it too. Idempotent.
"""
from __future__ import annotations

import importlib
import sys

# (defining module, function name, our module that holds the replacement) for every factory we take over.
_TARGETS = (
    ("stable_audio_tools.models.factory", "create_model_from_config", "factory"),
    ("stable_audio_tools.models.factory", "create_pretransform_from_config", "factory"),
    ("stable_audio_tools.models.diffusion", "create_diffusion_cond_from_config", "factory"),
    ("stable_audio_tools.models.conditioners", "create_multi_conditioner_from_conditioning_config", "factory"),
    ("stable_audio_tools.training.factory", "create_training_wrapper_from_config", "factory"),
    # for stable-audio-tools' own train.py (see saga_hsmad.sat_scripts)
    ("stable_audio_tools.data.dataset", "create_dataloader_from_config", "sat_scripts"),
    ("stable_audio_tools.training.factory", "create_demo_callback_from_config", "sat_scripts"),
)
# Modules that import the factories by value and must be loaded before we patch them. (models.lm
# needs x_transformers, which stable-audio-tools does not declare; if it is imported it is patched too.)
_IMPORT_FIRST = (
    "stable_audio_tools", "stable_audio_tools.models", "stable_audio_tools.models.diffusion",
    "stable_audio_tools.models.pretrained",
    "stable_audio_tools.models.autoencoders", "stable_audio_tools.training",
)

_originals: dict = {}


def originals() -> dict:
    """stable-audio-tools' own factory functions, whether or not ``install()`` has run."""
    if not _originals:
        for module, name, _ in _TARGETS:
            _originals[name] = getattr(importlib.import_module(module), name)
    return _originals


def _patched_sites(original) -> list[tuple[object, str]]:
    sites = []
    for mod_name, module in list(sys.modules.items()):
        if not mod_name.startswith("stable_audio_tools") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                sites.append((module, attr))
    return sites


def install() -> None:
    """Patch every site of every factory in ``_TARGETS``; calling it again changes nothing."""
    from . import registry

    if _installed():
        return
    found = originals()
    for module in _IMPORT_FIRST:
        importlib.import_module(module)
    registry.load_plugins()
    for _, name, ours in _TARGETS:
        replacement = _replacement(name, ours)
        for module, attr in _patched_sites(found[name]):
            setattr(module, attr, replacement)


def _replacement(name: str, ours: str):
    return getattr(importlib.import_module(f"{__package__}.{ours}"), name)


def _installed() -> bool:
    from . import factory
    module = sys.modules.get("stable_audio_tools.models.diffusion")
    return module is not None and module.create_diffusion_cond_from_config is factory.create_diffusion_cond_from_config


def installed_sites() -> dict[str, list[str]]:
    """For each factory, the ``module.attribute`` sites that now hold our replacement (for tests)."""
    return {name: [f"{m.__name__}.{a}" for m, a in _patched_sites(_replacement(name, ours))]
            for _, name, ours in _TARGETS}
