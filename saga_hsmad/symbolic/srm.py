"""Synchronised rendering module (SRM): the frame-synchronous soft piano roll S_sync.

Implements HS-MAD spec §2 (seed §2.2.1, "同步渲染模块"). For each note n (pitch p, onset t_s, release
t_e, velocity v = velocity / 127) and latent frame h with time t = h / SR_latent (the frame's start;
frame h covers [h / SR_latent, (h + 1) / SR_latent)):

    onset    S[p,       h] += v * exp(-(t - t_s)^2 / (2 sigma_on^2))
    sustain  S[128 + p, h] += 1 if t_s <= t <= t_e;  exp(-(t - t_e)^2 / (2 sigma_off^2)) if t > t_e;  0 before
    velocity S[256 + p, h] += v wherever that note's sustain value > ``velocity_threshold``

Polyphony adds up (two notes of one pitch give 2 on the sustain row). Defaults
sigma_on = sigma_off = 1 / (2 SR_latent). Shape legend: P = 128 pitches, T = T_H latent frames,
T_H = floor(duration * SR_latent) (``num_frames``), SR_latent = sample_rate / downsampling_ratio.

Windows: a note with a negative start began before the window: it renders sustain (and velocity) but
**no onset** (spec §2: earlier notes sustain into the window without an onset).

Vectorisation (no Python loop over frames or notes): the sustain plateau and the velocity band are
intervals of frames, written as +1/-1 (or +v/-v) into a difference array and integrated with one
cumulative sum per row; the Gaussian onset kernel and release tail are short (a few frames), so they are
scattered as (notes x kernel-width) blocks with ``index_add_``. Kernel values below ``KERNEL_EPS``
(1e-10 of the peak) are not written; the result equals the dense formula to float32 precision.
Velocity sums are integers in units of 1/65536 MIDI velocity (exact for MIDI's integer velocities;
int64 is used instead of int32 when a pitch's total could overflow).
Index arithmetic and kernel values are float64 numpy; scatters use torch ``index_add_`` into the
float32 output; the result is a float32 torch tensor on the CPU (or on ``device`` if given).

``mode="binary"`` is the ablation "binary piano roll instead of the soft SRM" (spec §8): onset 1 at
the frame nearest the onset (``round(t_s * SR_latent)``), sustain 1 on the frames with
t_s <= t <= t_e plus the onset frame (no release tail), onset and sustain clipped to 1 under polyphony,
velocity v (additive) on the same frames as that note's binary sustain.
"""
from __future__ import annotations

import dataclasses
import math
import typing as tp

import numpy as np
import torch

from .midi import Notes, Score

__all__ = ["SRM", "render_srm", "num_frames", "latent_frame_rate", "NUM_PITCHES", "KERNEL_EPS"]

NUM_PITCHES = 128
KERNEL_EPS = 1e-10              # Gaussian kernel values below this fraction of the peak are not written
_CUT = math.sqrt(2.0 * math.log(1.0 / KERNEL_EPS))  # kernel half-width in sigmas where exp(.) = KERNEL_EPS
_VEL_SCALE = 2 ** 16            # velocity fixed point for exact integer interval sums
_FRAME_TOL = 1e-9               # tolerance of floor(duration * SR_latent) against float round-off


def latent_frame_rate(sample_rate: float, downsampling_ratio: float) -> float:
    """SR_latent = sample_rate / downsampling_ratio (spec §1); read the ratio from the pretransform."""
    if not (sample_rate > 0 and downsampling_ratio > 0):
        raise ValueError(f"sample_rate and downsampling_ratio must be > 0, got {sample_rate}, {downsampling_ratio}")
    return float(sample_rate) / float(downsampling_ratio)


def num_frames(duration: float, frame_rate: float) -> int:
    """T_H = floor(duration * SR_latent) (spec §1), with a 1e-9 tolerance so that a duration computed as
    k / SR_latent in floating point gives exactly k frames."""
    if not (duration >= 0 and frame_rate > 0):
        raise ValueError(f"need duration >= 0 and frame_rate > 0, got {duration}, {frame_rate}")
    return int(math.floor(duration * frame_rate + _FRAME_TOL))


