"""Benchmark: sampling real-time factor (seconds of audio generated per second of compute) per shipped config.

Random weights (nothing is loaded), batch 1, the full inference path of ``saga_hsmad.inference.generate``:
conditioning from per-item metadata (``conditioning_inputs``: text encoder, roll-off embedders, the LR
window through the model's pretransform, MIDI rendering ...), Euler sampling (``generate_latents``) and
decoding (``decode``). File I/O, resampling, low-frequency replacement and overlap-add are not included.

What one run generates, per model family (chosen by the config's diffusion type):

| family | audio per run | steps | schedule | guidance per step |
|---|---|---|---|---|
| SAGA-SR (``dit_concat``) | 5.944 s (262,144 samples at 44.1 kHz) as ONE window | 100 (spec §5) | linear-quadratic | eq. 4, 3 branches batched |
| HS-MAD (``mrci_unet``) | the config's training window (``sample_size``) | ``sampling.steps`` (50) | linear | decoupled (``sampling.w_structure/w_style``), 3 branches batched |
| generate (anything else) | the config's ``sample_size`` | 50 (``sample.py`` default) | linear | none (cfg 1) |

For SAGA-SR the latent length is 262,144 / the pretransform ratio (128 frames for the SAO VAE, 1,024 for
the tiny ``patch`` pretransform, whose own training window is 0.743 s). Guidance weights do not change the
cost. ``--steps`` overrides the step count of every config.

RTF = audio seconds / seconds of compute (wall clock; also given for process CPU time, which on a loaded
shared machine excludes waiting for a core). Each config: one short warm-up run (2 steps), then
``--repeats`` full runs, median reported; per-step times inside the runs give the median step.

Configs whose weights must come from disk in the text encoder (a ``t5_local`` path that is not present)
get the built-in random ``tiny-random`` T5 instead and say so: the text encoder runs once per window, not
per step. Configs that need something else this machine lacks are skipped with the reason.

    /work/venv/bin/python benchmarks/bench_rtf.py [--configs saga_sr/tiny hsmad/tiny generate/tiny]
        [--device cpu|cuda] [--threads 1] [--repeats 3] [--small-repeats 1] [--steps N]
        [--out benchmarks/results/bench_rtf.json]

The larger configs are opt-in (``--configs saga_sr/small``): on one CPU thread a 100-step small SAGA-SR
run takes several minutes; ``--small-repeats`` sets their number of timed runs.

Models are built by ``saga_hsmad.create_model_from_config`` after ``saga_hsmad.install()``, as ``train.py``
and ``sample.py`` do (stock types such as ``generate/tiny``'s ``dit`` with our ``patch`` pretransform are
built by stable-audio-tools' factory, which sees our types only once installed).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import typing as tp

import numpy as np
import torch

from _common import REPO, default_device, environment, finish, load_config, synchronize

import saga_hsmad  # noqa: E402
from saga_hsmad.inference.generate import conditioning_inputs, decode, generate_latents  # noqa: E402
from saga_hsmad.inference.guidance import decoupled_guidance, saga_sr_guidance  # noqa: E402
from saga_hsmad.inference.schedules import linear_quadratic_schedule, linear_schedule  # noqa: E402

SAGA_SR_SAMPLES = 262_144  # 5.944 s at 44.1 kHz
DEFAULT_CONFIGS = ["saga_sr/tiny", "hsmad/tiny", "generate/tiny"]


def family(config: dict) -> str:
    dtype = config["model"]["diffusion"]["type"]
    return {"dit_concat": "saga_sr", "mrci_unet": "hsmad"}.get(dtype, "generate")


def text_encoder_fallbacks(config: dict) -> list[str]:
    """Replace ``t5_local`` encoders whose local path is missing by the random tiny T5 (noted)."""
    notes = []
    for item in config["model"].get("conditioning", {}).get("configs", []):
        cfg = item.get("config", {})
        if item["type"] == "t5_local" and cfg.get("model_name_or_path", "t5-base") != "tiny-random":
            path = os.path.expanduser(cfg.get("model_name_or_path", "t5-base"))
            if not os.path.isdir(path):
                notes.append(f"{item['id']}: t5_local {path!r} not on disk -> tiny-random T5 (runs once per window)")
                cfg["model_name_or_path"] = "tiny-random"
                item["config"] = cfg
    return notes


def dense_score(duration: float, seed: int = 0):
    """A deterministic dense piano score (about 100 notes per second) for MIDI-conditioned models."""
    from saga_hsmad.symbolic.midi import Score

    rng = np.random.default_rng(seed)
    n = max(1, int(100 * duration))
    starts = np.sort(rng.uniform(0.0, duration, n))
    length = np.clip(rng.lognormal(np.log(0.3), 0.7, n), 0.03, 3.0)
    pitch = np.clip(np.rint(60 + rng.normal(0, 10, n)), 21, 108)
    velocity = np.clip(np.rint(rng.normal(70, 15, n)), 1, 127)
    return Score.from_notes(np.stack([pitch, starts, np.minimum(starts + length, duration), velocity], 1),
                            end_time=duration)


def metadata_for(config: dict, samples: int, sample_rate: int, g: torch.Generator) -> dict:
    """One item's metadata: a value per conditioner id, by conditioner type."""
    md: dict[str, tp.Any] = {"padding_mask": torch.ones(samples, dtype=torch.bool)}
    target = config.get("sampling", {}).get("target_rolloff") or 0.8
    channels = int(config.get("audio_channels", 2))
    for item in config["model"].get("conditioning", {}).get("configs", []):
        cid, ctype = item["id"], item["type"]
        if ctype in ("t5_local", "t5", "clap_text", "sentence_style"):
            md[cid] = config.get("sampling", {}).get(cid) or "a solo piano playing a slow piece in a concert hall"
        elif ctype == "rolloff":
            md[cid] = float(target) if "target" in cid else 0.25
        elif ctype == "number":
            md[cid] = samples / sample_rate
        elif ctype == "pretransform":
            md[cid] = 0.1 * torch.randn(channels, samples, generator=g)
        elif ctype == "hierarchical_midi":
            duration = samples / sample_rate
            md[cid] = {"score": dense_score(duration), "duration": duration}
        else:
            raise NotImplementedError(f"conditioner type {ctype!r} (id {cid!r}): no synthetic input in bench_rtf")
    return md


