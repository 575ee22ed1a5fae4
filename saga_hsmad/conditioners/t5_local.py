"""A frozen T5-family text encoder loaded from a local directory (or a hub name), plus a tiny offline
stand-in.

stable-audio-tools' ``t5`` conditioner asserts its model name is one of twelve hub names, so a local
directory is refused, and it downloads at construction. This one takes ``model_name_or_path``: a local
directory (``local_files_only``), a hub name (only if the machine can reach the hub or has it cached),
or ``"tiny-random"``: a 2-layer T5 encoder with a byte-level tokenizer, initialised from a fixed seed,
that needs no file at all (tests, CPU demos). Like upstream, the encoder is frozen and kept out of the
state dict (it is loaded from its own path, not stored in every checkpoint); padding tokens are zeroed.

Legend: b batch, s tokens (max_length), d encoder width.
"""
from __future__ import annotations

import os
import typing as tp

import torch
from stable_audio_tools.models.conditioners import Conditioner
from torch import nn

from ..registry import CONDITIONERS

TINY = "tiny-random"


class _Frozen:
    """Keeps the encoder out of the module tree (no state dict, no optimizer, not copied by EMA)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo):
        return self


def tiny_t5(seed: int = 0, d_model: int = 64):
    """A small randomly initialised T5 encoder and a byte tokenizer; identical for the same seed."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tokenizer = ByT5Tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=16, d_ff=2 * d_model, num_layers=2,
                      num_heads=4, dropout_rate=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    return tokenizer, model


def load_t5(model_name_or_path: str, dtype: torch.dtype):
    from transformers import AutoTokenizer, T5EncoderModel

    local = os.path.isdir(model_name_or_path)
    looks_local = model_name_or_path.startswith((".", "/", "~")) or os.sep in model_name_or_path.strip("/").split("/", 1)[-1]
    if not local and looks_local:
        raise FileNotFoundError(f"t5_local: model directory {model_name_or_path!r} does not exist; point "
                                "model_name_or_path at a local T5 checkpoint directory (config.json, weights, tokenizer)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, local_files_only=local)
        model = T5EncoderModel.from_pretrained(model_name_or_path, local_files_only=local, dtype=dtype)
    except OSError as e:
        raise OSError(f"t5_local: cannot load {model_name_or_path!r} ({e}). Give a local directory; hub names "
                      "work only where the hub is reachable or cached.") from e
    return tokenizer, model


@CONDITIONERS.register("t5_local")
class LocalT5Conditioner(Conditioner):
    """Text → (b, s, output_dim) token embeddings and a (b, s) bool mask, from a frozen T5 encoder.

    Args:
        output_dim: conditioning width (projected when it differs from the encoder's width).
        model_name_or_path: local directory, hub name, or ``"tiny-random"``.
        max_length: tokens per text (128 in SAGA-SR).
        half: run the encoder in float16 on CUDA (upstream's default); float32 elsewhere.
        project_out: force a learned projection even when the widths agree.
        pooled: return one token, the masked mean over tokens, instead of the sequence (style vectors).
        seed: initialisation seed of the tiny stand-in.
    """

    def __init__(self, output_dim: int, model_name_or_path: str = "t5-base", max_length: int = 128,
                 half: bool = True, project_out: bool = False, pooled: bool = False, seed: int = 0):
        if model_name_or_path == TINY:
            tokenizer, model = tiny_t5(seed)
        else:
            tokenizer, model = load_t5(os.path.expanduser(model_name_or_path), torch.float32)
        super().__init__(model.config.d_model, output_dim, project_out=project_out)
        self.tokenizer = tokenizer
        self.encoder = _Frozen(model.eval().requires_grad_(False))
        self.max_length = max_length
        self.half = half
        self.pooled = pooled

    def forward(self, texts: tp.Sequence[str], device: tp.Union[torch.device, str]) -> list[torch.Tensor]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"t5_local expects a caption string per item; item {i} is {type(text).__name__}")
        device = torch.device(device)
        model = self.encoder.module
        dtype = torch.float16 if (self.half and device.type == "cuda") else torch.float32
        model.to(device=device, dtype=dtype)
        tokens = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding="max_length",
                                return_tensors="pt")
        ids = tokens["input_ids"].to(device)
        mask = tokens["attention_mask"].to(device).bool()
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        proj_dtype = next(self.proj_out.parameters()).dtype if isinstance(self.proj_out, nn.Linear) else torch.float32
        embeddings = self.proj_out(hidden.to(proj_dtype)) * mask.unsqueeze(-1)
        if self.pooled:
            pooled = embeddings.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
            return [pooled.unsqueeze(1), torch.ones(len(texts), 1, dtype=torch.bool, device=device)]
        return [embeddings, mask]
