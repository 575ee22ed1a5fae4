"""Silence the third-party messages that every run prints and that no user can act on, at our entry points only.

``train.py``, ``sample.py`` and the ``python -m saga_hsmad....`` commands call ``silence_third_party_noise()``
first; importing the library does not (tests, notebooks and other programs see everything). Each message is
named here with why it is harmless:

* ``No module named 'flash_attn'`` and ``flash_attn not installed, disabling Flash Attention``: printed on
  stdout by stable-audio-tools' transformer module when it is imported. flash-attn is an optional CUDA kernel;
  without it attention runs in PyTorch's ``scaled_dot_product_attention``.
* ``pkg_resources is deprecated as an API``: the ``clip`` package, imported by stable-audio-tools, imports
  setuptools' ``pkg_resources``.
* ``torch.nn.utils.weight_norm`` is deprecated: stable-audio-tools' Oobleck autoencoder (the Stable Audio Open
  VAE of the paper-size configs) builds its convolutions with it; the old API still works in our torch.
* ``isinstance(treespec, LeafSpec)`` is deprecated: PyTorch Lightning's own use of a PyTorch internal.

Everything else passes: warnings about the user's data, configs, flags or hardware are theirs to see.
``python -m saga_hsmad.data.demo_corpus`` still shows the first two: its package, ``saga_hsmad.data``, imports
stable-audio-tools (through the dataset modules it registers) before the command's ``main`` can run.
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings

KNOWN_WARNINGS = (  # (category, regular expression matched at the start of the message)
    (UserWarning, r"pkg_resources is deprecated as an API"),
    (FutureWarning, r"`torch\.nn\.utils\.weight_norm` is deprecated"),
    (Warning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)
FLASH_ATTN_LINES = ("No module named 'flash_attn'", "flash_attn not installed, disabling Flash Attention")
TRANSFORMER_MODULE = "stable_audio_tools.models.transformer"


@contextlib.contextmanager
def _without_stdout_lines(lines: tuple[str, ...]):
    """Hold back stdout while the block runs, then print it without the given lines."""
    held, real = io.StringIO(), sys.stdout
    sys.stdout = held
    try:
        yield
    finally:
        sys.stdout = real
        kept = [line for line in held.getvalue().splitlines(keepends=True) if line.rstrip("\n") not in lines]
        real.write("".join(kept))


def silence_third_party_noise() -> None:
    """Ignore ``KNOWN_WARNINGS`` and import stable-audio-tools' transformer module without its flash-attn lines
    (a module is imported once, so they would not come back later). Calling it again changes nothing."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    if TRANSFORMER_MODULE not in sys.modules:
        with _without_stdout_lines(FLASH_ATTN_LINES):
            import stable_audio_tools.models.transformer  # noqa: F401
