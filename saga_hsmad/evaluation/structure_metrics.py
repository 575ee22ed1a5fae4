"""Transcriber-free structure metrics: does the audio follow the MIDI's harmony and rhythm at all?

Note F1 needs audio clean enough for a transcriber to find notes; a model early in training (or a small
one) scores 0 long before it stops being random. These two correlations register partial structure and are
0 in expectation for audio unrelated to the MIDI (noise, another piece), whatever its loudness:

* ``chroma_r`` — per frame, the Pearson correlation over the 12 pitch classes between the audio's chroma
  (``librosa.feature.chroma_stft``, 4096-point FFT) and the MIDI's (velocity-weighted sounding pitched notes),
  averaged over the frames where both have content. Drums are left out of the MIDI side.
* ``onset_r`` — the Pearson correlation over time between the audio's onset strength
  (``librosa.onset.onset_strength``, spectral flux of a log-mel spectrogram) and the MIDI's onsets
  (velocity-weighted, drums included since they are heard, smoothed with a 20 ms Gaussian), the largest
  over lags of ±2 frames (±23 ms: the flux of a log-mel frame peaks 1–2 frames after a note's onset, and a
  50 ms onset tolerance is what note F1 allows). The maximum over 5 lags biases unrelated audio slightly
  upwards (about +0.05).

Both use a 512-sample hop (11.6 ms at 44.1 kHz).
"""
from __future__ import annotations

import numpy as np

from ..symbolic.midi import Notes
from .transcribe import to_mono

HOP = 512
CHROMA_FFT = 4096
ONSET_SMOOTH_S = 0.02
ONSET_MAX_LAG = 2


def _frames(seconds: np.ndarray, sr: int) -> np.ndarray:
    return np.floor(np.asarray(seconds, dtype=np.float64) * sr / HOP + 0.5).astype(np.int64)


def midi_chroma(notes: Notes, sr: int, n_frames: int) -> np.ndarray:
    """(12, n_frames) velocity-weighted pitch-class activity of the pitched notes."""
    chroma = np.zeros((12, n_frames + 1), dtype=np.float64)
    pitched = notes.subset(~notes.is_drum)
    starts = np.clip(_frames(pitched.start, sr), 0, n_frames)
    ends = np.clip(np.maximum(_frames(pitched.end, sr), starts + 1), 0, n_frames)
    # difference array: +v at the start frame, -v at the end frame, cumulative sum over time
    np.add.at(chroma, (pitched.pitch % 12, starts), pitched.velocity)
    np.add.at(chroma, (pitched.pitch % 12, ends), -pitched.velocity)
    return np.cumsum(chroma, axis=1)[:, :n_frames]


def midi_onsets(notes: Notes, sr: int, n_frames: int) -> np.ndarray:
    """(n_frames,) velocity-weighted onset train of every note (drums included), Gaussian-smoothed."""
    from scipy.ndimage import gaussian_filter1d

    train = np.zeros(n_frames, dtype=np.float64)
    frames = _frames(notes.start, sr)
    keep = (frames >= 0) & (frames < n_frames)
    np.add.at(train, frames[keep], notes.velocity[keep])
    return gaussian_filter1d(train, ONSET_SMOOTH_S * sr / HOP, mode="constant")


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between the columns of a and b (12, T) → (T,); NaN where either column is constant."""
    a = a - a.mean(0, keepdims=True)
    b = b - b.mean(0, keepdims=True)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan)


def chroma_r(audio: np.ndarray, sr: int, notes: Notes) -> float:
    """Mean per-frame chroma correlation (module docstring); NaN when no frame has content on both sides."""
    import librosa

    y = to_mono(audio)
    if y.size < CHROMA_FFT:
        return float("nan")
    power = np.abs(librosa.stft(y, n_fft=CHROMA_FFT, hop_length=HOP)) ** 2
    audio_chroma = librosa.feature.chroma_stft(S=power, sr=sr, norm=None)   # (12, T)
    ref = midi_chroma(notes, sr, audio_chroma.shape[1])
    loud = power.sum(0) > 1e-8 * max(power.sum(0).max(), 1e-30)
    r = _rowwise_pearson(audio_chroma, ref)
    valid = loud & (ref.sum(0) > 0) & np.isfinite(r)
    return float(r[valid].mean()) if valid.any() else float("nan")


def onset_r(audio: np.ndarray, sr: int, notes: Notes) -> float:
    """Correlation of the audio's onset strength with the MIDI's onset train; NaN if either is constant."""
    import librosa

    y = to_mono(audio)
    strength = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
    ref = midi_onsets(notes, sr, len(strength))
    if strength.std() == 0 or ref.std() == 0:
        return float("nan")
    n, best = len(ref), -1.0
    for lag in range(-ONSET_MAX_LAG, ONSET_MAX_LAG + 1):      # audio frame t + lag against MIDI frame t
        a, b = strength[max(lag, 0): n + min(lag, 0)], ref[max(-lag, 0): n - max(lag, 0)]
        if a.std() > 0 and b.std() > 0:
            best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best
