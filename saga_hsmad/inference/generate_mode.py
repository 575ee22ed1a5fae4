"""``sample.py`` mode ``generate``: plain unconditional or conditioned generation from noise.

Conditions come from ``--prompt`` (the ``prompt`` key) and ``--cond KEY=VALUE`` (numbers are parsed as
floats and must be finite), e.g. ``--cond seconds_total=4``; each output is written as
``OUTPUT/sample_<i>.wav`` through ``audio_io.OutputLimiter`` (a ``WARNING`` line for a file whose samples
would have clipped). A model output with NaN or Inf samples is an error and nothing is written. ``--num``
and ``--seconds`` whose audio alone would not fit the RAM available are refused before sampling.
"""
from __future__ import annotations

import json
import math
import sys
import typing as tp
from pathlib import Path

import numpy as np
import torch

from ..audio_io import OutputLimiter, write_audio
from . import flags
from .generate import (NonFiniteOutput, conditioning_inputs, decode, generate_latents, latent_length,
                       linear_schedule, require_finite)
from .interrupts import remove_stale_partials


def parse_cond(pairs: list[str]) -> dict:
    cond = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--cond expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            cond[key] = json.loads(value)
        except json.JSONDecodeError:
            cond[key] = value
        if isinstance(cond[key], float) and not math.isfinite(cond[key]):
            raise ValueError(f"--cond {key}={value}: a number must be finite")
    return cond


def check_memory(num: int, channels: int, samples: int, sample_rate: int) -> None:
    """Refuse a run whose audio alone (the decoded batch and one written copy, float32) exceeds the RAM
    available now; the model's own activations come on top, so this is a floor."""
    from ..config_check import _bytes, available_memory

    need = 2 * num * channels * samples * 4
    available = available_memory()
    if available is not None and need > available:
        raise ValueError(f"--num {num} x --seconds {samples / sample_rate:g}: the audio alone needs {_bytes(need)} "
                         f"({num} x {channels} channels x {samples} samples x 4 bytes, twice), more than the "
                         f"{_bytes(available)} of RAM available; ask for fewer or shorter samples")


def generate_audio(model, model_config: dict, *, num: int = 1, seconds: float | None = None,
                   prompt: str | None = None, cond: dict | None = None, steps: int = 50, seed: int = 0,
                   cfg_scale: float = 1.0, progress: tp.Callable[[int, int], None] | None = None) -> np.ndarray:
    """(num, channels, samples) float32 audio at ``model_config["sample_rate"]``: ``seconds`` long (default the
    model's ``sample_size``), conditioned on ``cond`` (metadata values by conditioner id) and ``prompt``.

    ``progress(steps done, steps)`` after each sampler step. Raises ValueError before sampling when the audio
    would not fit in the available RAM, and ``NonFiniteOutput`` when the model produced NaN or Inf samples.
    """
    device = next(model.parameters()).device
    sr = model_config["sample_rate"]
    samples = int(seconds * sr) if seconds else model_config["sample_size"]
    n = latent_length(model, samples)
    check_memory(num, int(model_config.get("audio_channels", 2)), samples, sr)
    metadata = dict(cond or {})
    if prompt is not None:
        metadata["prompt"] = prompt
    metadata.setdefault("padding_mask", torch.ones(samples, dtype=torch.bool))
    batch = [dict(metadata) for _ in range(num)]
    inputs = conditioning_inputs(model, batch, device)
    generator = torch.Generator().manual_seed(seed)
    callback = None if progress is None else (lambda i, x: progress(i + 1, steps))
    latents = generate_latents(model, inputs, (num, model.io_channels, n), linear_schedule(steps),
                               cfg_scale=cfg_scale, generator=generator, callback=callback)
    return require_finite(decode(model, latents).cpu(), f"the {num} sample(s)").numpy()


class GenerateMode:
    name = "generate"

    def matches(self, model_config: dict) -> bool:
        return True

    def add_arguments(self, group) -> None:
        group.add_argument("--num", type=flags.num, default=1, help=f"number of samples (1 to {flags.MAX_NUM})")
        group.add_argument("--seconds", type=flags.seconds, default=None,
                           help=f"length in seconds, at most {flags.MAX_SECONDS:g} (default: the model's sample_size)")
        group.add_argument("--prompt", default=None, help="text for the 'prompt' condition")
        group.add_argument("--cond", action="append", default=[], metavar="KEY=VALUE",
                           help="a metadata value for a conditioner id (repeatable)")
        group.add_argument("--cfg-scale", type=flags.guidance, default=1.0,
                           help=f"classifier-free guidance scale, 0 to {flags.MAX_GUIDANCE:g} (default 1)")

    def run(self, args, model, model_config: dict, info: dict) -> int:
        sr = model_config["sample_rate"]
        out = Path(args.output)
        targets = [out / f"sample_{i}.wav" for i in range(args.num)]
        try:
            audio = generate_audio(model, model_config, num=args.num, seconds=args.seconds, prompt=args.prompt,
                                   cond=parse_cond(args.cond), steps=args.steps or 50, seed=args.seed,
                                   cfg_scale=args.cfg_scale)
        except NonFiniteOutput as e:
            print(f"ERROR {out}: {e}", file=sys.stderr)
            return 1
        except ValueError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(targets)
        for path, clip in zip(targets, audio):
            if path.exists() and not args.overwrite:
                print(f"{path} exists; not overwritten (use --overwrite)")
                continue
            limiter = OutputLimiter("PCM_16")
            write_audio(path, clip, sr, limiter=limiter)
            print(f"wrote {path}")
            if limiter.report():
                print(f"WARNING {path}: {limiter.report()}", file=sys.stderr)
        return 0


MODE = GenerateMode()
