"""Benchmark: peak memory and time per sampler step of HS-MAD MIDI-to-audio (``sample.py --midi``) on long pieces.

Each measurement is one ``sample.py`` run in its own subprocess on a synthetic piano MIDI file of the given length
(random notes at 100 bpm, about 4 onsets per second, some held an octave lower); the child reports its peak
resident memory (``VmHWM`` from /proc/self/status, and ``ru_maxrss``) and wall time, split into checkpoint loading
and processing (VmHWM is reset after loading, as in ``bench_sr_memory.py``), and the number of windows and window
groups of the piece. The target: the peak for a 10-minute piece at most 1.2 x the peak for a 1-minute piece, and
the time per sampler step of one group the same for both (memory and time per step must not grow with the piece:
windows are sampled in groups of ``--group-windows`` and the audio streams to disk through a one-window
overlap-add buffer).

``--reference-group-windows N`` adds runs with groups of N windows at the lengths in ``--reference-minutes``:
with N larger than any piece's window count this is the pre-group behaviour (every window of the piece fused on
one latent at every step), whose memory grows with the piece (keep those lengths short: at 10 minutes it took
6 GB with the tiny model).

Model: model_configs/hsmad/tiny.json with random weights, saved as an inference checkpoint in the work folder.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_midi_memory.py [--minutes 0.1 1 10] \
        [--steps 2] [--group-windows 8] [--reference-group-windows 100000 --reference-minutes 0.1 1] \
        [--out benchmarks/results/midi_memory.json]

Writes JSON to --out and prints a table, the exact ``sample.py`` commands and the benchmark command.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

from bench_sr_memory import run_sample_measured  # noqa: E402

CONFIG = REPO / "model_configs" / "hsmad" / "tiny.json"
BPM = 100


def child(json_out: str, argv: list[str]) -> int:
    """Run sample.py's main in this process and write its peak memory and wall time
    (``bench_sr_memory.run_sample_measured``; the processing peak is the part that could grow with the piece's
    length), plus the windows, groups and time per group step of the render."""
    from saga_hsmad.inference import midi_to_audio

    marks: dict = {}
    original_render_file = midi_to_audio.MidiToAudio.render_file

    def render_file(self, *args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        plan, clipped = original_render_file(self, *args, **kwargs)
        marks.update(render_wall_s=time.perf_counter() - started, render_cpu_s=time.process_time() - cpu,
                     windows=len(plan.starts),
                     groups=len(plan.groups(self.options.group_windows)), steps=self.options.steps,
                     seconds=plan.seconds)
        return plan, clipped

    midi_to_audio.MidiToAudio.render_file = render_file
    result = run_sample_measured(midi_to_audio.MidiToAudioMode, argv, marks)
    result.update(render_wall_s=marks.get("render_wall_s"), render_cpu_s=marks.get("render_cpu_s"),
                  windows=marks.get("windows"), groups=marks.get("groups"), steps=marks.get("steps"),
                  output_seconds=marks.get("seconds"))
    if result["render_wall_s"] and result["groups"]:
        # one sampler step of one group (decoding included): what a user waits per step of the progress bar;
        # CPU seconds do not count waiting for a core, the steadier number on a shared machine
        result["seconds_per_group_step"] = result["render_wall_s"] / (result["groups"] * result["steps"])
        result["cpu_seconds_per_group_step"] = result["render_cpu_s"] / (result["groups"] * result["steps"])
    Path(json_out).write_text(json.dumps(result))
    return result["rc"]


def write_piece(path: Path, minutes: float, seed: int = 0) -> int:
    """A type-1 piano MIDI of ``minutes``: random notes from a C major scale, sometimes doubled an octave lower,
    tempo 100 bpm, 4/4, sustain pedal every bar. Returns the number of notes."""
    import mido
    import numpy as np

    rng = np.random.default_rng(seed)
    ppq = 480
    us = int(round(60e6 / BPM))
    ticks_per_second = ppq * 1e6 / us
    seconds = minutes * 60
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order: offs before ons, message)
    t, notes = 0.0, 0
    while t < seconds - 0.5:
        length = float(rng.choice([0.15, 0.3, 0.45]))
        pitch = int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72]))
        velocity = int(rng.integers(40, 110))
        voices = [(pitch, length)] + ([(pitch - 12, 2 * length)] if rng.random() < 0.5 else [])
        for p, d in voices:
            on, off = int(round(t * ticks_per_second)), int(round(min(t + d, seconds) * ticks_per_second))
            events += [(on, 1, mido.Message("note_on", note=p, velocity=velocity)),
                       (off, 0, mido.Message("note_off", note=p, velocity=0))]
            notes += 1
        t += length
    bar = 4 * ppq
    for tick in range(0, int(seconds * ticks_per_second), bar):
        events += [(tick, 0, mido.Message("control_change", control=64, value=0)),
                   (tick + 1, 2, mido.Message("control_change", control=64, value=127))]
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = mido.MidiTrack(), 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=us, time=0),
                                      mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)]))
    mid.tracks.append(track)
    mid.save(path)
    return notes


def make_checkpoint(folder: Path) -> tuple[Path, str]:
    import torch

    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    config = json.loads(CONFIG.read_text())
    saga_hsmad.install()
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    params = sum(p.numel() for p in model.parameters())
    path = folder / "hsmad_tiny.ckpt"
    save_inference_checkpoint(path, model.state_dict(), config, ema=False)
    return path, f"model_configs/hsmad/tiny.json, random weights, {params / 1e6:.2f} M parameters"


def measure(ckpt: Path, midi: Path, out_dir: Path, steps: int, group_windows: int, work: Path, label: str,
            env: dict) -> dict:
    sample_args = ["--ckpt", str(ckpt), "--midi", str(midi), "--output", str(out_dir), "--steps", str(steps),
                   "--device", "cpu", "--style", "Solo piano", "--group-windows", str(group_windows), "--overwrite"]
    command = shlex.join([sys.executable, str(REPO / "sample.py"), *sample_args])
    json_out = work / f"child_{label}.json"
    proc = subprocess.run([sys.executable, __file__, "--child", str(json_out), *sample_args], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not json_out.exists():
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{label} failed ({proc.returncode})")
    run = json.loads(json_out.read_text())
    run.update({"command": command, "group_windows": group_windows})
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--group-windows", type=int, default=8)
    p.add_argument("--reference-group-windows", type=int, default=None,
                   help="also run with groups this large (e.g. 100000: every window on one latent, as before)")
    p.add_argument("--reference-minutes", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--workdir", default=None, help="folder for MIDI files, the checkpoint and outputs (default: temp)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "midi_memory.json"))
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1:])

    from _common import environment, finish

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_midi_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment("cpu"), "settings": vars(args) | {"workdir": str(work)}, "runs": []}
    ckpt, note = make_checkpoint(work)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    plans = [(m, args.group_windows) for m in args.minutes]
    if args.reference_group_windows:
        plans += [(m, args.reference_group_windows) for m in args.reference_minutes]
    for minutes, group_windows in plans:
        midi = work / f"piece_{minutes:g}min.mid"
        notes = write_piece(midi, minutes)
        label = f"{minutes:g}min_g{group_windows}"
        run = measure(ckpt, midi, work / f"out_g{group_windows}", args.steps, group_windows, work, label, env)
        run.update({"model": note, "minutes": minutes, "notes": notes})
        result["runs"].append(run)
        processing = run["processing_vmhwm_kb"] / 1024 if run["processing_vmhwm_kb"] else float("nan")
        print(f"{minutes:5g} min, groups of {group_windows:>6d}: {run['windows']:5d} windows in {run['groups']:4d} "
              f"group(s); peak RSS {run['vmhwm_kb'] / 1024:8.1f} MB (loading {run['load_vmhwm_kb'] / 1024:.1f} MB, "
              f"processing {processing:.1f} MB); render {run['render_wall_s']:.1f} s, "
              f"{run['seconds_per_group_step']:.2f} s ({run['cpu_seconds_per_group_step']:.2f} s CPU) per step of a "
              f"group  [{run['command']}]", flush=True)
    ratios = {}
    by_min = {r["minutes"]: r for r in result["runs"] if r["group_windows"] == args.group_windows}
    if 1.0 in by_min and 10.0 in by_min:
        a, b = by_min[1.0], by_min[10.0]
        ratios = {"peak_rss": b["vmhwm_kb"] / a["vmhwm_kb"],
                  "processing_peak_rss": (b["processing_vmhwm_kb"] / a["processing_vmhwm_kb"]
                                          if a["processing_vmhwm_kb"] and b["processing_vmhwm_kb"] else None),
                  "seconds_per_group_step": b["seconds_per_group_step"] / a["seconds_per_group_step"],
                  "cpu_seconds_per_group_step": b["cpu_seconds_per_group_step"] / a["cpu_seconds_per_group_step"]}
        print(f"10 min / 1 min: peak memory {ratios['peak_rss']:.3f} (target <= 1.2), while processing "
              f"{ratios['processing_peak_rss'] or float('nan'):.3f}; time per step of a group "
              f"{ratios['seconds_per_group_step']:.3f} wall, {ratios['cpu_seconds_per_group_step']:.3f} CPU")
    result["ratio_10min_over_1min"] = ratios
    result["target_ratio"] = 1.2
    finish("midi_memory", Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
