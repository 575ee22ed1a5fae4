"""``make demo`` / ``python -m saga_hsmad.demo``: the main job on the embedded demo data, on CPU.

1. Build the demo corpus (offline, cached; reused when it exists).
2. Train the tiny SAGA-SR model on it with ``train.py`` (the same command a user types).
3. Take a held-out test clip, make an 8 kHz, 4 kHz-band-limited copy of its first 5 s with the paper's test protocol,
   upsample it with ``sample.py``, and report LSD / LSD-HF of the input and of the output against the
   original (a model trained for a few minutes on a CPU is a smoke test, not the paper's quality).

Everything is written under ``--out`` (default ``runs/demo``).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> None:
    command = [sys.executable, *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=str(REPO), check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "demo")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sample-steps", type=int, default=10)
    args = parser.parse_args(argv)

    from .audio_io import read_audio, resample, write_audio
    from .data.demo_corpus import ensure_demo_corpus
    from .dsp.lowpass import test_protocol_lowres
    from .evaluation.lsd import lsd, lsd_hf

    corpus = ensure_demo_corpus()
    print(f"demo corpus: {corpus}")
    out = args.out.resolve()
    run("train.py", "--model-config", "model_configs/saga_sr/tiny.json",
        "--dataset-config", "dataset_configs/saga_sr/demo.json", "--accelerator", "cpu",
        "--max-steps", str(args.max_steps), "--batch-size", str(args.batch_size), "--num-workers", "1",
        "--checkpoint-every", str(args.max_steps), "--save-dir", str(out), "--name", "saga_sr_tiny")

    clip = sorted((corpus / "test").glob("*.wav"))[0]
    hr, sr = read_audio(clip)
    hr = hr[:, : sr * 5]
    lr = test_protocol_lowres(hr, sr, 4000.0)
    inputs = out / "inputs"
    write_audio(inputs / f"{clip.stem}_8k.wav", resample(lr, sr, 8000), 8000)
    write_audio(out / "reference" / clip.name, hr, sr)
    run("sample.py", "--ckpt", str(out / "saga_sr_tiny" / "export.ckpt"), "--input", str(inputs),
        "--output", str(out / "upsampled"), "--steps", str(args.sample_steps), "--device", "cpu", "--overwrite",
        "--caption", "music")
    est, _ = read_audio(out / "upsampled" / f"{clip.stem}_8k.wav")
    n = min(est.shape[1], hr.shape[1])
    print(f"\n{clip.name}: 8 kHz input  LSD {float(lsd(hr[:, :n], lr[:, :n])):.2f}  "
          f"LSD-HF {float(lsd_hf(hr[:, :n], lr[:, :n], 4000.0)):.2f}")
    print(f"{clip.name}: upsampled   LSD {float(lsd(hr[:, :n], est[:, :n])):.2f}  "
          f"LSD-HF {float(lsd_hf(hr[:, :n], est[:, :n], 4000.0)):.2f}")
    print(f"listen: {inputs}, {out / 'upsampled'}, {out / 'reference'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
