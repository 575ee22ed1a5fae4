"""Benchmark the MRCI U-Net (HS-MAD spec §4, §6): training step cost of MRCI + SCM, and guided sampling cost.

1. Training step (forward + backward, flow MSE + 0.1 x each auxiliary loss, condition dropout on) of the
   HS-MAD backbone (hierarchical symbols, TCA at every level, SCM at high and middle) against its
   Baseline-Global twin of EQUAL widths (same encoder, symbols pooled into the bottleneck only), at the tiny
   and small config widths. Target: MRCI+SCM <= 1.35 x Baseline-Global.
2. One guided sampling step (no grad) of the HS-MAD backbone for b windows:
   (a) the three decoupled-guidance branches in ONE batched forward of 3b items (``guided_velocity``),
   (b) the same three branches as three separate forwards of b items,
   (c) one plain forward of 3b items without nulling (the cost floor of a 3b batch),
   (d) the sampler's path: a ``GuidedVelocity`` built once per run, which also runs the symbolic encoder
       once per run instead of every step (its output depends on the conditioning only).
   Targets: (a) <= 0.7 x (b) and (a) <= 1.02 x (c); (d) is reported against the same references.

Times are medians over ``--repeats`` rounds after ``--warmup`` runs, measured in the same process with the
variants interleaved round by round (load drift on a shared machine hits all alike); ratios use references measured in the same run. CPU runs use ``--threads`` intra-op threads
(default 1: on a shared machine OpenMP spin-waiting makes multi-thread timings meaningless); CUDA runs
when available (synchronised). Prints a table and the exact command, writes JSON.

    python benchmarks/bench_mrci_step.py [--sizes tiny small] [--batch 2] [--repeats 15] [--warmup 2]
        [--small-frames 256] [--threads 1] [--device cpu|cuda] [--out benchmarks/results/mrci_step.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from saga_hsmad.inference.guidance import GuidedVelocity, decoupled_guidance, guided_velocity  # noqa: E402
from saga_hsmad.models.mrci_unet import MRCIUNet  # noqa: E402,I001
from saga_hsmad.models.structure_packing import pack_structure  # noqa: E402

AUX_WEIGHT = 0.1


def backbone_config(size: str) -> tuple[dict, int]:
    """(MRCIUNet kwargs, window frames) of model_configs/hsmad/<size>.json."""
    config = json.loads((REPO / "model_configs" / "hsmad" / f"{size}.json").read_text())
    ratio = config["model"]["pretransform"]["config"].get("downsampling_ratio") or \
        config["model"]["pretransform"]["config"]["patch_size"]
    return config["model"]["diffusion"]["config"], config["sample_size"] // ratio


def inputs(cfg: dict, batch: int, frames: int, labels: bool, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    srm = torch.rand(batch, 384, frames, generator=g)
    label_dict = None
    if labels:
        t_m, t_l = frames // 4, frames // 16
        chroma = torch.rand(batch, t_m, 12, generator=g)
        label_dict = {"chroma": chroma / chroma.sum(-1, keepdim=True),
                      "chroma_mask": torch.ones(batch, t_m, dtype=torch.bool),
                      "beat": (torch.rand(batch, t_m, generator=g) > 0.7).float(),
                      "beat_mask": torch.ones(batch, t_m, dtype=torch.bool),
                      "downbeat": (torch.rand(batch, t_m, generator=g) > 0.9).float(),
                      "downbeat_mask": torch.ones(batch, t_m, dtype=torch.bool),
                      "tempo": torch.randn(batch, t_l, generator=g), "tempo_mask": torch.ones(batch, t_l, dtype=torch.bool),
                      "key": torch.randint(0, 24, (batch, t_l), generator=g),
                      "key_mask": torch.ones(batch, t_l, dtype=torch.bool)}
    return dict(x=torch.randn(batch, cfg["io_channels"], frames, generator=g), t=torch.rand(batch, generator=g),
                global_cond=torch.randn(batch, cfg["style_dim"], generator=g),
                input_concat_cond=pack_structure(srm, None, label_dict))


def to(d: dict, device) -> dict:
    return {k: v.to(device) for k, v in d.items()}


def timed(fns: dict, device, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved (one call of each per round), so that load drifting on a
    shared machine affects every variant alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out[name].append(time.perf_counter() - t0)
    return out


def summary(times: list[float]) -> dict:
    return {"ms_median": 1000 * statistics.median(times), "ms_min": 1000 * min(times)}


def training_steps_ms(configs: dict[str, dict], batch: int, frames: int, device, warmup: int,
                      repeats: int) -> dict:
    """Training step (forward + backward) time of each backbone config, interleaved."""
    steps, params = {}, {}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = MRCIUNet(**cfg).to(device).train()
        data = to(inputs(cfg, batch, frames, labels=True), device)
        target = torch.randn_like(data["x"])

        def step(model=model, data=data, target=target):
            model.zero_grad(set_to_none=True)
            v = model(data["x"], data["t"], global_cond=data["global_cond"],
                      input_concat_cond=data["input_concat_cond"], cfg_dropout_prob=0.1)
            loss = torch.mean((v - target) ** 2) + AUX_WEIGHT * sum(model.aux_losses.values())
            loss.backward()

        steps[name], params[name] = step, sum(p.numel() for p in model.parameters())
    times = timed(steps, device, warmup, repeats)
    return {name: {**summary(times[name]), "params": params[name]} for name in configs}


def sampling_ms(cfg: dict, batch: int, frames: int, device, warmup: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = MRCIUNet(**cfg).to(device).eval()
    data = to(inputs(cfg, batch, frames, labels=False), device)
    guidance = decoupled_guidance(2.0, 1.5)
    conds = {"global_cond": data["global_cond"], "input_concat_cond": data["input_concat_cond"]}
    x, t = data["x"], data["t"]
    k = len(guidance.branches)
    big = {key: v.repeat(k, *([1] * (v.ndim - 1))) for key, v in {"x": x, "t": t, **conds}.items()}

    @torch.no_grad()
    def batched():
        return guided_velocity(model, x, t, conds, guidance, model.condition_names)

    with torch.no_grad():
        sampler_velocity = GuidedVelocity(model, conds, guidance, model.condition_names, batch, device)

    @torch.no_grad()
    def sampler():
        return sampler_velocity(x, t)

    @torch.no_grad()
    def separate():
        out = 0
        for branch, w in zip(guidance.branches, guidance.weights):
            nulls = {name: torch.full((batch,), name in branch, device=device) for name in model.condition_names}
            out = out + w * model(x, t, **conds, null_conditions=nulls)
        return out

    @torch.no_grad()
    def plain():
        return model(big["x"], big["t"], global_cond=big["global_cond"], input_concat_cond=big["input_concat_cond"])

    with torch.no_grad():
        torch.testing.assert_close(batched(), separate(), rtol=1e-3, atol=1e-4)  # the same velocity
        torch.testing.assert_close(sampler(), separate(), rtol=1e-3, atol=1e-4)
    times = timed({"batched_3_branches": batched, "separate_3_forwards": separate, "plain_3b_forward": plain,
                   "sampler_cached_encoder": sampler}, device, warmup, repeats)
    return {name: summary(t) for name, t in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=["tiny", "small", "paper"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--small-frames", type=int, default=256,
                   help="latent frames for small/paper on CPU (default 256 = 2.97 s at 86.13 frames/s); "
                        "on CUDA the config's window is used")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mrci_step.json"))
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    command = ("python benchmarks/bench_mrci_step.py " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()

    results = {}
    for size in args.sizes:
        cfg, window = backbone_config(size)
        frames = window if (size == "tiny" or device.type == "cuda") else args.small_frames
        frames -= frames % 16
        global_cfg = copy.deepcopy(cfg)
        global_cfg.update(symbol_mode="global")
        global_cfg.pop("tca_levels", None)
        global_cfg.pop("scm_levels", None)
        print(f"[{size}] widths {cfg['widths']}, batch {args.batch}, {frames} latent frames ...", flush=True)
        train = training_steps_ms({"mrci": cfg, "global": global_cfg}, args.batch, frames, device, args.warmup,
                                  args.repeats)
        mrci, base = train["mrci"], train["global"]
        sampling = sampling_ms(cfg, args.batch, frames, device, args.warmup, args.repeats)
        results[size] = {
            "widths": cfg["widths"], "frames": frames, "batch": args.batch,
            "train_mrci_scm": mrci, "train_baseline_global": base,
            "train_ratio": mrci["ms_median"] / base["ms_median"], "train_target": 1.35,
            "sampling": sampling,
            "sampling_ratio_vs_separate": sampling["batched_3_branches"]["ms_median"]
            / sampling["separate_3_forwards"]["ms_median"],
            "sampling_ratio_vs_plain": sampling["batched_3_branches"]["ms_median"]
            / sampling["plain_3b_forward"]["ms_median"],
            "sampling_targets": {"vs_separate": 0.7, "vs_plain": 1.02},
            "sampler_ratio_vs_separate": sampling["sampler_cached_encoder"]["ms_median"]
            / sampling["separate_3_forwards"]["ms_median"],
            "sampler_ratio_vs_batched_uncached": sampling["sampler_cached_encoder"]["ms_median"]
            / sampling["batched_3_branches"]["ms_median"],
            # ratios of the fastest runs: less sensitive to other processes on a shared machine
            "min_ratios": {"train": mrci["ms_min"] / base["ms_min"],
                           "sampling_vs_separate": sampling["batched_3_branches"]["ms_min"]
                           / sampling["separate_3_forwards"]["ms_min"],
                           "sampling_vs_plain": sampling["batched_3_branches"]["ms_min"]
                           / sampling["plain_3b_forward"]["ms_min"]},
        }

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {"command": command, "device": str(device), "repeats": args.repeats, "warmup": args.warmup,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_1min": load,
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
              "results": results}
    print(f"\n{command}\ndevice {device}, {torch.get_num_threads()} thread(s), load {load}, "
          f"median of {args.repeats} after {args.warmup} warm-up\n")
    head = f"{'size':6} {'frames':>6} {'train MRCI+SCM ms':>18} {'train Global ms':>16} {'ratio':>6} {'(<=1.35)':>8}"
    print(head)
    for size, r in results.items():
        ok = "ok" if r["train_ratio"] <= 1.35 else "MISS"
        print(f"{size:6} {r['frames']:>6} {r['train_mrci_scm']['ms_median']:>18.1f} "
              f"{r['train_baseline_global']['ms_median']:>16.1f} {r['train_ratio']:>6.2f} {ok:>8}")
    print()
    print(f"{'size':6} {'batched 3 ms':>13} {'3 separate ms':>14} {'plain 3b ms':>12} {'vs sep':>7} {'(<=0.7)':>8} "
          f"{'vs plain':>8} {'(<=1.02)':>9}")
    for size, r in results.items():
        s = r["sampling"]
        print(f"{size:6} {s['batched_3_branches']['ms_median']:>13.1f} {s['separate_3_forwards']['ms_median']:>14.1f} "
              f"{s['plain_3b_forward']['ms_median']:>12.1f} {r['sampling_ratio_vs_separate']:>7.2f} "
              f"{'ok' if r['sampling_ratio_vs_separate'] <= 0.7 else 'MISS':>8} {r['sampling_ratio_vs_plain']:>8.2f} "
              f"{'ok' if r['sampling_ratio_vs_plain'] <= 1.02 else 'MISS':>9}")
    print("\nsampler path (GuidedVelocity, symbolic encoder once per run): " + "; ".join(
        f"{size}: {r['sampling']['sampler_cached_encoder']['ms_median']:.1f} ms, "
        f"{r['sampler_ratio_vs_separate']:.2f} x three separate, {r['sampler_ratio_vs_batched_uncached']:.2f} x "
        "batched uncached" for size, r in results.items()))
    print("\nratios of the fastest runs (less load-sensitive): " + "; ".join(
        f"{size}: train {r['min_ratios']['train']:.2f}, vs separate {r['min_ratios']['sampling_vs_separate']:.2f}, "
        f"vs plain {r['min_ratios']['sampling_vs_plain']:.2f}" for size, r in results.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
