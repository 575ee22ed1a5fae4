"""Measure the default target roll-off of a SAGA-SR model and store it in its model config (spec §2).

    python -m saga_hsmad.cli.target_rolloff --dataset-config dataset_configs/saga_sr/demo.json \\
        --model-config model_configs/saga_sr/tiny.json [--n 512] [--write]

At inference the target roll-off f_h is a user control; its default is the median f_h of the training
windows (``data.sr_dataset.median_target_rolloff``), stored as ``sampling.target_rolloff`` (with
``sampling.target_rolloff_source`` saying where it came from) in the model config, which travels inside
every checkpoint. Without ``--write`` the numbers are only printed.
"""
from __future__ import annotations

import argparse
import json
import sys
import typing as tp
from pathlib import Path


def measure(dataset_config: dict, model_config: dict, n: int = 512, seed: int = 0,
            where: str = "dataset config") -> dict[str, float]:
    """Summary (n, quantiles, median, median_hz) of f_h over up to ``n`` training windows."""
    from ..data.loader import create_dataset_from_config
    from ..data.sr_dataset import SuperResolutionDataset, rolloff_summary, target_rolloffs

    dataset = create_dataset_from_config(dataset_config, where, sample_size=model_config["sample_size"],
                                         sample_rate=model_config["sample_rate"],
                                         audio_channels=model_config.get("audio_channels", 2), seed=seed)
    if not isinstance(dataset, SuperResolutionDataset):
        raise TypeError(f"{where}: dataset_type must be 'super_resolution', got {dataset_config.get('dataset_type')!r}")
    values = target_rolloffs(dataset, n)
    if values.size == 0:
        raise ValueError(f"{where}: every sampled window is silent; no roll-off to take a median of")
    return rolloff_summary(values)


def write_target_rolloff(model_config_path: str | Path, summary: dict[str, float], source: str) -> dict:
    """Set ``sampling.target_rolloff`` (and its source) in the model config file, rewritten atomically."""
    from ..checkpoints import atomic_write

    path = Path(model_config_path)
    config = json.loads(path.read_text())
    config.setdefault("sampling", {})
    config["sampling"]["target_rolloff"] = round(summary["median"], 4)
    config["sampling"]["target_rolloff_source"] = source

    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(config, indent=2) + "\n")

    atomic_write(path, write)
    return config


def main(argv: tp.Sequence[str] | None = None) -> int:
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    p = argparse.ArgumentParser(prog="python -m saga_hsmad.cli.target_rolloff", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset-config", required=True, help="the training dataset config (super_resolution)")
    p.add_argument("--model-config", required=True, help="the model config (sample size and rate; written with --write)")
    p.add_argument("--n", type=int, default=512, help="windows to measure (one per file, spread over the dataset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="store the median as sampling.target_rolloff")
    args = p.parse_args(argv)
    dataset_config = json.loads(Path(args.dataset_config).read_text())
    model_config = json.loads(Path(args.model_config).read_text())
    summary = measure(dataset_config, model_config, args.n, args.seed, args.dataset_config)
    print(json.dumps(summary, indent=2))
    if args.write:
        source = (f"median f_h of {summary['n']} windows of {args.dataset_config} "
                  f"(p10 {summary['p10']:.3f}, p90 {summary['p90']:.3f})")
        write_target_rolloff(args.model_config, summary, source)
        print(f"wrote sampling.target_rolloff = {round(summary['median'], 4)} to {args.model_config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
