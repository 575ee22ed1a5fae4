"""Fréchet audio distance with a pluggable embedding, labelled with the embedding used (HS-MAD spec §8).

FAD = |μ_a − μ_b|² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) between Gaussians fitted to the embedding frames of two
sets of clips (Kilgour et al. 2019). The standard FAD uses VGGish, whose weights download at run time, as do
those of every FAD package (PANN, CLAP, EnCodec ...). The embedding shipped here is CREPE's (torchcrepe
bundles ``full.pth`` and ``tiny.pth``): the output of its fifth max-pool layer (``torchcrepe.embed``) on
1024-sample frames of 16 kHz mono audio, hop ``hop_seconds``, averaged over the 32 positions inside each
frame (64 values for "full", 8 for "tiny"). CREPE is a pitch tracker, so this is a **CREPE-embedding FAD**
("FAD-CREPE"): it compares pitch/harmonic-structure statistics, it is NOT comparable with VGGish FAD numbers,
and every table must name it (``CrepeEmbedding.label``). Another embedding plugs in through ``Embedding``.

Legend: N embedding frames, D embedding width, c channels, n samples.
"""
from __future__ import annotations

import typing as tp

import numpy as np
import torch

from ..audio_io import resample

CrepeCapacity = tp.Literal["full", "tiny"]


class Embedding(tp.Protocol):
    label: str

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio (c, n) or (n,) → frames (N, D) float64."""
        ...


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) frames → (mean (D,), covariance (D, D)), float64; needs N ≥ 2."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"FAD needs at least 2 embedding frames of shape (N, D), got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); a singular product is regularised by eps·I."""
    from scipy import linalg

    diff = np.atleast_1d(mu1) - np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(np.real(covmean)))
    return max(value, 0.0)  # sqrtm rounding can make identical sets give -1e-12


class CrepeEmbedding:
    """CREPE layer-5 embeddings (module docstring); weights from the torchcrepe package, never downloaded."""

    SAMPLE_RATE = 16000

    def __init__(self, capacity: CrepeCapacity = "full", hop_seconds: float = 0.1, device: str | None = None,
                 batch_size: int = 256):
        if capacity not in ("full", "tiny"):
            raise ValueError(f"CREPE capacity must be 'full' or 'tiny', got {capacity!r}")
        if not hop_seconds > 0:
            raise ValueError(f"hop_seconds must be > 0, got {hop_seconds}")
        self.capacity, self.hop_seconds, self.batch_size = capacity, hop_seconds, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        width = 64 if capacity == "full" else 8
        self.label = (f"FAD-CREPE ({capacity} CREPE layer-5 embedding, {width}-d mean over in-frame positions, "
                      f"16 kHz mono, hop {hop_seconds * 1000:.0f} ms; not VGGish FAD)")

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        import torchcrepe

        audio = np.asarray(audio, dtype=np.float32)
        mono = audio.mean(axis=0) if audio.ndim == 2 else audio
        mono = resample(mono[None], sample_rate, self.SAMPLE_RATE)[0]
        x = torch.from_numpy(np.ascontiguousarray(mono))[None]
        hop = max(1, int(round(self.hop_seconds * self.SAMPLE_RATE)))
        emb = torchcrepe.embed(x, self.SAMPLE_RATE, hop_length=hop, model=self.capacity,
                               batch_size=self.batch_size, device=self.device)        # (1, N, 32, D)
        return emb[0].mean(dim=1).double().cpu().numpy()                               # (N, D)


def set_stats(clips: tp.Iterable[tuple[np.ndarray, int]], embedding: Embedding) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian statistics of all embedding frames of a set of (audio, sample rate) clips."""
    frames = [embedding(audio, sr) for audio, sr in clips]
    if not frames:
        raise ValueError("FAD: the set is empty")
    return gaussian_stats(np.concatenate(frames))


def fad(set_a: tp.Iterable[tuple[np.ndarray, int]], set_b: tp.Iterable[tuple[np.ndarray, int]],
        embedding: Embedding) -> float:
    """FAD between two sets of (audio (c, n), sample rate) clips under ``embedding``."""
    return frechet_distance(*set_stats(set_a, embedding), *set_stats(set_b, embedding))
