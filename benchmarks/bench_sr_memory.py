"""Benchmark: peak memory and wall time of SAGA-SR super-resolution (``sample.py``) on long files.

Each measurement is one ``sample.py`` run in its own subprocess on a synthetic stereo 16 kHz WAV of the
given length (tones plus noise, written block by block); the child reports its peak resident memory
(``VmHWM`` from /proc/self/status, and ``ru_maxrss``) and wall time, each also split into checkpoint loading
and processing (VmHWM is reset after loading), since for larger models loading is the overall peak. The target: the peak for a 10-minute
file at most 1.2 x the peak for a 1-minute file (memory must not grow with file length: the input is read
and resampled as a stream, the output streams to disk through a one-window overlap-add buffer).

Models (random weights, saved as inference checkpoints in the work folder): ``tiny`` =
model_configs/saga_sr/tiny.json; ``small`` = model_configs/saga_sr/small.json with its T5-base replaced by the
offline ``tiny-random`` T5 (T5-base weights are not available offline; this changes the constant model
memory, not how memory scales with length). A 0.1-minute run gives the baseline (runtime + model).

    /work/venv/bin/python benchmarks/bench_sr_memory.py [--configs tiny small] [--minutes 0.1 1 10] \
        [--steps 2] [--window 262144] [--out benchmarks/results/sr_memory.json]

Writes JSON to --out and prints a table, the exact ``sample.py`` commands and the benchmark command.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

INPUT_RATE = 16_000


def peak_rss_kb() -> dict:
    status = Path("/proc/self/status").read_text()
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return {"vmhwm_kb": hwm, "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run_sample_measured(mode_cls: type, argv: list[str], marks: dict) -> dict:
    """Run sample.py's main in this process with ``mode_cls.run`` wrapped to split the memory peak, and return
    rc, wall times and peaks: ``load_vmhwm_kb`` up to the start of ``run`` (after the checkpoint is loaded),
    then VmHWM is reset (``/proc/self/clear_refs`` = 5) so ``processing_vmhwm_kb`` is the peak while the mode
    runs. ``marks`` is shared with any other wrapper the caller installs."""
    import importlib.util

    original_run = mode_cls.run

    def run(self, *args, **kwargs):
        marks["load"] = peak_rss_kb()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            marks["hwm_reset"] = True
        except OSError:
            marks["hwm_reset"] = False
        started = time.perf_counter()
        try:
            return original_run(self, *args, **kwargs)
        finally:
            marks["processing_wall_s"] = time.perf_counter() - started

    mode_cls.run = run
    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location("sample_script", REPO / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rc = module.main(argv)
    end = peak_rss_kb()
    load = marks.get("load", {"vmhwm_kb": None})
    return {"rc": rc, "wall_s": time.perf_counter() - start, "processing_wall_s": marks.get("processing_wall_s"),
            "load_vmhwm_kb": load["vmhwm_kb"], "hwm_reset": marks.get("hwm_reset", False),
            # the whole run's peak (what a user sees) and the peak while processing
            "vmhwm_kb": max(v for v in (load["vmhwm_kb"], end["vmhwm_kb"]) if v is not None),
            "processing_vmhwm_kb": end["vmhwm_kb"] if marks.get("hwm_reset") else None,
            "ru_maxrss_kb": end["ru_maxrss_kb"]}


def child(json_out: str, argv: list[str]) -> int:
    """Run sample.py's main in this process and write its peak memory and wall time
    (``run_sample_measured``; the processing peak is the part that could grow with the input's length)."""
    from saga_hsmad.inference import super_resolution

    result = run_sample_measured(super_resolution.SuperResolutionMode, argv, {})
    Path(json_out).write_text(json.dumps(result))
    return result["rc"]


def write_input(path: Path, minutes: float, seed: int = 0) -> None:
    """Stereo 16 kHz PCM_16 WAV: two tones plus noise, written in 10 s blocks (parent memory stays small)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(round(minutes * 60 * INPUT_RATE))
    block = 10 * INPUT_RATE
    with sf.SoundFile(str(path), "w", samplerate=INPUT_RATE, channels=2, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / INPUT_RATE
            tones = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1330 * t)
            f.write((tones[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32))


def make_checkpoint(name: str, folder: Path) -> tuple[Path, str]:
    import torch

    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    config = json.loads((REPO / "model_configs" / "saga_sr" / f"{name}.json").read_text())
    note = f"model_configs/saga_sr/{name}.json, random weights"
    for item in config["model"]["conditioning"]["configs"]:
        if item["type"] == "t5_local" and item["config"].get("model_name_or_path") != "tiny-random":
            item["config"]["model_name_or_path"] = "tiny-random"
            note += " (T5 replaced by the offline tiny-random T5)"
    saga_hsmad.install()
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    params = sum(p.numel() for p in model.parameters())
    path = folder / f"{name}.ckpt"
    save_inference_checkpoint(path, model.state_dict(), config, ema=False)
    return path, f"{note}, {params / 1e6:.1f} M parameters"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny"], choices=["tiny", "small"])
    p.add_argument("--minutes", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--window", type=int, default=262144, help="SR window in samples (the paper's 5.944 s)")
    p.add_argument("--batch-windows", type=int, default=1)
    p.add_argument("--workdir", default=None, help="folder for inputs, checkpoints and outputs (default: a temp dir)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sr_memory.json"))
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1:])

    from _common import environment, finish

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_sr_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"environment": environment("cpu"), "settings": vars(args) | {"workdir": str(work)}, "runs": []}
    for minutes in args.minutes:
        path = work / f"input_{minutes:g}min.wav"
        if not path.exists():
            write_input(path, minutes)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in args.configs:
        ckpt, note = make_checkpoint(name, work)
        for minutes in args.minutes:
            out_dir = work / f"out_{name}"
            sample_args = ["--ckpt", str(ckpt), "--input", str(work / f"input_{minutes:g}min.wav"), "--output",
                           str(out_dir), "--steps", str(args.steps), "--device", "cpu", "--caption", "benchmark",
                           "--window", str(args.window), "--batch-windows", str(args.batch_windows), "--overwrite"]
            command = shlex.join([sys.executable, str(REPO / "sample.py"), *sample_args])
            json_out = work / f"child_{name}_{minutes:g}.json"
            proc = subprocess.run([sys.executable, __file__, "--child", str(json_out), *sample_args], env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not json_out.exists():
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"{name} {minutes} min failed ({proc.returncode})")
            run = json.loads(json_out.read_text())
            run.update({"config": name, "model": note, "minutes": minutes, "command": command,
                        "output_seconds": __import__("soundfile").info(
                            str(out_dir / f"input_{minutes:g}min.wav")).duration})
            result["runs"].append(run)
            processing = run["processing_vmhwm_kb"]
            print(f"{name:6s} {minutes:5g} min: peak RSS {run['vmhwm_kb'] / 1024:8.1f} MB (loading "
                  f"{run['load_vmhwm_kb'] / 1024:.1f} MB, processing "
                  f"{processing / 1024 if processing else float('nan'):.1f} MB), wall {run['wall_s']:8.1f} s "
                  f"(processing {run['processing_wall_s']:.1f} s)  [{command}]", flush=True)
    ratios, processing_ratios = {}, {}
    for name in args.configs:
        by_min = {r["minutes"]: r for r in result["runs"] if r["config"] == name}
        if 1.0 in by_min and 10.0 in by_min:
            ratios[name] = by_min[10.0]["vmhwm_kb"] / by_min[1.0]["vmhwm_kb"]
            line = f"{name}: peak memory 10 min / 1 min = {ratios[name]:.3f} (target <= 1.2)"
            if by_min[10.0]["processing_vmhwm_kb"] and by_min[1.0]["processing_vmhwm_kb"]:
                processing_ratios[name] = by_min[10.0]["processing_vmhwm_kb"] / by_min[1.0]["processing_vmhwm_kb"]
                line += f"; while processing {processing_ratios[name]:.3f}"
            print(line)
    result["ratio_10min_over_1min"] = ratios
    result["processing_ratio_10min_over_1min"] = processing_ratios
    result["target_ratio"] = 1.2
    finish("sr_memory", Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
