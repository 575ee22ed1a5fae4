"""Registered conditioner types."""
from . import hierarchical_midi, rolloff, sentence_style, t5_local  # noqa: F401
