"""Registered pretransform types."""
from . import dac_local, log_stft, mdct_pretransform, patch_pretransform  # noqa: F401
