"""Benchmark: one SAGA-SR DiT training step (forward + backward + AdamW step), ours vs stock SAT.

"ours" is ``dit_concat`` (saga_hsmad.models.dit_concat) built by our factory from a shipped SAGA-SR config;
"stock" is stable-audio-tools' own ``DiTWrapper`` built by SAT's own ``create_diffusion_cond_from_config``
(the unpatched original) from a stock ``dit`` config of identical size: the same widths, depth, heads,
``input_concat_dim``, cond dims and routing ids, without our keys (``cond_dropout``, null values,
``use_checkpointing``). The stock model gets our model's weights, and the script checks that both give
the same velocity when nothing is dropped, so the two compute exactly the same network.

The step (the same code for both, on the same batch, with the same t and noise per round) is the core of
SAT's ``DiffusionCondTrainingWrapper.training_step`` for rectified flow, on latents and conditioning
tensors fed directly (no pretransform, no text encoder: they are outside the comparison):

    t ~ logit-normal, x_t = (1 - t) x0 + t eps, v = wrapper(x_t, t, cond=..., cfg_dropout_prob=0.1),
    loss = mse(v, eps - x0), zero_grad, backward, AdamW step (the config's optimizer settings)

``cfg_dropout_prob = 0.1`` switches training dropout on, as SAT's training step does: ours draws its
per-condition dropout (LR latent → -5, cross-attention sequence → 0), stock SAT drops the cross-attention
sequence only. Gradient checkpointing is set to the config's ``use_checkpointing`` on BOTH sides (SAT's
training step would always checkpoint the stock model; here the stock model gets the same switch through
the forward kwargs, so only our plug-in code differs). A row "ours, no dropout" (cfg_dropout_prob 0)
isolates the cost of the dropout masks; "forward only" rows time the inference forward (no grad).

Target: ours <= 1.05 x stock (paired median over interleaved rounds). If a target is missed (or with
``--profile always``), three steps of each are profiled with torch.profiler; the operators whose self time
differs most and every operator whose call count differs are printed and stored.

    /work/venv/bin/python benchmarks/bench_dit_step.py [--configs tiny small] [--device cpu|cuda]
        [--threads 1] [--repeats 15] [--small-repeats 9] [--out benchmarks/results/bench_dit_step.json]
"""
from __future__ import annotations

import argparse
import typing as tp

import torch
import torch.nn.functional as F

from _common import (backbone_only, default_device, environment, finish, interleaved, load_config, print_rows,
                     random_conditioning, stock_dit_config, summarize)

import saga_hsmad  # noqa: E402  (registers dit_concat)
from saga_hsmad.patching import originals  # noqa: E402

TARGET = 1.05
CONFIGS = {"tiny": "model_configs/saga_sr/tiny.json", "small": "model_configs/saga_sr/small.json"}
# per config: (batch, latent frames); both configs use the paper's 128 latent frames (5.944 s at x2048,
# 0.743 s at x256 for tiny). small at batch 2 keeps a CPU run within a few minutes.
DEFAULT_SHAPES = {"tiny": (16, 128), "small": (2, 128)}


