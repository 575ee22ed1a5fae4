"""``sample.py`` mode ``generate``: plain unconditional or conditioned generation from noise.

Conditions come from ``--prompt`` (the ``prompt`` key) and ``--cond KEY=VALUE`` (numbers are parsed as
floats), e.g. ``--cond seconds_total=4``; each output is written as ``OUTPUT/sample_<i>.wav``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..audio_io import write_audio
from .generate import conditioning_inputs, decode, generate_latents, latent_length, linear_schedule


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
    return cond


class GenerateMode:
    name = "generate"

    def matches(self, model_config: dict) -> bool:
        return True

    def add_arguments(self, group) -> None:
        group.add_argument("--num", type=int, default=1, help="number of samples")
        group.add_argument("--seconds", type=float, default=None,
                           help="length in seconds (default: the model's sample_size)")
        group.add_argument("--prompt", default=None, help="text for the 'prompt' condition")
        group.add_argument("--cond", action="append", default=[], metavar="KEY=VALUE",
                           help="a metadata value for a conditioner id (repeatable)")
        group.add_argument("--cfg-scale", type=float, default=1.0, help="classifier-free guidance scale")

    def run(self, args, model, model_config: dict, info: dict) -> int:
        device = next(model.parameters()).device
        sr = model_config["sample_rate"]
        samples = int(args.seconds * sr) if args.seconds else model_config["sample_size"]
        n = latent_length(model, samples)
        metadata = parse_cond(args.cond)
        if args.prompt is not None:
            metadata["prompt"] = args.prompt
        metadata.setdefault("padding_mask", torch.ones(samples, dtype=torch.bool))
        batch = [dict(metadata) for _ in range(args.num)]
        inputs = conditioning_inputs(model, batch, device)
        channels = model.io_channels
        generator = torch.Generator().manual_seed(args.seed)
        latents = generate_latents(model, inputs, (args.num, channels, n), linear_schedule(args.steps or 50),
                                   cfg_scale=args.cfg_scale, generator=generator)
        audio = decode(model, latents).cpu().numpy()
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        for i, clip in enumerate(audio):
            path = out / f"sample_{i}.wav"
            if path.exists() and not args.overwrite:
                print(f"{path} exists; not overwritten (use --overwrite)")
                continue
            write_audio(path, clip, sr)
            print(f"wrote {path}")
        return 0


MODE = GenerateMode()
