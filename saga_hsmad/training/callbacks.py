"""Lightning callbacks and loggers for ``train.py``."""
from __future__ import annotations

import contextlib
import itertools
import json
import signal
import traceback
import typing as tp
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch


class ModelConfigEmbedder(pl.Callback):
    """Stores the model config in every checkpoint, so ``sample.py --ckpt`` needs nothing else."""

    def __init__(self, model_config: dict):
        self.model_config = model_config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["model_config"] = self.model_config


class RankSeed(pl.Callback):
    """With several processes (DDP), reseeds each one's random generators with ``seed + global rank`` once the
    processes exist, so the ranks draw different noise and timesteps for their items. ``seed_everything`` in
    ``train.py`` gives every process the same seed, which would make the ranks' draws identical. The weights
    are built before, under the shared seed, so every rank starts from the same model. One process: nothing
    changes, so a single-device run is the run it was."""

    def __init__(self, seed: int):
        self.seed = seed

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.world_size > 1:
            import random

            import numpy as np

            seed = self.seed + trainer.global_rank
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)


class DataPosition(pl.Callback):
    """Places the training loader's ``ResumableSampler`` at the trainer's global step, so the data order and
    random windows are a function of (seed, global step): a run resumed at step k sees the batches an
    uninterrupted run sees from step k + 1 on.

    ``on_load_checkpoint`` runs before Lightning makes the epoch's first iterator (and forks the loader
    workers); ``on_train_epoch_start`` places each later epoch. It also aligns Lightning's restored loop
    counters with the step: pytorch_lightning 2.1 saves a step checkpoint before counting its batch as
    completed, so a resumed run retrained the last batch's slot, shifted gradient-accumulation groups by
    one batch and, at an epoch boundary, ended the resumed epoch one batch late (skipping one).
    """

    def __init__(self, loader: torch.utils.data.DataLoader):
        self.loader = loader

    def position(self, trainer, global_step: int) -> tuple[int, int]:
        from ..data.loader import position_at

        return position_at(global_step, len(self.loader), trainer.accumulate_grad_batches)

    def place(self, epoch: int, batch: int) -> None:
        self.loader.sampler.place(epoch, batch * self.loader.batch_size)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        epoch, batch = self.position(trainer, checkpoint["global_step"])
        self.place(epoch, batch)
        align_loop_state(checkpoint, epoch, batch)
        # the resumed epoch continues exactly, so Lightning's warning that it may not is wrong here
        warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.place(*self.position(trainer, trainer.global_step))


