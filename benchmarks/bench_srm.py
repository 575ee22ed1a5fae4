"""Benchmark the synchronised rendering module (HS-MAD spec §2) against a per-note numpy loop.

30 s of dense piano (>= 3,000 notes) at 44.1 kHz / 512 (86.13 latent frames/s), soft and binary mode.
Targets: vectorised soft SRM <= 10 ms per 30 s window and >= 15x faster than the per-note loop, with
both agreeing to float32 precision. Prints a table and the exact command, writes JSON.

    python benchmarks/bench_srm.py [--notes 3000] [--repeats 50] [--midi FILE] [--out benchmarks/results/srm.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from saga_hsmad.symbolic.midi import Score, read_midi  # noqa: E402
from saga_hsmad.symbolic.srm import SRM, latent_frame_rate, num_frames  # noqa: E402


def dense_piano(n_notes: int, duration: float, seed: int = 0) -> Score:
    """Synthetic dense piano: chords, runs and pedalled bass over the 88 keys (deterministic)."""
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.uniform(0.0, duration, n_notes))
    idx = np.arange(n_notes)
    idx[1:][rng.random(n_notes - 1) < 0.3] -= 1                     # 30 % of notes join the previous onset (chords)
    starts = starts[idx]
    centre = 60 + 18 * np.sin(starts / 3.0)                         # register drifts like a real piece
    pitch = np.clip(np.rint(centre + rng.normal(0, 9, n_notes)), 21, 108)
    length = np.clip(rng.lognormal(np.log(0.35), 0.8, n_notes), 0.03, 4.0)
    velocity = np.clip(np.rint(rng.normal(70, 18, n_notes)), 1, 127)
    return Score.from_notes(np.stack([pitch, starts, starts + length, velocity], 1), end_time=duration)


def per_note_loop(score: Score, duration: float, fr: float, sigma_on: float, sigma_off: float, thr: float,
                  mode: str) -> np.ndarray:
    """The straightforward implementation: for each note, evaluate its equations over all frames."""
    T = num_frames(duration, fr)
    t = np.arange(T) / fr
    out = np.zeros((3, 128, T))
    n = score.notes
    for p, s, e, vel in zip(n.pitch, n.start, n.end, n.velocity):
        v = vel / 127.0
        if mode == "soft":
            if s >= 0:
                out[0, p] += v * np.exp(-(t - s) ** 2 / (2 * sigma_on ** 2))
            sus = np.where((t >= s) & (t <= e), 1.0, np.where(t > e, np.exp(-(t - e) ** 2 / (2 * sigma_off ** 2)), 0.0))
            out[1, p] += sus
            out[2, p] += np.where(sus > thr, v, 0.0)
        else:
            band = (t >= s) & (t <= e)
            c = int(np.rint(s * fr))
            if s >= 0 and c < T:
                out[0, p, c] = 1.0
                band[c] = True
            out[1, p] += band
            out[2, p] += v * band
    if mode == "binary":
        out[1] = np.minimum(out[1], 1.0)
    return out.reshape(3 * 128, T).astype(np.float32)


def timed(fn, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and process-CPU milliseconds per call. On a shared machine the wall time includes
    waiting for a core; the CPU time does not (it does count every thread of this process)."""
    fn()                                                            # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return np.asarray(wall), np.asarray(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=3000, help="notes in the synthetic 30 s piece")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--sample-rate", type=int, default=44100)
    ap.add_argument("--ratio", type=int, default=512, help="pretransform downsampling ratio")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--loop-repeats", type=int, default=5)
    ap.add_argument("--midi", type=str, default=None, help="render the first --duration s of this file instead")
    ap.add_argument("--out", type=str, default="benchmarks/results/srm.json")
    args = ap.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    fr = latent_frame_rate(args.sample_rate, args.ratio)
    score = (read_midi(args.midi).window(0.0, args.duration) if args.midi
             else dense_piano(args.notes, args.duration))
    T = num_frames(args.duration, fr)
    rows, ok = {}, True
    for mode in ("soft", "binary"):
        srm = SRM(frame_rate=fr, mode=mode)
        sigma_on, sigma_off = srm.sigmas
        fast, fast_cpu = timed(lambda: srm(score, args.duration), args.repeats)
        loop, _ = timed(lambda: per_note_loop(score, args.duration, fr, sigma_on, sigma_off, srm.velocity_threshold, mode),
                     args.loop_repeats)
        diff = float(np.abs(srm(score, args.duration).numpy()
                            - per_note_loop(score, args.duration, fr, sigma_on, sigma_off, srm.velocity_threshold,
                                            mode)).max())
        rows[mode] = dict(vectorised_ms_median=float(np.median(fast)), vectorised_ms_min=float(fast.min()),
                          vectorised_cpu_ms_median=float(np.median(fast_cpu)),
                          loop_ms_median=float(np.median(loop)), loop_ms_min=float(loop.min()),
                          speedup_median=float(np.median(loop) / np.median(fast)),
                          x_real_time=float(args.duration * 1e3 / np.median(fast)), max_abs_diff=diff)
        ok &= diff < 1e-4
    soft = rows["soft"]
    targets = dict(ms_max=10.0, speedup_min=15.0)
    meets = soft["vectorised_ms_median"] <= targets["ms_max"] and soft["speedup_median"] >= targets["speedup_min"]

    print(f"SRM benchmark: {len(score.notes)} notes, {args.duration:g} s, {args.sample_rate} Hz / {args.ratio} "
          f"= {fr:.2f} frames/s, T_H = {T}, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    print(f"{'mode':8s} {'vectorised ms (median/min)':>28s} {'cpu ms':>7s} {'x real time':>12s} "
          f"{'loop ms (median)':>17s} {'speedup':>8s} {'max |diff|':>11s}")
    for mode, r in rows.items():
        print(f"{mode:8s} {r['vectorised_ms_median']:>17.2f} / {r['vectorised_ms_min']:<8.2f} "
              f"{r['vectorised_cpu_ms_median']:>7.2f} {r['x_real_time']:>12.0f} "
              f"{r['loop_ms_median']:>17.1f} {r['speedup_median']:>7.0f}x {r['max_abs_diff']:>11.1e}")
    print(f"targets (soft, median wall time): <= {targets['ms_max']:g} ms and >= {targets['speedup_min']:g}x the loop -> "
          f"{'met' if meets else 'NOT met'}; vectorised and loop agree: {ok}")
    print(f"command: {command}")

    result = dict(command=command, notes=len(score.notes), duration_s=args.duration, sample_rate=args.sample_rate,
                  downsampling_ratio=args.ratio, frame_rate=fr, T_H=T, repeats=args.repeats,
                  loop_repeats=args.loop_repeats, source=args.midi or "synthetic dense piano (seed 0)",
                  machine=dict(platform=platform.platform(), processor=platform.processor(), cpus=os.cpu_count(),
                               load_1min=os.getloadavg()[0], torch_threads=torch.get_num_threads(),
                               numpy=np.__version__, torch=torch.__version__),
                  results=rows, targets=targets, targets_met=bool(meets), agree=bool(ok))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
