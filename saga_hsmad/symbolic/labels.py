"""Auxiliary labels of the hierarchical symbolic encoder, derived from a (windowed) score.

Implements HS-MAD spec §3 (seed §2.2.3, "层级辅助任务"). The label grids are the encoder's:

    T_H = floor(duration * SR_latent)     event level (the SRM's frames)
    T_M = T_H / R1                        local level,  frame k covers [k R1 / SR, (k + 1) R1 / SR)
    T_L = T_H / (R1 R2)                   global level, frame k covers [k R1 R2 / SR, (k + 1) R1 R2 / SR)

T_H must be a multiple of R1 * R2 (spec §1); otherwise a ValueError says how to choose the duration.

Labels (time first, like the encoder outputs (B, T, D) they supervise) and masks (True = use):

    chroma    (T_M, 12) float32  duration-weighted pitch classes of the pitched notes sounding in each
                                 frame (seconds of overlap per class), normalised per frame: "sum"
                                 (a distribution, for soft-target cross-entropy, the seed's harmony
                                 loss) or "max" (peak 1, for binary cross-entropy). Drums excluded.
    chroma_mask (T_M,) bool      False where no pitched note sounds in the frame
    beat      (T_M,) float32     1 if a beat time falls in the frame, else 0
    downbeat  (T_M,) float32     1 if a downbeat falls in the frame, else 0
    beat_mask / downbeat_mask (T_M,) bool   all False without tempo information (``has_tempo_info``);
                                 downbeats also need a time-signature event (``has_time_signature``)
    tempo     (T_L,) float32     log2(bpm / 120), averaged over the frame (the tempo map is piecewise
                                 constant; bpm = 120 * 2 ** tempo; 60 bpm -> -1, 240 bpm -> +1)
    tempo_mask (T_L,) bool       all False without tempo information; also False (and tempo 0) on any frame
                                 whose tempo is not finite (a 0 or infinite bpm in a hand-built map), so
                                 a loss never sees a NaN under an open mask
    key       (T_L,) int64       Krumhansl-Schmuckler key: the argmax of the Pearson correlation of the
                                 duration-weighted pitch-class histogram with the 24 rotated
                                 Krumhansl-Kessler profiles. Index 0..11 = C..B major, 12..23 = C..B
                                 minor (``KEY_NAMES``). -100 where masked (``F.cross_entropy``'s ignore_index).
    key_mask  (T_L,) bool        False if the histogram has fewer than ``key_min_pitch_classes`` distinct
                                 pitch classes (no pitched notes, drums only, or too little to decide)

Key analysis span: ``key_context=None`` (default) uses the whole window, one global key broadcast over
all T_L frames (the seed's "global key"); a number of seconds gives a local key per T_L frame from the
notes within ``key_context / 2`` of the frame centre (clipped to the window).
A label that cannot be derived is masked, never guessed (spec §3).
"""
from __future__ import annotations

import typing as tp

import numpy as np
import torch

from .midi import Notes, Score
from .srm import num_frames

__all__ = ["derive_labels", "estimate_key", "estimate_keys", "key_correlations", "pitch_class_durations", "normalise_bpm",
           "denormalise_bpm", "KEY_NAMES", "KK_MAJOR", "KK_MINOR", "KEY_IGNORE_INDEX"]

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PC_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
KEY_NAMES = [f"{n} major" for n in _PC_NAMES] + [f"{n} minor" for n in _PC_NAMES]
KEY_IGNORE_INDEX = -100
_REFERENCE_BPM = 120.0

# (24, 12): row k is the profile of key k, rotated so that its tonic sits on pitch class k % 12
_PROFILES = np.stack([np.roll(KK_MAJOR, k) for k in range(12)] + [np.roll(KK_MINOR, k) for k in range(12)])


def normalise_bpm(bpm: tp.Union[float, np.ndarray]) -> np.ndarray:
    """Tempo label: log2(bpm / 120). Symmetric in halving/doubling; 120 bpm -> 0."""
    return np.log2(np.asarray(bpm, dtype=np.float64) / _REFERENCE_BPM)


def denormalise_bpm(x: tp.Union[float, np.ndarray]) -> np.ndarray:
    """Inverse of ``normalise_bpm``: 120 * 2 ** x."""
    return _REFERENCE_BPM * np.exp2(np.asarray(x, dtype=np.float64))


