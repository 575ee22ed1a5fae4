"""Benchmark: training throughput of ``train.py`` on a CPU: loader workers kept across epochs or not, fused or
unfused AdamW, and one process vs one DDP process per core.

Candidates (the first is the reference, the loader's and the tiny configs' earlier defaults):

* ``fresh workers, default AdamW``: one process, the loader's worker started anew each epoch (``"loader":
  {"persistent_workers": false}`` in the dataset config) and ``"fused": false`` in the optimizer config
  (torch's default AdamW: a loop over the parameters on a CPU, the foreach kernels on CUDA);
* ``persistent workers, default AdamW``: the loader's default now;
* ``persistent workers, fused AdamW``: the model config's optimizer as shipped (the tiny HS-MAD configs set
  ``"fused": true``), or with ``fused`` unset when the config does not use AdamW;
* ``N DDP processes``: ``--devices N --strategy ddp`` with the shipped configs. One process already uses every
  core through torch's intra-op threads; N processes (Lightning gives each cores / N threads) each take a slice
  of the batch, and a per-process batch of B / N keeps the effective batch B, so steps compare one for one.

Each candidate trains the same configuration twice, for ``--short`` and ``--long`` optimizer steps, each
run a fresh ``train.py`` in its own process tree; the time per step is the difference of the two wall
times over the difference of the steps, so start-up (imports, process launch, the first batches) cancels.
Rounds alternate the candidates' order. The ratio is the reference's time per step over the candidate's
(> 1: the candidate trains faster), per round, median over rounds.

    .venv/bin/python benchmarks/bench_train_processes.py [--model-config model_configs/hsmad/tiny.json] \
        [--dataset-config dataset_configs/hsmad/demo.json] [--batch-size 8] [--processes 2] \
        [--short 20] [--long 220] [--rounds 2] [--out benchmarks/results/train_processes.json]

The demo corpus must exist (``python -m saga_hsmad.demo --task midi`` or any test run builds it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, environment, finish  # noqa: E402


def train_seconds(args, processes: int, model_config: Path, dataset_config: Path, steps: int, work: Path) -> float:
    """Wall seconds of one ``train.py`` run of ``steps`` steps with ``processes`` processes."""
    line = [sys.executable, "train.py", "--model-config", str(model_config), "--dataset-config", str(dataset_config),
            "--accelerator", "cpu", "--max-steps", str(steps), "--batch-size", str(args.batch_size // processes),
            "--num-workers", "1", "--seed", "0", "--checkpoint-every", str(steps), "--save-dir", str(work),
            "--name", f"{model_config.stem}_{dataset_config.stem}_p{processes}_s{steps}", "--logger", "none", "--no-export"]
    if processes > 1:
        line += ["--devices", str(processes), "--strategy", "ddp"]
    started = time.perf_counter()
    subprocess.run(line, cwd=str(REPO), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def with_fused(model_config: dict, fused: bool) -> dict:
    """``model_config`` with ``fused`` set in every AdamW optimizer config (``training.optimizer_configs``)."""
    config = json.loads(json.dumps(model_config))
    for entry in config.get("training", {}).get("optimizer_configs", {}).values():
        optimizer = entry.get("optimizer", {})
        if optimizer.get("type") == "AdamW":
            optimizer.setdefault("config", {})["fused"] = fused
    return config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-config", default="model_configs/hsmad/tiny.json")
    p.add_argument("--dataset-config", default="dataset_configs/hsmad/demo.json")
    p.add_argument("--batch-size", type=int, default=8, help="effective batch, split between the processes")
    p.add_argument("--processes", type=int, nargs="*", default=[2], help="DDP candidates (processes each)")
    p.add_argument("--short", type=int, default=20)
    p.add_argument("--long", type=int, default=220)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    bad = [n for n in args.processes if n < 2 or args.batch_size % n]
    if bad:
        p.error(f"--processes {bad[0]}: needs at least 2 processes that split --batch-size {args.batch_size} evenly")

    env = environment("cpu")
    dataset = json.loads((REPO / args.dataset_config).read_text())
    model = json.loads((REPO / args.model_config).read_text())
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        configs = {}
        for name, persistent in (("fresh", False), ("persistent", True)):
            configs[name] = Path(tmp) / f"{name}_workers.json"
            loader = {**dataset.get("loader", {}), "persistent_workers": persistent}
            configs[name].write_text(json.dumps({**dataset, "loader": loader}))
        configs["shipped"] = REPO / args.model_config
        configs["unfused"] = Path(tmp) / "unfused_adamw.json"
        configs["unfused"].write_text(json.dumps(with_fused(model, False)))
        candidates = {"fresh workers, default AdamW": (1, configs["unfused"], configs["fresh"]),
                      "persistent workers, default AdamW": (1, configs["unfused"], configs["persistent"]),
                      "persistent workers, fused AdamW": (1, configs["shipped"], configs["persistent"]),
                      **{f"{n} DDP processes": (n, configs["shipped"], configs["persistent"]) for n in args.processes}}
        per_step = {name: [] for name in candidates}
        for r in range(args.rounds):
            for name in (list(candidates) if r % 2 == 0 else list(candidates)[::-1]):
                n, model_config, dataset_config = candidates[name]
                short = train_seconds(args, n, model_config, dataset_config, args.short, Path(tmp) / f"r{r}")
                long = train_seconds(args, n, model_config, dataset_config, args.long, Path(tmp) / f"r{r}")
                per_step[name].append((long - short) / (args.long - args.short))
                print(f"round {r}: {name}: {per_step[name][-1] * 1e3:.0f} ms per step "
                      f"({short:.0f} s for {args.short} steps, {long:.0f} s for {args.long})", flush=True)
    reference = next(iter(candidates))
    rows = []
    print(f"\n{'candidate':<36} {'batch each':>10} {'ms/step med':>11} {'steps/s':>8} {'speed-up':>9}")
    for name, times in per_step.items():
        n = candidates[name][0]
        speedup = statistics.median(t_ref / t for t_ref, t in zip(per_step[reference], times))
        rows.append({"candidate": name, "processes": n, "batch_per_process": args.batch_size // n,
                     "s_per_step": times, "s_per_step_median": statistics.median(times),
                     "speedup_vs_reference": speedup})
        print(f"{name:<36} {args.batch_size // n:>10} {1e3 * statistics.median(times):>11.0f} "
              f"{1 / statistics.median(times):>8.2f} {speedup:>9.2f}")
    finish("train_processes", args.out, {"environment": env, "config": {**vars(args), "out": str(args.out)},
                                         "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
