"""Figures of the SAGA-SR evaluation: spectrograms (LR input / output / reference) and the target roll-off
sweep (requested vs measured roll-off, cf. the paper's Fig. 3). matplotlib with the Agg backend (files only).

Spectrograms show the log power of the channel mix with the LSD's STFT (``evaluation.lsd.log_power``:
Hann 2048, hop 512) in dB, one colour scale for all three panels, and the cutoff as a dashed line.
"""
from __future__ import annotations

import os
import typing as tp

import numpy as np
import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spectrogram_db(audio: np.ndarray) -> np.ndarray:
    """(c, n) or (n,) → (F, N) power in dB of the channel mix (floor −100 dB)."""
    from .lsd import log_power

    x = np.asarray(audio, dtype=np.float32)
    mono = x.mean(axis=0) if x.ndim == 2 else x
    return 10.0 * log_power(torch.from_numpy(np.ascontiguousarray(mono))).numpy()


def plot_spectrograms(path: str | os.PathLike, panels: tp.Sequence[tuple[str, np.ndarray]], sr: int,
                      cutoff_hz: float | None = None, title: str = "") -> None:
    """One row of spectrogram panels ``(label, (c, n) audio)`` at rate ``sr``, saved to ``path`` (PNG)."""
    plt = _pyplot()
    specs = [spectrogram_db(audio) for _, audio in panels]
    vmax = max(float(s.max()) for s in specs)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, (label, audio), spec in zip(axes[0], panels, specs):
        seconds = np.asarray(audio).shape[-1] / sr
        image = ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 100.0, vmax=vmax,
                          extent=(0.0, seconds, 0.0, sr / 2 / 1000.0))
        if cutoff_hz:
            ax.axhline(cutoff_hz / 1000.0, color="cyan", linestyle="--", linewidth=0.8)
        ax.set_title(label)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (kHz)")
    fig.colorbar(image, ax=axes[0].tolist(), label="power (dB)")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rolloff_sweep(path: str | os.PathLike, curves: tp.Mapping[str, tuple[tp.Sequence[float], tp.Sequence[float]]],
                       spearman: float, title: str = "") -> None:
    """Measured output roll-off against the requested target, one line per clip, with the identity."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.4))
    everything = []
    for label, (requested, measured) in curves.items():
        ax.plot(requested, measured, marker="o", label=label)
        everything += list(requested) + list(measured)
    lo, hi = min(everything + [0.0]), max(everything + [1.0])
    ax.plot([lo, hi], [lo, hi], color="gray", linestyle=":", linewidth=1, label="measured = requested")
    ax.set_xlabel("requested target roll-off f_h")
    ax.set_ylabel("measured roll-off of the output")
    ax.set_title(title or f"target roll-off sweep (Spearman ρ = {spearman:.3f})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