@dataclasses.dataclass(frozen=True)
class SRM:
    """Synchronised rendering module with its configuration (config keys = fields).

    frame_rate          SR_latent in frames per second (sample_rate / downsampling ratio)
    sigma_on, sigma_off Gaussian widths in seconds; None = 1 / (2 * frame_rate)
    mode                "soft" (spec §2) or "binary" (ablation)
    velocity_threshold  sustain value above which the velocity channel is written (0 < x < 1)
    drop_drums          skip drum notes (by default drum notes, if the score kept them, share the pitch
                        rows under their GM drum keys)
    """

    frame_rate: float
    sigma_on: tp.Optional[float] = None
    sigma_off: tp.Optional[float] = None
    mode: tp.Literal["soft", "binary"] = "soft"
    velocity_threshold: float = 0.01
    drop_drums: bool = False

    def __post_init__(self) -> None:
        if not self.frame_rate > 0:
            raise ValueError(f"SRM frame_rate must be > 0, got {self.frame_rate}")
        if self.mode not in ("soft", "binary"):
            raise ValueError(f"SRM mode must be 'soft' or 'binary', got {self.mode!r}")
        if not 0 < self.velocity_threshold < 1:
            raise ValueError(f"SRM velocity_threshold must be in (0, 1), got {self.velocity_threshold}")
        for k in ("sigma_on", "sigma_off"):
            v = getattr(self, k)
            if v is not None and not v > 0:
                raise ValueError(f"SRM {k} must be > 0 seconds (or None for 1/(2*frame_rate)), got {v}")

    @property
    def sigmas(self) -> tp.Tuple[float, float]:
        default = 1.0 / (2.0 * self.frame_rate)
        return (self.sigma_on or default, self.sigma_off or default)

    def num_frames(self, duration: float) -> int:
        return num_frames(duration, self.frame_rate)

    def __call__(self, score: tp.Union[Score, Notes], duration: float,
                 device: tp.Optional[tp.Union[str, torch.device]] = None) -> torch.Tensor:
        """Render S_sync (3 * 128, T_H) float32 for ``score`` (window time) over ``[0, duration)``."""
        notes = score.notes if isinstance(score, Score) else score
        if self.drop_drums:
            notes = notes.subset(~notes.is_drum)
        roll = _render(notes, self.num_frames(duration), self.frame_rate, *self.sigmas, self.mode,
                       self.velocity_threshold)
        return roll.to(device) if device is not None else roll


def render_srm(score: tp.Union[Score, Notes], duration: float, frame_rate: float, *,
               sigma_on: tp.Optional[float] = None, sigma_off: tp.Optional[float] = None,
               mode: tp.Literal["soft", "binary"] = "soft", velocity_threshold: float = 0.01,
               drop_drums: bool = False, device: tp.Optional[tp.Union[str, torch.device]] = None) -> torch.Tensor:
    """S_sync (3 * 128, T_H) float32: rows [onset 0..127, sustain 128..255, velocity 256..383].

    See the module docstring for the equations. ``score`` is in window time (``Score.window``).
    """
    return SRM(frame_rate, sigma_on, sigma_off, mode, velocity_threshold, drop_drums)(score, duration, device)


def _count_frames_before(times: np.ndarray, x: np.ndarray, fr: float, inclusive: bool) -> np.ndarray:
    """Number of frame times ``< x`` (``<= x`` if inclusive), i.e. ``np.searchsorted(times, x, side)``,
    computed arithmetically (ceil / floor of x * fr) and corrected against ``times`` so that it agrees
    exactly with the comparisons, float round-off included. Several times faster than searchsorted."""
    T = len(times)
    if T == 0:
        return np.zeros(len(x), dtype=np.int64)
    g = np.clip(np.floor(x * fr) + 1 if inclusive else np.ceil(x * fr), 0, T).astype(np.int64)
    below = times[np.maximum(g - 1, 0)]                          # the last frame counted must satisfy the test
    g -= (g > 0) & ((below > x) if inclusive else (below >= x))
    above = times[np.minimum(g, T - 1)]                          # the first frame not counted must fail it
    g += (g < T) & ((above <= x) if inclusive else (above < x))
    return g


