"""Registered pretransform types."""
from . import dac_local, mdct_pretransform, patch_pretransform  # noqa: F401
