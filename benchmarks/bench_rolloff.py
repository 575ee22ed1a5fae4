"""Benchmark: normalised spectral roll-off of one 5.944 s stereo window (262,144 samples at 44.1 kHz).

Compares ``saga_hsmad.dsp.rolloff.spectral_rolloff`` (torch, vectorised) with the same quantity computed
the way the official SAGA-SR code does (numpy channel mean, ``librosa.stft`` with its defaults, numpy
magnitude/sum/cumsum and a Python loop from the top bin), measured in the same run, interleaved, on the
same windows, and checks that both give the same roll-off bin for every window.

    /work/venv/bin/python benchmarks/bench_rolloff.py [--windows 16] [--repeats 15] [--threads 1] [--out PATH]

Writes JSON to --out (default benchmarks/results/bench_rolloff.json) and prints a table and the command.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saga_hsmad.dsp.lowpass import apply_lowres  # noqa: E402
from saga_hsmad.dsp.rolloff import spectral_rolloff, spectral_rolloff_bin  # noqa: E402

SR = 44100
WINDOW = 262144


def official_way_bin(audio: np.ndarray) -> int:
    """The official recipe: mean over channels, |librosa.stft(n_fft=2048)| (librosa defaults: hop 512,
    periodic Hann, centred, zero padding), sum over time, cumulative sum, then scan from the top for the
    last bin strictly below 0.985 x total (0 if none)."""
    import librosa

    mono = np.mean(audio, axis=0)
    magnitude = np.abs(librosa.stft(mono, n_fft=2048))
    energy = np.cumsum(np.sum(magnitude, axis=-1))
    threshold = energy[-1] * 0.985
    for i in range(1, energy.shape[0]):
        if energy[-i] < threshold:
            return energy.shape[0] - i
    return 0


def make_windows(n: int, seed: int = 0) -> list[np.ndarray]:
    """Stereo float32 windows with varied band limits: low-passed noise, LR-simulated noise, full band."""
    rng = np.random.default_rng(seed)
    windows = []
    for i in range(n):
        x = rng.standard_normal((2, WINDOW))
        kind = i % 3
        if kind == 0:
            cutoff = float(rng.uniform(1000, 20000))
            x = signal.sosfiltfilt(signal.butter(8, cutoff / (SR / 2), output="sos"), x, axis=-1)
        elif kind == 1:
            x = apply_lowres(x, SR, "cheby1", 8, float(rng.integers(80, 640) * 25))
        windows.append(np.ascontiguousarray(0.3 * x / np.abs(x).max(), dtype=np.float32))
    return windows


def time_interleaved(fns: dict, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Run every function once per round, rounds interleaved, so a noisy machine affects all alike.

    Records wall time and the calling thread's CPU time. With one torch thread all work runs on the
    calling thread, so CPU time is the robust measure on a shared machine (it leaves out the time the
    process waited for a core); wall time is reported next to it.
    """
    for fn in fns.values():
        fn()  # warm-up (imports, caches, first-call allocation)
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            times[name]["cpu"].append(time.thread_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (numpy/librosa use one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_rolloff.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = shlex.join([sys.executable, *sys.argv])
    load_before = os.getloadavg()

    windows = make_windows(args.windows)
    tensors = [torch.from_numpy(w) for w in windows]
    batch = torch.stack(tensors)

    # agreement: the same roll-off bin for every window
    ours_bins = [int(spectral_rolloff_bin(t)) for t in tensors]
    official_bins = [official_way_bin(w) for w in windows]
    batch_bins = spectral_rolloff_bin(batch).tolist()
    mismatches = sum(a != b for a, b in zip(ours_bins, official_bins))
    ratio_diff = max(abs(float(spectral_rolloff(t)) - b / 1025) for t, b in zip(tensors, official_bins))

    times = time_interleaved({
        "official (librosa + numpy), per window": lambda: [official_way_bin(w) for w in windows],
        "ours (torch), per window": lambda: [spectral_rolloff(t) for t in tensors],
        f"ours (torch), one batch of {len(windows)}": lambda: spectral_rolloff(batch),
    }, args.repeats)
    n = len(windows)
    ref_name = "official (librosa + numpy), per window"
    rows = []
    for name, clocks in times.items():
        row = {"method": name}
        for clock in ("cpu", "wall"):
            ts = [t / n for t in clocks[clock]]
            ref = [t / n for t in times[ref_name][clock]]
            row[f"{clock}_median_ms"] = 1e3 * statistics.median(ts)
            row[f"{clock}_min_ms"] = 1e3 * min(ts)
            row[f"{clock}_speedup_median"] = statistics.median(ref) / statistics.median(ts)
            row[f"{clock}_speedup_min"] = min(ref) / min(ts)
        rows.append(row)

    print(f"spectral roll-off of a {WINDOW / SR:.3f} s stereo window ({WINDOW} samples), {n} windows, "
          f"{args.repeats} interleaved rounds, torch threads {args.threads}; times per window")
    print(f"{'method':40s} {'cpu med ms':>10s} {'cpu min':>8s} {'x cpu med':>9s} {'x cpu min':>9s} "
          f"{'wall med':>9s} {'x wall med':>10s}")
    for r in rows:
        print(f"{r['method']:40s} {r['cpu_median_ms']:10.3f} {r['cpu_min_ms']:8.3f} {r['cpu_speedup_median']:9.2f} "
              f"{r['cpu_speedup_min']:9.2f} {r['wall_median_ms']:9.3f} {r['wall_speedup_median']:10.2f}")
    print(f"identical roll-off bins: {len(windows) - mismatches}/{len(windows)} (batch == per item: "
          f"{batch_bins == ours_bins}); max |ratio difference| {ratio_diff:.2e} (float32 rounding of bin/1025)")
    print(f"load average before/after: {load_before} / {os.getloadavg()}")
    print(f"command: {command}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_rolloff", "command": command, "window_samples": WINDOW, "sample_rate": SR,
        "windows": len(windows), "repeats": args.repeats, "torch_threads": args.threads,
        "timing": "per window; cpu = calling thread's CPU time (time.thread_time), wall = time.perf_counter",
        "rows": rows,
        "identical_bins": len(windows) - mismatches, "batch_equals_items": batch_bins == ours_bins,
        "max_ratio_difference": ratio_diff, "bins": {"ours": ours_bins, "official": official_bins},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "librosa": __import__("librosa").__version__}, "machine": platform.processor() or platform.machine(),
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
