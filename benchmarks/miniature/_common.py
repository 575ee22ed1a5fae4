"""Shared plumbing of the miniature reproductions (not a benchmark itself).

* ``run``: runs one command (train.py, sample.py, an evaluation module) as a subprocess with ``THREADS`` torch
  threads, prints it exactly, writes its output to a log file and returns the wall time; a failing command
  stops the script with its log tail. ``run_parallel`` does the same for several commands at once (the
  trainings of the compared models, one core each); ``run_named`` keys the wall times by name.
* ``train_job`` / ``train_models``: the ``train.py`` run of each compared model, all started at once.
* ``publish``: copies an evaluation folder into the committed results with its PNGs shrunk.
* ``read_loss_curve`` / ``plot_loss_curves``: ``train/loss`` against ``step`` from the Lightning CSV logger
  (``train.py --logger csv`` writes ``RUN/logs/version_*/metrics.csv``), raw and smoothed.
* ``shrink_png``: re-saves a PNG with a 256-colour palette so committed figures stay small.
* ``environment``: versions, cores and load average, so a reader can judge the wall times.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
COMMANDS: list[str] = []  # every command ``run`` started, in order (for the reports)
# Torch threads per subprocess (OMP_NUM_THREADS/MKL_NUM_THREADS). On a small shared CPU one thread is far faster:
# with more, OpenMP threads spin-wait for cores the other processes hold (measured here: HS-MAD tiny training
# 0.05 it/s with two threads, 1 it/s with one, same losses).
THREADS = {"value": 1}


def command_line() -> str:
    """The exact command that started this script."""
    return shlex.join([sys.executable, *sys.argv])


def demo_corpus(path: str | None) -> Path:
    """The demo corpus root: ``--corpus``, else ``$SAGA_HSMAD_DEMO_CORPUS``, else the builder's default."""
    if path:
        return Path(path).expanduser()
    if os.environ.get("SAGA_HSMAD_DEMO_CORPUS"):
        return Path(os.environ["SAGA_HSMAD_DEMO_CORPUS"]).expanduser()
    sys.path.insert(0, str(REPO))
    from saga_hsmad.data.demo_corpus import default_cache_dir

    return default_cache_dir()


def ensure_corpus(root: Path) -> None:
    """Build the demo corpus if it is missing (offline, deterministic, about two minutes on two cores)."""
    if (root / "manifest.json").is_file():
        return
    run([PYTHON, "-m", "saga_hsmad.data.demo_corpus", "--out", str(root)], root.parent / "demo_corpus_build.log")


