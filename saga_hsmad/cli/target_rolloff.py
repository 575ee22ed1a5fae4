"""Measure the default target roll-off of a SAGA-SR model and store it in its model config (spec §2).

    python -m saga_hsmad.cli.target_rolloff --dataset-config dataset_configs/saga_sr/demo.json \\
        --model-config model_configs/saga_sr/tiny.json [--n 512] [--predictor [--draws 4] [--k 5]] [--write]

At inference the target roll-off f_h is a user control; its default is the median f_h of the training
windows (``data.sr_dataset.median_target_rolloff``), stored as ``sampling.target_rolloff`` (with
``sampling.target_rolloff_source`` saying where it came from) in the model config, which travels inside
every checkpoint. With ``--predictor`` it also fits the per-window predictor of ``inference.rolloff_predictor``
(f_h from the LR window alone) on the training windows and their simulated LR versions, stored as
``sampling.target_rolloff_predictor``. Without ``--write`` the numbers are only printed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import typing as tp
from pathlib import Path


def sr_dataset(dataset_config: dict, model_config: dict, seed: int = 0, where: str = "dataset config"):
    """The ``super_resolution`` training dataset of ``dataset_config`` at the model's window size and rate."""
    from ..data.loader import create_dataset_from_config
    from ..data.sr_dataset import SuperResolutionDataset

    dataset = create_dataset_from_config(dataset_config, where, sample_size=model_config["sample_size"],
                                         sample_rate=model_config["sample_rate"],
                                         audio_channels=model_config.get("audio_channels", 2), seed=seed)
    if not isinstance(dataset, SuperResolutionDataset):
        raise TypeError(f"{where}: dataset_type must be 'super_resolution', got {dataset_config.get('dataset_type')!r}")
    return dataset


def measure(dataset_config: dict, model_config: dict, n: int = 512, seed: int = 0,
            where: str = "dataset config") -> dict[str, float]:
    """Summary (n, quantiles, median, median_hz) of f_h over up to ``n`` training windows."""
    from ..data.sr_dataset import rolloff_summary, target_rolloffs

    values = target_rolloffs(sr_dataset(dataset_config, model_config, seed, where), n)
    if values.size == 0:
        raise ValueError(f"{where}: every sampled window is silent; no roll-off to take a median of")
    return rolloff_summary(values)


def fit_predictor(dataset_config: dict, model_config: dict, draws: int = 4, k: int = 5, max_windows: int = 2048,
                  seed: int = 0, where: str = "dataset config"):
    """A ``RolloffPredictor`` fitted on ``draws`` passes of the training dataset's own (LR, f_h) windows."""
    from ..inference.rolloff_predictor import dataset_pairs, fit_rolloff_predictor

    dataset = sr_dataset(dataset_config, model_config, seed, where)
    predictor = fit_rolloff_predictor(dataset_pairs(dataset, draws, max_windows), model_config["sample_rate"], k)
    predictor.source = (f"fitted on {len(predictor.targets)} windows of {where} ({draws} draws of window and LR "
                        f"filter, seed {seed})")
    return predictor


def config_json(config: dict) -> str:
    """``json.dumps(config, indent=2)`` with every list of numbers on one line (the predictor's rows)."""
    text = json.dumps(config, indent=2)
    number = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
    flat = re.compile(r"\[\s*(" + number + r"(?:,\s*" + number + r")*)\s*\]")
    return flat.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def write_target_rolloff(model_config_path: str | Path, summary: dict[str, float] | None, source: str = "",
                         predictor: dict | None = None) -> dict:
    """Set ``sampling.target_rolloff`` and its source (unless ``summary`` is None) and the predictor (when given)
    in the model config file, rewritten atomically."""
    from ..checkpoints import atomic_write

    path = Path(model_config_path)
    config = json.loads(path.read_text())
    config.setdefault("sampling", {})
    if summary is not None:
        config["sampling"]["target_rolloff"] = round(summary["median"], 4)
        config["sampling"]["target_rolloff_source"] = source
    if predictor is not None:
        config["sampling"]["target_rolloff_predictor"] = predictor

    def write(tmp: str) -> None:
        Path(tmp).write_text(config_json(config) + "\n")

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
    p.add_argument("--predictor", action="store_true",
                   help="also fit the per-window predictor of f_h from the LR window (sampling.target_rolloff_predictor)")
    p.add_argument("--draws", type=int, default=4, help="passes over the data for the predictor (other windows, LR filters)")
    p.add_argument("--k", type=int, default=5, help="neighbours of the predictor")
    p.add_argument("--only-predictor", action="store_true",
                   help="fit and write the predictor only; keep the stored sampling.target_rolloff")
    p.add_argument("--write", action="store_true",
                   help="store the median as sampling.target_rolloff (and the predictor, with --predictor)")
    args = p.parse_args(argv)
    dataset_config = json.loads(Path(args.dataset_config).read_text())
    model_config = json.loads(Path(args.model_config).read_text())
    if args.draws < 1 or args.k < 1:
        p.error("--draws and --k must be >= 1")
    summary = None
    if not args.only_predictor:
        summary = measure(dataset_config, model_config, args.n, args.seed, args.dataset_config)
        print(json.dumps(summary, indent=2))
    predictor = None
    if args.predictor or args.only_predictor:
        fitted = fit_predictor(dataset_config, model_config, args.draws, args.k, seed=args.seed,
                               where=args.dataset_config)
        print(f"predictor: {fitted.k}-nearest neighbours, {fitted.source}")
        predictor = fitted.to_config()
    if args.write:
        source = "" if summary is None else (f"median f_h of {summary['n']} windows of {args.dataset_config} "
                                             f"(p10 {summary['p10']:.3f}, p90 {summary['p90']:.3f})")
        write_target_rolloff(args.model_config, summary, source, predictor)
        written = ([] if summary is None else [f"sampling.target_rolloff = {round(summary['median'], 4)}"]) + (
            ["sampling.target_rolloff_predictor"] if predictor else [])
        print(f"wrote {' and '.join(written)} to {args.model_config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
