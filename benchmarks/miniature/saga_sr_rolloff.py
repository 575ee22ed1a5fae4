#!/usr/bin/env python
"""Miniature SAGA-SR roll-off ablation (paper Table 1, "w/o roll-off" row; Fig. 3 target sweep) on the demo corpus.

    python benchmarks/miniature/saga_sr_rolloff.py [--steps 200] [--batch-size 4] [--seed 0] \
        [--output docs/miniature/saga_sr] [--run-dir /tmp/miniature/saga_sr] [--quick]

1. Trains ``model_configs/saga_sr/tiny.json`` and its twin ``tiny_no_rolloff.json`` (identical but for the two
   roll-off conditioners) with ``train.py`` on ``dataset_configs/saga_sr/demo.json``: same seed, steps, batch and
   data order (the dataset's items are a function of (seed, epoch, index) only), ``--logger csv``.
2. Evaluates both exported checkpoints with ``python -m saga_hsmad.evaluation.sr_eval`` on the held-out test split
   of the demo corpus (the paper's test protocol: Chebyshev I order 8 at 4 kHz and 8 kHz, resampling through
   2 x cutoff; ``--windows-per-clip`` windows spread over each file), captions from the corpus sidecars, the
   target roll-off stored with the model; the unprocessed LR input and the non-learned ``noise_fill`` baseline
   (training data's average spectrum above the cutoff) are rows of their own, and every system's spread over
   clips is given. The roll-off model also gets the target roll-off sweep (Spearman correlation of
   requested vs measured output roll-off).
3. Writes to ``--output``: ``results.md`` (tables, settings, wall times, the exact commands), ``results.json``,
   ``loss_curves.png`` (train/loss vs step, both models), and each model's evaluation folder
   (``eval_<model>/``: report.md, summary.json, metrics.csv, spectrogram PNGs, the sweep plot and CSV).

Checkpoints and logs stay under ``--run-dir`` (default /tmp). ``--quick`` is a smoke run (a few steps, one clip).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (COMMANDS, PYTHON, REPO, THREADS, command_line, demo_corpus, ensure_corpus, environment,  # noqa: E402
                     exported_checkpoint, fmt, git_commit, plot_loss_curves, publish, read_loss_curve, run_named, tail_mean, train_models,
                     write_json)

MODELS = {"tiny": "model_configs/saga_sr/tiny.json", "tiny_no_rolloff": "model_configs/saga_sr/tiny_no_rolloff.json"}
LABELS = {"lr_input": "unprocessed LR input", "noise_fill": "noise fill (no learning)", "tiny": "SAGA-SR tiny (roll-off)",
          "tiny_no_rolloff": "SAGA-SR tiny w/o roll-off"}
DATASET = "dataset_configs/saga_sr/demo.json"
PAPER_SPEECH = {"SAGA-SR": (1.28, 1.07), "w/o roll-off": (1.57, 1.43), "AudioSR": (1.46, 1.26)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="training seed (also the sampling seed)")
    p.add_argument("--output", default=None, help="results folder (default docs/miniature/saga_sr; "
                                                  "/tmp/miniature/quick/saga_sr with --quick)")
    p.add_argument("--run-dir", default=None, help="checkpoints and logs (default /tmp/miniature/saga_sr[_quick])")
    p.add_argument("--corpus", default=None, help="demo corpus root (default $SAGA_HSMAD_DEMO_CORPUS or the cache)")
    p.add_argument("--num-workers", type=int, default=1, help="loader workers per training")
    p.add_argument("--threads", type=int, default=1, help="torch threads per subprocess (OMP_NUM_THREADS)")
    p.add_argument("--parallel", type=int, default=2, help="trainings run at once (default 2: one per core here)")
    p.add_argument("--eval-steps", type=int, default=30, help="Euler steps at evaluation (paper: 100)")
    p.add_argument("--clip-seconds", type=float, default=2.0, help="seconds per evaluated window")
    p.add_argument("--windows-per-clip", type=int, default=3, help="windows per test file, spread from start to end")
    p.add_argument("--max-clips", type=int, default=None, help="test files used (default: all)")
    p.add_argument("--cutoffs", type=float, nargs="+", default=[4000.0, 8000.0])
    p.add_argument("--sweep-clips", type=int, default=2)
    p.add_argument("--sweep-targets", type=float, nargs="+", default=[0.2, 0.35, 0.5, 0.65, 0.8])
    p.add_argument("--skip-train", action="store_true", help="reuse the checkpoints already in --run-dir")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 steps, batch 2, 1 clip, 3 Euler steps")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.eval_steps = 3, 2, 3
        args.max_clips, args.clip_seconds, args.sweep_clips, args.windows_per_clip = 1, 1.0, 1, 1
        args.sweep_targets = [0.2, 0.5, 0.8]
    suffix = "_quick" if args.quick else ""
    args.output = Path(args.output or ("/tmp/miniature/quick/saga_sr" if args.quick else REPO / "docs/miniature/saga_sr"))
    args.run_dir = Path(args.run_dir or f"/tmp/miniature/saga_sr{suffix}")
    return args


def evaluate_job(args, name: str, corpus: Path, sweep: bool):
    """(job, output folder) of one model's sr_eval run."""
    out = args.run_dir / f"eval_{name}"
    cmd = [PYTHON, "-m", "saga_hsmad.evaluation.sr_eval", "--ckpt", str(exported_checkpoint(args.run_dir / name)),
           "--reference", str(corpus / "test"), "--caption-store", "sidecar", "--output", str(out),
           "--cutoffs", *[f"{c:g}" for c in args.cutoffs], "--clip-seconds", f"{args.clip_seconds:g}",
           "--steps", str(args.eval_steps), "--seed", str(args.seed), "--overlap", "0.1", "--batch-windows", "8",
           "--windows-per-clip", str(args.windows_per_clip), "--train-dataset-config", DATASET,
           "--plots", "1", "--sweep-clips", str(args.sweep_clips if sweep else 0), "--device", "cpu", "--overwrite"]
    if args.max_clips:
        cmd += ["--max-clips", str(args.max_clips)]
    if sweep:
        cmd += ["--sweep-targets", *[f"{t:g}" for t in args.sweep_targets]]
    return (cmd, args.run_dir / f"eval_{name}.log", None), out


