"""What stable-audio-tools' own scripts (its repository's ``train.py``, ``unwrap_model.py`` ...) need from us.

``install()`` puts the two factories below in place of stable-audio-tools' own, beside the model factories:

* ``create_dataloader_from_config`` with upstream's signature. Upstream's knows a fixed list of dataset
  types and returns ``None`` for any other, so its ``train.py`` got no data for ``super_resolution`` or
  ``midi_audio_folder``. Registered types now get our loader; upstream's own types go to its builder.
* ``create_demo_callback_from_config``: models trained by our wrappers get our ``DemoCallback`` (upstream's
  crashes on an empty ``demo_cond``), or no demos when the config has no ``training.demo`` (upstream's
  requires that section).

Two things upstream's ``train.py`` does not pass reach the loader through ``loader_context``, which
``python -m saga_hsmad.cli.sat`` fills from the script's flags: the model's pretransform ratio (HS-MAD's piano
roll is rendered at the latent frame rate) and the dataset config files, so that errors name them.
"""
from __future__ import annotations

import contextlib
import json
import typing as tp
from pathlib import Path

import torch

from .data.loader import ResumableSampler

_loader_context: dict[str, tp.Any] = {}

# DataLoader attributes carried over when a loader is rebuilt around another sampler.
_LOADER_ATTRIBUTES = ("batch_size", "num_workers", "collate_fn", "pin_memory", "drop_last", "timeout",
                      "worker_init_fn", "multiprocessing_context", "generator", "prefetch_factor",
                      "persistent_workers", "pin_memory_device")


@contextlib.contextmanager
def loader_context(downsampling_ratio: int | None = None,
                   dataset_configs: tp.Mapping[str, dict] | None = None) -> tp.Iterator[None]:
    """Within it, ``create_dataloader_from_config`` passes ``downsampling_ratio`` to the datasets and names
    the file of ``dataset_configs`` (path → its JSON) whose content it is given in errors."""
    previous = dict(_loader_context)
    _loader_context.update(downsampling_ratio=downsampling_ratio, dataset_configs=dict(dataset_configs or {}))
    try:
        yield
    finally:
        _loader_context.clear()
        _loader_context.update(previous)


def pretransform_ratio(model_config: dict) -> int:
    """The downsampling ratio of the model's pretransform (1 without one), from a built pretransform since
    only the pretransform knows it for every type (weights are not loaded)."""
    from .factory import create_pretransform_from_config

    pretransform = model_config.get("model", {}).get("pretransform")
    if not pretransform:
        return 1
    return create_pretransform_from_config(pretransform, model_config["sample_rate"]).downsampling_ratio


class UpstreamLoopSampler(ResumableSampler):
    """A ``ResumableSampler`` for upstream's ``train.py``, which has no ``DataPosition`` callback to place it.

    For training (``advance``) every iteration is the next epoch: new order, new random windows (placed by
    nothing, every epoch would repeat the first). Resuming through upstream's script therefore restores the
    weights but starts the data at epoch 0. Validation keeps epoch 0: the same windows each time.
    It yields the whole epoch in every process: upstream's Trainer keeps Lightning's distributed sampler
    (``use_distributed_sampler`` on), which splits this order between processes; split here too, each
    process would see 1/w of its 1/w share.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, advance: bool = True):
        super().__init__(n, seed, shuffle)
        self.advance = advance

    @staticmethod
    def world() -> tuple[int, int]:
        return 0, 1

    def __iter__(self) -> tp.Iterator[int]:
        order = self.order(self.epoch)[self.start:]
        if self.advance:
            self.place(self.epoch + 1)
        yield from (int(i) for i in order)


def create_dataloader_from_config(dataset_config: dict, batch_size: int, sample_size: int, sample_rate: int,
                                  audio_channels: int = 2, num_workers: int = 4, shuffle: bool = True):
    """stable-audio-tools' loader factory (same signature): a registered ``dataset_type`` gets our loader
    (seeded from torch's seed, which upstream's ``train.py`` has just set with ``seed_everything``) around an
    ``UpstreamLoopSampler``; any other type goes to upstream's builder."""
    from . import patching
    from .data.loader import create_dataloader_from_config as saga_loader
    from .registry import DATASETS

    if dataset_config.get("dataset_type") not in DATASETS:
        return patching.originals()["create_dataloader_from_config"](
            dataset_config, batch_size=batch_size, sample_size=sample_size, sample_rate=sample_rate,
            audio_channels=audio_channels, num_workers=num_workers, shuffle=shuffle)
    files = _loader_context.get("dataset_configs", {})
    where = next((path for path, config in files.items() if config == dataset_config), "dataset config")
    loader = saga_loader(dataset_config, batch_size, sample_size, sample_rate, audio_channels=audio_channels,
                         num_workers=num_workers, shuffle=shuffle, seed=torch.initial_seed() % 2**32, where=where,
                         downsampling_ratio=_loader_context.get("downsampling_ratio"))
    sampler = UpstreamLoopSampler(loader.sampler.n, loader.sampler.seed, shuffle=shuffle, advance=shuffle)
    return torch.utils.data.DataLoader(loader.dataset, sampler=sampler,
                                       **{k: getattr(loader, k) for k in _LOADER_ATTRIBUTES})


def create_demo_callback_from_config(model_config: dict, **kwargs):
    """stable-audio-tools' demo callback factory (same signature): for models trained by our wrappers, our
    ``DemoCallback`` writing to ``<--save-dir>/demos``, or a callback that does nothing when the config has
    no ``training.demo``; other models get upstream's callback."""
    import pytorch_lightning as pl

    from . import patching
    from .factory import construct, trained_by_our_wrapper
    from .training.callbacks import DemoCallback

    if not trained_by_our_wrapper(model_config):
        return patching.originals()["create_demo_callback_from_config"](model_config, **kwargs)
    demo = model_config.get("training", {}).get("demo")
    if not demo:
        return pl.Callback()
    return construct(DemoCallback, demo, "training.demo", sample_rate=model_config["sample_rate"])


def flag_value(args: tp.Sequence[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in ``args`` (the last one), or None."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def context_from_flags(args: tp.Sequence[str]) -> dict:
    """``loader_context`` arguments from a stable-audio-tools script's ``--model-config``,
    ``--dataset-config`` and ``--val-dataset-config`` (flags it does not have are simply absent)."""
    from .config_check import load_config

    context: dict[str, tp.Any] = {"dataset_configs": {}}
    model_path = flag_value(args, "--model-config")
    if model_path:
        context["downsampling_ratio"] = pretransform_ratio(load_config(model_path, "model", validate=False))
    for flag in ("--dataset-config", "--val-dataset-config"):
        path = flag_value(args, flag)
        if path and Path(path).is_file():
            context["dataset_configs"][path] = json.loads(Path(path).read_text())
    return context
