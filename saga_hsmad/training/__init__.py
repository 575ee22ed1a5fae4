"""Registered training wrappers and schedulers."""
from . import aux_losses, diffusion_cond  # noqa: F401
