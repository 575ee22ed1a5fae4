#!/usr/bin/env python
"""Generate audio from a checkpoint. The model config is read from the checkpoint; the sampling mode
follows from the model (super-resolution for SAGA-SR, MIDI-to-audio for HS-MAD, plain generation
otherwise) or from --mode. Flags of another mode are refused; `--ckpt CKPT --help` names the mode CKPT runs.

    python sample.py --ckpt runs/demo/export.safetensors --output out/ --seconds 2
"""
from __future__ import annotations

import argparse
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
    from saga_hsmad.quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    from saga_hsmad.inference.interrupts import interrupted, sigterm_raises

    try:
        with sigterm_raises():
            return run(argv)
    except KeyboardInterrupt as e:
        return interrupted(e)


def mode_line(ckpt: str, config: dict | None, mode, forced: bool) -> str:
    """What ``--ckpt CKPT --help`` says first: the model CKPT holds and the mode sample.py runs it in."""
    from pathlib import Path

    from saga_hsmad.inference.modes import diffusion_type

    if not Path(ckpt).is_file():
        return f"--ckpt {ckpt}: no such file, so the mode is not known; the flags of every mode follow."
    if config is None:
        return (f"--ckpt {ckpt}: its model config cannot be read without loading the model (or it has none), so "
                "the mode is not known here; the flags of every mode follow.")
    how = "--mode runs it" if forced else "sample.py runs it"
    return (f"--ckpt {ckpt} holds a {diffusion_type(config)} model: {how} in the {mode.name} mode. Use the common "
            f"flags and those under '{mode.name} mode'; flags of the other modes are refused.")


def run(argv=None) -> int:
    import torch

    import saga_hsmad
    from saga_hsmad.checkpoints import CheckpointError, load_model
    from saga_hsmad.config_check import ConfigError, load_config
    from saga_hsmad.inference import flags
    from saga_hsmad.inference.modes import (available_modes, checkpoint_config, choose_mode, diffusion_type,
                                              foreign_flag)

    saga_hsmad.install()
    argv = sys.argv[1:] if argv is None else list(argv)
    modes = available_modes()
    parser = build_parser(modes)
    given = flags.given_options(argv) + [t for t in argv if t == "-h"]
    peek = flags.OneLineParser(prog=parser.prog, add_help=False)  # the flags that pick the mode, before parsing all
    for flag in ("--ckpt", "--mode"):
        peek.add_argument(flag)
    known, _ = peek.parse_known_args(argv)
    if known.ckpt and ({"-h", "--help"} & set(given)):  # say which mode this checkpoint runs before the flags
        config = checkpoint_config(known.ckpt)
        mode = choose_mode(modes, config, known.mode) if config is not None else None
        parser.description = mode_line(known.ckpt, config, mode, bool(known.mode)) + "\n\n" + parser.description
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        override = load_config(args.model_config, "model") if args.model_config else None
    except (ConfigError, FileNotFoundError) as e:
        print(f"ERROR --model-config {e}", file=sys.stderr)
        return 1

    def refuse_foreign_flags(config: dict) -> None:
        """One ``ERROR`` line and exit 2 (argparse's status for a bad flag) if a given flag belongs to another mode."""
        mode = choose_mode(modes, config, args.mode)
        if (found := foreign_flag(given, mode, modes)) is not None:
            flag, owner = found
            runs = f"--mode {mode.name} is given" if args.mode else f"it runs in the {mode.name} mode"
            print(f"ERROR: {flag} is a flag of the {owner} mode, but {args.ckpt} holds a {diffusion_type(config)} "
                  f"model and {runs} (see sample.py --ckpt {args.ckpt} --help)", file=sys.stderr)
            sys.exit(2)

    early = override or checkpoint_config(args.ckpt)
    if early is not None:  # before the weights are loaded
        refuse_foreign_flags(early)
    try:
        model, config, info = load_model(args.ckpt, override, use_ema=not args.no_ema, device=device,
                                         trust=args.trust_checkpoint)
    except (CheckpointError, FileNotFoundError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    if early is None:
        refuse_foreign_flags(config)
    mode = choose_mode(modes, config, args.mode)
    print(f"{args.ckpt}: {diffusion_type(config)} model, mode {mode.name}, "
          f"{'EMA' if info['ema'] else 'online'} weights, device {device}")
    return mode.run(args, model, config, info)


if __name__ == "__main__":
    sys.exit(main())