def read_metrics(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{**r, "cutoff_hz": float(r["cutoff_hz"]), "lsd": float(r["lsd"]), "lsd_hf": float(r["lsd_hf"]),
                 "rolloff": float(r["rolloff"])} for r in csv.DictReader(f)]


def combine(evals: dict[str, Path]) -> tuple[list[dict], list[dict]]:
    """(mean table with the LR row once, paired per-clip differences roll-off minus no-roll-off)."""
    rows = {name: read_metrics(out / "metrics.csv") for name, out in evals.items()}
    table, paired = [], []
    for cutoff in sorted({r["cutoff_hz"] for r in rows["tiny"]}):
        for system, name in (("lr_input", "tiny"), ("noise_fill", "tiny"), ("saga_sr", "tiny"),
                             ("saga_sr", "tiny_no_rolloff")):
            sel = [r for r in rows[name] if r["cutoff_hz"] == cutoff and r["system"] == system]
            label = system if system != "saga_sr" else name
            table.append({"cutoff_hz": cutoff, "system": label, "clips": len(sel),
                          "lsd": float(np.mean([r["lsd"] for r in sel])), "lsd_hf": float(np.mean([r["lsd_hf"] for r in sel])),
                          "lsd_std": float(np.std([r["lsd"] for r in sel])),
                          "lsd_hf_std": float(np.std([r["lsd_hf"] for r in sel])),
                          "rolloff": float(np.mean([r["rolloff"] for r in sel]))})
        a = {r["clip"]: r for r in rows["tiny"] if r["cutoff_hz"] == cutoff and r["system"] == "saga_sr"}
        b = {r["clip"]: r for r in rows["tiny_no_rolloff"] if r["cutoff_hz"] == cutoff and r["system"] == "saga_sr"}
        for clip in sorted(set(a) & set(b)):
            paired.append({"clip": clip, "cutoff_hz": cutoff, "d_lsd": a[clip]["lsd"] - b[clip]["lsd"],
                           "d_lsd_hf": a[clip]["lsd_hf"] - b[clip]["lsd_hf"]})
    return table, paired


