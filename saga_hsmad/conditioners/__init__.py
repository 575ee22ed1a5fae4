"""Registered conditioner types."""
from . import rolloff, t5_local  # noqa: F401
