#!/usr/bin/env python
"""Miniature HS-MAD structure experiment (seed: hierarchical vs global vs flat symbol conditioning; w_H sweep).

    python benchmarks/miniature/hsmad_structure.py [--steps 60] [--batch-size 4] [--seed 0] [--seconds 4] \
        [--output docs/miniature/hsmad] [--run-dir /tmp/miniature/hsmad] [--quick]

1. Trains ``model_configs/hsmad/tiny.json`` (hierarchical: F_event / F_local / F_global at the three U-Net levels)
   and its twins ``tiny_baseline_global.json`` (symbols pooled into the bottleneck only) and
   ``tiny_baseline_flat.json`` (F_event at the high level only) with ``train.py`` on
   ``dataset_configs/hsmad/demo.json``: same seed, steps, batch and data, ``--logger csv``.
2. Cuts the held-out test pieces of the demo corpus to their first ``--seconds`` seconds (the MIDI with mido,
   tempo map kept, sounding notes closed at the cut; the sidecar JSON with the style text copied along) and
   renders them with ``sample.py --midi`` (decoupled guidance, w_H from the config unless swept, seed fixed).
3. Scores every model with ``python -m saga_hsmad.evaluation.midi_eval`` (basic-pitch transcription; note F1 on
   onsets at 50 ms, TAE, bias, velocity r; the ground-truth audio through the same transcriber is the ceiling
   row; piano-roll overlays per piece), and the tiny model again at each ``--wh-sweep`` structure weight.
4. Writes to ``--output``: ``results.md`` (tables, settings, wall times, exact commands), ``results.json``,
   ``loss_curves.png`` (flow loss vs step, three models), ``aux_losses.png`` (tiny model's auxiliary heads),
   ``wh_sweep.png``, and per-system evaluation folders (report.md, CSVs, piano-roll PNGs).

Checkpoints, generated audio and logs stay under ``--run-dir`` (default /tmp). ``--quick`` is a smoke run.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (COMMANDS, PYTHON, REPO, THREADS, command_line, demo_corpus, ensure_corpus, environment,  # noqa: E402
                     exported_checkpoint, fmt, git_commit, plot_loss_curves, publish, pyplot, read_loss_curve,
                     run_named, shrink_png, tail_mean, train_models, write_json)

MODELS = {"tiny": "model_configs/hsmad/tiny.json",
          "tiny_baseline_global": "model_configs/hsmad/tiny_baseline_global.json",
          "tiny_baseline_flat": "model_configs/hsmad/tiny_baseline_flat.json"}
LABELS = {"tiny": "HS-MAD tiny (hierarchical)", "tiny_baseline_global": "Baseline-Global",
          "tiny_baseline_flat": "Baseline-Flat", "ground_truth": "ground-truth audio (ceiling)",
          "sine_baseline": "additive sines of the MIDI (no learning)"}
DATASET = "dataset_configs/hsmad/demo.json"
AUX = ("train/aux_chroma", "train/aux_beat", "train/aux_tempo", "train/aux_key")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=900, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                   help="compared models (default all three; 'tiny' is always included)")
    p.add_argument("--seed", type=int, default=0, help="training seed (also the sampling seed)")
    p.add_argument("--output", default=None, help="results folder (default docs/miniature/hsmad; "
                                                  "/tmp/miniature/quick/hsmad with --quick)")
    p.add_argument("--run-dir", default=None, help="checkpoints, audio, logs (default /tmp/miniature/hsmad[_quick])")
    p.add_argument("--corpus", default=None, help="demo corpus root (default $SAGA_HSMAD_DEMO_CORPUS or the cache)")
    p.add_argument("--num-workers", type=int, default=1, help="loader workers per training")
    p.add_argument("--threads", type=int, default=1, help="torch threads per subprocess (OMP_NUM_THREADS)")
    p.add_argument("--parallel", type=int, default=2, help="trainings run at once (default 2: one per core here)")
    p.add_argument("--seconds", type=float, default=8.0, help="evaluate the first S seconds of each test piece")
    p.add_argument("--max-pieces", type=int, default=None, help="test pieces used (default: all)")
    p.add_argument("--gen-steps", type=int, default=20, help="Euler steps when generating (config default: 50)")
    p.add_argument("--wh-sweep", type=float, nargs="*", default=[0.0, 4.0],
                   help="extra w_H values for the tiny model (the config's w_H is always evaluated)")
    p.add_argument("--fad", action="store_true", help="also compute the CREPE FAD (slow on a CPU)")
    p.add_argument("--skip-train", action="store_true", help="reuse the checkpoints already in --run-dir")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 steps, batch 2, 1 piece of 1.5 s, 3 Euler steps")
    args = p.parse_args(argv)
    args.models = ["tiny"] + [m for m in args.models if m != "tiny"]
    if args.quick:
        args.steps, args.batch_size, args.gen_steps = 2, 2, 3
        args.max_pieces, args.seconds, args.wh_sweep = 1, 1.5, [0.0]
    suffix = "_quick" if args.quick else ""
    args.output = Path(args.output or ("/tmp/miniature/quick/hsmad" if args.quick else REPO / "docs/miniature/hsmad"))
    args.run_dir = Path(args.run_dir or f"/tmp/miniature/hsmad{suffix}")
    return args


# -- data ----------------------------------------------------------------------------------------------------
def seconds_to_tick(mid, seconds: float) -> int:
    """The tick at ``seconds`` under the file's merged tempo map."""
    import mido

    tempo, now, tick = 500_000, 0.0, 0
    for msg in mido.merge_tracks(mid.tracks):
        dt = mido.tick2second(msg.time, mid.ticks_per_beat, tempo)
        if now + dt >= seconds:
            break
        now, tick = now + dt, tick + msg.time
        if msg.type == "set_tempo":
            tempo = msg.tempo
    return tick + int(round(mido.second2tick(seconds - now, mid.ticks_per_beat, tempo)))


