"""``make demo`` / ``python -m saga_hsmad.demo``: the main job on the embedded demo data, on CPU.

``--task sr`` (default), SAGA-SR:

1. Build the demo corpus (offline, cached; reused when it exists).
2. Train the tiny SAGA-SR model on it with ``train.py`` (the same command a user types).
3. Evaluate it on the whole test split with ``saga_hsmad.evaluation.sr_eval`` (the first 5 s of every test file,
   band-limited to 4 and 8 kHz by the paper's test protocol) against two systems that learn nothing: the
   unprocessed LR input and ``noise_fill`` (the LR input plus noise with the training data's average spectrum
   above the cutoff). Prints the table, writes one spectrogram PNG (input / noise fill / output / reference)
   and the audio to listen to.

``--task midi``, HS-MAD: ``saga_hsmad.demo_midi`` (``python -m saga_hsmad.demo --task midi --help``).

Everything is written under ``--out`` (default ``runs/demo``; ``runs/demo_midi`` for ``--task midi``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from .evaluation.sr_eval import SYSTEMS

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIG = "model_configs/saga_sr/tiny.json"
DATASET_CONFIG = "dataset_configs/saga_sr/demo.json"
DEFAULT_STEPS = 600  # about 10 minutes of training on a 2-core CPU


def run(*args: str) -> None:
    command = [sys.executable, *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=str(REPO), check=True)


def main(argv=None) -> int:
    from .quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    task = argparse.ArgumentParser(add_help=False)
    task.add_argument("--task", choices=["sr", "midi"], default="sr",
                      help="sr: SAGA-SR super-resolution (default); midi: HS-MAD MIDI-to-audio (saga_hsmad.demo_midi)")
    known, rest = task.parse_known_args(argv)
    if known.task == "midi":
        from . import demo_midi

        return demo_midi.main(rest)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[task])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "demo")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sample-steps", type=int, default=20, help="Euler steps of the sampler")
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="seconds from the start of each test file")
    args = parser.parse_args(rest)
    if args.max_steps < 1 or args.batch_size < 1 or args.sample_steps < 1 or not args.clip_seconds > 0:
        parser.error("--max-steps, --batch-size and --sample-steps must be >= 1 and --clip-seconds > 0")

    from .data.demo_corpus import ensure_demo_corpus

    corpus = ensure_demo_corpus()
    print(f"demo corpus: {corpus}")
    out = args.out.resolve()
    run("train.py", "--model-config", MODEL_CONFIG, "--dataset-config", DATASET_CONFIG, "--accelerator", "cpu",
        "--max-steps", str(args.max_steps), "--batch-size", str(args.batch_size), "--num-workers", "1",
        "--checkpoint-every", str(args.max_steps), "--save-dir", str(out), "--name", "saga_sr_tiny")
    evaluation = out / "evaluation"
    run("-m", "saga_hsmad.evaluation.sr_eval", "--ckpt", str(out / "saga_sr_tiny" / "export.safetensors"),
        "--reference", str(corpus / "test"), "--output", str(evaluation), "--clip-seconds", str(args.clip_seconds),
        "--cutoffs", "4000", "8000", "--steps", str(args.sample_steps), "--train-dataset-config", DATASET_CONFIG,
        "--caption", "music", "--plots", "1", "--sweep-clips", "0", "--save-audio", "--device", "cpu",
        "--overwrite")
    summary = json.loads((evaluation / "summary.json").read_text())
    print("\n" + results_table(summary["mean"]))
    pngs = sorted((evaluation / "spectrograms").glob("*_4000Hz.png"))
    if pngs:
        shutil.copyfile(pngs[0], out / "spectrograms.png")
        print(f"spectrograms (input / noise fill / output / reference): {out / 'spectrograms.png'}")
    print(f"listen: {evaluation / 'audio'}; full report: {evaluation / 'report.md'}")
    return 0


def results_table(mean: list[dict]) -> str:
    """The demo's table: per cutoff, LSD and LSD-HF of each system, and whether the model beats both
    systems that learn nothing on both measures."""
    lines = [f"{'cutoff':>7}  {'system':<26} {'clips':>5}  {'LSD':>6}  {'LSD-HF':>6}"]
    for cutoff in sorted({e["cutoff_hz"] for e in mean}):
        rows = {e["system"]: e for e in mean if e["cutoff_hz"] == cutoff}
        for system, e in rows.items():
            lines.append(f"{cutoff / 1000:>5.0f} k  {SYSTEMS.get(system, system):<26} {e['clips']:>5}  "
                         f"{e['lsd']:>6.3f}  {e['lsd_hf']:>6.3f}")
        model = rows.get("saga_sr")
        rivals = [rows[s] for s in ("lr_input", "noise_fill") if s in rows]
        if model is not None and rivals:
            beats = all(model[k] < r[k] for r in rivals for k in ("lsd", "lsd_hf"))
            lines.append(f"{'':>9}tiny SAGA-SR beats the LR input and noise fill on LSD and LSD-HF: "
                         f"{'yes' if beats else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
