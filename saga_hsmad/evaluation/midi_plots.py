"""Piano roll over a spectrogram: does rendered audio put its energy where the MIDI's notes are?

``roll_over_spectrogram`` draws the audio's log-frequency magnitude spectrogram (dB, a 4096-point STFT
resampled to one row per quarter semitone between MIDI pitches 21 and 108) with every MIDI note as an
outlined box at its fundamental over its duration: a render that follows the piece shows bright rows
inside the boxes (and at their harmonics, 12, 19 and 24 semitones up).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..symbolic.midi import Notes
from .transcribe import to_mono

N_FFT = 4096
HOP = 512
PITCH_RANGE = (21.0, 108.0)
ROWS_PER_SEMITONE = 4


def log_frequency_spectrogram(audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dB (P, F) with P pitch rows, pitches (P,) in MIDI units, frame times (F,) in s) of (C, T) or (T,) audio."""
    mono = to_mono(audio)
    if len(mono) < N_FFT:
        mono = np.pad(mono, (0, N_FFT - len(mono)))
    frames = np.lib.stride_tricks.sliding_window_view(mono, N_FFT)[::HOP]
    mag = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)).T  # (bins, F)
    bin_pitch = 69 + 12 * np.log2(np.maximum(np.fft.rfftfreq(N_FFT, 1 / sr), 1e-6) / 440.0)
    pitches = np.arange(PITCH_RANGE[0], PITCH_RANGE[1] + 1e-9, 1 / ROWS_PER_SEMITONE)
    rows = np.stack([np.interp(pitches, bin_pitch, mag[:, f]) for f in range(mag.shape[1])], axis=1)
    db = 20 * np.log10(np.maximum(rows, 1e-8))
    times = (np.arange(mag.shape[1]) * HOP + N_FFT / 2) / sr
    return db, pitches, times


def roll_over_spectrogram(path: str | Path, audio: np.ndarray, sr: int, notes: Notes, title: str = "",
                          seconds: float | None = None, dynamic_range_db: float = 70.0) -> Path:
    """Write a PNG: the audio's log-frequency spectrogram with ``notes`` (drums left out) as boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    db, pitches, times = log_frequency_spectrogram(audio, sr)
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    top = float(db.max())
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - dynamic_range_db, vmax=top,
              extent=(0.0, float(times[-1]) + HOP / sr, pitches[0], pitches[-1]))
    pitched = notes.subset(~notes.is_drum)
    for s, e, p in zip(pitched.start, pitched.end, pitched.pitch):
        ax.add_patch(Rectangle((s, p - 0.5), max(e - s, 0.01), 1.0, fill=False, ec="cyan", lw=0.7))
    if len(pitched):
        ax.set_ylim(max(pitched.pitch.min() - 6, PITCH_RANGE[0]), min(pitched.pitch.max() + 30, PITCH_RANGE[1]))
    ax.set_xlim(0, seconds if seconds else float(times[-1]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch (spectrogram rows at the pitch's frequency)")
    ax.set_title(title or "audio spectrogram (dB) with the MIDI notes (cyan boxes)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
