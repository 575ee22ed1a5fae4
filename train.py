#!/usr/bin/env python
"""Train a model described by a JSON config on a dataset described by a JSON config.

    python train.py --model-config model_configs/saga_sr/tiny.json \
        --dataset-config dataset_configs/saga_sr/demo.json --max-steps 200 --accelerator cpu

Glue only: the model, the training wrapper and the data come from the configs through saga_hsmad's
factories; the loop is PyTorch Lightning's. A cluster run is a flag (--devices, --num-nodes, --strategy).

The model and dataset configs are written to SAVE_DIR/NAME/*.json and given to the logger as hyperparameters;
validation losses (val/*) go to every logger. Checkpoints go to SAVE_DIR/NAME/checkpoints (written atomically;
read weights-only after a CRC check, see saga_hsmad.checkpoints); at the end SAVE_DIR/NAME/export.safetensors
holds the model alone (EMA weights, config in its metadata). Ctrl-C or SIGTERM saves checkpoints/last.ckpt at
the end of the current step, writes no export and exits 130 or 143; resume with --ckpt-path. Errors in input
files print one line, exit 1.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-config", required=True)
    p.add_argument("--dataset-config", required=True)
    p.add_argument("--val-dataset-config", default=None)
    p.add_argument("--pretrained-ckpt-path", default=None,
                   help="initialise the model from these weights (.ckpt or .safetensors)")
    p.add_argument("--pretransform-ckpt-path", default=None,
                   help="load the pretransform's weights (e.g. an unwrapped Stable Audio Open VAE) from this file")
    p.add_argument("--ckpt-path", default=None, help="resume training from this Lightning checkpoint")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow --ckpt-path, --pretrained-ckpt-path and --pretransform-ckpt-path files that need full "
                        "unpickling (can run code: only files from a source you trust)")
    p.add_argument("--save-dir", default="runs")
    p.add_argument("--name", default="run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--accum-batches", type=int, default=1)
    p.add_argument("--precision", default="32", help="Lightning precision: 32, 16-mixed, bf16-mixed ...")
    p.add_argument("--accelerator", default="auto", choices=["cpu", "gpu", "auto"])
    p.add_argument("--devices", default="auto")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="auto, ddp, fsdp, deepspeed_stage_2 ...")
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--val-every", type=int, default=-1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--gradient-clip-val", type=float, default=0.0)
    p.add_argument("--logger", default="none", choices=["none", "csv", "tensorboard", "wandb"])
    p.add_argument("--no-export", action="store_true",
                   help="skip writing export.safetensors (EMA weights) at the end")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run train.py; a bad input file or config is one ``ERROR`` line and status 1."""
    from saga_hsmad.quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    from saga_hsmad.checkpoints import CheckpointError
    from saga_hsmad.config_check import ConfigError
    from saga_hsmad.data.scan import UnreadableFilesError

    args = parse_args(argv)
    try:
        return train(args)
    except UnreadableFilesError as e:  # a dataset with "on_bad_file": "error": one line per file
        for path, reason in e.bad.items():
            print(f"ERROR {path}: {reason}", file=sys.stderr)
        return 1
    except (CheckpointError, ConfigError, FileNotFoundError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted by SIGINT outside the training loop: no export was written", file=sys.stderr)
        return 128 + signal.SIGINT


def train(args: argparse.Namespace) -> int:
    import pytorch_lightning as pl
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    import saga_hsmad
    from saga_hsmad.checkpoints import verify_checkpoint
    from saga_hsmad.config_check import ConfigError, check_train_args, load_config, validate_pair
    from saga_hsmad.data.loader import create_dataloader_from_config
    from saga_hsmad.training.callbacks import (StopOnSignal, log_run_hyperparameters, make_callbacks, make_logger,
                                               save_run_configs)
    from saga_hsmad.training.checkpoint_io import SafeCheckpointIO, remove_stale_temporaries
    from saga_hsmad.training.pretrained import load_pretrained, load_pretransform

    saga_hsmad.install()
    model_config = load_config(args.model_config, "model")
    check_train_args(model_config, args.batch_size, args.accum_batches, args.num_workers)
    dataset_config = load_config(args.dataset_config, "dataset")
    for path in filter(None, [args.dataset_config, args.val_dataset_config]):
        problems = validate_pair(model_config, load_config(path, "dataset"))
        if problems:
            raise ConfigError(f"{path} does not fit {args.model_config}:\n  " + "\n  ".join(map(str, problems)))
    if args.ckpt_path:
        verify_checkpoint(args.ckpt_path)  # fail before building anything; Lightning loads it in fit
    pl.seed_everything(args.seed, workers=True)

    model = saga_hsmad.create_model_from_config(model_config)
    if args.pretrained_ckpt_path:
        print(load_pretrained(model, args.pretrained_ckpt_path, trust=args.trust_checkpoint).summary())
    if args.pretransform_ckpt_path:
        print(load_pretransform(model, args.pretransform_ckpt_path, trust=args.trust_checkpoint).summary())
    wrapper = saga_hsmad.create_training_wrapper_from_config(model_config, model)

    loader_args = dict(batch_size=args.batch_size, sample_size=model_config["sample_size"],
                       sample_rate=model_config["sample_rate"], audio_channels=model_config.get("audio_channels", 2),
                       num_workers=args.num_workers, seed=args.seed,
                       downsampling_ratio=model.pretransform.downsampling_ratio if model.pretransform else 1)
    train_loader = create_dataloader_from_config(dataset_config, where=args.dataset_config, **loader_args)
    val_loader = None
    configs = {"model_config": model_config, "dataset_config": dataset_config}
    if args.val_dataset_config:
        val_config = configs["val_dataset_config"] = load_config(args.val_dataset_config, "dataset")
        val_loader = create_dataloader_from_config(val_config, where=args.val_dataset_config, shuffle=False,
                                                   **loader_args)

    run_dir = Path(args.save_dir) / args.name
    for folder in (run_dir, run_dir / "checkpoints"):
        remove_stale_temporaries(folder)  # of saves that a kill -9 or power cut interrupted
    stop = StopOnSignal(run_dir / "checkpoints" / "last.ckpt")
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
        precision=args.precision, accumulate_grad_batches=args.accum_batches, max_steps=args.max_steps,
        max_epochs=-1 if args.max_steps > 0 else 10_000_000, gradient_clip_val=args.gradient_clip_val or None,
        callbacks=[*make_callbacks(model_config, run_dir, args.checkpoint_every, dataset_config, train_loader,
                                   seed=args.seed), stop],
        plugins=[SafeCheckpointIO(trust=args.trust_checkpoint)],
        logger=make_logger(args.logger, run_dir, args.name), default_root_dir=run_dir,
        val_check_interval=args.val_every if (val_loader is not None and args.val_every > 0) else None,
        check_val_every_n_epoch=None if (val_loader is not None and args.val_every > 0) else 1,
        limit_val_batches=1.0 if val_loader is not None else 0, num_sanity_val_steps=0,
        log_every_n_steps=1, reload_dataloaders_every_n_epochs=0,
        use_distributed_sampler=False)  # the loaders' ResumableSampler splits the data between processes
    if trainer.is_global_zero:
        for name, path in save_run_configs(run_dir, configs).items():
            if path.name != f"{name}.json":
                print(f"{run_dir / (name + '.json')} holds another {name}; this run's is {path}")
    log_run_hyperparameters(trainer.logger, vars(args), configs)
    with stop.handling_signals():
        try:
            trainer.fit(wrapper, train_loader, val_loader, ckpt_path=args.ckpt_path)
        except SIGTERMException:  # Lightning's own stop after SIGTERM; StopOnSignal has saved by then
            pass
    if stop.signal_name or trainer.interrupted:
        return interrupted(stop, trainer.global_step, run_dir / "checkpoints")

    if not args.no_export and trainer.is_global_zero:
        path = run_dir / "export.safetensors"
        wrapper.export_model(str(path))
        print(f"exported inference checkpoint (EMA weights when used, no optimizer state): {path}")
    return 0


def interrupted(stop, step: int, checkpoints: Path) -> int:
    """The one line after Ctrl-C or SIGTERM; the exit status of the signal (130, 143)."""
    from saga_hsmad.checkpoints import newest_intact_checkpoint

    name = stop.signal_name or "SIGINT"  # trainer.interrupted alone: a second Ctrl-C before the save
    if stop.saved_step is not None:
        print(f"interrupted by {name} at step {stop.saved_step}: resumable checkpoint {stop.path}; "
              f"resume with --ckpt-path {stop.path}", file=sys.stderr)
    else:
        newest = newest_intact_checkpoint(checkpoints)
        print(f"interrupted by {name} at step {step} before a checkpoint was saved; "
              + (f"resume with --ckpt-path {newest}" if newest else "no checkpoint to resume from"), file=sys.stderr)
    return 128 + getattr(signal, name)


if __name__ == "__main__":
    sys.exit(main())
