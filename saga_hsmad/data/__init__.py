"""Registered dataset types and loaders."""
from . import audio_folder, maestro, midi_audio_dataset, slakh, sr_dataset  # noqa: F401
