"""Registered conditioner types."""
from . import t5_local  # noqa: F401
