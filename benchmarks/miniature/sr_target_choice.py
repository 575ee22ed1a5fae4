"""Which target roll-off serves a SAGA-SR checkpoint best: the stored default, each clip's true f_h, or the
per-window predictor (``inference.rolloff_predictor``), against noise fill.

    python benchmarks/miniature/sr_target_choice.py --ckpt RUN/export.safetensors \
        [--reference CORPUS/test] [--train-dataset-config dataset_configs/saga_sr/demo.json] [--out per_clip.csv]

Per reference file (first ``--clip-seconds`` s) and cutoff (the paper's test protocol), LSD / LSD-HF of:
``noise_fill``; the model with the config's ``sampling.target_rolloff``; with the clip's own f_h (``oracle``:
measured on the HR reference, which a user does not have); with the predictor fitted on the training dataset
config (``cli.target_rolloff.fit_predictor``, 4 draws, k 5). The same sampler settings as ``make demo``'s
evaluation (20 Euler steps, s_a 1.4, s_t 1.2, caption "music", seed 0). Prints a row per clip and the means,
and writes them to ``--out`` as CSV.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

CHOICES = ("default", "oracle", "predicted")


def main() -> None:
    corpus = Path(os.environ.get("SAGA_HSMAD_DEMO_CORPUS", Path.home() / ".cache/saga_hsmad/demo_corpus"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--reference", default=str(corpus / "test"), help="folder of HR references")
    p.add_argument("--train-dataset-config", default="dataset_configs/saga_sr/demo.json")
    p.add_argument("--cutoffs", type=float, nargs="+", default=[4000.0, 8000.0])
    p.add_argument("--clip-seconds", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default=None, help="CSV of the per-clip rows")
    args = p.parse_args()

    import saga_hsmad
    from saga_hsmad.checkpoints import load_model
    from saga_hsmad.cli.target_rolloff import fit_predictor
    from saga_hsmad.dsp.lowpass import test_protocol_lowres
    from saga_hsmad.dsp.rolloff import spectral_rolloff
    from saga_hsmad.evaluation.baselines import average_power_spectrum, noise_fill
    from saga_hsmad.evaluation.sr_eval import SAMPLE_RATE, dataset_files, load_clip, measure
    from saga_hsmad.inference.super_resolution import FixedCaption, SROptions, SuperResolver

    saga_hsmad.install()
    model, config, _ = load_model(args.ckpt, None, use_ema=True, device=torch.device("cpu"))
    dataset_config = json.loads(Path(args.train_dataset_config).read_text())
    predictor = fit_predictor(dataset_config, config, where=args.train_dataset_config)
    print(f"predictor: {predictor.source}")
    resolver = SuperResolver(model, config, SROptions(steps=args.steps, target_rolloff=config["sampling"]["target_rolloff"]),
                             FixedCaption("music", "music"), progress=False)
    train_files, _ = dataset_files(args.train_dataset_config, config)
    average = average_power_spectrum(train_files)
    rows = []
    for path in sorted(Path(args.reference).rglob("*.wav")):
        hr = load_clip(path, args.clip_seconds)
        true_fh = float(spectral_rolloff(torch.from_numpy(hr)))
        for cutoff in args.cutoffs:
            torch.manual_seed(0)
            lr = test_protocol_lowres(hr, SAMPLE_RATE, cutoff)
            row = {"clip": path.stem, "cutoff_hz": cutoff, "true_fh": true_fh,
                   "predicted_fh": predictor(torch.from_numpy(lr), SAMPLE_RATE)}
            row["lsd_noise_fill"], row["lsd_hf_noise_fill"], _ = measure(
                hr, noise_fill(lr, cutoff, average, SAMPLE_RATE, seed=0), cutoff)
            for choice, target in zip(CHOICES, (None, true_fh, row["predicted_fh"])):
                out, _ = resolver.super_resolve_array(lr, SAMPLE_RATE, path=path, target_rolloff=target)
                row[f"lsd_{choice}"], row[f"lsd_hf_{choice}"], _ = measure(hr, out, cutoff)
            rows.append(row)
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    for cutoff in args.cutoffs:
        sel = [r for r in rows if r["cutoff_hz"] == cutoff]
        means = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if k.startswith("lsd")}
        print(f"{cutoff:.0f} Hz, mean over {len(sel)} clips: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows)


if __name__ == "__main__":
    main()
