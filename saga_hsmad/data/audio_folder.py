"""Dataset type ``audio_folder``: random windows of the audio files under one or more folders, with the
text of a same-stem ``.json`` (key ``prompt_key``) or ``.txt`` file as ``prompt`` when present.

The plain (unconditional or text/number-conditioned) generation models use it; SAGA-SR and HS-MAD have
their own dataset types.
"""
from __future__ import annotations

import json
import typing as tp
from pathlib import Path

import torch

from ..audio_io import list_audio_files
from ..paths import resolve_path
from ..registry import DATASETS
from .scan import OnBadFile, keep_readable
from .windows import item_rng, read_window


@DATASETS.register("audio_folder")
class AudioFolderDataset(torch.utils.data.Dataset):
    """Args:
        roots: folder(s) searched recursively for audio files (``~`` and ``$VARS`` expanded).
        split: a subfolder of each root to use (e.g. "train"), or None for the whole root.
        prompt_key: key of the sidecar ``.json`` read as the prompt.
        random_crop: random window offsets (else from the start).
        on_bad_file: "skip" unreadable files with a warning each, or stop with an "error" (``data.scan``).
    """

    def __init__(self, roots: str | list[str], sample_size: int, sample_rate: int, audio_channels: int = 2,
                 split: str | None = None, prompt_key: str = "caption", random_crop: bool = True, seed: int = 0,
                 on_bad_file: OnBadFile = "skip"):
        roots = [roots] if isinstance(roots, str) else list(roots)
        self.files: list[Path] = []
        for root in roots:
            folder = resolve_path(root, "roots")
            if split is not None:
                folder = folder / split
            if not folder.exists():
                raise FileNotFoundError(f"audio_folder: {folder} does not exist"
                                        + (" (build the demo corpus: python -m saga_hsmad.data.demo_corpus)"
                                           if "demo_corpus" in str(folder) else ""))
            self.files += list_audio_files(folder)
        self.files = keep_readable(self.files, lambda path: [path], "audio_folder", on_bad_file, audio_channels)
        self.sample_size, self.sample_rate, self.channels = sample_size, sample_rate, audio_channels
        self.prompt_key, self.random_crop, self.seed, self.epoch = prompt_key, random_crop, seed, 0

    def __len__(self) -> int:
        return len(self.files)

    def prompt(self, path: Path) -> tp.Optional[str]:
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            value = json.loads(sidecar.read_text()).get(self.prompt_key)
            if value is not None:
                return str(value)
        text = path.with_suffix(".txt")
        return text.read_text().strip() if text.is_file() else None

    def __getitem__(self, index: int):
        path = self.files[index]
        rng = item_rng(self.seed, self.epoch, index)
        audio, mask, start, total = read_window(path, self.sample_rate, self.sample_size, self.channels, rng,
                                                self.random_crop)
        metadata = {"path": str(path), "padding_mask": mask, "seconds_start": start, "seconds_total": total}
        prompt = self.prompt(path)
        if prompt is not None:
            metadata["prompt"] = prompt
        return audio, metadata