def truncate_midi(src: Path, dst: Path, seconds: float) -> None:
    """Copy ``src`` up to ``seconds``: every event before the cut (tempo map, programs, pedal), notes still
    sounding at the cut closed there, end of track at the cut (so the piece lasts exactly ``seconds``)."""
    import mido

    mid = mido.MidiFile(src)
    cut = seconds_to_tick(mid, seconds)
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for track in mid.tracks:
        new, now, last, sounding = mido.MidiTrack(), 0, 0, {}
        for msg in track:
            now += msg.time
            if msg.type == "end_of_track" or now >= cut:
                continue
            key = (getattr(msg, "channel", None), getattr(msg, "note", None))
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[key] = sounding.get(key, 0) + 1
            elif msg.type in ("note_on", "note_off") and sounding.get(key):
                sounding[key] -= 1
            new.append(msg.copy(time=now - last))
            last = now
        for (channel, note), count in sounding.items():
            for _ in range(count):
                new.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=cut - last))
                last = cut
        new.append(mido.MetaMessage("end_of_track", time=max(0, cut - last)))
        out.tracks.append(new)
    dst.parent.mkdir(parents=True, exist_ok=True)
    out.save(dst)


def prepare_pieces(args, corpus: Path) -> Path:
    """``RUN/midi_<S>s/<stem>.mid`` (cut) + ``<stem>.json`` (style) for the test pieces; returns the folder."""
    folder = args.run_dir / f"midi_{args.seconds:g}s"
    if folder.exists():
        shutil.rmtree(folder)
    mids = sorted((corpus / "test").glob("*.mid"))[: args.max_pieces]
    for mid in mids:
        truncate_midi(mid, folder / mid.name, args.seconds)
        shutil.copy(mid.with_suffix(".json"), folder / f"{mid.stem}.json")
    print(f"{len(mids)} test piece(s), first {args.seconds:g} s each, in {folder}")
    return folder


# -- stages --------------------------------------------------------------------------------------------------
def generate_job(args, name: str, midi_dir: Path, tag: str, w_h: float | None):
    """(job, output folder) of one sample.py --midi run."""
    out = args.run_dir / f"gen_{tag}"
    cmd = [PYTHON, "sample.py", "--ckpt", str(exported_checkpoint(args.run_dir / name)), "--midi", str(midi_dir),
           "--output", str(out), "--steps", str(args.gen_steps), "--seed", str(args.seed), "--device", "cpu",
           "--release", "0", "--overwrite"]
    if w_h is not None:
        cmd += ["--w-structure", f"{w_h:g}"]
    return (cmd, args.run_dir / f"gen_{tag}.log", None), out


