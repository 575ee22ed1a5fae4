"""Export an inference checkpoint from a training checkpoint: the model alone, EMA weights in place
where they exist (backbone and trainable conditioners), no optimizer state, as safetensors with the model
config, the EMA flag and a sha256 of the tensors in its metadata.

    python -m saga_hsmad.cli.export --ckpt runs/x/checkpoints/last.ckpt --output model.safetensors
    python -m saga_hsmad.cli.export --ckpt last.ckpt --output online.safetensors --no-ema

The training checkpoint is read weights-only after a CRC check; one that needs full unpickling (a foreign
or legacy file) takes --trust-checkpoint. A bad file prints one ``ERROR <file>: <reason>`` line, exit 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoints import CheckpointError, model_state_dict, read_checkpoint, save_inference_checkpoint


def export(ckpt: str, output: str, use_ema: bool = True, model_config: dict | None = None,
           overwrite: bool = False, trust: bool = False) -> dict:
    """Writes ``output`` (``.safetensors``; a ``.ckpt`` name writes a weights-only torch file) from ``ckpt``."""
    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output}: exists; pass --overwrite to replace it")
    state, embedded, kind = read_checkpoint(ckpt, trust=trust)
    config = model_config or embedded
    if config is None:
        raise CheckpointError(f"{ckpt}: carries no model config; pass --model-config")
    model_state, used_ema = model_state_dict(state, kind, use_ema)
    save_inference_checkpoint(output, model_state, config, ema=used_ema)
    return {"kind": kind, "ema": used_ema, "tensors": len(model_state)}


def main(argv=None) -> int:
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--output", required=True, help="the exported model, NAME.safetensors")
    parser.add_argument("--model-config", default=None, help="only for checkpoints without an embedded config")
    parser.add_argument("--no-ema", action="store_true", help="export the online weights")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a checkpoint that needs full unpickling (can run code: trusted files only)")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.model_config).read_text()) if args.model_config else None
    try:
        info = export(args.ckpt, args.output, not args.no_ema, config, args.overwrite, args.trust_checkpoint)
    except (CheckpointError, FileNotFoundError, FileExistsError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    print(f"{args.ckpt} ({info['kind']} checkpoint) -> {args.output}: {info['tensors']} tensors, "
          f"{'EMA' if info['ema'] else 'online'} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
