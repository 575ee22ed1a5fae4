"""Data loaders for registered dataset types.

stable-audio-tools' own loader factory knows a fixed list of dataset types and hard-codes
``persistent_workers=True`` (so ``num_workers=0`` raises); this one builds any registered type and
passes loader options through. A dataset config may also set ``"repeat": k`` (see ``RepeatedDataset``).
The order and the random windows are a function of (seed, position in the run) (``ResumableSampler``), so a
run resumed at step k sees the batches an uninterrupted run sees from step k + 1 on.
A training dataset that offers ``draw_probabilities()`` (the ``super_resolution`` type's duration-weighted,
domain-balanced sampling) is read through ``WeightedDraws``: each position of a pass draws a file by those
probabilities, as a function of (seed, pass, position), so resuming keeps reproducing the data.
Items are ``(audio (c, n), metadata)``; the batch is ``(audio (b, c, n), [metadata, ...])`` with each
padding mask wrapped in a one-element list, the form stable-audio-tools 0.0.19's training step indexes.
"""
from __future__ import annotations

import math
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
    this replaces many tiny epochs (each re-creating the loader workers) by a few long ones.

    ``index`` may run past ``len(self)``: ``ResumableSampler`` yields item ``j`` of epoch ``e`` as
    ``e * len(self) + j`` (with ``self.epoch`` left at 0), which reads the same draw. The pass is then carried
    by the index itself, in whichever process reads it, so nothing depends on when loader workers start.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, repeat: int = 1):
        self.dataset, self.repeat, self.epoch = dataset, repeat, 0

    def __len__(self) -> int:
        return len(self.dataset) * self.repeat

    def __getitem__(self, index: int):
        n = len(self.dataset)
        if hasattr(self.dataset, "epoch"):
            self.dataset.epoch = self.epoch * self.repeat + index // n
        return self.dataset[index % n]


class WeightedDraws(torch.utils.data.Dataset):
    """``draws`` positions per pass; position ``j`` of pass ``e`` reads item ``i`` of ``dataset`` drawn with
    ``probabilities`` from ``default_rng([seed, e, j, 1])``, i.i.d. with replacement.

    The wrapped dataset's ``epoch`` is set to ``e * draws + j`` before reading, so every draw has its own
    window and filter (``item_rng(seed, epoch, i)``) even when one file is drawn many times in a pass.
    ``RepeatedDataset`` sets this wrapper's ``epoch`` like any dataset's.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, probabilities: np.ndarray, draws: int, seed: int = 0):
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.shape != (len(dataset),) or (probabilities < 0).any() or probabilities.sum() <= 0:
            raise ValueError(f"WeightedDraws: need {len(dataset)} non-negative probabilities with a positive sum")
        if draws < 1:
            raise ValueError(f"WeightedDraws: draws per pass must be >= 1, got {draws}")
        self.dataset, self.draws, self.seed, self.epoch = dataset, int(draws), seed, 0
        self.cumulative = np.cumsum(probabilities / probabilities.sum())

    def __len__(self) -> int:
        return self.draws

    def item(self, index: int) -> int:
        """The wrapped item that position ``index`` of the current pass reads."""
        u = np.random.default_rng([self.seed, self.epoch, index, 1]).random() * self.cumulative[-1]
        return min(int(np.searchsorted(self.cumulative, u, side="right")), len(self.cumulative) - 1)

    def __getitem__(self, index: int):
        item = self.item(index)
        if hasattr(self.dataset, "epoch"):
            self.dataset.epoch = self.epoch * self.draws + index
        return self.dataset[item]


def weighted_draws(dataset: torch.utils.data.Dataset, seed: int) -> torch.utils.data.Dataset:
    """``dataset`` read through ``WeightedDraws`` when it asks for weighted sampling, else unchanged."""
    probabilities = getattr(dataset, "draw_probabilities", lambda: None)()
    if probabilities is None:
        return dataset
    return WeightedDraws(dataset, probabilities, dataset.draws_per_pass(), seed)


def position_at(global_step: int, batches_per_epoch: int, accumulate: int = 1) -> tuple[int, int]:
    """(epoch, batches of it already trained) after ``global_step`` optimizer steps.

    Lightning steps every ``accumulate`` batches and at the last batch of an epoch, so an epoch of
    ``batches_per_epoch`` batches holds ceil(batches_per_epoch / accumulate) steps.
    """
    steps_per_epoch = math.ceil(batches_per_epoch / accumulate)
    epoch, step = divmod(global_step, steps_per_epoch)
    return epoch, step * accumulate


class ResumableSampler(torch.utils.data.Sampler[int]):
    """The training order as a function of (seed, epoch, position in the epoch).

    Epoch ``e`` visits the ``n`` items in the order ``default_rng([seed, e]).permutation(n)`` (0..n-1 when
    not shuffled) and yields item ``j`` as ``e * n + j``, so ``RepeatedDataset`` draws its window at that
    epoch. ``place(epoch, start)`` makes the next iteration begin at item ``start`` of ``epoch``: the
    ``DataPosition`` callback calls it from the global step when training starts or resumes and at each
    epoch. With several processes (DDP) rank r of w takes every w-th item of the epoch's order, padded by
    wrapping to equal length as ``DistributedSampler`` does; ``start`` counts this rank's items.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.start = 0, 0

    @staticmethod
    def world() -> tuple[int, int]:
        """(rank, world size) of the process group, (0, 1) without one."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        return math.ceil(self.n / self.world()[1])

    def order(self, epoch: int) -> np.ndarray:
        """This rank's indices for ``epoch`` (each ``epoch * n + j``)."""
        rank, size = self.world()
        items = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        return epoch * self.n + np.resize(items, len(self) * size)[rank::size]

    def place(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= len(self):
            raise ValueError(f"start {start} is outside the epoch's {len(self)} items")
        self.epoch, self.start = epoch, start

    def __iter__(self) -> tp.Iterator[int]:
        yield from (int(i) for i in self.order(self.epoch)[self.start:])


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
    start without it. The sampler is a ``ResumableSampler``; in training the ``DataPosition`` callback
    places it at the trainer's global step."""
    dataset = create_dataset_from_config(dataset_config, where, sample_size=sample_size, sample_rate=sample_rate,
                                         audio_channels=audio_channels, seed=seed,
                                         downsampling_ratio=downsampling_ratio)
    if len(dataset) == 0:
        raise ValueError(f"{where}: the dataset is empty")
    if shuffle:  # training; a validation loader reads every item once
        dataset = weighted_draws(dataset, seed)
    dataset = RepeatedDataset(dataset, check_repeat(dataset_config, where))
    loader_options = dataset_config.get("loader", {})
    generator = torch.Generator().manual_seed(seed)
    if drop_last is None:
        drop_last = len(dataset) >= batch_size
    # workers are kept across epochs: a fresh worker per epoch cost ~3 s each, 15 % of the tiny HS-MAD demo's
    # training time with its 38-step epochs; stable-audio-tools' unconditional True raises with num_workers 0.
    # The dataset config's "loader" options override this and the other defaults.
    options = {**dict(num_workers=num_workers, persistent_workers=num_workers > 0,
                      pin_memory=torch.cuda.is_available(), drop_last=drop_last), **loader_options}
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=ResumableSampler(len(dataset), seed, shuffle), collate_fn=collate,
        worker_init_fn=_seed_worker, generator=generator, **options)