def plan(config: dict, steps_override: int | None) -> dict:
    fam = family(config)
    if fam == "saga_sr":
        steps = steps_override or 100
        return {"family": fam, "samples": SAGA_SR_SAMPLES, "steps": steps,
                "timesteps": linear_quadratic_schedule(steps), "guidance": saga_sr_guidance(1.4, 1.2),
                "schedule": "linear-quadratic", "guidance_name": "SAGA-SR eq. 4 (s_a 1.4, s_t 1.2), 3 branches"}
    sampling = config.get("sampling", {})
    steps = steps_override or int(sampling.get("steps", 50))
    if fam == "hsmad":
        w_h, w_s = float(sampling.get("w_structure", 2.0)), float(sampling.get("w_style", 1.5))
        return {"family": fam, "samples": int(config["sample_size"]), "steps": steps,
                "timesteps": linear_schedule(steps), "guidance": decoupled_guidance(w_h, w_s),
                "schedule": "linear", "guidance_name": f"HS-MAD decoupled (w_H {w_h:g}, w_S {w_s:g}), 3 branches"}
    return {"family": fam, "samples": int(config["sample_size"]), "steps": steps, "timesteps": linear_schedule(steps),
            "guidance": None, "schedule": "linear", "guidance_name": "none (cfg scale 1)"}


def one_run(model, config: dict, p: dict, device: torch.device, timesteps: torch.Tensor) -> dict:
    """Conditioning + sampling + decoding of one item; seconds per phase (wall and CPU), per-step wall."""
    sr = int(config["sample_rate"])
    g = torch.Generator().manual_seed(0)
    md = metadata_for(config, p["samples"], sr, g)
    ratio = model.pretransform.downsampling_ratio if model.pretransform is not None else 1
    frames = p["samples"] // ratio
    out: dict[str, tp.Any] = {"latent_frames": frames}
    synchronize(device)
    w0, c0 = time.perf_counter(), time.process_time()
    inputs = conditioning_inputs(model, [md], device)
    synchronize(device)
    w1, c1 = time.perf_counter(), time.process_time()
    marks = [w1]

    def callback(i, x):
        synchronize(device)
        marks.append(time.perf_counter())

    latents = generate_latents(model, inputs, (1, model.io_channels, frames), timesteps, guidance=p["guidance"],
                               generator=g, callback=callback)
    synchronize(device)
    w2, c2 = time.perf_counter(), time.process_time()
    audio = decode(model, latents)
    synchronize(device)
    w3, c3 = time.perf_counter(), time.process_time()
    assert audio.shape[-1] == p["samples"], f"decoded {audio.shape[-1]} samples, expected {p['samples']}"
    assert bool(torch.isfinite(audio).all()), "non-finite audio"
    out.update({"conditioning_s": w1 - w0, "sampling_s": w2 - w1, "decode_s": w3 - w2, "total_s": w3 - w0,
                "total_cpu_s": c3 - c0, "sampling_cpu_s": c2 - c1,
                "step_s": [b - a for a, b in zip(marks[:-1], marks[1:])]})
    return out


