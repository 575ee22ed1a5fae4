"""Shared plumbing of bench_dit_step.py, bench_guidance_step.py and bench_rtf.py (not a benchmark itself).

* ``interleaved``: every candidate runs once per round, rounds alternate the order (A B C, C B A, ...),
  so a busy shared machine slows all candidates alike; each call is timed in wall-clock seconds and in
  process CPU seconds (CPU time does not count waiting for a core, so it is the steadier number on a
  loaded machine with one torch thread).
* ``paired_ratio``: the median over rounds of t_candidate / t_reference, measured in the same round.
* ``environment``: versions, torch threads, device, load average; ``finish`` writes the JSON and prints
  the command.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
import typing as tp
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def command_line() -> str:
    """The exact command that produced a result (interpreter, script, arguments)."""
    return shlex.join([sys.executable, *sys.argv])


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device | str) -> dict:
    """Everything a reader needs to judge a number: versions, threads, device, load."""
    import stable_audio_tools  # noqa: F401
    from importlib.metadata import version

    device = torch.device(device)
    env = {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "stable_audio_tools": version("stable-audio-tools"), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "load_average_start": list(os.getloadavg()),
    }
    if device.type == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def interleaved(fns: tp.Mapping[str, tp.Callable[[], tp.Any]], repeats: int, warmup: int,
                device: torch.device | str) -> dict[str, dict[str, list[float]]]:
    """name → {"wall": [s per round], "cpu": [s per round]}; ``warmup`` untimed rounds first."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    synchronize(device)
    times = {name: {"wall": [], "cpu": []} for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            synchronize(device)
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            synchronize(device)
            times[name]["wall"].append(time.perf_counter() - w0)
            times[name]["cpu"].append(time.process_time() - c0)
    return times


def paired_ratio(candidate: tp.Sequence[float], reference: tp.Sequence[float]) -> float:
    """Median over rounds of candidate / reference (both timed in the same round)."""
    return statistics.median(c / r for c, r in zip(candidate, reference))


def summarize(times: dict[str, dict[str, list[float]]], reference: str) -> list[dict]:
    """One row per candidate: medians/minima in ms and paired ratios against ``reference``."""
    ref = times[reference]
    rows = []
    for name, t in times.items():
        rows.append({
            "name": name,
            "wall_ms_median": 1e3 * statistics.median(t["wall"]), "wall_ms_min": 1e3 * min(t["wall"]),
            "cpu_ms_median": 1e3 * statistics.median(t["cpu"]),
            "ratio_wall": paired_ratio(t["wall"], ref["wall"]), "ratio_cpu": paired_ratio(t["cpu"], ref["cpu"]),
            "ratio_of_medians_wall": statistics.median(t["wall"]) / statistics.median(ref["wall"]),
            "wall_s": t["wall"], "cpu_s": t["cpu"],
        })
    return rows


def print_rows(title: str, rows: list[dict], reference: str) -> None:
    print(title)
    print(f"  {'candidate':46s} {'wall ms med':>11s} {'wall ms min':>11s} {'cpu ms med':>10s} "
          f"{'x ref wall':>10s} {'x ref cpu':>9s}")
    for r in rows:
        mark = "  (reference)" if r["name"] == reference else ""
        print(f"  {r['name']:46s} {r['wall_ms_median']:11.2f} {r['wall_ms_min']:11.2f} {r['cpu_ms_median']:10.2f} "
              f"{r['ratio_wall']:10.3f} {r['ratio_cpu']:9.3f}{mark}")


def finish(name: str, out: Path | None, result: dict) -> Path:
    """Add the command and the end-of-run load, write JSON, print where."""
    command = command_line()
    result["command"] = command
    result.setdefault("environment", {})["load_average_end"] = list(os.getloadavg())
    out = Path(out) if out is not None else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    env = result["environment"]
    print(f"torch threads {env.get('torch_threads')}, device {env.get('device')}, load average "
          f"start {env.get('load_average_start')} / end {env['load_average_end']}")
    print(f"command: {command}")
    print(f"wrote {out}")
    return out


def load_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    return json.loads(path.read_text())


# -- configs → backbone-only models and random conditioning tensors ------------------------------------
OUR_DIT_KEYS = ("cond_dropout", "lr_latent_null_value", "text_null_value", "use_checkpointing")


def backbone_only(config: dict) -> dict:
    """The config without pretransform and conditioners: the model wrapper routes conditioning tensors
    that are fed directly (``wrapper(x, t, cond={id: (tensor, mask)})``)."""
    model = {k: v for k, v in config["model"].items() if k not in ("pretransform", "conditioning")}
    return {**config, "model": model}


def stock_dit_config(config: dict) -> dict:
    """A stock stable-audio-tools ``dit`` config of identical size to a ``dit_concat`` config: same widths,
    input_concat_dim, cond dims and routing ids; our keys (condition dropout, null values,
    checkpointing switch) removed."""
    config = backbone_only(config)
    diffusion = dict(config["model"]["diffusion"])
    assert diffusion["type"] == "dit_concat", f"expected a dit_concat config, got {diffusion['type']!r}"
    diffusion["type"] = "dit"
    diffusion["config"] = {k: v for k, v in diffusion["config"].items() if k not in OUR_DIT_KEYS}
    return {**config, "model": {**config["model"], "diffusion": diffusion}}


def random_conditioning(config: dict, batch: int, frames: int, device: torch.device | str,
                        generator: torch.Generator) -> dict:
    """Conditioner outputs {id: [tensor, mask]} shaped as the config's conditioners return them:
    ``t5_local`` (b, max_length, cond_dim) with a mask that pads the second half, single-token
    conditioners (roll-off, number) (b, 1, cond_dim), input-concat ids (b, channels, frames)."""
    conditioning = config["model"].get("conditioning", {})
    cond_dim = conditioning.get("cond_dim", 0)
    diffusion = config["model"]["diffusion"]
    concat_ids = diffusion.get("input_concat_ids", [])
    concat_dim = diffusion["config"].get("input_concat_dim", 0)
    out = {}
    for item in conditioning.get("configs", []):
        cid, ctype, ccfg = item["id"], item["type"], item.get("config", {})
        if cid in concat_ids:
            ch = concat_dim // len(concat_ids)
            out[cid] = [torch.randn(batch, ch, frames, generator=generator),
                        torch.ones(batch, frames, dtype=torch.bool)]
        elif ctype in ("t5_local", "t5", "clap_text"):
            m = int(ccfg.get("max_length", 128))
            mask = torch.arange(m)[None].expand(batch, m) < max(1, m // 2)
            out[cid] = [torch.randn(batch, m, cond_dim, generator=generator) * mask[..., None], mask.clone()]
        else:
            out[cid] = [torch.randn(batch, 1, cond_dim, generator=generator), torch.ones(batch, 1, dtype=torch.bool)]
    return {k: [v.to(device) for v in vs] for k, vs in out.items()}
