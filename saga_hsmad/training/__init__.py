"""Registered training wrappers and schedulers."""
from . import diffusion_cond  # noqa: F401
