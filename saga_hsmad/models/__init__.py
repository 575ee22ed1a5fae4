"""Registered diffusion backbones and the blocks they share."""
from . import dit_concat, mrci_unet  # noqa: F401