def markdown(args, table, paired, sweep, times, commands, loss_tail, env) -> str:
    lines = ["# Miniature SAGA-SR roll-off ablation (demo corpus)", "",
             f"Command: `{command_line()}`", "",
             f"- commit `{git_commit()}`; {env['cpu_count']} CPU cores, load average at start "
             f"{env['load_average_start']} (the machine was shared), torch {env['torch']}",
             f"- training: `tiny.json` vs `tiny_no_rolloff.json` (identical but for the f_l / f_h conditioners), "
             f"{args.steps} steps, batch {args.batch_size}, seed {args.seed}, demo corpus train split "
             f"(0.743 s windows, on-the-fly LR simulation of spec §1)",
             f"- evaluation: `saga_hsmad.evaluation.sr_eval`, test split, {args.windows_per_clip} window(s) of "
             f"{args.clip_seconds:g} s per file (spread from its start to its end), "
             f"cutoffs {', '.join(f'{c:g}' for c in args.cutoffs)} Hz by the paper's test protocol, Euler "
             f"{args.eval_steps} steps (paper: 100), s_a 1.4, s_t 1.2, target roll-off from the model config, "
             f"captions from the corpus sidecars, LFR on, seed {args.seed}",
             "", "## LSD / LSD-HF (lower is better)", "",
             "Mean ± standard deviation over the evaluated clips (test files × windows).", "",
             "| cutoff (Hz) | system | clips | LSD | LSD-HF | measured roll-off |", "|---|---|---|---|---|---|"]
    for e in table:
        lines.append(f"| {e['cutoff_hz']:.0f} | {LABELS[e['system']]} | {e['clips']} | {fmt(e['lsd'])} ± "
                     f"{fmt(e['lsd_std'])} | {fmt(e['lsd_hf'])} ± {fmt(e['lsd_hf_std'])} | {fmt(e['rolloff'])} |")
    lines += ["", "LSD-HF of the tiny model relative to the non-learned noise fill (negative = better than it; "
              "issue #11 asks for <= -15 %):", ""]
    for cutoff in sorted({e["cutoff_hz"] for e in table}):
        by = {e["system"]: e for e in table if e["cutoff_hz"] == cutoff}
        if "noise_fill" in by and by["noise_fill"]["clips"]:
            rel = [f"{LABELS[n]} {100 * (by[n]['lsd_hf'] / by['noise_fill']['lsd_hf'] - 1):+.1f} %"
                   for n in MODELS if n in by]
            lines.append(f"- {cutoff:.0f} Hz: " + "; ".join(rel))
    lines += ["", "Paired per clip (roll-off model minus no-roll-off model; negative = roll-off better):", "",
              "| cutoff (Hz) | clips | mean ΔLSD ± std | mean ΔLSD-HF ± std | clips where roll-off is better (LSD) |",
              "|---|---|---|---|---|"]
    for cutoff in sorted({p["cutoff_hz"] for p in paired}):
        d = np.array([p["d_lsd"] for p in paired if p["cutoff_hz"] == cutoff])
        d_hf = np.array([p["d_lsd_hf"] for p in paired if p["cutoff_hz"] == cutoff])
        lines.append(f"| {cutoff:.0f} | {len(d)} | {fmt(d.mean())} ± {fmt(d.std())} | {fmt(d_hf.mean())} ± "
                     f"{fmt(d_hf.std())} | {int((d < 0).sum())} / {len(d)} |")
    lines += ["", "For scale, the paper's speech LSD at 4 / 8 kHz (Table 1, 1.06 B parameters, 26,000 steps at batch "
              "256): SAGA-SR 1.28 / 1.07, w/o roll-off 1.57 / 1.43, AudioSR 1.46 / 1.26.", ""]
    if sweep:
        lines += ["## Target roll-off sweep (roll-off model)", "",
                  f"Cutoff {sweep['cutoff_hz']:.0f} Hz; Spearman ρ between requested and measured output roll-off: "
                  f"**{fmt(sweep['spearman'])}**, measured range over the sweep "
                  f"{fmt(min(m for _, ms in sweep['curves'].values() for m in ms))} to "
                  f"{fmt(max(m for _, ms in sweep['curves'].values() for m in ms))} (per clip: "
                  + ", ".join(f"{c}: {fmt(v)}" for c, v in sweep["per_clip"].items()) + ").", "",
                  "| clip | requested | measured |", "|---|---|---|"]
        for clip, (req, meas) in sweep["curves"].items():
            lines += [f"| {clip} | {a:.3f} | {b:.3f} |" for a, b in zip(req, meas)]
        lines += ["", "![roll-off sweep](eval_tiny/rolloff_sweep.png)", ""]
    lines += ["## Training loss", "", "![loss curves](loss_curves.png)", "",
              "| model | mean train/loss, last 20 % of steps |", "|---|---|"]
    lines += [f"| {name} | {fmt(v, 4)} |" for name, v in loss_tail.items()]
    lines += ["", "## Wall times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    lines += ["", "## Commands", ""] + [f"    {c}" for c in commands]
    lines += ["", "Per-model reports with per-clip rows and spectrograms: [eval_tiny/report.md](eval_tiny/report.md), "
              "[eval_tiny_no_rolloff/report.md](eval_tiny_no_rolloff/report.md).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    THREADS["value"] = args.threads
    start = time.time()
    print(f"command: {command_line()}", flush=True)
    env = environment()
    corpus = demo_corpus(args.corpus)
    ensure_corpus(corpus)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    times = train_models(args, MODELS, DATASET, corpus)
    jobs = {name: evaluate_job(args, name, corpus, sweep=name == "tiny") for name in MODELS}
    evals = {name: out for name, (_, out) in jobs.items()}
    times.update({f"evaluate {name}": seconds
                  for name, seconds in run_named({n: job for n, (job, _) in jobs.items()}, args.parallel).items()})
    commands = list(COMMANDS)

    table, paired = combine(evals)
    sweep = json.loads((evals["tiny"] / "summary.json").read_text())["sweep"]
    curves = {name: read_loss_curve(args.run_dir / name) for name in MODELS}
    loss_tail = {name: tail_mean(v) for name, (_, v) in curves.items()}

    args.output.mkdir(parents=True, exist_ok=True)
    plot_loss_curves(args.output / "loss_curves.png", {LABELS[n]: c for n, c in curves.items()},
                     f"SAGA-SR tiny, demo corpus, batch {args.batch_size}, seed {args.seed}")
    for name, out in evals.items():
        publish(out, args.output / f"eval_{name}")
    times["total"] = time.time() - start
    result = {"command": command_line(), "commit": git_commit(), "environment": env,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "mean": table, "paired": paired, "sweep": sweep, "loss_tail_mean": loss_tail,
              "loss_curves": {n: {"step": s, "train_loss": v} for n, (s, v) in curves.items()},
              "wall_seconds": times, "commands": commands}
    write_json(args.output / "results.json", result)
    (args.output / "results.md").write_text(markdown(args, table, paired, sweep, times, commands, loss_tail, env),
                                            encoding="utf-8")
    print((args.output / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
