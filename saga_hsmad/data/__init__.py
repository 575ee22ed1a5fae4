"""Registered dataset types and loaders."""
from . import audio_folder  # noqa: F401