def align_loop_state(checkpoint: dict, epoch: int, batch: int) -> None:
    """Sets the fit loop's epoch and batch counters in a Lightning 2.1 ``checkpoint`` to ``batch`` batches
    into ``epoch`` (from ``position_at``); the total batch count drops the batches that are retrained."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    batches, epochs = loop.get("epoch_loop.batch_progress"), loop.get("epoch_progress")
    if batches is None or epochs is None:
        return
    in_epoch = batches["current"]["processed"]
    retrained = in_epoch - batch if epoch == epochs["current"]["completed"] else 0
    trained = batches["total"]["processed"] - retrained
    batches["is_last_batch"] = False
    for key in ("ready", "started", "processed", "completed"):
        batches["current"][key], batches["total"][key] = batch, trained
    epochs_started = epoch + (batch > 0)
    for progress in (epochs["current"], epochs["total"]):
        progress.update(ready=epochs_started, started=epochs_started, processed=epoch, completed=epoch)


class StopOnSignal(pl.Callback):
    """Ctrl-C (SIGINT) or SIGTERM during ``fit``: the current batch finishes, a resumable checkpoint is saved to
    ``path`` (``RUN/checkpoints/last.ckpt``, so "resume from last" continues from the newest state) and training
    stops; ``signal_name`` and ``saved_step`` then tell train.py to skip the export and exit non-zero.

    Lightning 2.1 alone exits 0 on either signal: Ctrl-C is swallowed and fit returns as if finished (train.py
    then exported the half-trained model), SIGTERM raises ``SIGTERMException`` (a ``SystemExit`` with status 0)
    after the batch; neither saves anything. The handlers are installed around ``fit`` by ``handling_signals``;
    Lightning keeps ours in its own SIGTERM handler. Under data parallelism the decision to stop is shared
    (``reduce_boolean_decision``), so every process saves at the same step. DataLoader workers forked inside
    ``fit`` inherit the handler, so a terminal's Ctrl-C (sent to the whole process group) does not kill them
    mid-batch. A second Ctrl-C stops at once, without saving.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.signal_name: str | None = None
        self.saved_step: int | None = None

    @contextlib.contextmanager
    def handling_signals(self) -> tp.Iterator["StopOnSignal"]:
        previous = {s: signal.signal(s, self.request) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def request(self, signum: int, frame) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.strategy.reduce_boolean_decision(self.signal_name is not None, all=False):
            self.save(trainer)
            trainer.should_stop = True

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """SIGTERM during validation: Lightning raises at a batch boundary of the validation loop, before any
        training batch ends; the model and optimizer are consistent there."""
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and self.saved_step is None:
            self.save(trainer)


class DemoCallback(pl.Callback):
    """Every ``demo_every`` steps, generates audio with the EMA backbone (when there is one) and writes
    ``demos/step_<n>_cfg_<s>_<i>.wav`` with soundfile.

    The demos are conditioned on the first ``num_demos`` (default 2) items of the training batch, or, when
    ``demo_cond`` is given, on its entries (stable-audio-tools' key: a list of metadata dicts such as
    ``{"prompt": "solo piano", "seconds_total": 4}``; the first ``num_demos`` of them when that is set). An
    entry is laid over the metadata of batch item i (cycling), so conditions it does not name, such as
    SAGA-SR's low-resolution audio or HS-MAD's MIDI, come from the batch. ``demo_cond_from_batch: true``
    ignores ``demo_cond`` (as upstream). ``out_dir`` None writes to ``<trainer.default_root_dir>/demos``
    (stable-audio-tools' train.py, whose root is its ``--save-dir``).

    Conditioning audio is written beside the demos, as ``step_<n>_<id>_<i>.wav``, for each entry
    ``{"id": ..., "type": "audio", "config": {"pre_encoded": false}}`` of ``cond_display_configs`` (decoded
    by the pretransform when pre-encoded), e.g. SAGA-SR's ``lr_audio`` input; ``display_audio_cond: true``
    adds the condition ``audio`` (upstream's keys).

    Replaces stable-audio-tools' demo callback, which writes with ``torchaudio.save`` (needs torchcodec
    from torchaudio 2.9 on) into the working directory, crashes on an empty ``demo_cond`` and re-raises any
    error, killing the run. A failing demo here prints its traceback and training goes on.
    """

    def __init__(self, out_dir: str | Path | None = None, demo_every: int = 2000, num_demos: int | None = None,
                 demo_steps: int = 50, demo_cfg_scales: tp.Sequence[float] = (1.0,), sample_rate: int = 44100,
                 demo_cond: tp.Sequence[dict] | None = None, demo_cond_from_batch: bool = False,
                 display_audio_cond: bool = False, cond_display_configs: tp.Sequence[dict] | None = None):
        if demo_cond is not None and not (isinstance(demo_cond, (list, tuple)) or demo_cond == {}):
            raise TypeError(f"training.demo.demo_cond must be a list of metadata dicts, got "
                            f"{type(demo_cond).__name__}")
        bad = [i for i, cond in enumerate(demo_cond or []) if not isinstance(cond, dict)]
        if bad:
            raise TypeError(f"training.demo.demo_cond[{bad[0]}] must be a metadata dict such as "
                            f'{{"prompt": "...", "seconds_total": 4}}, got {type(demo_cond[bad[0]]).__name__}')
        self.displayed = display_conditions(cond_display_configs or [])
        if display_audio_cond and "audio" not in self.displayed:
            self.displayed["audio"] = False
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.demo_every, self.num_demos, self.demo_steps = demo_every, num_demos, demo_steps
        self.cfg_scales, self.sample_rate = list(demo_cfg_scales), sample_rate
        # upstream's default is an empty dict, which it then fails to use: empty means "from the batch"
        self.demo_cond = [] if demo_cond_from_batch else list(demo_cond or [])
        self.last_step = -1

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self.last_step or step % self.demo_every != 0 or not trainer.is_global_zero:
            return
        self.last_step = step
        if self.out_dir is None:
            self.out_dir = Path(trainer.default_root_dir) / "demos"
        try:
            self.write_demos(module, batch, step)
        except Exception:
            print(f"demo at step {step} failed; training continues:\n{traceback.format_exc()}")

    def demo_metadata(self, batch_metadata: tp.Sequence[dict]) -> list[dict]:
        """The metadata the demos are conditioned on: ``demo_cond`` laid over the batch's, or the batch's."""
        batch_metadata = list(batch_metadata)
        if not self.demo_cond:
            return batch_metadata[: self.num_demos or 2]
        conds = self.demo_cond[: self.num_demos] if self.num_demos else self.demo_cond
        return [{**batch_metadata[i % len(batch_metadata)], **cond} for i, cond in enumerate(conds)]

    @torch.no_grad()
    def write_demos(self, module, batch, step: int) -> list[Path]:
        from ..audio_io import write_audio
        from ..inference.generate import conditioning_inputs, decode, generate_latents, linear_schedule

        reals, metadata = batch
        metadata = self.demo_metadata(metadata)
        model = module.diffusion
        online = model.model
        if module.diffusion_ema is not None:
            model.model = module.diffusion_ema.ema_model
        written = []
        try:
            was_training = model.training
            model.eval()
            written += self.write_conditions(model, metadata, step, module.device)
            inputs = conditioning_inputs(model, metadata, module.device)
            n = reals.shape[-1] // (model.pretransform.downsampling_ratio if model.pretransform else 1)
            for scale in self.cfg_scales:
                generator = torch.Generator().manual_seed(step)
                latents = generate_latents(model, inputs, (len(metadata), model.io_channels, n),
                                           linear_schedule(self.demo_steps), cfg_scale=scale, generator=generator)
                for i, clip in enumerate(decode(model, latents).cpu().numpy()):
                    path = self.out_dir / f"step_{step:07d}_cfg_{scale:g}_{i}.wav"
                    write_audio(path, clip, self.sample_rate)
                    written.append(path)
            model.train(was_training)
        finally:
            model.model = online
        return written

    def write_conditions(self, model, metadata: tp.Sequence[dict], step: int, device: torch.device) -> list[Path]:
        """The displayed conditions' audio of each demo (channels, samples), decoded first when pre-encoded."""
        from ..audio_io import write_audio

        written = []
        for cond_id, pre_encoded in self.displayed.items():
            for i, md in enumerate(metadata):
                audio = torch.as_tensor(md[cond_id])
                if pre_encoded:
                    audio = model.pretransform.decode(audio[None].to(device))[0]
                path = self.out_dir / f"step_{step:07d}_{cond_id}_{i}.wav"
                write_audio(path, audio.float().cpu().numpy(), self.sample_rate)
                written.append(path)
        return written


def display_conditions(configs: tp.Sequence[dict]) -> dict[str, bool]:
    """``cond_display_configs`` (upstream's key) as condition id → pre-encoded; only ``"audio"`` entries."""
    shown = {}
    for i, entry in enumerate(configs):
        where = f"training.demo.cond_display_configs[{i}]"
        if not isinstance(entry, dict) or "id" not in entry:
            raise TypeError(f'{where} must be an object with an "id" (a condition holding audio), got {entry!r}')
        if entry.get("type") != "audio":
            raise ValueError(f'{where}.type must be "audio" (the only kind written here), got {entry.get("type")!r}')
        shown[entry["id"]] = bool(entry.get("config", {}).get("pre_encoded", False))
    return shown


def make_callbacks(model_config: dict, run_dir: Path, checkpoint_every: int, dataset_config: dict | None = None,
                   train_loader: torch.utils.data.DataLoader | None = None, seed: int = 0):
    callbacks = [
        RankSeed(seed),
        pl.callbacks.ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), every_n_train_steps=checkpoint_every,
                                     save_top_k=-1, save_last=True, filename="step={step}", auto_insert_metric_name=False),
        ModelConfigEmbedder(model_config),
        *([DataPosition(train_loader)] if train_loader is not None else []),
        pl.callbacks.TQDMProgressBar(refresh_rate=1),
    ]
    demo = model_config.get("training", {}).get("demo")
    if demo:
        from ..factory import construct

        callbacks.append(construct(DemoCallback, demo, "training.demo", out_dir=run_dir / "demos",
                                   sample_rate=model_config["sample_rate"]))
    return callbacks