def key_correlations(histogram: np.ndarray) -> np.ndarray:
    """Pearson correlation of pitch-class histograms (..., 12) with the 24 key profiles -> (..., 24).

    A histogram with zero variance (empty, or all classes equal) gives NaN correlations."""
    h = np.asarray(histogram, dtype=np.float64)
    hc = h - h.mean(axis=-1, keepdims=True)
    pc = _PROFILES - _PROFILES.mean(axis=-1, keepdims=True)
    num = hc @ pc.T
    den = np.sqrt((hc ** 2).sum(-1, keepdims=True)) * np.sqrt((pc ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def estimate_key(histogram: np.ndarray, min_pitch_classes: int = 3) -> tp.Optional[int]:
    """Krumhansl-Schmuckler key index (0..11 major C..B, 12..23 minor C..B) of one (12,) histogram,
    or None when it has fewer than ``min_pitch_classes`` non-zero classes or zero variance."""
    h = np.asarray(histogram, dtype=np.float64)
    assert h.shape == (12,), f"estimate_key wants a (12,) pitch-class histogram, got {h.shape}"
    k = int(estimate_keys(h[None], min_pitch_classes)[0])
    return None if k == KEY_IGNORE_INDEX else k


def estimate_keys(histograms: np.ndarray, min_pitch_classes: int = 3) -> np.ndarray:
    """Batched ``estimate_key``: (F, 12) histograms -> (F,) int64 key indices, KEY_IGNORE_INDEX where
    undecidable (fewer than ``min_pitch_classes`` non-zero classes, or zero variance)."""
    h = np.asarray(histograms, dtype=np.float64)
    r = key_correlations(h)                                       # (F, 24)
    ok = ((h > 0).sum(-1) >= max(min_pitch_classes, 1)) & np.isfinite(r).all(-1)
    keys = np.argmax(np.where(np.isfinite(r), r, -np.inf), axis=-1)
    return np.where(ok, keys, KEY_IGNORE_INDEX).astype(np.int64)


def pitch_class_durations(notes: Notes, edges: np.ndarray) -> np.ndarray:
    """Seconds each pitch class sounds within each span [edges[k], edges[k+1]) -> (len(edges) - 1, 12).

    Pitched notes only (drums excluded). Vectorised with the running integral
    I_c(t) = sum over notes of class c of clip(t - start, 0, end - start), so the duration inside a span
    is I_c(hi) - I_c(lo); no loop over frames or notes (one over the 12 pitch classes).
    """
    lo, hi = np.asarray(edges[:-1], np.float64), np.asarray(edges[1:], np.float64)
    return _pc_integral(notes, hi) - _pc_integral(notes, lo)


def _pc_integral(notes: Notes, t: np.ndarray) -> np.ndarray:
    """(len(t), 12): I_c(t) = sum_n clip(t - a_n, 0, b_n - a_n) = sum_{a_n < t}(t - a_n) - sum_{b_n < t}(t - b_n)."""
    pitched = ~notes.is_drum
    pcs, a, b = notes.pitch[pitched] % 12, notes.start[pitched], notes.end[pitched]
    out = np.zeros((len(t), 12))
    for c in range(12):
        for times, sign in ((np.sort(a[pcs == c]), 1.0), (np.sort(b[pcs == c]), -1.0)):
            csum = np.concatenate([[0.0], np.cumsum(times)])
            n = np.searchsorted(times, t, side="left")          # number of times strictly below t
            out[:, c] += sign * (t * n - csum[n])
    return out


def _average_piecewise_constant(change_times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of a right-continuous step function (value[i] from change_times[i]) over [edges[k], edges[k+1])."""
    seg_len = np.diff(np.append(change_times, np.inf))
    cum = np.concatenate([[0.0], np.cumsum(values[:-1] * seg_len[:-1])])   # integral up to change_times[i]

    def integral(t):
        i = np.clip(np.searchsorted(change_times, t, side="right") - 1, 0, None)
        return cum[i] + values[i] * (t - change_times[i])

    return (integral(edges[1:]) - integral(edges[:-1])) / np.diff(edges)


def _event_frames(times: np.ndarray, T: int, frame_len: float) -> np.ndarray:
    """(T,) float32 with 1 at the frame of each event time (frame k covers [k frame_len, (k+1) frame_len))."""
    edges = np.arange(T + 1) * frame_len
    k = np.searchsorted(edges, np.asarray(times, np.float64), side="right") - 1
    out = np.zeros(T, np.float32)
    out[k[(k >= 0) & (k < T)]] = 1.0
    return out


def derive_labels(score_window: tp.Union[Score, Notes], duration: float, frame_rate: float,
                  factors: tp.Tuple[int, int] = (4, 4), *, chroma_norm: tp.Literal["sum", "max"] = "sum",
                  key_context: tp.Optional[float] = None, key_min_pitch_classes: int = 3) -> tp.Dict[str, torch.Tensor]:
    """Labels and masks for the local (T_M) and global (T_L) auxiliary heads (see module docstring).

    Args:
        score_window: a score in window time (``Score.window``), or bare ``Notes`` (then there is no
            tempo information: tempo, beats and downbeats are masked).
        duration: window length in seconds; T_H = floor(duration * frame_rate).
        frame_rate: SR_latent = sample_rate / downsampling ratio.
        factors: (R1, R2), the encoder's and U-Net's down factors.
    Returns:
        dict with chroma (T_M, 12), chroma_mask, beat, beat_mask, downbeat, downbeat_mask (T_M,),
        tempo, tempo_mask, key, key_mask (T_L,).
    Raises:
        ValueError: T_H is not a multiple of R1 * R2.
    """
    if chroma_norm not in ("sum", "max"):
        raise ValueError(f"chroma_norm must be 'sum' or 'max', got {chroma_norm!r}")
    r1, r2 = (int(f) for f in factors)
    if r1 < 1 or r2 < 1:
        raise ValueError(f"factors must be positive integers, got {factors}")
    T_H = num_frames(duration, frame_rate)
    if T_H == 0 or T_H % (r1 * r2):
        k = max(T_H // (r1 * r2), 1)
        raise ValueError(
            f"T_H = floor(duration x SR_latent) = floor({duration} x {frame_rate:.6g}) = {T_H} is not a positive "
            f"multiple of R1 x R2 = {r1 * r2}; choose a window of {k * r1 * r2} frames, i.e. duration = "
            f"{k * r1 * r2} / SR_latent = {k * r1 * r2 / frame_rate:.6f} s")
    T_M, T_L = T_H // r1, T_H // (r1 * r2)
    len_m, len_l = r1 / frame_rate, r1 * r2 / frame_rate          # frame lengths in seconds
    span = T_H / frame_rate                                       # the labelled time [0, span)

    if isinstance(score_window, Notes):
        score_window = Score.from_notes(score_window, end_time=duration)
    notes = score_window.notes

    # local level: chroma
    edges_m = np.arange(T_M + 1) * len_m
    pcd = pitch_class_durations(notes, edges_m)                   # (T_M, 12) seconds
    pcd[pcd < 1e-12] = 0.0                                        # round-off of the running integrals
    total = pcd.sum(1)
    chroma_mask = total > 0
    norm = total if chroma_norm == "sum" else pcd.max(1)
    chroma = np.zeros_like(pcd)
    chroma[chroma_mask] = pcd[chroma_mask] / norm[chroma_mask, None]

    # local level: beats and downbeats
    beat = _event_frames(score_window.beats, T_M, len_m)
    downbeat = _event_frames(score_window.downbeats, T_M, len_m)
    beat_ok = bool(score_window.has_tempo_info)
    down_ok = beat_ok and bool(score_window.has_time_signature)

    # global level: tempo
    edges_l = np.arange(T_L + 1) * len_l
    with np.errstate(divide="ignore", invalid="ignore"):
        tempo = _average_piecewise_constant(score_window.tempo_times, normalise_bpm(score_window.tempo_bpm), edges_l)
    tempo_ok = np.isfinite(tempo) & beat_ok
    tempo = np.where(np.isfinite(tempo), tempo, 0.0)

    # global level: key
    if key_context is None:
        hist = pitch_class_durations(notes, np.array([0.0, span]))    # (1, 12)
        hist[hist < 1e-12] = 0.0
        key = np.repeat(estimate_keys(hist, key_min_pitch_classes), T_L)
    else:
        if not key_context > 0:
            raise ValueError(f"key_context must be > 0 seconds or None, got {key_context}")
        centre = (np.arange(T_L) + 0.5) * len_l
        lo = np.clip(centre - key_context / 2, 0.0, span)
        hi = np.clip(centre + key_context / 2, 0.0, span)
        hist = _pc_integral(notes, hi) - _pc_integral(notes, lo)  # (T_L, 12)
        hist[hist < 1e-12] = 0.0
        key = estimate_keys(hist, key_min_pitch_classes)
    key_mask = key != KEY_IGNORE_INDEX

    return {
        "chroma": torch.from_numpy(chroma.astype(np.float32)),
        "chroma_mask": torch.from_numpy(chroma_mask),
        "beat": torch.from_numpy(beat),
        "beat_mask": torch.full((T_M,), beat_ok, dtype=torch.bool),
        "downbeat": torch.from_numpy(downbeat),
        "downbeat_mask": torch.full((T_M,), down_ok, dtype=torch.bool),
        "tempo": torch.from_numpy(tempo.astype(np.float32)),
        "tempo_mask": torch.from_numpy(tempo_ok),
        "key": torch.from_numpy(key),
        "key_mask": torch.from_numpy(key_mask),
    }
