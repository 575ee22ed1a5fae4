"""HS-MAD structure and fidelity evaluation (spec §8): transcribe audio, score it against the input MIDI, FAD.

    # a folder of generated audio with same-stem MIDI (and optionally the ground-truth audio)
    python -m saga_hsmad.evaluation.midi_eval --generated gen/ --midi midi/ [--reference gt/] --out eval/
    # a MIDI–audio dataset: generate from a checkpoint first, the dataset's audio is the ground truth
    python -m saga_hsmad.evaluation.midi_eval --dataset-config dataset_configs/hsmad/maestro.json \
        --ckpt runs/hsmad/export.safetensors --max-items 20 --max-seconds 30 --out eval/

Metrics per piece and system, computed on onsets only against the input MIDI (drums dropped, sustain pedal
applied, onsets in the evaluated span):

* note precision / recall / F1 with a 50 ms onset tolerance and 50 cents pitch tolerance
  (``mir_eval.transcription.precision_recall_f1_overlap(..., offset_ratio=None)``);
* TAE — the RMS of (transcribed onset − MIDI onset) over matched notes (seed §4.2), and its mean, the bias
  (transcribers are biased, e.g. basic-pitch a few ms early), in milliseconds;
* velocity Pearson r over matched notes (MIDI velocity vs the transcriber's velocity; see
  ``transcribe`` for what each transcriber's velocity means — basic-pitch's is a confidence, not a velocity);
* transcriber-free ``chroma_r`` and ``onset_r`` (``structure_metrics``): how far the audio's chroma and onset
  strength follow the MIDI, about 0 for unrelated audio; they register partial structure long before a
  transcriber finds notes (a small or briefly trained model).

Systems: "generated" (the model's audio), "sine_baseline" (the MIDI rendered with additive sines by
``midi_baseline.sine_render``: no learning, the row a model must beat; ``--no-sine-baseline`` leaves it out)
and "ground_truth" (the real recording, transcribed by the SAME transcriber: the ceiling row, spec §8). Summary rows average each metric over pieces (macro, NaN-aware) and
also pool counts over all pieces ("f1_pooled", "tae_ms_pooled"). FAD compares the generated set with the
ground-truth set under a labelled embedding (``fad.CrepeEmbedding`` by default: a CREPE-embedding FAD, not
VGGish). A piano-roll overlay per piece (MIDI notes as boxes, each system's transcription as onset markers
and lines) goes to ``OUT/plots/<piece>.png``.

Outputs in ``--out``: ``per_piece.csv``, ``summary.csv``, ``report.md``, ``plots/``, and ``generated/`` when
audio was generated from ``--ckpt``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import typing as tp
from pathlib import Path

import numpy as np

from ..audio_io import AUDIO_EXTENSIONS, list_audio_files, read_audio
from ..symbolic.midi import Notes, read_midi
from .midi_baseline import sine_render
from .structure_metrics import chroma_r, onset_r
from .transcribe import Transcriber, TranscriberUnavailable, make_transcriber

SYSTEMS = ("generated", "sine_baseline", "ground_truth")
SINE_RATE = 22050  # basic-pitch's own rate
FIELDS = ("piece", "system", "n_ref", "n_est", "n_matched", "precision", "recall", "f1", "tae_ms", "bias_ms",
          "velocity_r", "chroma_r", "onset_r")


# -- metrics -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NoteScores:
    """Onset-only note scores of one transcription against one reference (module docstring)."""

    n_ref: int
    n_est: int
    n_matched: int
    precision: float
    recall: float
    f1: float
    tae: float          # seconds, RMS onset difference of matched notes (NaN without matches)
    bias: float         # seconds, mean onset difference (estimate − reference)
    velocity_r: float   # Pearson r of matched velocities (NaN with < 3 matches or constant velocities)
    onset_errors: np.ndarray = dataclasses.field(repr=False, default_factory=lambda: np.zeros(0))

    def row(self) -> dict:
        return {"n_ref": self.n_ref, "n_est": self.n_est, "n_matched": self.n_matched, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "tae_ms": 1000 * self.tae, "bias_ms": 1000 * self.bias,
                "velocity_r": self.velocity_r}


def _intervals(notes: Notes) -> tuple[np.ndarray, np.ndarray]:
    """(intervals (N, 2) s with strictly positive durations, pitches (N,) Hz) as mir_eval wants them."""
    import mir_eval

    start = notes.start.astype(np.float64)
    end = np.maximum(notes.end.astype(np.float64), start + 1e-3)  # zero-length notes still carry an onset
    return np.stack([start, end], axis=1).reshape(-1, 2), mir_eval.util.midi_to_hz(notes.pitch.astype(np.float64))


def score_notes(reference: Notes, estimate: Notes, onset_tolerance: float = 0.05) -> NoteScores:
    """Note P/R/F1 on onsets (offset_ratio=None), TAE, bias and velocity r of ``estimate`` against ``reference``."""
    import mir_eval

    n_ref, n_est = len(reference), len(estimate)
    if n_ref == 0 or n_est == 0:  # mir_eval's convention: P = R = F = 0 when either list is empty
        return NoteScores(n_ref, n_est, 0, 0.0, 0.0, 0.0, float("nan"), float("nan"), float("nan"))
    ref_int, ref_hz = _intervals(reference)
    est_int, est_hz = _intervals(estimate)
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_int, ref_hz, est_int, est_hz, onset_tolerance=onset_tolerance, pitch_tolerance=50.0, offset_ratio=None)
    pairs = mir_eval.transcription.match_notes(ref_int, ref_hz, est_int, est_hz, onset_tolerance=onset_tolerance,
                                               pitch_tolerance=50.0, offset_ratio=None)
    if not pairs:
        return NoteScores(n_ref, n_est, 0, precision, recall, f1, float("nan"), float("nan"), float("nan"))
    ri, ei = (np.array(idx) for idx in zip(*pairs))
    errors = est_int[ei, 0] - ref_int[ri, 0]
    tae, bias = float(np.sqrt(np.mean(errors ** 2))), float(np.mean(errors))
    v_ref, v_est = reference.velocity[ri].astype(np.float64), estimate.velocity[ei].astype(np.float64)
    r = float("nan")
    if len(pairs) >= 3 and v_ref.std() > 0 and v_est.std() > 0:
        r = float(np.corrcoef(v_ref, v_est)[0, 1])
    return NoteScores(n_ref, n_est, len(pairs), float(precision), float(recall), float(f1), tae, bias, r, errors)


def reference_notes(midi: str | Path, seconds: float | None = None) -> tuple[Notes, Notes]:
    """The MIDI's notes with onsets before ``seconds``, sustain pedal applied, read once: (the reference for
    note scores and chroma, drums dropped; every heard note, drums included, for onset r)."""
    heard = read_midi(midi, sustain=True, drums="keep").notes
    if seconds is not None:
        heard = heard.subset(heard.start < seconds)
    return heard.subset(~heard.is_drum), heard


# -- plots ---------------------------------------------------------------------------------------------------
def overlay_plot(path: Path, reference: Notes, transcriptions: dict[str, Notes], title: str,
                 seconds: float | None = None) -> None:
    """Piano roll of the MIDI (grey boxes) with each transcription drawn over it (onset marker + line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    colours = {"generated": "tab:red", "sine_baseline": "tab:green", "ground_truth": "tab:blue"}
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    for s, e, p in zip(reference.start, reference.end, reference.pitch):
        ax.add_patch(Rectangle((s, p - 0.4), max(e - s, 0.01), 0.8, color="0.75", lw=0))
    for k, (label, notes) in enumerate(transcriptions.items()):
        colour = colours.get(label, f"C{k + 2}")
        offset = 0.15 * (k - (len(transcriptions) - 1) / 2)
        ax.hlines(notes.pitch + offset, notes.start, notes.end, colors=colour, lw=1.2, label=label)
        ax.plot(notes.start, notes.pitch + offset, "|", color=colour, ms=7)
    pitches = np.concatenate([reference.pitch] + [n.pitch for n in transcriptions.values()] + [np.array([60])])
    ax.set_ylim(pitches.min() - 2, pitches.max() + 2)
    ends = np.concatenate([reference.end] + [n.end for n in transcriptions.values()] + [np.array([1.0])])
    ax.set_xlim(0, seconds if seconds else float(ends.max()) + 0.2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -- pieces --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Piece:
    name: str
    midi: Path
    generated: Path | None = None
    reference: Path | None = None   # ground-truth audio
    style: str | None = None


def unique_names(midis: tp.Sequence[Path]) -> list[str]:
    """Stems, or <parent>_<stem> when stems repeat (Slakh: every track's MIDI is all_src.mid)."""
    stems = [m.stem for m in midis]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{m.parent.name}_{m.stem}" for m in midis]


def pieces_from_folders(generated: Path | None, midi_dir: Path, reference: Path | None) -> list[Piece]:
    """Pieces whose MIDI is in ``midi_dir`` (recursive) and whose generated/reference audio has the same stem."""
    midis = sorted(p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not midis:
        raise FileNotFoundError(f"--midi {midi_dir}: no .mid/.midi files")

    def by_stem(folder: Path | None) -> dict[str, Path]:
        return {} if folder is None else {p.stem: p for p in list_audio_files(folder)}

    gen, ref = by_stem(generated), by_stem(reference)
    pieces = [Piece(m.stem, m, gen.get(m.stem), ref.get(m.stem)) for m in midis]
    pieces = [p for p in pieces if p.generated is not None or p.reference is not None]
    if not pieces:
        raise FileNotFoundError(f"no audio file ({', '.join(AUDIO_EXTENSIONS)}) in --generated/--reference has the "
                                f"stem of a MIDI file in {midi_dir}")
    return pieces


def pieces_from_dataset(dataset_config: dict, where: str, generated: Path | None,
                        max_items: int | None) -> list[Piece]:
    """The tracks of a MIDI–audio dataset config (its audio is the ground truth)."""
    from ..data.loader import create_dataset_from_config

    # the windowing context is irrelevant for listing tracks; a valid stand-in grid is passed
    dataset = create_dataset_from_config(dataset_config, where, sample_size=16 * 256, sample_rate=44100,
                                         audio_channels=2, seed=0, downsampling_ratio=256)
    tracks = list(getattr(dataset, "tracks", []))
    if not tracks:
        raise ValueError(f"{where}: not a MIDI-audio dataset (no tracks); use midi_audio_folder, maestro or slakh")
    tracks = tracks[:max_items] if max_items else tracks
    names = unique_names([t.midi for t in tracks])
    gen = {} if generated is None else {p.stem: p for p in list_audio_files(generated)}
    return [Piece(n, t.midi, gen.get(n), t.audio, t.style) for n, t in zip(names, tracks)]


def generate_pieces(pieces: list[Piece], ckpt: str, out: Path, args) -> None:
    """Generate each piece's (first ``--max-seconds`` of) MIDI with the checkpoint into ``out/generated``."""
    import torch
    from tqdm import tqdm

    import saga_hsmad
    from ..audio_io import write_audio
    from ..checkpoints import load_model
    from ..inference.midi_to_audio import MidiToAudio, options_from_args

    saga_hsmad.install()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, config, _ = load_model(ckpt, use_ema=True, device=device)
    renderer = MidiToAudio(model, config, options_from_args(args, config))
    folder = out / "generated"
    for piece in tqdm(pieces, desc="generating", unit="piece"):
        target = folder / f"{piece.name}.wav"
        if not target.exists() or args.overwrite:
            score = renderer.read(piece.midi)
            if args.max_seconds:
                score = score.window(0.0, args.max_seconds)
            style = args.style or piece.style or config.get("sampling", {}).get("style")
            audio, _ = renderer.render(score, style)
            write_audio(target, audio, renderer.sample_rate, subtype="PCM_24")
        piece.generated = target


# -- evaluation ----------------------------------------------------------------------------------------------
def nanmean(values: tp.Sequence[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def evaluate(pieces: tp.Sequence[Piece], transcriber: Transcriber, out: Path, embedding=None,
             max_seconds: float | None = None, onset_tolerance: float = 0.05, plots: bool = True,
             sine_baseline: bool = True) -> dict:
    """Score every piece's generated and ground-truth audio (and, with ``sine_baseline``, the additive-sine
    render of its MIDI); write per_piece.csv, summary.csv, report.md and plots. Returns {"rows": [...], "summary": {system: {...}}, "fad": float | None, "fad_label": str | None}."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    rows, clips = [], {s: [] for s in SYSTEMS}
    pooled = {s: {"n_ref": 0, "n_est": 0, "n_matched": 0, "errors": []} for s in SYSTEMS}
    for piece in tqdm(pieces, desc="transcribing", unit="piece"):
        reference, heard = reference_notes(piece.midi, max_seconds)
        transcriptions = {}
        sources = {"generated": piece.generated, "sine_baseline": "sines" if sine_baseline else None,
                   "ground_truth": piece.reference}
        for system, path in sources.items():
            if path is None:
                continue
            if system == "sine_baseline":  # rendered here from the reference notes, never read from disk
                audio, sr = sine_render(reference, SINE_RATE, max_seconds), SINE_RATE
            else:
                audio, sr = read_audio(path)
            if max_seconds:
                audio = audio[:, : int(round(max_seconds * sr))]
            clips[system].append((audio, sr))
            estimate = transcriber.transcribe(audio, sr)
            if max_seconds:
                estimate = estimate.subset(estimate.start < max_seconds)
            transcriptions[system] = estimate
            scores = score_notes(reference, estimate, onset_tolerance)
            rows.append({"piece": piece.name, "system": system, **scores.row(),
                         "chroma_r": chroma_r(audio, sr, reference), "onset_r": onset_r(audio, sr, heard)})
            for key in ("n_ref", "n_est", "n_matched"):
                pooled[system][key] += getattr(scores, key)
            pooled[system]["errors"].append(scores.onset_errors)
        if plots and transcriptions:
            overlay_plot(out / "plots" / f"{piece.name}.png", reference, transcriptions,
                         f"{piece.name}: MIDI (grey) vs {transcriber.name} transcriptions", max_seconds)

    summary = {}
    for system in SYSTEMS:
        mine = [r for r in rows if r["system"] == system]
        if not mine:
            continue
        p = pooled[system]
        errors = np.concatenate(p["errors"]) if p["errors"] else np.zeros(0)
        precision = p["n_matched"] / p["n_est"] if p["n_est"] else float("nan")
        recall = p["n_matched"] / p["n_ref"] if p["n_ref"] else float("nan")
        summary[system] = {
            "pieces": len(mine),
            **{f"{k}_mean": nanmean([r[k] for r in mine])
               for k in ("precision", "recall", "f1", "tae_ms", "bias_ms", "velocity_r", "chroma_r", "onset_r")},
            "f1_pooled": (2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0,
            "tae_ms_pooled": 1000 * float(np.sqrt(np.mean(errors ** 2))) if errors.size else float("nan"),
        }

    fad_value, fad_label = None, None
    if embedding is not None and clips["generated"] and clips["ground_truth"]:
        from .fad import fad

        fad_value, fad_label = fad(clips["generated"], clips["ground_truth"], embedding), embedding.label
    write_outputs(out, rows, summary, transcriber, fad_value, fad_label, onset_tolerance, max_seconds)
    return {"rows": rows, "summary": summary, "fad": fad_value, "fad_label": fad_label}


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def write_outputs(out: Path, rows: list[dict], summary: dict, transcriber: Transcriber, fad_value, fad_label,
                  onset_tolerance: float, max_seconds: float | None) -> None:
    from ..checkpoints import atomic_write

    def write_csv(path: Path, fields: tp.Sequence[str], records: list[dict]) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(fields))
                writer.writeheader()
                for record in records:
                    writer.writerow({k: _fmt(record.get(k, "")) for k in fields})
        atomic_write(path, write)

    write_csv(out / "per_piece.csv", FIELDS, rows)
    summary_fields = ["system", "pieces", "f1_mean", "precision_mean", "recall_mean", "f1_pooled", "tae_ms_mean",
                      "bias_ms_mean", "tae_ms_pooled", "velocity_r_mean", "chroma_r_mean", "onset_r_mean", "fad",
                      "fad_embedding"]
    records = [{"system": s, **v, **({"fad": fad_value, "fad_embedding": fad_label} if s == "generated" and
                                       fad_value is not None else {})} for s, v in summary.items()]
    write_csv(out / "summary.csv", summary_fields, records)

    lines = ["# HS-MAD MIDI evaluation", "",
             f"- transcriber: **{transcriber.name}**; velocity scale: {transcriber.velocity_scale}",
             f"- note F1 on onsets only, {onset_tolerance * 1000:.0f} ms tolerance, 50 cents "
             "(mir_eval, offset_ratio=None); TAE = RMS onset error of matched notes, bias = its mean",
             f"- span: {'first ' + str(max_seconds) + ' s of each piece' if max_seconds else 'whole pieces'}; "
             "reference = the input MIDI (sustain pedal applied, drums dropped)",
             "- sine_baseline = the MIDI rendered with additive sines (4 harmonics, decaying envelope, velocity; "
             "no learning: what a model must beat)",
             "- ground_truth = the real audio through the same transcriber (ceiling row)",
             "- chroma r / onset r: transcriber-free correlation of the audio's chroma and onset strength with the "
             "MIDI (about 0 for unrelated audio; `saga_hsmad.evaluation.structure_metrics`)", "",
             "| system | pieces | F1 (mean) | P | R | F1 (pooled) | TAE ms | bias ms | TAE ms (pooled) | velocity r "
             "| chroma r | onset r |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, v in summary.items():
        lines.append(f"| {s} | {v['pieces']} | {_fmt(v['f1_mean'])} | {_fmt(v['precision_mean'])} | "
                     f"{_fmt(v['recall_mean'])} | {_fmt(v['f1_pooled'])} | {_fmt(v['tae_ms_mean'])} | "
                     f"{_fmt(v['bias_ms_mean'])} | {_fmt(v['tae_ms_pooled'])} | {_fmt(v['velocity_r_mean'])} | "
                     f"{_fmt(v['chroma_r_mean'])} | {_fmt(v['onset_r_mean'])} |")
    lines.append("")
    if fad_value is not None:
        lines.append(f"FAD generated vs ground truth: **{fad_value:.4f}** — {fad_label}")
    else:
        lines.append("FAD: not computed (needs generated and ground-truth audio, and an embedding)")
    lines += ["", "## Per piece", "", "| piece | system | F1 | TAE ms | bias ms | velocity r | chroma r | onset r "
              "| matched / ref / est |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['piece']} | {r['system']} | {_fmt(r['f1'])} | {_fmt(r['tae_ms'])} | {_fmt(r['bias_ms'])} "
                     f"| {_fmt(r['velocity_r'])} | {_fmt(r['chroma_r'])} | {_fmt(r['onset_r'])} "
                     f"| {r['n_matched']} / {r['n_ref']} / {r['n_est']} |")
    text = "\n".join(lines) + "\n"
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(text))


# -- command line --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("inputs")
    src.add_argument("--generated", type=Path, default=None, help="folder of generated audio (stems = MIDI stems)")
    src.add_argument("--midi", type=Path, default=None, help="folder of the input MIDI files (with --generated)")
    src.add_argument("--reference", type=Path, default=None, help="folder of ground-truth audio (same stems)")
    src.add_argument("--dataset-config", type=Path, default=None, help="a MIDI-audio dataset config instead")
    src.add_argument("--max-items", type=int, default=None, help="evaluate the first N dataset tracks")
    src.add_argument("--ckpt", default=None, help="generate the pieces with this checkpoint first")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--transcriber", choices=["basic_pitch", "transkun"], default="basic_pitch")
    p.add_argument("--max-seconds", type=float, default=None, help="evaluate only the first S seconds of each piece")
    p.add_argument("--onset-tolerance", type=float, default=0.05, help="seconds (0.05)")
    p.add_argument("--fad-embedding", choices=["crepe", "none"], default="crepe")
    p.add_argument("--crepe-capacity", choices=["full", "tiny"], default="full")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-sine-baseline", action="store_true",
                   help="leave out the non-learned row (the MIDI rendered with additive sines)")
    gen = p.add_argument_group("generation (with --ckpt; as sample.py's midi mode)")
    gen.add_argument("--steps", type=int, default=None)
    gen.add_argument("--w-structure", type=float, default=None)
    gen.add_argument("--w-style", type=float, default=None)
    gen.add_argument("--style", default=None)
    gen.add_argument("--window-overlap", type=float, default=None)
    gen.add_argument("--crossfade", choices=["equal_power", "linear"], default="equal_power")
    gen.add_argument("--release", type=float, default=0.5)
    gen.add_argument("--batch-windows", type=int, default=1)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default=None)
    gen.add_argument("--overwrite", action="store_true", help="regenerate existing generated files")
    return p


def main(argv=None) -> int:
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    args = build_parser().parse_args(argv)
    try:
        transcriber = make_transcriber(args.transcriber)
        if args.dataset_config is not None:
            from ..config_check import load_config

            config = load_config(args.dataset_config, "dataset")
            pieces = pieces_from_dataset(config, str(args.dataset_config), args.generated, args.max_items)
        elif args.midi is not None:
            pieces = pieces_from_folders(args.generated, args.midi, args.reference)
        else:
            raise ValueError("give --midi (with --generated and/or --reference) or --dataset-config")
        if args.ckpt:
            generate_pieces(pieces, args.ckpt, args.out, args)
        missing = [p.name for p in pieces if p.generated is None]
        if missing and not args.ckpt:
            print(f"note: {len(missing)} piece(s) have no generated audio (only the ground-truth row): "
                  f"{missing[:5]}", file=sys.stderr)
        embedding = None
        if args.fad_embedding == "crepe":
            from .fad import CrepeEmbedding

            embedding = CrepeEmbedding(args.crepe_capacity, device=args.device)
    except (TranscriberUnavailable, ValueError, FileNotFoundError, KeyError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 2
    result = evaluate(pieces, transcriber, args.out, embedding, args.max_seconds, args.onset_tolerance,
                      plots=not args.no_plots, sine_baseline=not args.no_sine_baseline)
    print((args.out / "report.md").read_text())
    return 0 if result["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
