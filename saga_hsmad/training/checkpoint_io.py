"""How ``train.py`` writes and reads Lightning training checkpoints.

Lightning's ``TorchCheckpointIO`` opens the final file for writing (truncating it) and then writes: a crash
or ``kill -9`` in between leaves a short or empty ``last.ckpt`` and the previous one is gone. It loads with
``torch.load``'s default, which runs arbitrary code from a crafted pickle under torch < 2.6. This subclass
overrides the two methods: saves go through ``checkpoints.atomic_write`` (temporary file, fsync, rename),
loads through ``checkpoints.load_torch_checkpoint`` (CRC-checked, weights-only unless trusted). Resuming
(``Trainer.fit(ckpt_path=...)``) reads through ``load_checkpoint``.
"""
from __future__ import annotations

import os
import typing as tp
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from ..checkpoints import atomic_write, load_torch_checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic saves, verified weights-only loads; ``trust`` allows full unpickling (``--trust-checkpoint``)."""

    def __init__(self, trust: bool = False):
        self.trust = trust

    def save_checkpoint(self, checkpoint: dict[str, tp.Any], path: str | os.PathLike,
                        storage_options: tp.Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: str | os.PathLike, map_location: tp.Any = "cpu") -> dict[str, tp.Any]:
        return load_torch_checkpoint(path, trust=self.trust, map_location=map_location)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files (``.NAME.xxxxxxxx.part``) that saves killed part-way left in ``folder``, a
    folder only this run writes to (its checkpoints, its export); returns them."""
    folder = Path(folder)
    stale = sorted(p for p in folder.glob(".*.part") if p.is_file()) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
