"""saga-hsmad: SAGA-SR and HS-MAD as plug-ins for stable-audio-tools.

``install()`` makes stable-audio-tools' factories build our registered types; the functions below
build them without patching anything.
"""
from .factory import (create_diffusion_cond_from_config, create_model_from_config,
                      create_multi_conditioner_from_conditioning_config, create_pretransform_from_config,
                      create_training_wrapper_from_config)
from .patching import install

__all__ = [
    "install", "create_model_from_config", "create_diffusion_cond_from_config",
    "create_pretransform_from_config", "create_multi_conditioner_from_conditioning_config",
    "create_training_wrapper_from_config",
]
