"""stable-audio-tools' ``DiffusionCondTrainingWrapper`` with the 0.0.19 defects worked around.

The rectified-flow step itself (timestep sampling, x_t = (1 − t)·x_0 + t·ε, target ε − x_0, MSE, EMA of
the backbone, logging) is upstream's, called through ``super()``. What this subclass changes:

* **Encoding** (``encode_batch``): 0.0.19 enters ``with torch.cuda.amp.autocast() and
  torch.set_grad_enabled(...)``, which enters only the second manager, and then shifts timesteps with
  the *audio* length (``reals.shape[2]``) instead of the latent length, which saturates the shift at
  t = 1. Here the batch is encoded first, under both managers, and handed to ``super()`` as latents,
  so upstream's shift sees the latent length.
* **Encoding precision** (``encode_autocast``): the target latent and every latent a ``pretransform``
  conditioner encodes during a step (SAGA-SR's LR latent) are computed the same way: in float32 by
  default, as the official SAGA-SR code does (it runs the VAE without autocast), even under Lightning's
  ``16-mixed``/``bf16-mixed``; ``encode_autocast: true`` runs both under autocast in
  ``encode_autocast_dtype``. Upstream intended fp16 autocast on CUDA for the target latent only (its
  ``and`` dropped it) and never for the conditioner's, so the model would see its two latents at
  different precisions.
* **Padding masks** are accepted as bare tensors or one-element lists (0.0.19 indexes ``[0]``) and
  interpolated to the latent length.
* **Schedulers** come from ``saga_hsmad.training.schedulers`` (0.0.19's ``InverseLR`` raises on torch ≥ 2.9).
* **Validation losses** are logged through Lightning to every logger (upstream: wandb and comet only).
* **EMA** also covers the conditioners' trainable weights (roll-off embedders, projections), which
  upstream's EMA of the backbone alone leaves out; ``export_model`` writes both EMA sets and the config.
"""
from __future__ import annotations

import contextlib
import typing as tp

import torch
import torch.nn.functional as F
from ema_pytorch import EMA
from stable_audio_tools.training import diffusion as sat_training
from stable_audio_tools.training.utils import create_optimizer_from_config
from torch import nn

from ..registry import TRAINING_WRAPPERS
from .schedulers import create_scheduler_from_config

# JSON key (stable-audio-tools' training section) → constructor argument.
KEY_ALIASES = {"learning_rate": "lr", "inpainting": "inpainting_config"}
NON_WRAPPER_KEYS = ("type", "demo")


def padding_mask_tensor(value: tp.Any) -> torch.Tensor:
    """A padding mask given as a tensor or as a one-element list/tuple of one (0.0.19 wants the list)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"padding_mask list must hold exactly one tensor, got {len(value)} items")
        value = value[0]
    return torch.as_tensor(value)


def with_padding_masks(metadata: tp.Sequence[dict], masks: torch.Tensor) -> list[dict]:
    """Copies of ``metadata`` whose padding masks are the rows of ``masks``, wrapped as upstream expects."""
    return [{**md, "padding_mask": [mask]} for md, mask in zip(metadata, masks)]


class _FrozenReference:
    """Holds a module that must not be deep-copied (e.g. by EMA) nor registered as a submodule."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo):
        return self