def build_pair(config: dict, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ours, stock) ConditionedDiffusionModelWrappers holding the same weights."""
    torch.manual_seed(0)
    ours = saga_hsmad.create_model_from_config(backbone_only(config)).to(device)
    stock = originals()["create_diffusion_cond_from_config"](stock_dit_config(config)).to(device)
    assert type(ours.model).__name__ == "DiTConcat", type(ours.model)
    assert type(stock.model).__module__ == "stable_audio_tools.models.diffusion" \
        and type(stock.model).__name__ == "DiTWrapper", type(stock.model)
    stock.model.model.load_state_dict(ours.model.model.state_dict())
    n_ours = sum(p.numel() for p in ours.parameters())
    n_stock = sum(p.numel() for p in stock.parameters())
    assert n_ours == n_stock, f"parameter counts differ: ours {n_ours}, stock {n_stock}"
    return ours, stock


def make_optimizer(config: dict, model: torch.nn.Module) -> torch.optim.Optimizer:
    opt = config["training"]["optimizer_configs"]["diffusion"]["optimizer"]
    assert opt["type"] == "AdamW", opt["type"]
    return torch.optim.AdamW(model.parameters(), **opt["config"])


class Step:
    """One rectified-flow training step of ``wrapper`` on a fixed batch; round r uses seed r for t/noise."""

    def __init__(self, wrapper, optimizer, x0: torch.Tensor, cond: dict, cfg_dropout_prob: float,
                 extra: dict):
        self.wrapper, self.optimizer, self.x0, self.cond = wrapper, optimizer, x0, cond
        self.cfg_dropout_prob, self.extra = cfg_dropout_prob, extra
        self.round = 0

    def __call__(self) -> float:
        g = torch.Generator().manual_seed(self.round)
        self.round += 1
        x0 = self.x0
        t = torch.sigmoid(torch.randn(x0.shape[0], generator=g)).to(x0.device)  # logit-normal
        noise = torch.randn(x0.shape, generator=g).to(x0.device)
        x_t = (1 - t)[:, None, None] * x0 + t[:, None, None] * noise
        v = self.wrapper(x_t, t, cond=self.cond, cfg_dropout_prob=self.cfg_dropout_prob, **self.extra)
        loss = F.mse_loss(v, noise - x0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def forward_only(wrapper, x: torch.Tensor, t: torch.Tensor, cond: dict, extra: dict) -> tp.Callable[[], None]:
    def run():
        with torch.no_grad():
            wrapper(x, t, cond=cond, cfg_dropout_prob=0.0, **extra)
    return run


def profile_ops(fn: tp.Callable[[], tp.Any], device: torch.device) -> dict[str, dict]:
    """Self time (µs) and call count per operator, averaged over 3 calls of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    with profile(activities=activities) as prof:
        for _ in range(3):
            fn()
    ops = {}
    for e in prof.key_averages():
        self_us = e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total
        ops[e.key] = {"self_us": self_us / 3, "calls": e.count / 3}
    return dict(sorted(ops.items(), key=lambda kv: -kv[1]["self_us"]))


def profile_difference(ours: dict, stock: dict, top: int = 15) -> list[dict]:
    """Operators sorted by (ours − stock) self time per step."""
    keys = set(ours) | set(stock)
    diff = [{"op": k, "ours_us": ours.get(k, {}).get("self_us", 0.0), "stock_us": stock.get(k, {}).get("self_us", 0.0),
             "ours_calls": ours.get(k, {}).get("calls", 0.0), "stock_calls": stock.get(k, {}).get("calls", 0.0)}
            for k in keys]
    for d in diff:
        d["extra_us"] = d["ours_us"] - d["stock_us"]
    return sorted(diff, key=lambda d: -abs(d["extra_us"]))[:top]