def evaluate_job(args, gen_dir: Path, midi_dir: Path, corpus: Path, tag: str):
    """(job, output folder) of one midi_eval run."""
    out = args.run_dir / f"eval_{tag}"
    cmd = [PYTHON, "-m", "saga_hsmad.evaluation.midi_eval", "--generated", str(gen_dir), "--midi", str(midi_dir),
           "--reference", str(corpus / "test"), "--max-seconds", f"{args.seconds:g}", "--out", str(out),
           "--fad-embedding", "crepe" if args.fad else "none"]
    return (cmd, args.run_dir / f"eval_{tag}.log", None), out


def read_summary(path: Path) -> dict[str, dict]:
    def num(v: str):
        try:
            return float(v)
        except ValueError:
            return v

    with open(path, newline="", encoding="utf-8") as f:
        return {r["system"]: {k: num(v) for k, v in r.items() if k != "system" and v != ""} for r in csv.DictReader(f)}


def config_w_h(name: str) -> float:
    config = json.loads((REPO / MODELS[name]).read_text())
    return float(config.get("sampling", {}).get("w_structure", 2.0))


# -- report --------------------------------------------------------------------------------------------------
def table_lines(rows: list[tuple[str, dict]]) -> list[str]:
    lines = ["| system | pieces | note F1 (mean) | F1 (pooled) | P | R | TAE ms | bias ms | velocity r | chroma r "
             "| onset r |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, s in rows:
        lines.append(f"| {label} | {int(s.get('pieces', 0))} | {fmt(s.get('f1_mean'))} | {fmt(s.get('f1_pooled'))} | "
                     f"{fmt(s.get('precision_mean'))} | {fmt(s.get('recall_mean'))} | {fmt(s.get('tae_ms_mean'), 1)} | "
                     f"{fmt(s.get('bias_ms_mean'), 1)} | {fmt(s.get('velocity_r_mean'))} | "
                     f"{fmt(s.get('chroma_r_mean'))} | {fmt(s.get('onset_r_mean'))} |")
    return lines


def read_per_piece(path: Path) -> dict[str, dict[str, dict]]:
    """system → piece → row of a midi_eval per_piece.csv (numbers as floats)."""
    out: dict[str, dict[str, dict]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["system"], {})[r["piece"]] = {
                k: (float(v) if v not in ("", "nan") else float("nan")) for k, v in r.items()
                if k not in ("piece", "system")}
    return out


def spread_lines(per_piece: dict[str, dict], models: dict[str, str]) -> list[str]:
    """Per-piece chroma r and note F1 of every model (and the sine and ground-truth rows of the tiny model's
    evaluation), then for each baseline on how many pieces the hierarchical model is ahead."""
    tiny = per_piece["tiny"]
    pieces = sorted(tiny.get("generated", {}))
    systems = [(LABELS["ground_truth"], tiny.get("ground_truth", {})),
               (LABELS["sine_baseline"], tiny.get("sine_baseline", {}))]
    systems += [(LABELS[n], per_piece[n].get("generated", {})) for n in models]
    lines = ["| system | " + " | ".join(pieces) + " | min / median / max |", "|---|" + "---|" * (len(pieces) + 1)]
    for metric, label in (("chroma_r", "chroma r"), ("f1", "note F1")):
        for name, rows in systems:
            values = [rows.get(p, {}).get(metric, float("nan")) for p in pieces]
            finite = sorted(v for v in values if v == v)
            stats = (f"{finite[0]:.3f} / {finite[len(finite) // 2]:.3f} / {finite[-1]:.3f}" if finite else "n/a")
            lines.append(f"| {name}: {label} | " + " | ".join(fmt(v) for v in values) + f" | {stats} |")
    lines.append("")
    for n in models:
        if n == "tiny":
            continue
        for metric, label in (("chroma_r", "chroma r"), ("f1", "note F1")):
            diffs = [tiny["generated"][p][metric] - per_piece[n]["generated"][p][metric] for p in pieces
                     if p in per_piece[n].get("generated", {})]
            ahead = sum(d > 0 for d in diffs)
            lines.append(f"- hierarchical minus {LABELS[n]}, {label}: mean {sum(diffs) / max(len(diffs), 1):+.3f}, "
                         f"ahead on {ahead} of {len(diffs)} pieces (per piece: "
                         + ", ".join(f"{d:+.3f}" for d in diffs) + ")")
    return lines


def window_description() -> str:
    """The tiny model's training window, rate and pretransform, from its config."""
    config = json.loads((REPO / MODELS["tiny"]).read_text())
    pre = config["model"]["pretransform"]
    return (f"{config['sample_size'] / config['sample_rate']:.3f} s windows at {config['sample_rate']} Hz, "
            f"{config.get('audio_channels', 2)} channel(s), {pre['type']} pretransform "
            + ", ".join(f"{k} {v}" for k, v in pre["config"].items() if k != "band_std")
            + (", per-band std from the corpus" if "band_std" in pre["config"] else ""))


def mismatched_audio(args, corpus: Path, midi_dir: Path) -> Path:
    """The chance row: each piece's MIDI paired with the ground-truth audio of the next test piece (same
    corpus, instruments and loudness, unrelated notes), cut to ``--seconds``."""
    from saga_hsmad.audio_io import read_audio, write_audio

    out = args.run_dir / "gen_mismatched"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    stems = sorted(p.stem for p in midi_dir.glob("*.mid"))
    for i, stem in enumerate(stems):
        audio, sr = read_audio(corpus / "test" / f"{stems[(i + 1) % len(stems)]}.wav")
        write_audio(out / f"{stem}.wav", audio[:, : int(round(args.seconds * sr))], sr)
    return out


def plot_sweep(path: Path, sweep: dict[float, dict]) -> None:
    plt = pyplot()
    ws = sorted(sweep)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    axes[0].plot(ws, [sweep[w].get("f1_mean", float("nan")) for w in ws], "o-", label="note F1")
    axes[0].set_ylabel("note F1 (mean over pieces)")
    for key, label, colour in (("chroma_r_mean", "chroma r", "C1"), ("onset_r_mean", "onset r", "C2")):
        axes[1].plot(ws, [sweep[w].get(key, float("nan")) for w in ws], "o-", color=colour, label=label)
    axes[1].set_ylabel("correlation with the MIDI")
    axes[1].legend()
    for ax in axes:
        ax.set_xlabel("w_H (structure guidance)")
        ax.grid(alpha=0.3)
    fig.suptitle("HS-MAD tiny: structure-guidance sweep (w_S fixed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    shrink_png(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    THREADS["value"] = args.threads
    start = time.time()
    print(f"command: {command_line()}", flush=True)
    env = environment()
    corpus = demo_corpus(args.corpus)
    ensure_corpus(corpus)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    models = {name: MODELS[name] for name in args.models}
    times = train_models(args, models, DATASET, corpus)
    midi_dir = prepare_pieces(args, corpus)

    # generation: every model at its config's w_H, and the tiny model at each swept w_H (``parallel`` at once)
    w_default = config_w_h("tiny")
    runs = {name: (name, None) for name in models}
    runs.update({f"tiny_wH{w:g}": ("tiny", w) for w in args.wh_sweep if w != w_default})
    gen_jobs = {tag: generate_job(args, name, midi_dir, tag, w) for tag, (name, w) in runs.items()}
    times.update({f"generate {tag}": seconds for tag, seconds in
                  run_named({tag: job for tag, (job, _) in gen_jobs.items()}, args.parallel).items()})
    gen_dirs = {tag: out for tag, (_, out) in gen_jobs.items()}
    gen_dirs["mismatched"] = mismatched_audio(args, corpus, midi_dir)
    eval_jobs = {tag: evaluate_job(args, gen, midi_dir, corpus, tag) for tag, gen in gen_dirs.items()}
    times.update({f"evaluate {tag}": seconds for tag, seconds in
                  run_named({tag: job for tag, (job, _) in eval_jobs.items()}, args.parallel).items()})
    eval_dirs = {tag: out for tag, (_, out) in eval_jobs.items()}
    results = {tag: read_summary(out / "summary.csv") for tag, out in eval_dirs.items()}
    summaries = {name: results[name] for name in models}
    chance = results["mismatched"]["generated"]
    sweep = {w_default: summaries["tiny"]["generated"]}
    sweep.update({w: results[f"tiny_wH{w:g}"]["generated"] for w in args.wh_sweep if w != w_default})

    # train/loss is the flow-matching MSE in every model (the aux-loss wrapper logs the weighted sum as
    # train/total_loss; Baseline-Flat has no local/global heads, so it logs no aux or flow_loss keys)
    curves = {name: read_loss_curve(args.run_dir / name, "train/loss") for name in models}
    aux = {}
    for key in AUX:
        try:
            aux[key] = read_loss_curve(args.run_dir / "tiny", key)
        except FileNotFoundError:
            pass
    args.output.mkdir(parents=True, exist_ok=True)
    plot_loss_curves(args.output / "loss_curves.png", {LABELS[n]: c for n, c in curves.items()},
                     f"HS-MAD tiny vs baselines, demo corpus, batch {args.batch_size}, seed {args.seed}",
                     ylabel="train/loss (rectified-flow MSE, no aux)")
    if aux:
        plot_loss_curves(args.output / "aux_losses.png", {k.split("/")[-1]: v for k, v in aux.items() if v[0]},
                         "HS-MAD tiny: auxiliary losses (unweighted)", ylabel="loss")
    plot_sweep(args.output / "wh_sweep.png", sweep)
    for tag, folder in eval_dirs.items():
        publish(folder, args.output / f"eval_{tag}", ignore=("*.wav", "generated"))

    ceiling = summaries["tiny"].get("ground_truth", {})
    main_rows = [(LABELS["ground_truth"], ceiling), (LABELS["sine_baseline"], summaries["tiny"].get("sine_baseline", {})),
                 ("another piece's audio (chance)", chance)] + [(LABELS[n], summaries[n]["generated"]) for n in models]
    per_piece = {n: read_per_piece(eval_dirs[n] / "per_piece.csv") for n in models}
    sweep_rows = [(f"w_H = {w:g}" + (" (config)" if w == w_default else ""), sweep[w]) for w in sorted(sweep)]
    loss_tail = {n: tail_mean(v) for n, (_, v) in curves.items()}
    times["total"] = time.time() - start
    lines = ["# Miniature HS-MAD structure experiment (demo corpus)", "", f"Command: `{command_line()}`", "",
             f"- commit `{git_commit()}`; {env['cpu_count']} CPU cores, load average at start "
             f"{env['load_average_start']} (the machine was shared), torch {env['torch']}",
             f"- training: {', '.join(f'`{Path(p).name}`' for p in models.values())} (identical but for "
             f"`symbol_mode`), {args.steps} steps, batch {args.batch_size}, seed {args.seed}, demo corpus train split "
             f"({window_description()})",
             f"- generation: `sample.py --midi`, test split cut to the first {args.seconds:g} s, Euler {args.gen_steps} "
             f"steps, decoupled guidance w_H {w_default:g} (config) / w_S from the config, seed {args.seed}",
             "- evaluation: `saga_hsmad.evaluation.midi_eval`, basic-pitch transcription, onset F1 at 50 ms, TAE = RMS "
             "onset error of matched notes, velocity r of matched notes (basic-pitch's velocity is a confidence); "
             "transcriber-free chroma r and onset r (`saga_hsmad.evaluation.structure_metrics`); the chance row pairs "
             "each MIDI with the ground-truth audio of the next test piece",
             "", "## Structure conditioning (higher F1 / lower TAE is better)", ""] + table_lines(main_rows)
    lines += ["", "## Spread over pieces", "", *spread_lines(per_piece, models)]
    lines += ["", f"## w_H sweep (HS-MAD tiny)", "", *table_lines(sweep_rows), "", "![w_H sweep](wh_sweep.png)", "",
              "## Training loss", "", "![loss curves](loss_curves.png)", ""]
    if aux:
        lines += ["![aux losses](aux_losses.png)", ""]
    lines += ["| model | mean train/loss (flow MSE), last 20 % of steps |", "|---|---|"]
    lines += [f"| {n} | {fmt(v, 4)} |" for n, v in loss_tail.items()]
    lines += ["", "## Wall times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    lines += ["", "## Commands", ""] + [f"    {c}" for c in COMMANDS]
    lines += ["", "Per-system reports with per-piece rows and piano-roll overlays: "
              + ", ".join(f"[eval_{t}](eval_{t}/report.md)" for t in eval_dirs), ""]
    (args.output / "results.md").write_text("\n".join(lines), encoding="utf-8")
    write_json(args.output / "results.json", {
        "command": command_line(), "commit": git_commit(), "environment": env,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "summary": {n: summaries[n] for n in models}, "per_piece": per_piece, "ceiling": ceiling, "chance": chance,
        "wh_sweep": {f"{w:g}": sweep[w] for w in sorted(sweep)}, "loss_tail_mean": loss_tail,
        "loss_curves": {n: {"step": s, "train_loss": v} for n, (s, v) in curves.items()},
        "aux_curves": {k: {"step": s, "value": v} for k, (s, v) in aux.items()},
        "wall_seconds": times, "commands": COMMANDS})
    print((args.output / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
