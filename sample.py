#!/usr/bin/env python
"""Generate audio from a checkpoint. The model config is read from the checkpoint; the sampling mode
follows from the model (super-resolution for SAGA-SR, MIDI-to-audio for HS-MAD, plain generation
otherwise) or from --mode.

    python sample.py --ckpt runs/demo/export.safetensors --output out/ --seconds 2
"""
from __future__ import annotations

import argparse
import json
import sys


def build_parser(modes) -> argparse.ArgumentParser:
    from saga_hsmad.inference import flags

    parser = flags.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="training or exported checkpoint")
    parser.add_argument("--model-config", default=None, help="JSON config (only for checkpoints without one)")
    parser.add_argument("--mode", choices=[m.name for m in modes], default=None, help="override the sampling mode")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--steps", type=flags.steps, default=None,
                        help=f"sampler steps, 1 to {flags.MAX_STEPS} (default depends on the mode)")
    parser.add_argument("--seed", type=flags.seed, default=0, help=f"0 to {flags.MAX_SEED} (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--no-ema", action="store_true", help="use the online weights even if EMA weights exist")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a checkpoint that needs full unpickling (can run code: trusted files only)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    for mode in modes:
        mode.add_arguments(parser.add_argument_group(f"{mode.name} mode"))
    return parser


def main(argv=None) -> int:
    """Run ``sample.py``; Ctrl-C or SIGTERM end it with one line, no partial file and status 130 or 143."""
    from saga_hsmad.inference.interrupts import interrupted, sigterm_raises

    try:
        with sigterm_raises():
            return run(argv)
    except KeyboardInterrupt as e:
        return interrupted(e)


def run(argv=None) -> int:
    import torch

    import saga_hsmad
    from saga_hsmad.checkpoints import CheckpointError, load_model
    from saga_hsmad.inference.modes import available_modes

    saga_hsmad.install()
    modes = available_modes()
    args = build_parser(modes).parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    override = None
    if args.model_config:
        with open(args.model_config) as f:
            override = json.load(f)
    try:
        model, config, info = load_model(args.ckpt, override, use_ema=not args.no_ema, device=device,
                                         trust=args.trust_checkpoint)
    except (CheckpointError, FileNotFoundError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    mode = next(m for m in modes if (m.name == args.mode if args.mode else m.matches(config)))
    print(f"{args.ckpt}: {config.get('model', {}).get('diffusion', {}).get('type')} model, mode {mode.name}, "
          f"{'EMA' if info['ema'] else 'online'} weights, device {device}")
    return mode.run(args, model, config, info)


if __name__ == "__main__":
    sys.exit(main())