def run_config(name: str, args, device: torch.device) -> dict:
    path = REPO / "model_configs" / f"{name}.json"
    if not path.exists():
        print(f"\n[{name}] skipped: {path.relative_to(REPO)} does not exist")
        return {"config": str(path.relative_to(REPO)), "skipped": "config file does not exist"}
    config = copy.deepcopy(load_config(path))
    notes = text_encoder_fallbacks(config)
    p = plan(config, args.steps)
    repeats = args.small_repeats if not name.endswith("tiny") else args.repeats
    torch.manual_seed(0)
    try:
        model = saga_hsmad.create_model_from_config(config).to(device).eval()
        metadata_for(config, 16, int(config["sample_rate"]), torch.Generator())  # every conditioner type known
    except (NotImplementedError, OSError, ImportError) as e:
        print(f"\n[{name}] skipped: {e}")
        return {"config": str(path.relative_to(REPO)), "skipped": str(e)}
    params = sum(q.numel() for q in model.parameters()) / 1e6
    seconds = p["samples"] / int(config["sample_rate"])
    print(f"\n[{name}] {p['family']}: {params:.2f} M params, {seconds:.3f} s of audio per run, {p['steps']} steps "
          f"({p['schedule']}), guidance {p['guidance_name']}; warm-up + {repeats} run(s)")
    for n in notes:
        print(f"  note: {n}")
    one_run(model, config, p, device, p["timesteps"][[0, p["steps"] // 2, -1]])  # warm-up: 2 steps
    runs = [one_run(model, config, p, device, p["timesteps"]) for _ in range(repeats)]
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    steps_all = [s for r in runs for s in r["step_s"]]
    row = {
        "config": str(path.relative_to(REPO)), "family": p["family"], "params_million": params,
        "audio_seconds": seconds, "latent_frames": runs[0]["latent_frames"], "steps": p["steps"],
        "schedule": p["schedule"], "guidance": p["guidance_name"], "repeats": repeats, "notes": notes,
        "total_s_median": med("total_s"), "total_cpu_s_median": med("total_cpu_s"),
        "conditioning_s_median": med("conditioning_s"), "sampling_s_median": med("sampling_s"),
        "decode_s_median": med("decode_s"), "step_ms_median": 1e3 * statistics.median(steps_all),
        "rtf": seconds / med("total_s"), "rtf_cpu_time": seconds / med("total_cpu_s"),
        "runs": runs,
    }
    print(f"  total {row['total_s_median']:.2f} s wall ({row['total_cpu_s_median']:.2f} s CPU): conditioning "
          f"{row['conditioning_s_median']:.2f} s, sampling {row['sampling_s_median']:.2f} s "
          f"({row['step_ms_median']:.1f} ms/step median), decode {row['decode_s_median']:.2f} s")
    print(f"  RTF {row['rtf']:.3f} x real time (wall), {row['rtf_cpu_time']:.3f} (CPU time)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="paths under model_configs/ without .json; missing files are skipped")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tiny config")
    parser.add_argument("--small-repeats", type=int, default=1, help="timed runs per larger config")
    parser.add_argument("--steps", type=int, default=None, help="override every config's step count")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_rtf.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    saga_hsmad.install()
    result = {"benchmark": "bench_rtf", "environment": environment(device),
              "definition": "RTF = seconds of audio / seconds of compute (conditioning + sampling + decoding), batch 1",
              "configs": {}}
    for name in args.configs:
        result["configs"][name] = run_config(name, args, device)
    print()
    print(f"  {'config':16s} {'family':8s} {'audio s':>8s} {'frames':>6s} {'steps':>5s} {'total s':>8s} "
          f"{'ms/step':>8s} {'RTF wall':>9s} {'RTF cpu':>8s}")
    for name, r in result["configs"].items():
        if "skipped" in r:
            print(f"  {name:16s} skipped: {r['skipped']}")
            continue
        print(f"  {name:16s} {r['family']:8s} {r['audio_seconds']:8.3f} {r['latent_frames']:6d} {r['steps']:5d} "
              f"{r['total_s_median']:8.2f} {r['step_ms_median']:8.1f} {r['rtf']:9.3f} {r['rtf_cpu_time']:8.3f}")
    finish("bench_rtf", args.out, result)


if __name__ == "__main__":
    main()