def run(cmd: tp.Sequence[str], log: Path, env: dict | None = None) -> float:
    """Run ``cmd`` from the repository root, print it, write its output to ``log``; returns wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    COMMANDS.append(shlex.join(cmd))
    print(f"$ {COMMANDS[-1]}", flush=True)
    start = time.time()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(list(cmd), cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": str(THREADS["value"]),
                                   "MKL_NUM_THREADS": str(THREADS["value"]), **(env or {})})
    seconds = time.time() - start
    if proc.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-30:])
        raise SystemExit(f"command failed (exit {proc.returncode}) after {seconds:.0f} s; log {log}:\n{tail}")
    print(f"  done in {seconds:.0f} s (log {log})", flush=True)
    return seconds


def run_parallel(jobs: tp.Sequence[tuple[tp.Sequence[str], Path, dict | None]], max_parallel: int) -> list[float]:
    """Run ``(cmd, log, env)`` jobs ``max_parallel`` at a time (each with ``THREADS`` torch threads), as ``run``
    does one; returns each job's wall seconds. Any failure stops the script with that job's log tail."""
    pending, running, seconds = list(enumerate(jobs)), {}, [0.0] * len(jobs)
    while pending or running:
        while pending and len(running) < max(1, max_parallel):
            i, (cmd, log, env) = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            COMMANDS.append(shlex.join(cmd))
            print(f"$ {COMMANDS[-1]}  &", flush=True)
            f = open(log, "w", encoding="utf-8")
            proc = subprocess.Popen(list(cmd), cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                    env={**os.environ, "OMP_NUM_THREADS": str(THREADS["value"]),
                                         "MKL_NUM_THREADS": str(THREADS["value"]), **(env or {})})
            running[i] = (proc, f, log, time.time())
        time.sleep(1.0)
        for i, (proc, f, log, start) in list(running.items()):
            if proc.poll() is None:
                continue
            f.close()
            del running[i]
            seconds[i] = time.time() - start
            if proc.returncode != 0:
                for other, *_ in running.values():
                    other.kill()
                tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-30:])
                raise SystemExit(f"command failed (exit {proc.returncode}) after {seconds[i]:.0f} s; log {log}:\n{tail}")
            print(f"  done in {seconds[i]:.0f} s (log {log})", flush=True)
    return seconds


def run_named(jobs: dict[str, tuple | None], max_parallel: int) -> dict[str, float]:
    """``run_parallel`` over named jobs (``None`` = nothing to run, e.g. a reused checkpoint); name → seconds."""
    todo = {name: job for name, job in jobs.items() if job is not None}
    return dict(zip(todo, run_parallel(list(todo.values()), max_parallel)))


def exported_checkpoint(run_dir: Path) -> Path:
    """The inference checkpoint train.py writes at the end of a run: ``export.safetensors`` (``export.ckpt``
    from older train.py versions, when that is the one present)."""
    legacy = run_dir / "export.ckpt"
    return legacy if legacy.is_file() and not (run_dir / "export.safetensors").is_file() else \
        run_dir / "export.safetensors"


def train_job(args, name: str, model_config: str, dataset_config: str, corpus: Path):
    """The ``train.py`` job (cmd, log, env) of one compared model, or None when ``--skip-train`` finds its
    exported checkpoint. A stale run folder is removed first (an old CSV log or checkpoint would mix runs)."""
    run_dir = args.run_dir / name
    if args.skip_train and exported_checkpoint(run_dir).is_file():
        print(f"reusing {exported_checkpoint(run_dir)}")
        return None
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [PYTHON, "train.py", "--model-config", model_config, "--dataset-config", dataset_config,
           "--accelerator", "cpu", "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--seed", str(args.seed), "--num-workers", str(args.num_workers), "--logger", "csv",
           "--save-dir", str(args.run_dir), "--name", name, "--checkpoint-every", str(10 ** 9)]
    return cmd, args.run_dir / f"{name}_train.log", {"SAGA_HSMAD_DEMO_CORPUS": str(corpus)}


def train_models(args, models: dict[str, str], dataset_config: str, corpus: Path) -> dict[str, float]:
    """Train every compared model at once (``args.parallel`` at a time); wall seconds per model and overall."""
    started = time.time()
    times = {f"train {name}": seconds for name, seconds in run_named(
        {name: train_job(args, name, config, dataset_config, corpus) for name, config in models.items()},
        args.parallel).items()}
    times["training, wall (parallel)"] = time.time() - started
    return times


def tail_mean(values: tp.Sequence[float]) -> float:
    """Mean of the last fifth of ``values`` (at least one value): the end-of-training loss."""
    n = max(1, len(values) // 5)
    return sum(values[-n:]) / n


def publish(src: Path, dest: Path, ignore: tp.Sequence[str] = ()) -> None:
    """Copy an evaluation folder into the committed results (replacing an old copy), PNGs shrunk."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
    for png in dest.rglob("*.png"):
        shrink_png(png)


def read_loss_curve(run_dir: Path, key: str = "train/loss") -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` from the newest CSV-logger file under ``run_dir/logs``."""
    files = sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no CSV log under {run_dir / 'logs'} (train.py --logger csv writes it)")
    steps, values = [], []
    with open(files[-1], newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get(key) not in (None, "") and row.get("step") not in (None, ""):
                steps.append(int(float(row["step"])))
                values.append(float(row[key]))
    return steps, values


def smooth(values: tp.Sequence[float], window: int) -> list[float]:
    """Trailing moving average (window clipped at the start)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(path: Path, curves: dict[str, tuple[list[int], list[float]]], title: str,
                     ylabel: str = "train/loss (rectified-flow MSE)") -> None:
    """One line per run: raw values faint, a moving average bold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, (steps, values)) in enumerate(curves.items()):
        colour = f"C{i}"
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        window = max(1, len(values) // 15)
        ax.plot(steps, smooth(values, window), color=colour, linewidth=2, label=f"{label} (mean of {window})")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    shrink_png(path)


def shrink_png(path: Path) -> None:
    """Re-save with an adaptive 256-colour palette (figures drop to a fraction of their size)."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


def environment() -> dict:
    import numpy as np
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or x != x:  # NaN
        return "n/a"
    return f"{x:.{digits}f}"
