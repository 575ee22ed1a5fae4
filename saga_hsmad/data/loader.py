"""Data loaders for registered dataset types.

stable-audio-tools' own loader factory knows a fixed list of dataset types and hard-codes
``persistent_workers=True`` (so ``num_workers=0`` raises); this one builds any registered type and
passes loader options through. A dataset config may also set ``"repeat": k`` (see ``RepeatedDataset``).
Items are ``(audio (c, n), metadata)``; the batch is ``(audio (b, c, n), [metadata, ...])`` with each
padding mask wrapped in a one-element list, the form stable-audio-tools 0.0.19's training step indexes.
"""
from __future__ import annotations

import typing as tp

import numpy as np
import torch

from ..registry import DATASETS


def collate(items: tp.Sequence[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    audio = torch.stack([a for a, _ in items])
    metadata = []
    for _, md in items:
        md = dict(md)
        if "padding_mask" in md and isinstance(md["padding_mask"], torch.Tensor):
            md["padding_mask"] = [md["padding_mask"]]
        metadata.append(md)
    return audio, metadata


NON_CONSTRUCTOR_KEYS = ("dataset_type", "loader", "repeat")


MAX_REPEAT = 10_000  # an epoch of repeat x items is shuffled as one permutation of that many indices


def repeat_problem(dataset_config: dict) -> str | None:
    """What is wrong with the config's ``repeat`` (default 1), or None: an integer in 1..``MAX_REPEAT``."""
    repeat = dataset_config.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        return f"must be a positive integer (passes over the data per epoch), got {repeat!r}"
    if repeat > MAX_REPEAT:
        return f"must be at most {MAX_REPEAT} (passes over the data per epoch), got {repeat}"
    return None


def check_repeat(dataset_config: dict, where: str = "dataset config") -> int:
    """The config's ``repeat`` (default 1); anything but a positive integer is an error naming the key."""
    problem = repeat_problem(dataset_config)
    if problem is not None:
        raise ValueError(f"{where}.repeat: {problem}")
    return dataset_config.get("repeat", 1)


class RepeatedDataset(torch.utils.data.Dataset):
    """``repeat`` passes over ``dataset`` per epoch, each pass with its own random windows.

    Item ``j`` of epoch ``e`` is item ``j mod n`` of the wrapped dataset at its epoch ``e * repeat + j // n``,
    so draws stay a function of (seed, epoch, index) and no two passes repeat a window. For a small corpus
    this replaces many tiny epochs (each re-creating the loader workers) by a few long ones; with
    ``repeat`` 1 the wrapper is not used at all.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, repeat: int):
        self.dataset, self.repeat, self.epoch = dataset, repeat, 0

    def __len__(self) -> int:
        return len(self.dataset) * self.repeat

    def __getitem__(self, index: int):
        n = len(self.dataset)
        if hasattr(self.dataset, "epoch"):
            self.dataset.epoch = self.epoch * self.repeat + index // n
        return self.dataset[index % n]


def create_dataset_from_config(dataset_config: dict, where: str = "dataset config", **context: tp.Any):
    """A registered dataset from ``{"dataset_type": ..., **constructor kwargs}`` plus loader context
    (``sample_size``, ``sample_rate``, ``audio_channels``, ``seed``), each passed if accepted."""
    from ..factory import construct

    if "dataset_type" not in dataset_config:
        raise KeyError(f"{where}: 'dataset_type' is missing")
    config = {k: v for k, v in dataset_config.items() if k not in NON_CONSTRUCTOR_KEYS}
    cls = DATASETS.get(dataset_config["dataset_type"], f"{where}.dataset_type")
    return construct(cls, config, where, **context)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def create_dataloader_from_config(dataset_config: dict, batch_size: int, sample_size: int, sample_rate: int,
                                  audio_channels: int = 2, num_workers: int = 0, shuffle: bool = True,
                                  seed: int = 0, where: str = "dataset config", drop_last: bool | None = None,
                                  downsampling_ratio: int | None = None):
    """``downsampling_ratio`` is the model's pretransform ratio (latent frame rate = sample_rate / ratio),
    passed to datasets that render time-aligned conditions (HS-MAD's piano roll); those datasets refuse to
    start without it."""
    dataset = create_dataset_from_config(dataset_config, where, sample_size=sample_size, sample_rate=sample_rate,
                                         audio_channels=audio_channels, seed=seed,
                                         downsampling_ratio=downsampling_ratio)
    if len(dataset) == 0:
        raise ValueError(f"{where}: the dataset is empty")
    repeat = check_repeat(dataset_config, where)
    if repeat > 1:
        dataset = RepeatedDataset(dataset, repeat)
    loader_options = dataset_config.get("loader", {})
    generator = torch.Generator().manual_seed(seed)
    if drop_last is None:
        drop_last = len(dataset) >= batch_size
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate,
        persistent_workers=False,  # re-created each epoch, so workers see the dataset's new epoch
        pin_memory=torch.cuda.is_available(), drop_last=drop_last,
        worker_init_fn=_seed_worker, generator=generator, **loader_options)
