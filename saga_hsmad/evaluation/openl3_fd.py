"""OpenL3 Fréchet distance (SAGA-SR paper §3, music and sound effects), only where OpenL3 is available locally.

FD = |μ_r − μ_e|² + Tr(Σ_r + Σ_e − 2 (Σ_r Σ_e)^½) between Gaussians fitted to the embedding frames of the
reference set and of the evaluated set (Heusel et al. 2017; the form stable-audio-metrics uses with OpenL3).

Embeddings: the ``openl3`` package (Keras/TensorFlow), mel256 input, 512-d, content type "music" or "env",
hop 0.5 s, each clip mixed to mono and peak-normalised to −1 dBFS first (stable-audio-metrics' settings;
the paper does not state its own). Nothing is downloaded: the weights come with the installed package or
from ``openl3_dir`` (a folder with openl3's ``openl3_audio_<repr>_<content>.h5`` weight files). When
neither is available :func:`load_openl3` returns ``None`` and the reason, and the evaluation leaves the FD
column out.

Shape legend: N embedding frames, D embedding width.
"""
from __future__ import annotations

import importlib.util
import os
import typing as tp
from pathlib import Path

import numpy as np

ContentType = tp.Literal["music", "env"]


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) frames → (mean (D,), covariance (D, D)), float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    assert x.ndim == 2 and x.shape[0] >= 2, f"need (N >= 2, D) embeddings, got shape {x.shape}"
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (see the module docstring)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape, "statistics of different dimensions"
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():  # singular product: regularise both covariances
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


class OpenL3Embedder:
    """Embedding frames of clips with the ``openl3`` package (loaded once)."""

    def __init__(self, model, hop_seconds: float = 0.5):
        self.model, self.hop = model, hop_seconds

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(c, n) or (n,) audio → (frames, 512) embeddings of the peak-normalised mono mix."""
        import openl3

        mono = np.asarray(audio, dtype=np.float32)
        mono = mono.mean(axis=0) if mono.ndim == 2 else mono
        peak = np.abs(mono).max()
        if peak > 0:
            mono = mono * (10 ** (-1 / 20) / peak)
        emb, _ = openl3.get_audio_embedding(mono, sr, model=self.model, hop_size=self.hop, verbose=False)
        return np.asarray(emb, dtype=np.float64)


def load_openl3(openl3_dir: str | os.PathLike | None = None, content_type: ContentType = "music",
                input_repr: str = "mel256", embedding_size: int = 512) -> tuple[OpenL3Embedder | None, str]:
    """(embedder or None, what was loaded or why nothing was). Never downloads anything."""
    if importlib.util.find_spec("openl3") is None:
        return None, ("the openl3 package is not installed (pip install openl3, which needs TensorFlow; its "
                      "weights ship with the package), so no OpenL3 FD")
    try:
        import openl3

        if openl3_dir is not None:
            path = Path(openl3_dir).expanduser() / f"openl3_audio_{input_repr}_{content_type}.h5"
            if not path.is_file():
                return None, f"--openl3-dir: {path} does not exist, so no OpenL3 FD"
            model = openl3.models.load_audio_embedding_model_from_path(str(path), input_repr, embedding_size)
            where = str(path)
        else:
            model = openl3.models.load_audio_embedding_model(input_repr=input_repr, content_type=content_type,
                                                             embedding_size=embedding_size)
            where = "the installed openl3 package"
    except Exception as e:  # missing weight files, TensorFlow problems ...
        return None, f"OpenL3 could not be loaded ({type(e).__name__}: {e}), so no OpenL3 FD"
    return OpenL3Embedder(model), f"OpenL3 {input_repr}/{content_type}/{embedding_size} from {where}"