def _render(notes: Notes, T: int, fr: float, sigma_on: float, sigma_off: float, mode: str,
            vel_thr: float) -> torch.Tensor:
    """Core renderer: (3 * P, T) float32 CPU tensor.

    Index arithmetic in numpy; kernel values (onset, release tail) are scatter-added (``index_add_``)
    straight into the output planes; intervals (sustain plateau, velocity band) go into one integer
    difference buffer of 2 x R x (T + 1) (R = the pitch range in use) (sustain: +-1, velocity: +-round(velocity * _VEL_SCALE)) and
    are integrated with one integer cumulative sum (exact, and much faster than a float cumsum).
    """
    P, W = NUM_PITCHES, T + 1
    times = np.arange(T) / fr                                    # (T,) frame start times
    p, ts, te = notes.pitch, notes.start, notes.end
    v = notes.velocity / 127.0
    has_onset = ts >= 0.0
    f_on = _count_frames_before(times, ts, fr, inclusive=False)  # first frame with t >= t_s
    f_off = _count_frames_before(times, te, fr, inclusive=True)  # first frame with t > t_e
    k_idx, k_val = [], []                                        # kernel scatters into (2, P, T)

    if mode == "soft":
        # onset kernel around the nearest frame (notes that began before the window have none)
        k_on = int(math.ceil(_CUT * sigma_on * fr)) + 1
        o = np.nonzero(has_onset)[0]
        f = np.rint(ts[o] * fr).astype(np.int64)[:, None] + np.arange(-k_on, k_on + 1)      # (N_o, K)
        val = v[o, None] * np.exp(-((f / fr - ts[o, None]) ** 2) / (2 * sigma_on ** 2))
        ok = (f >= 0) & (f < T)
        k_idx.append((p[o, None] * T + f)[ok]); k_val.append(val[ok])
        # release tail on the frames after t_e
        k_off = int(math.ceil(_CUT * sigma_off * fr)) + 1
        f = f_off[:, None] + np.arange(k_off)                                                # (N, K)
        val = np.exp(-((f / fr - te[:, None]) ** 2) / (2 * sigma_off ** 2))
        ok = f < T
        k_idx.append((P * T + p[:, None] * T + f)[ok]); k_val.append(val[ok])
        # sustain plateau [f_on, f_off); velocity band [f_on, first frame with sustain <= threshold)
        s0, s1 = f_on, f_off
        v1 = _count_frames_before(times, te + sigma_off * math.sqrt(2.0 * math.log(1.0 / vel_thr)), fr, inclusive=False)
        v1 = np.maximum(v1, s1)
    else:
        c = np.rint(ts * fr).astype(np.int64)                    # nearest frame to the onset
        o = np.nonzero(has_onset & (c < T))[0]
        k_idx.append(p[o] * T + c[o]); k_val.append(np.ones(len(o)))
        s0 = np.where(has_onset, np.minimum(c, f_on), f_on).clip(0, T)
        s1 = np.where(has_onset, np.maximum(f_off, c + 1), f_off).clip(0, T)
        v1 = s1

    # Scatters write straight into the output and one integer difference buffer: large temporaries would
    # cost more in page faults than the arithmetic (a 30 s roll is 4 MB). Fills use numpy, so no torch
    # thread pool is woken for them.
    roll = np.zeros((3, P, T), dtype=np.float32)
    out = torch.from_numpy(roll)
    out[:2].view(-1).index_add_(0, torch.from_numpy(np.concatenate(k_idx)),
                                torch.from_numpy(np.concatenate(k_val).astype(np.float32)))
    if len(p) == 0:
        return out.reshape(3 * P, T)
    lo = int(p.min())                                            # interval planes cover pitches lo .. hi only
    R = int(p.max()) - lo + 1
    base = (p - lo) * W
    vq = np.rint(notes.velocity * _VEL_SCALE).astype(np.int64)
    # int32 unless the summed velocity of one pitch could overflow it (> ~256 velocity-127 notes)
    itype = np.int32 if np.bincount(p, weights=vq).max() < 2 ** 31 - 1 else np.int64
    ones = np.ones(len(p), dtype=itype)
    d_idx = np.concatenate([base + s0, base + s1, R * W + base + s0, R * W + base + v1])
    d_val = np.concatenate([ones, -ones, vq.astype(itype), -vq.astype(itype)])
    diff = np.zeros((2, R, W), dtype=itype)
    torch.from_numpy(diff).view(-1).index_add_(0, torch.from_numpy(d_idx), torch.from_numpy(d_val))
    np.cumsum(diff, axis=2, dtype=itype, out=diff)               # diff[0]: sustain count, diff[1]: velocity sum

    rows = slice(lo, lo + R)
    if mode == "soft":
        np.add(roll[1, rows], diff[0, :, :T], out=roll[1, rows], casting="unsafe")
    else:
        np.minimum(roll[0], 1.0, out=roll[0])
        np.minimum(diff[0, :, :T], 1, out=roll[1, rows], casting="unsafe")
    np.multiply(diff[1, :, :T], 1.0 / (127.0 * _VEL_SCALE), out=roll[2, rows], casting="unsafe")
    return out.reshape(3 * P, T)
