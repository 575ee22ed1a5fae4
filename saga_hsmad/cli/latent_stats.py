"""Per-band latent statistics of a corpus, written into a model config's pretransform.

    python -m saga_hsmad.cli.latent_stats --model-config model_configs/saga_sr/tiny.json \
        --dataset-config dataset_configs/saga_sr/demo.json --windows 256 --output my_tiny.json

Encodes ``--windows`` random training windows with the config's pretransform (its ``band_std`` ignored),
measures the RMS of every latent channel in each window, and writes the config with
``model.pretransform.config.band_std`` set to a per-band level of those RMS values (relative to ``scale``:
encode divides by ``scale · band_std``). ``--statistic``:

* ``rms`` (default): the RMS over all windows and frames, so the corpus' latents have unit variance.
* ``log_mean``: the geometric mean over windows, i.e. a typical window's level. Band levels of music vary by
  30–40 dB between windows (p10–p90 of the demo corpus' top bands), and the power average is set by the
  loudest ones (drums): 13–17 dB above a typical window in the top octaves there. Measured on the tiny
  SAGA-SR model, this was worse: the loud windows' latents are then 10-100x the prior's variance, they
  dominate the loss, and after 500 steps samples were louder than with ``rms`` (high band 56 vs 47 dB on the
  probe clip, whose reference is at 23 dB).

Bands quieter than
``--floor`` times the loudest band are raised to that floor, so a band that is empty in the corpus does not
blow up whatever a model puts there. Works for pretransforms that take ``band_std`` (``mdct``).

For a pretransform that also takes ``band_mean`` (``log_stft``: dB values, not zero-mean coefficients), the
statistic is each channel's mean and standard deviation over all windows and frames (``--statistic`` is
ignored), written as ``band_mean`` and ``band_std``; a std below ``--min-std`` (in the pretransform's own
units, dB) is raised to it, so a bin that sits at the floor in the whole corpus is not scaled up without bound.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import typing as tp
from pathlib import Path

import numpy as np


def window_band_rms(model_config: dict, dataset_config: dict, where: str, windows: int, seed: int = 0) -> np.ndarray:
    """(windows, channels) RMS per latent channel of each of ``windows`` random dataset windows, with the
    config's pretransform built without ``band_std`` (but with its ``scale``)."""
    import torch

    from ..data.loader import create_dataset_from_config
    from ..registry import PRETRANSFORMS

    spec = model_config["model"]["pretransform"]
    config = {k: v for k, v in spec["config"].items() if k != "band_std"}
    pretransform = PRETRANSFORMS.get(spec["type"])(**config)
    dataset = create_dataset_from_config(dataset_config, where, sample_size=model_config["sample_size"],
                                         sample_rate=model_config["sample_rate"],
                                         audio_channels=model_config.get("audio_channels", 2), seed=seed,
                                         downsampling_ratio=pretransform.downsampling_ratio)
    rng = np.random.default_rng(seed)
    rms = []
    with torch.no_grad():
        for i, index in enumerate(rng.integers(0, len(dataset), size=windows)):
            if hasattr(dataset, "epoch"):
                dataset.epoch = i  # new random windows for repeated indices
            audio = dataset[int(index)][0]
            z = pretransform.encode(audio[None].double())[0]  # (channels, frames)
            rms.append(z.square().mean(dim=-1).sqrt().numpy())
    return np.stack(rms)


