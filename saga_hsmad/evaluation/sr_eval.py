"""SAGA-SR evaluation with the paper's protocol (spec §6): LSD, LSD-HF, OpenL3 FD, spectrograms, roll-off sweep.

    python -m saga_hsmad.evaluation.sr_eval --ckpt runs/sr/export.safetensors --reference /data/vctk_test \
        --output eval/vctk --cutoffs 4000 8000 --max-clips 400 --caption-store vctk_test_captions.json

For every reference clip (HR audio; resampled to 44.1 kHz, channels kept, the first ``--clip-seconds``,
default one model window = 5.944 s for the paper config; silent clips are skipped) and every cutoff:

1. LR input by the paper's test protocol, ``dsp.lowpass.test_protocol_lowres``: Chebyshev I (0.1 dB) order 8 at
   the cutoff, zero-phase, then resampling to 2 × cutoff and back to 44.1 kHz;
2. SAGA-SR output from exactly the code ``sample.py`` runs (``inference.super_resolution.SuperResolver``:
   same windows, conditioning, guidance, LFR);
3. LSD and LSD-HF (``evaluation.lsd``) against the reference, for the output AND for the unprocessed LR input
   (the "Unprocessed" baseline row of the paper's Table 1).

Written to ``--output``: ``metrics.csv`` (one row per clip, cutoff and system), ``report.md`` (settings, mean
table, per-clip table, FD, sweep), ``summary.json``, ``spectrograms/*.png`` (LR / output / reference for the
first ``--plots`` clips) and ``rolloff_sweep.{png,csv}``: for the first ``--sweep-clips`` clips at the first
cutoff the model is run at each ``--sweep-targets`` roll-off and the output's measured roll-off is compared
with the request (Spearman correlation; the paper's Fig. 3 claim that the target controls the bandwidth).

OpenL3 Fréchet distance (``evaluation.openl3_fd``) is computed per cutoff and system only when OpenL3 is
available locally (installed ``openl3`` package, or ``--openl3-dir``); otherwise the column is absent and the
report says why. FD needs many clips (the paper uses 400 per set); with a handful it is not meaningful.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
import typing as tp
from pathlib import Path

import numpy as np

SAMPLE_RATE = 44_100
DEFAULT_SWEEP_TARGETS = (0.2, 0.35, 0.5, 0.65, 0.8)
SYSTEMS = {"lr_input": "unprocessed LR input", "noise_fill": "noise fill (no learning)", "saga_sr": "SAGA-SR"}


@dataclasses.dataclass
class Row:
    clip: str
    path: str
    cutoff_hz: float
    system: str
    lsd: float
    lsd_hf: float
    rolloff: float  # measured normalised roll-off of this signal
    seconds: float
    target_rolloff: float | None = None  # the target f_h the model was given (mean over windows); None for baselines


def parse_args(argv: tp.Sequence[str] | None = None) -> argparse.Namespace:
    from ..inference.super_resolution import add_guidance_arguments

    p = argparse.ArgumentParser(prog="python -m saga_hsmad.evaluation.sr_eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--reference", help="folder of HR reference audio (searched recursively)")
    source.add_argument("--dataset-config", help="dataset JSON whose files are the references (e.g. a test split)")
    p.add_argument("--ckpt", required=True, help="training or exported checkpoint")
    p.add_argument("--model-config", default=None, help="JSON config (only for checkpoints without one)")
    p.add_argument("--output", required=True, help="report folder")
    p.add_argument("--cutoffs", type=float, nargs="+", default=[4000.0, 8000.0], help="test cutoffs in Hz")
    p.add_argument("--max-clips", type=int, default=None, help="use the first N references (sorted by path)")
    p.add_argument("--clip-seconds", type=float, default=None,
                   help="seconds per clip from the start of each file (default: one model window)")
    p.add_argument("--windows-per-clip", type=int, default=1,
                   help="clips per file, spread evenly from its start to its end (1: the start only)")
    p.add_argument("--train-dataset-config", default=None,
                   help="the training data: adds the non-learned noise_fill row (evaluation.baselines), whose "
                        "noise has this data's average spectrum")
    p.add_argument("--steps", type=int, default=100, help="Euler steps (100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--no-ema", action="store_true", help="use the online weights even if EMA weights exist")
    add_guidance_arguments(p.add_argument_group("sampling (as sample.py's super_resolution mode)"))
    p.add_argument("--plots", type=int, default=3, help="clips with spectrogram PNGs (0: none)")
    p.add_argument("--sweep-clips", type=int, default=2, help="clips in the target roll-off sweep (0: no sweep)")
    p.add_argument("--sweep-targets", type=float, nargs="+", default=list(DEFAULT_SWEEP_TARGETS),
                   help="target roll-offs of the sweep")
    p.add_argument("--openl3-dir", default=None, help="folder with OpenL3 weight files (openl3_audio_mel256_*.h5)")
    p.add_argument("--openl3-content-type", choices=["music", "env"], default="music",
                   help="OpenL3 model: music (music) or env (sound effects)")
    p.add_argument("--save-audio", action="store_true", help="also write LR and output WAVs per clip and cutoff")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report in --output")
    return p.parse_args(argv)


# -- references --------------------------------------------------------------------------------------------
def dataset_files(dataset_config_path: str, model_config: dict, hint: str = "") -> tuple[list[Path], Path | None]:
    """(the audio files of a dataset config, its first root or None): the references of ``--dataset-config``
    and the training data of the noise_fill baseline."""
    from ..config_check import load_config
    from ..data.loader import create_dataset_from_config

    config = load_config(dataset_config_path, "dataset")
    dataset = create_dataset_from_config(config, dataset_config_path, sample_size=model_config["sample_size"],
                                         sample_rate=model_config["sample_rate"],
                                         audio_channels=model_config.get("audio_channels", 2))
    files = list(getattr(dataset, "files", []))
    if not files:
        raise ValueError(f"{dataset_config_path}: dataset type {config.get('dataset_type')!r} exposes no "
                         f"'files' list{hint}")
    roots = getattr(dataset, "roots", None)
    return files, (Path(roots[0]) if roots else None)


def reference_files(args: argparse.Namespace, model_config: dict) -> tuple[list[Path], Path | None]:
    """(sorted reference files, the folder clip names are relative to)."""
    from ..audio_io import list_audio_files

    if args.reference:
        root = Path(args.reference).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"--reference {root} does not exist")
        files = list_audio_files(root)
        root = root if root.is_dir() else root.parent
    else:
        files, root = dataset_files(args.dataset_config, model_config, " to evaluate; use --reference DIR")
    files = sorted(files)
    if not files:
        raise FileNotFoundError(f"no reference audio found ({args.reference or args.dataset_config})")
    return (files[: args.max_clips] if args.max_clips else files), root


def clip_name(path: Path, root: Path | None) -> str:
    try:
        rel = path.relative_to(root) if root is not None else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return rel.with_suffix("").as_posix()


def clip_starts(path: Path, seconds: float, count: int) -> list[float]:
    """``count`` start times (s) of ``seconds``-long clips spread evenly over ``path`` (first at 0)."""
    from ..audio_io import audio_info

    file_sr, _, frames = audio_info(path)
    span = max(frames / file_sr - seconds, 0.0)
    return [0.0] if count <= 1 or span == 0 else [span * i / (count - 1) for i in range(count)]


def load_clip(path: Path, seconds: float, sr: int = SAMPLE_RATE, start: float = 0.0) -> np.ndarray:
    """(c, n) float32 at ``sr``: ``seconds`` of ``path`` from ``start`` (s), channels kept (mono or stereo)."""
    from ..audio_io import AudioError, audio_info, read_audio, resample

    file_sr, channels, _ = audio_info(path)
    if channels not in (1, 2):
        raise AudioError(f"{path}: has {channels} channels; the evaluation takes mono or stereo references")
    audio, file_sr = read_audio(path, frames=int(math.ceil(seconds * file_sr)) + 64,
                                start=int(round(start * file_sr)))
    audio = resample(audio, file_sr, sr)[:, : int(round(seconds * sr))]
    if audio.shape[-1] == 0:
        raise AudioError(f"{path}: has no samples")
    if not np.any(audio):
        raise AudioError(f"{path}: the clip is silent (LSD is undefined on silence); skipped")
    return np.ascontiguousarray(audio, dtype=np.float32)


# -- evaluation -------------------------------------------------------------------------------------------
def measure(ref: np.ndarray, est: np.ndarray, cutoff_hz: float) -> tuple[float, float, float]:
    """(LSD, LSD-HF above the cutoff, measured roll-off of ``est``)."""
    from ..dsp.rolloff import spectral_rolloff
    from .lsd import lsd, lsd_hf

    return (float(lsd(ref, est)), float(lsd_hf(ref, est, cutoff_hz, SAMPLE_RATE)), float(spectral_rolloff(est)))


def spearman(x: tp.Sequence[float], y: tp.Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def mean_table(rows: list[Row], fd: dict[tuple[float, str], float]) -> list[dict]:
    table = []
    for cutoff in sorted({r.cutoff_hz for r in rows}):
        for system in SYSTEMS:
            sel = [r for r in rows if r.cutoff_hz == cutoff and r.system == system]
            if not sel:
                continue
            entry = {"cutoff_hz": cutoff, "system": system, "clips": len(sel),
                     "lsd": float(np.mean([r.lsd for r in sel])), "lsd_hf": float(np.mean([r.lsd_hf for r in sel])),
                     "lsd_std": float(np.std([r.lsd for r in sel])), "lsd_hf_std": float(np.std([r.lsd_hf for r in sel])),
                     "rolloff": float(np.mean([r.rolloff for r in sel]))}
            if fd:
                entry["fd_openl3"] = fd.get((cutoff, system), float("nan"))
            table.append(entry)
    return table


def write_csv(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in dataclasses.fields(Row)])
        writer.writeheader()
        for row in rows:
            writer.writerow(dataclasses.asdict(row))


def markdown_report(settings: dict, table: list[dict], rows: list[Row], fd_note: str, sweep: dict | None,
                    plots: list[str], errors: list[str]) -> str:
    lines = ["# SAGA-SR evaluation", ""]
    lines += [f"- **{k}**: {v}" for k, v in settings.items()]
    lines += ["", "## Mean over clips", "",
              "LSD and LSD-HF (log10 power, STFT 2048/512 Hann at 44.1 kHz; spec §6); lower is better. "
              "std: spread over clips. Roll-off: mean measured normalised roll-off of the signal.", ""]
    has_fd = any("fd_openl3" in e for e in table)
    header = ("| cutoff (Hz) | system | clips | LSD | LSD-HF | LSD std | LSD-HF std | roll-off |"
              + (" OpenL3 FD |" if has_fd else ""))
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for e in table:
        line = (f"| {e['cutoff_hz']:.0f} | {SYSTEMS[e['system']]} | {e['clips']} | {e['lsd']:.3f} | "
                f"{e['lsd_hf']:.3f} | {e['lsd_std']:.3f} | {e['lsd_hf_std']:.3f} | {e['rolloff']:.3f} |")
        lines.append(line + (f" {e['fd_openl3']:.2f} |" if has_fd else ""))
    lines += ["", f"OpenL3 FD: {fd_note}", "", "## Per clip", "",
              "| clip | cutoff (Hz) | LSD LR | LSD-HF LR | LSD-HF noise fill | LSD SR | LSD-HF SR | roll-off SR | "
              "target f_h given |", "|---|---|---|---|---|---|---|---|---|"]
    by_key: dict[tuple[str, float], dict[str, Row]] = {}
    for r in rows:
        by_key.setdefault((r.clip, r.cutoff_hz), {})[r.system] = r
    for (clip, cutoff), systems in by_key.items():
        lr, sr = systems.get("lr_input"), systems.get("saga_sr")
        if lr is None or sr is None:
            continue
        fill = f"{systems['noise_fill'].lsd_hf:.3f}" if "noise_fill" in systems else "n/a"
        lines.append(f"| {clip} | {cutoff:.0f} | {lr.lsd:.3f} | {lr.lsd_hf:.3f} | {fill} | {sr.lsd:.3f} | "
                     f"{sr.lsd_hf:.3f} | {sr.rolloff:.3f} | "
                     f"{'n/a' if sr.target_rolloff is None else f'{sr.target_rolloff:.3f}'} |")
    if sweep is not None:
        lines += ["", "## Target roll-off sweep", "",
                  f"Cutoff {sweep['cutoff_hz']:.0f} Hz; requested target f_h vs measured roll-off of the output. "
                  f"Spearman ρ over all points: **{sweep['spearman']:.3f}**"
                  f" (per clip: {', '.join(f'{c}: {v:.3f}' for c, v in sweep['per_clip'].items())})."
                  + (" ρ is undefined (nan) where the measured roll-off did not change at all, as with an untrained "
                     "model whose output is broadband noise." if any(np.isnan(v) for v in [sweep["spearman"],
                                                                                         *sweep["per_clip"].values()])
                     else ""), "",
                  "| clip | requested | measured |", "|---|---|---|"]
        for clip, (req, meas) in sweep["curves"].items():
            lines += [f"| {clip} | {a:.3f} | {b:.3f} |" for a, b in zip(req, meas)]
        lines += ["", "![roll-off sweep](rolloff_sweep.png)"]
    if plots:
        lines += ["", "## Spectrograms (LR input / output / reference)", ""]
        lines += [f"![{p}]({p})" for p in plots]
    if errors:
        lines += ["", "## Skipped clips", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def main(argv: tp.Sequence[str] | None = None) -> int:
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    args = parse_args(argv)
    import torch
    from tqdm import tqdm

    import saga_hsmad
    from ..audio_io import write_audio
    from ..checkpoints import load_model
    from ..dsp.lowpass import test_protocol_lowres
    from ..inference.super_resolution import SuperResolver, describe_target, make_caption_source, options_from_args
    from .baselines import REFERENCE_BAND
    from .openl3_fd import frechet_distance, gaussian_stats, load_openl3
    from .sr_plots import plot_rolloff_sweep, plot_spectrograms

    saga_hsmad.install()
    out_dir = Path(args.output)
    if (out_dir / "metrics.csv").exists() and not args.overwrite:
        print(f"ERROR: {out_dir / 'metrics.csv'} exists; pass --overwrite or choose another --output", file=sys.stderr)
        return 2
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    override = json.loads(Path(args.model_config).read_text()) if args.model_config else None
    model, model_config, info = load_model(args.ckpt, override, use_ema=not args.no_ema, device=device)
    try:
        options, rolloff_source = options_from_args(args, model_config)
        options.process_full_band = True  # the LR inputs are band-limited by construction
        captions = make_caption_source(model, model_config, args.caption, args.caption_store, args.captioner_dir,
                                       device=str(device))
        resolver = SuperResolver(model, model_config, options, captions, progress=False)
        files, root = reference_files(args, model_config)
    except (ValueError, AssertionError, OSError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 2
    clip_seconds = args.clip_seconds or resolver.window / SAMPLE_RATE
    if args.windows_per_clip < 1:
        print(f"ERROR: --windows-per-clip must be >= 1, got {args.windows_per_clip}", file=sys.stderr)
        return 2
    average_power = None
    if args.train_dataset_config:
        from .baselines import average_power_spectrum

        average_power = average_power_spectrum(dataset_files(args.train_dataset_config, model_config)[0])
    embedder, fd_note = load_openl3(args.openl3_dir, args.openl3_content_type)
    print(f"{args.ckpt}: {'EMA' if info['ema'] else 'online'} weights, device {device}; {len(files)} reference "
          f"file(s), cutoffs {args.cutoffs}; {fd_note if embedder is None else 'FD with ' + fd_note}")
    (out_dir / "spectrograms").mkdir(parents=True, exist_ok=True)
    if args.save_audio:
        (out_dir / "audio").mkdir(parents=True, exist_ok=True)

    rows: list[Row] = []
    errors: list[str] = []
    plots: list[str] = []
    embeddings: dict[tp.Any, list[np.ndarray]] = {}
    lr_cache: dict[tuple[str, float], np.ndarray] = {}  # LR inputs of the sweep clips only
    sweep_clips: list[tuple[str, Path, np.ndarray]] = []  # (name, path, HR) kept for the sweep only
    evaluated = 0
    start_time = time.time()
    clips = []
    for path in files:
        try:
            starts = clip_starts(path, clip_seconds, args.windows_per_clip)
        except Exception as e:
            errors.append(f"{path}: {e}")
            print(f"ERROR {path}: {e}", file=sys.stderr)
            continue
        clips += [(path, start) for start in starts]
    for path, start in tqdm(clips, desc="clips", unit="clip", disable=None):
        name = clip_name(path, root) + (f"@{start:.1f}s" if args.windows_per_clip > 1 else "")
        try:
            hr = load_clip(path, clip_seconds, start=start)
        except Exception as e:
            errors.append(f"{path} at {start:.1f} s: {e}")
            print(f"ERROR {path} at {start:.1f} s: {e}", file=sys.stderr)
            continue
        evaluated += 1
        if evaluated <= args.sweep_clips:
            sweep_clips.append((name, path, hr))
        seconds = hr.shape[-1] / SAMPLE_RATE
        if embedder is not None:
            embeddings.setdefault("reference", []).append(embedder(hr, SAMPLE_RATE))
        for cutoff in args.cutoffs:
            lr = test_protocol_lowres(hr, SAMPLE_RATE, cutoff)
            sr_out, sr_report = resolver.super_resolve_array(lr, SAMPLE_RATE, path=path)
            given = float(np.mean(sr_report.rolloff_target)) if sr_report.rolloff_target else None
            systems = [("lr_input", lr), ("saga_sr", sr_out)]
            if average_power is not None:
                from .baselines import noise_fill

                systems.insert(1, ("noise_fill", noise_fill(lr, cutoff, average_power, SAMPLE_RATE, seed=args.seed)))
            for system, est in systems:
                l, l_hf, rolloff = measure(hr, est, cutoff)
                rows.append(Row(name, str(path), cutoff, system, l, l_hf, rolloff, seconds,
                                given if system == "saga_sr" else None))
                if embedder is not None:
                    embeddings.setdefault((cutoff, system), []).append(embedder(est, SAMPLE_RATE))
            if evaluated <= args.sweep_clips:
                lr_cache[(name, cutoff)] = lr
            safe = name.replace("/", "__")
            if evaluated <= args.plots:
                png = f"spectrograms/{safe}_{cutoff:.0f}Hz.png"
                panels = [({"lr_input": "LR input", "noise_fill": "noise fill"}.get(system, "SAGA-SR"), est)
                          for system, est in systems]
                plot_spectrograms(out_dir / png, panels + [("reference", hr)],
                                  SAMPLE_RATE, cutoff, title=f"{name}, cutoff {cutoff:.0f} Hz")
                plots.append(png)
            if args.save_audio:
                write_audio(out_dir / "audio" / f"{safe}_{cutoff:.0f}Hz_lr.wav", lr, SAMPLE_RATE, "FLOAT")
                write_audio(out_dir / "audio" / f"{safe}_{cutoff:.0f}Hz_sr.wav", sr_out, SAMPLE_RATE, "FLOAT")
                if average_power is not None:
                    write_audio(out_dir / "audio" / f"{safe}_{cutoff:.0f}Hz_noise_fill.wav", dict(systems)["noise_fill"],
                                SAMPLE_RATE, "FLOAT")

    fd: dict[tuple[float, str], float] = {}
    if embedder is not None and "reference" in embeddings:
        ref_stats = gaussian_stats(np.concatenate(embeddings["reference"]))
        for key, parts in embeddings.items():
            if key != "reference":
                fd[key] = frechet_distance(*ref_stats, *gaussian_stats(np.concatenate(parts)))

    sweep = None
    if sweep_clips:
        cutoff = args.cutoffs[0]
        curves, per_clip = {}, {}
        for name, path, hr in sweep_clips:
            lr = lr_cache[(name, cutoff)]
            measured = [float(measure(hr, resolver.super_resolve_array(lr, SAMPLE_RATE, path=path,
                                                                       target_rolloff=target)[0], cutoff)[2])
                        for target in args.sweep_targets]
            curves[name] = (list(args.sweep_targets), measured)
            per_clip[name] = spearman(args.sweep_targets, measured)
        pooled = spearman([t for req, _ in curves.values() for t in req],
                          [m for _, meas in curves.values() for m in meas])
        sweep = {"cutoff_hz": cutoff, "spearman": pooled, "per_clip": per_clip, "curves": curves}
        plot_rolloff_sweep(out_dir / "rolloff_sweep.png", curves, pooled,
                           title=f"target roll-off sweep, cutoff {cutoff:.0f} Hz\nSpearman ρ = {pooled:.3f}")
        with open(out_dir / "rolloff_sweep.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["clip", "cutoff_hz", "requested_rolloff", "measured_rolloff"])
            for name, (req, meas) in curves.items():
                writer.writerows([name, cutoff, a, b] for a, b in zip(req, meas))

    table = mean_table(rows, fd)
    settings = {
        "checkpoint": f"{args.ckpt} ({'EMA' if info['ema'] else 'online'} weights)",
        "references": f"{args.reference or args.dataset_config}: {evaluated} clip(s) evaluated from {len(files)} "
                      f"file(s), {args.windows_per_clip} clip(s) of {clip_seconds:.3f} s per file"
                      f"{' spread from start to end' if args.windows_per_clip > 1 else ' from its start'}, "
                      "44.1 kHz, channels kept",
        "noise_fill": "LR input below the cutoff; above it Gaussian noise with the average spectrum of "
                      f"{args.train_dataset_config}, scaled to the clip's power in {REFERENCE_BAND[0]}-{REFERENCE_BAND[1]} x the "
                      "cutoff"
                      if average_power is not None else "not computed (pass --train-dataset-config)",
        "LR protocol": "Chebyshev I (0.1 dB ripple) order 8 at the cutoff, zero-phase, resampled to 2 x cutoff "
                       "and back",
        "cutoffs (Hz)": ", ".join(f"{c:.0f}" for c in args.cutoffs),
        "sampler": f"Euler, {options.steps} steps, linear-quadratic (reference {options.reference_steps})",
        "guidance": f"s_a {options.cfg_acoustic}, s_t {options.cfg_text} (eq. 4, one batched forward per step)",
        "target roll-off": describe_target(options, rolloff_source),
        "captions": captions.description,
        "LFR": "on" if options.lfr else "off",
        "windows": f"{resolver.window} samples, overlap {resolver.overlap}, {options.crossfade} crossfade",
        "seed": options.seed,
        "time": f"{time.time() - start_time:.1f} s on {device}",
    }
    write_csv(out_dir / "metrics.csv", rows)
    (out_dir / "report.md").write_text(markdown_report(settings, table, rows, fd_note if not fd else
                                                       f"computed with {fd_note} (reference set: the HR clips)",
                                                       sweep, plots, errors), encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps({"settings": settings, "mean": table, "sweep": sweep,
                                                      "fd_note": fd_note, "errors": errors}, indent=1),
                                          encoding="utf-8")
    for e in table:
        print(f"cutoff {e['cutoff_hz']:.0f} Hz, {SYSTEMS[e['system']]:>22}: LSD {e['lsd']:.3f}, LSD-HF "
              f"{e['lsd_hf']:.3f} ({e['clips']} clips)" + (f", FD {e['fd_openl3']:.2f}" if 'fd_openl3' in e else ""))
    if sweep is not None:
        print(f"roll-off sweep: Spearman {sweep['spearman']:.3f}")
    print(f"report: {out_dir / 'report.md'}")
    return 0 if evaluated else 1


if __name__ == "__main__":
    sys.exit(main())
