"""Registered pretransform types."""
from . import dac_local, patch_pretransform  # noqa: F401