def run_config(name: str, args, device: torch.device) -> dict:
    config = load_config(CONFIGS[name])
    batch, frames = (args.batch or DEFAULT_SHAPES[name][0]), (args.frames or DEFAULT_SHAPES[name][1])
    repeats = args.repeats if name == "tiny" else args.small_repeats
    dit = config["model"]["diffusion"]["config"]
    checkpointing = bool(dit.get("use_checkpointing", True))
    ours, stock = build_pair(config, device)
    stock_extra = {"use_checkpointing": checkpointing}

    g = torch.Generator().manual_seed(1234)
    cond = random_conditioning(config, batch, frames, device, g)
    x0 = torch.randn(batch, dit["io_channels"], frames, generator=g).to(device)

    # the two networks are the same: equal velocity with nothing dropped
    t_check = torch.rand(batch, generator=g).to(device)
    with torch.no_grad():
        v_ours = ours(x0, t_check, cond=cond, cfg_dropout_prob=0.0)
        v_stock = stock(x0, t_check, cond=cond, cfg_dropout_prob=0.0, **stock_extra)
    max_diff = float((v_ours - v_stock).abs().max())
    assert max_diff < 1e-4, f"ours and stock differ by {max_diff} with nothing dropped"

    # "no dropout" shares our model and optimizer (timing does not depend on the weights; saves memory)
    ours_opt = make_optimizer(config, ours)
    steps = {
        "stock SAT dit (train step)": Step(stock, make_optimizer(config, stock), x0, cond, 0.1, stock_extra),
        "ours dit_concat (train step)": Step(ours, ours_opt, x0, cond, 0.1, {}),
        "ours dit_concat, no dropout (train step)": Step(ours, ours_opt, x0, cond, 0.0, {}),
    }
    print(f"\n[{name}] {CONFIGS[name]}: {sum(p.numel() for p in ours.parameters()) / 1e6:.2f} M params, "
          f"batch {batch}, {frames} latent frames, checkpointing {checkpointing}, {repeats} interleaved rounds")
    train = interleaved(steps, repeats=repeats, warmup=args.warmup, device=device)
    train_rows = summarize(train, "stock SAT dit (train step)")
    print_rows("  training step (forward + backward + AdamW)", train_rows, "stock SAT dit (train step)")

    fwd = {
        "stock SAT dit (forward, no grad)": forward_only(stock, x0, t_check, cond, stock_extra),
        "ours dit_concat (forward, no grad)": forward_only(ours, x0, t_check, cond, {}),
    }
    fwd_times = interleaved(fwd, repeats=repeats, warmup=args.warmup, device=device)
    fwd_rows = summarize(fwd_times, "stock SAT dit (forward, no grad)")
    print_rows("  inference forward", fwd_rows, "stock SAT dit (forward, no grad)")

    ratio = train_rows[1]["ratio_wall"]
    ratio_cpu = train_rows[1]["ratio_cpu"]
    met = ratio <= TARGET or (device.type == "cpu" and ratio_cpu <= TARGET)
    print(f"  target ours <= {TARGET} x stock: {ratio:.3f} (wall), {ratio_cpu:.3f} (cpu) -> "
          f"{'met' if met else 'NOT met'}; max |v_ours - v_stock| = {max_diff:.1e}")
    result = {"config": CONFIGS[name], "batch": batch, "latent_frames": frames, "use_checkpointing": checkpointing,
              "params_million": sum(p.numel() for p in ours.parameters()) / 1e6, "repeats": repeats,
              "warmup": args.warmup, "max_abs_velocity_difference": max_diff, "train_step": train_rows,
              "forward": fwd_rows, "target": TARGET, "ratio_wall": ratio, "ratio_cpu": ratio_cpu, "target_met": met}
    if args.profile == "always" or (args.profile == "auto" and not met):
        p_ours = profile_ops(steps["ours dit_concat (train step)"], device)
        p_stock = profile_ops(steps["stock SAT dit (train step)"], device)
        diff = profile_difference(p_ours, p_stock)
        print("  profile (self time per step, ours − stock, largest differences):")
        for d in diff:
            print(f"    {d['op'][:48]:48s} ours {d['ours_us']:10.0f} µs ({d['ours_calls']:5.0f} calls)  "
                  f"stock {d['stock_us']:10.0f} µs ({d['stock_calls']:5.0f} calls)  {d['extra_us']:+10.0f} µs")
        result["profile_difference"] = diff
        calls = {k: (p_ours.get(k, {}).get("calls", 0.0), p_stock.get(k, {}).get("calls", 0.0))
                 for k in set(p_ours) | set(p_stock)}
        differ = {k: {"ours_calls": a, "stock_calls": b} for k, (a, b) in sorted(calls.items()) if a != b}
        print(f"  operators with different call counts per step (ours vs stock): "
              + (", ".join(f"{k} {v['ours_calls']:g}/{v['stock_calls']:g}" for k, v in differ.items()) or "none"))
        result["profile_call_count_differences"] = differ
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=sorted(CONFIGS))
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (CPU)")
    parser.add_argument("--batch", type=int, default=None, help="override the per-config batch size")
    parser.add_argument("--frames", type=int, default=None, help="override the latent length (default 128)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds for tiny")
    parser.add_argument("--small-repeats", type=int, default=9, help="interleaved rounds for small")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                        help="torch.profiler diff of ours vs stock (auto: when the target is missed)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_dit_step.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = {"benchmark": "bench_dit_step", "environment": environment(device), "target": f"ours <= {TARGET} x stock",
              "step": "rectified-flow training step on latents + conditioning tensors fed directly; AdamW",
              "configs": {}}
    for name in args.configs:
        result["configs"][name] = run_config(name, args, device)
    result["all_targets_met"] = all(c["target_met"] for c in result["configs"].values())
    print()
    finish("bench_dit_step", args.out, result)


if __name__ == "__main__":
    main()
