"""``python -m saga_hsmad.demo --task midi``: HS-MAD's main job on the embedded demo data, on CPU.

1. Build the demo corpus (offline, cached; reused when it exists).
2. Train the tiny HS-MAD model (``model_configs/hsmad/tiny.json``: 8 kHz mono, MDCT latents with hop 128,
   i.e. 31 Hz bands, whitened per band) on its train split with ``train.py`` (the command a user types).
3. Render every test-split MIDI with ``sample.py --midi`` to ``OUT/rendered/<stem>.wav``.
4. Score the renders against their MIDI with ``saga_hsmad.evaluation.midi_eval`` (basic-pitch note F1,
   chroma r, onset r), next to the non-learned additive-sine render (the row a model must beat) and the
   ground-truth recordings (the ceiling row); write a piano-roll-over-spectrogram PNG per piece to
   ``OUT/plots/<stem>.png``.

Everything is written under ``--out`` (default ``runs/demo_midi``).
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIG = "model_configs/hsmad/tiny.json"
DATASET_CONFIG = "dataset_configs/hsmad/demo.json"
ROW_NAMES = {"generated": "HS-MAD tiny (this run)", "sine_baseline": "additive sines (no learning)",
             "ground_truth": "ground-truth audio (ceiling)"}


def command(*args: str) -> None:
    """Run ``python <args>`` in the repository, printing the command first."""
    line = [sys.executable, *args]
    print("$", " ".join(line), flush=True)
    subprocess.run(line, cwd=str(REPO), check=True)


def exported_checkpoint(run_dir: Path) -> Path:
    """The inference checkpoint train.py wrote at the end of the run (``export.safetensors``; older versions
    of train.py wrote ``export.ckpt``)."""
    for name in ("export.safetensors", "export.ckpt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir}: train.py left no export.safetensors; see its output above")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (``--out`` and the ``--max-steps`` / ``--batch-size`` / ``--sample-steps`` shared with
    the SR demo have their own defaults there)."""
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "demo_midi")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sample-steps", type=int, default=50)


def summary_table(summary_csv: Path) -> str:
    """The evaluation's summary rows (model, non-learned baseline, ceiling) as a fixed-width table."""
    rows = {r["system"]: r for r in csv.DictReader(summary_csv.open())}
    lines = [f"{'system':<32} {'pieces':>6} {'note F1':>8} {'chroma r':>9} {'onset r':>8}"]
    for system, label in ROW_NAMES.items():
        if system in rows:
            r = rows[system]
            lines.append(f"{label:<32} {r['pieces']:>6} {float(r['f1_mean']):>8.3f} {float(r['chroma_r_mean']):>9.3f} "
                         f"{float(r['onset_r_mean']):>8.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Train, render, evaluate and plot (module docstring); ``args`` has out, max_steps, batch_size and
    sample_steps."""
    from .audio_io import read_audio
    from .data.demo_corpus import ensure_demo_corpus
    from .evaluation.midi_eval import reference_notes
    from .evaluation.midi_plots import roll_over_spectrogram

    corpus = ensure_demo_corpus()
    print(f"demo corpus: {corpus}")
    test = corpus / "test"
    out = Path(args.out).resolve()
    started = time.monotonic()
    command("train.py", "--model-config", MODEL_CONFIG, "--dataset-config", DATASET_CONFIG, "--accelerator", "cpu",
            "--max-steps", str(args.max_steps), "--batch-size", str(args.batch_size), "--num-workers", "1",
            "--seed", "0", "--checkpoint-every", str(args.max_steps), "--save-dir", str(out), "--name", "hsmad_tiny")
    trained = time.monotonic()
    ckpt = exported_checkpoint(out / "hsmad_tiny")
    command("sample.py", "--ckpt", str(ckpt), "--midi", str(test),
            "--output", str(out / "rendered"), "--steps", str(args.sample_steps), "--device", "cpu", "--seed", "0",
            "--overwrite")
    rendered = time.monotonic()
    command("-m", "saga_hsmad.evaluation.midi_eval", "--generated", str(out / "rendered"), "--midi", str(test),
            "--reference", str(test), "--out", str(out / "eval"), "--fad-embedding", "none")
    for midi in sorted(test.glob("*.mid")):
        audio, sr = read_audio(out / "rendered" / f"{midi.stem}.wav")
        notes, _ = reference_notes(midi)
        roll_over_spectrogram(out / "plots" / f"{midi.stem}.png", audio, sr, notes,
                              f"{midi.stem}: HS-MAD tiny render (spectrogram) and its MIDI (boxes)")
    print(f"\ntraining {(trained - started) / 60:.1f} min, rendering {(rendered - trained) / 60:.1f} min\n")
    print(summary_table(out / "eval" / "summary.csv"))
    print(f"\nrenders: {out / 'rendered'}\nspectrogram + piano roll: {out / 'plots'}\n"
          f"per-piece scores and transcription overlays: {out / 'eval'} (report.md, per_piece.csv, plots/)\n"
          f"checkpoint: {ckpt}")
    return 0


def main(argv=None) -> int:
    from .quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