@TRAINING_WRAPPERS.register("diffusion_cond")
class DiffusionCondTrainingWrapper(sat_training.DiffusionCondTrainingWrapper):
    """Upstream's conditional diffusion trainer with our fixes (see the module docstring).

    Extra arguments: ``encode_autocast`` — encode the target and the conditioners' audio (SAGA-SR's LR
    latent) under autocast (default false: both in float32, the official code's precision);
    ``encode_autocast_dtype`` — the autocast dtype ("float16" or "bfloat16").
    """

    def __init__(self, model, lr: float | None = None, mask_padding: bool = False,
                 mask_padding_dropout: float = 0.0, use_ema: bool = True, log_loss_info: bool = False,
                 optimizer_configs: dict | None = None, pre_encoded: bool = False, cfg_dropout_prob: float = 0.1,
                 timestep_sampler: tp.Literal["uniform", "logit_normal", "trunc_logit_normal", "log_snr"] = "uniform",
                 timestep_sampler_options: dict | None = None, p_one_shot: float = 0.0,
                 inpainting_config: dict | None = None, encode_autocast: bool = False,
                 encode_autocast_dtype: tp.Literal["float16", "bfloat16"] = "float16",
                 model_config: dict | None = None):
        super().__init__(model, lr=lr, mask_padding=mask_padding, mask_padding_dropout=mask_padding_dropout,
                         use_ema=use_ema, log_loss_info=log_loss_info, optimizer_configs=optimizer_configs,
                         pre_encoded=pre_encoded, cfg_dropout_prob=cfg_dropout_prob,
                         timestep_sampler=timestep_sampler, timestep_sampler_options=timestep_sampler_options,
                         p_one_shot=p_one_shot, inpainting_config=inpainting_config)
        self.encode_autocast = encode_autocast
        self.encode_autocast_dtype = getattr(torch, encode_autocast_dtype)
        self.model_config = model_config
        self.conditioner_ema = None
        trainable = self.trainable_conditioners()
        if use_ema and len(trainable) > 0:
            self.conditioner_ema = EMA(trainable, beta=0.9999, power=3 / 4, update_every=1, update_after_step=1,
                                       include_online_model=False)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, model_config: dict, model) -> "DiffusionCondTrainingWrapper":
        """Build from the model config's ``training`` section (stable-audio-tools' key names)."""
        from ..factory import construct

        training = {k: v for k, v in model_config.get("training", {}).items() if k not in NON_WRAPPER_KEYS}
        kwargs = {KEY_ALIASES.get(k, k): v for k, v in training.items()}
        for alias, arg in KEY_ALIASES.items():
            if arg in training:
                raise TypeError(f"training: write {alias!r}, not {arg!r}")
        return construct(cls, kwargs, "training", model=model, model_config=model_config)

    def trainable_conditioners(self) -> nn.ModuleDict:
        """The conditioners that own trainable parameters (what the conditioner EMA covers)."""
        conditioner = self.diffusion.conditioner
        if conditioner is None:
            return nn.ModuleDict()
        return nn.ModuleDict({k: c for k, c in conditioner.conditioners.items()
                              if any(p.requires_grad for p in c.parameters())})

    def configure_optimizers(self):
        config = self.optimizer_configs["diffusion"]
        optimizer = create_optimizer_from_config(config["optimizer"], self.diffusion.parameters())
        if "scheduler" not in config:
            return [optimizer]
        scheduler = create_scheduler_from_config(config["scheduler"], optimizer,
                                                 "training.optimizer_configs.diffusion.scheduler")
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]

    # -- the 0.0.19 fixes -----------------------------------------------------------------------
    def encode_precision(self, device: torch.device | str) -> torch.autocast:
        """The autocast state of every encoding in a step: on in ``encode_autocast_dtype`` when
        ``encode_autocast``, else explicitly off (an outer mixed-precision autocast does not reach it)."""
        device = torch.device(device)
        return torch.autocast(device_type=device.type, dtype=self.encode_autocast_dtype,
                              enabled=bool(self.encode_autocast))

    def encode_context(self, device: torch.device) -> contextlib.ExitStack:
        """Encoding precision AND the pretransform's grad mode: both managers are entered."""
        stack = contextlib.ExitStack()
        stack.enter_context(self.encode_precision(device))
        stack.enter_context(torch.set_grad_enabled(self.diffusion.pretransform.enable_grad))
        return stack

    @contextlib.contextmanager
    def conditioner_encode_precision(self):
        """While active, every SAT ``PretransformConditioner`` (SAGA-SR's LR latent) runs its forward under
        ``encode_precision`` and returns float32 latents, as ``encode_batch`` does for the target."""
        from stable_audio_tools.models.conditioners import PretransformConditioner

        conditioner = self.diffusion.conditioner
        modules = [] if conditioner is None else [
            c for c in conditioner.conditioners.values() if isinstance(c, PretransformConditioner)]
        stacks: list[contextlib.ExitStack] = []

        def enter(module, args):
            stack = contextlib.ExitStack()
            stack.enter_context(self.encode_precision(args[1] if len(args) > 1 else self.device))
            stacks.append(stack)

        def leave(module, args, output):
            stacks.pop().close()
            latents, mask = output
            return [latents.float(), mask]

        handles = []
        for module in modules:
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave, always_call=True))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def encode_batch(self, reals: torch.Tensor, metadata: tp.Sequence[dict]):
        """(reals, metadata) → (latents as upstream's pre-encoded path expects, metadata with latent-rate
        padding masks). Without a pretransform, or with pre-encoded data, only the masks are normalised."""
        if reals.ndim == 4 and reals.shape[0] == 1:
            reals = reals[0]
        masks = torch.stack([padding_mask_tensor(md["padding_mask"]) for md in metadata]).to(reals.device)
        pretransform = self.diffusion.pretransform
        if pretransform is None or self.pre_encoded:
            return reals, with_padding_masks(metadata, masks)
        pretransform.train(pretransform.enable_grad)
        with self.encode_context(reals.device):
            latents = pretransform.encode(reals)
        latents = latents.float()
        masks = F.interpolate(masks[:, None].float(), size=latents.shape[-1], mode="nearest")[:, 0].bool()
        # Upstream's pre-encoded path divides by the pretransform's scale, which encode() already applied.
        scale = getattr(pretransform, "scale", 1.0)
        return latents * scale, with_padding_masks(metadata, masks)

    @contextlib.contextmanager
    def as_pre_encoded(self):
        previous = self.pre_encoded
        self.pre_encoded = True
        try:
            yield
        finally:
            self.pre_encoded = previous

    def training_step(self, batch, batch_idx):
        latents, metadata = self.encode_batch(*batch)
        with self.as_pre_encoded(), self.conditioner_encode_precision():
            return super().training_step((latents, metadata), batch_idx)

    def validation_step(self, batch, batch_idx):
        latents, metadata = self.encode_batch(*batch)
        with self.as_pre_encoded(), self.conditioner_encode_precision():
            return super().validation_step((latents, metadata), batch_idx)

    def on_validation_epoch_end(self):
        """Logs ``val/loss_<t>`` (mean over the validation batches at timestep t) and ``val/avg_loss`` through
        Lightning, so every logger (csv, tensorboard, wandb, ...) gets them, averaged over processes.

        Replaces upstream's method (not extended: its ``log_metric`` writes to wandb and comet only, so csv and
        tensorboard never saw validation); the values and keys are upstream's."""
        outputs = self.validation_step_outputs
        losses = {key: sum(values) / len(values) for key, values in outputs.items() if values}
        if losses:
            every = [v for values in outputs.values() for v in values]
            losses["val/avg_loss"] = sum(every) / len(every)
            self.log_dict(losses, sync_dist=True)
        for key in outputs:
            outputs[key] = []

    # -- EMA and export -------------------------------------------------------------------------
    def on_before_zero_grad(self, *args, **kwargs):
        super().on_before_zero_grad(*args, **kwargs)
        if self.conditioner_ema is not None:
            self.conditioner_ema.update()

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's state dict with EMA weights wherever EMA exists (backbone, trainable conditioners)."""
        state = {k: v.detach().clone() for k, v in self.diffusion.state_dict().items()}
        if self.diffusion_ema is not None:
            for k, v in self.diffusion_ema.ema_model.state_dict().items():
                state[f"model.{k}"] = v.detach().clone()
        if self.conditioner_ema is not None:
            for k, v in self.conditioner_ema.ema_model.state_dict().items():
                state[f"conditioner.conditioners.{k}"] = v.detach().clone()
        return state

    def export_model(self, path: str, use_safetensors: bool = False) -> None:
        """An inference checkpoint: EMA weights when present, the model config, no optimizer state."""
        from ..checkpoints import save_inference_checkpoint

        save_inference_checkpoint(path, self.ema_state_dict(), self.model_config,
                                  ema=self.diffusion_ema is not None, use_safetensors=use_safetensors)
