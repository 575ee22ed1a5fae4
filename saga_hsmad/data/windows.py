"""Random fixed-length windows from audio files, shared by the dataset types.

Each draw is a function of (seed, epoch, index) only, so a run is reproducible whatever the number of
loader workers. In training a dataset's ``epoch`` is its pass over the files, set per item from the sampled
index (``loader.RepeatedDataset``, ``loader.ResumableSampler``), so a resumed run draws the same windows.
"""
from __future__ import annotations

import numpy as np
import torch

from ..audio_io import AudioError, audio_info, read_audio, resample


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def to_channels(audio: np.ndarray, channels: int, path) -> np.ndarray:
    """Mono → copies for each channel; equal channel counts unchanged; anything else is an error."""
    if audio.shape[0] == channels:
        return audio
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    raise AudioError(f"{path}: has {audio.shape[0]} channels; this dataset uses {channels} "
                     "(mono files are duplicated, other counts are not guessed)")


def read_window(path, sample_rate: int, sample_size: int, channels: int, rng: np.random.Generator,
                random_crop: bool = True) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """(audio (channels, sample_size), padding mask (sample_size,) True on real audio, seconds_start,
    seconds_total) from a random offset anywhere in the file (uniform over valid starts)."""
    sr, _, frames = audio_info(path)
    if frames == 0:
        raise AudioError(f"{path}: has no samples")
    need = int(np.ceil(sample_size * sr / sample_rate)) + (0 if sr == sample_rate else 64)
    start = int(rng.integers(0, frames - need + 1)) if (random_crop and frames > need) else 0
    audio, _ = read_audio(path, frames=need, start=start)
    audio = resample(audio, sr, sample_rate)[:, :sample_size]
    audio = to_channels(audio, channels, path)
    n = audio.shape[1]
    out = np.zeros((channels, sample_size), dtype=np.float32)
    out[:, :n] = audio
    mask = torch.zeros(sample_size, dtype=torch.bool)
    mask[:n] = True
    return torch.from_numpy(out), mask, start / sr, frames / sr