def make_logger(kind: str, run_dir: Path, name: str):
    """Lightning's logger ``kind`` writing into ``run_dir`` (csv and tensorboard under ``run_dir/logs``, wandb's
    run under ``run_dir/wandb``), or False for "none"."""
    if kind == "none":
        return False
    run_dir.mkdir(parents=True, exist_ok=True)  # wandb puts its run in the system temp folder if it is missing
    if kind == "csv":
        return pl.loggers.CSVLogger(save_dir=str(run_dir), name="logs")
    if kind == "tensorboard":
        return pl.loggers.TensorBoardLogger(save_dir=str(run_dir), name="logs")
    if kind == "wandb":
        return pl.loggers.WandbLogger(project=name, save_dir=str(run_dir))
    raise ValueError(f"unknown logger {kind!r}")


def save_run_configs(run_dir: Path, configs: dict[str, dict]) -> dict[str, Path]:
    """Writes each config (name → JSON object) to ``run_dir/<name>.json`` and returns where each is.

    A file of that name that holds another config (a run resumed with changed configs) is kept: the new one
    goes to ``<name>.2.json`` (``.3``, ...), and an identical file is left as it is."""
    from ..checkpoints import atomic_write

    where = {}
    for name, config in configs.items():
        text = json.dumps(config, indent=2) + "\n"
        for n in itertools.count(1):
            path = run_dir / (f"{name}.json" if n == 1 else f"{name}.{n}.json")
            if not path.exists():
                atomic_write(path, lambda tmp: Path(tmp).write_text(text))
                break
            with contextlib.suppress(ValueError):
                if json.loads(path.read_text()) == config:
                    break
        where[name] = path
    return where


def log_run_hyperparameters(logger, args: dict, configs: dict[str, dict]) -> None:
    """The command-line arguments (under ``args``) and the configs (under their names) as the logger's
    hyperparameters: ``hparams.yaml`` of csv and tensorboard, the run config of wandb."""
    if logger:
        logger.log_hyperparams({"args": args, **configs})