def window_band_moments(model_config: dict, dataset_config: dict, where: str, windows: int,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per latent channel, over ``windows`` random dataset windows and all their frames, of the
    values a ``band_mean`` / ``band_std`` pretransform standardises (both statistics left out of its config)."""
    import torch

    from ..data.loader import create_dataset_from_config
    from ..registry import PRETRANSFORMS

    spec = model_config["model"]["pretransform"]
    config = {k: v for k, v in spec["config"].items() if k not in ("band_std", "band_mean")}
    pretransform = PRETRANSFORMS.get(spec["type"])(**config)
    dataset = create_dataset_from_config(dataset_config, where, sample_size=model_config["sample_size"],
                                         sample_rate=model_config["sample_rate"],
                                         audio_channels=model_config.get("audio_channels", 2), seed=seed,
                                         downsampling_ratio=pretransform.downsampling_ratio)
    rng = np.random.default_rng(seed)
    total, squares, count = 0.0, 0.0, 0
    with torch.no_grad():
        for i, index in enumerate(rng.integers(0, len(dataset), size=windows)):
            if hasattr(dataset, "epoch"):
                dataset.epoch = i  # new random windows for repeated indices
            audio = dataset[int(index)][0]
            z = pretransform.encode(audio[None].float())[0].double()  # (channels, frames), standardised by defaults
            values = z * pretransform.latent_std.double() + pretransform.latent_mean.double()
            total = total + values.sum(dim=-1).numpy()
            squares = squares + values.square().sum(dim=-1).numpy()
            count += values.shape[-1]
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))


def with_band_moments(model_config: dict, mean: np.ndarray, std: np.ndarray, min_std: float) -> dict:
    """A copy of ``model_config`` whose pretransform config carries ``band_mean`` and ``band_std`` (the std raised
    to ``min_std``; 4 significant digits)."""
    config = copy.deepcopy(model_config)
    pretransform = config["model"]["pretransform"]["config"]
    pretransform["band_mean"] = [float(f"{v:.4g}") for v in mean]
    pretransform["band_std"] = [float(f"{v:.4g}") for v in np.maximum(std, min_std)]
    return config


def band_level(rms: np.ndarray, statistic: tp.Literal["rms", "log_mean"] = "rms") -> np.ndarray:
    """(channels,) level per band of (windows, channels) window RMS values: geometric mean over the
    non-silent windows (``log_mean``) or the RMS over all windows (``rms``, equal frames per window)."""
    if statistic == "rms":
        return np.sqrt(np.mean(np.square(rms), axis=0))
    if statistic != "log_mean":
        raise ValueError(f"statistic must be 'log_mean' or 'rms', got {statistic!r}")
    audible = rms > 1e-9 * float(rms.max())  # digitally silent windows have no level to average
    logs = np.where(audible, np.log(np.maximum(rms, 1e-300)), 0.0)
    count = audible.sum(axis=0)
    return np.where(count > 0, np.exp(logs.sum(axis=0) / np.maximum(count, 1)), 0.0)


def with_band_std(model_config: dict, level: np.ndarray, floor: float) -> dict:
    """A copy of ``model_config`` whose pretransform config carries ``band_std`` (floored, 4 significant digits)."""
    std = np.maximum(level, floor * float(level.max()))
    config = copy.deepcopy(model_config)
    config["model"]["pretransform"]["config"]["band_std"] = [float(f"{v:.4g}") for v in std]
    return config


def main(argv: tp.Sequence[str] | None = None) -> int:
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    p = argparse.ArgumentParser(prog="python -m saga_hsmad.cli.latent_stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-config", required=True)
    p.add_argument("--dataset-config", required=True, help="the training data (its random windows are measured)")
    p.add_argument("--windows", type=int, default=256)
    p.add_argument("--floor", type=float, default=1e-3, help="minimum band std relative to the loudest band")
    p.add_argument("--statistic", choices=["rms", "log_mean"], default="rms",
                   help="band level: geometric mean of the windows' RMS (a typical window) or the overall RMS")
    p.add_argument("--min-std", type=float, default=1.0,
                   help="minimum band std of a band_mean pretransform, in its own units (log_stft: dB)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True, help="where to write the model config with band_std")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    args = p.parse_args(argv)

    import saga_hsmad
    from ..config_check import load_config

    saga_hsmad.install()
    model_config = load_config(args.model_config, "model")
    dataset_config = load_config(args.dataset_config, "dataset")
    if args.windows < 1 or not (0 < args.floor < 1) or not args.min_std > 0:
        print("ERROR: --windows must be >= 1, --floor in (0, 1) and --min-std > 0", file=sys.stderr)
        return 2
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        print(f"ERROR {out}: exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    if "band_std" not in _accepted_keys(model_config):
        print(f"ERROR {args.model_config}: pretransform type {model_config['model']['pretransform']['type']!r} "
              "takes no band_std", file=sys.stderr)
        return 2
    from ..checkpoints import atomic_write

    def write(config: dict) -> None:
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8"))

    if "band_mean" in _accepted_keys(model_config):
        mean, std = window_band_moments(model_config, dataset_config, args.dataset_config, args.windows, args.seed)
        write(with_band_moments(model_config, mean, std, args.min_std))
        print(f"{out}: band_mean / band_std from {args.windows} windows; means {mean.min():.1f} .. {mean.max():.1f}, "
              f"stds {std.min():.2f} .. {std.max():.2f}")
        return 0
    rms = band_level(window_band_rms(model_config, dataset_config, args.dataset_config, args.windows, args.seed),
                     args.statistic)
    write(with_band_std(model_config, rms, args.floor))
    db = 20 * np.log10(np.maximum(rms, 1e-30) / rms.max())
    print(f"{out}: band_std ({args.statistic}) from {args.windows} windows; bands span {db.min():.1f} .. 0 dB "
          f"(median {np.median(db):.1f} dB)")
    return 0


def _accepted_keys(model_config: dict) -> set[str]:
    import inspect

    from ..registry import PRETRANSFORMS

    cls = PRETRANSFORMS.get(model_config["model"]["pretransform"]["type"])
    return set(inspect.signature(cls.__init__).parameters)


if __name__ == "__main__":
    sys.exit(main())
