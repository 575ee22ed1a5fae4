"""Registered pretransform types."""
from . import patch_pretransform  # noqa: F401  (registers "patch")
