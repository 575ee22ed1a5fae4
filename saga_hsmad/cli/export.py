"""Export an inference checkpoint from a training checkpoint: the model alone, EMA weights in place
where they exist (backbone and trainable conditioners), the model config embedded, no optimizer state.

    python -m saga_hsmad.cli.export --ckpt runs/x/checkpoints/last.ckpt --output model.ckpt
    python -m saga_hsmad.cli.export --ckpt last.ckpt --output model.safetensors --no-ema
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoints import model_state_dict, read_checkpoint, save_inference_checkpoint


def export(ckpt: str, output: str, use_ema: bool = True, model_config: dict | None = None,
           overwrite: bool = False) -> dict:
    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    state, embedded, kind = read_checkpoint(ckpt)
    config = model_config or embedded
    if config is None:
        raise ValueError(f"{ckpt} carries no model config; pass --model-config")
    model_state, used_ema = model_state_dict(state, kind, use_ema)
    save_inference_checkpoint(output, model_state, config, ema=used_ema)
    return {"kind": kind, "ema": used_ema, "tensors": len(model_state)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--output", required=True, help=".ckpt (torch) or .safetensors")
    parser.add_argument("--model-config", default=None, help="only for checkpoints without an embedded config")
    parser.add_argument("--no-ema", action="store_true", help="export the online weights")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.model_config).read_text()) if args.model_config else None
    info = export(args.ckpt, args.output, not args.no_ema, config, args.overwrite)
    print(f"{args.ckpt} ({info['kind']} checkpoint) -> {args.output}: {info['tensors']} tensors, "
          f"{'EMA' if info['ema'] else 'online'} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
