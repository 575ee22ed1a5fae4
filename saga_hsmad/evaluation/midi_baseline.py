"""Non-learned MIDI-to-audio baseline: what an HS-MAD model must beat at no cost.

``sine_render``: every note as a few harmonics (amplitude 1/k for harmonic k, those below Nyquist) with a
10 ms attack, an exponential decay while it is held (time constant ``decay`` seconds) and a 50 ms release after
its end, scaled by its velocity / 127. The notes are summed and the result peak-normalised to ``peak``.
It knows every note's pitch, timing and velocity exactly and nothing about timbre: a table row rendered
from it shows how far the evaluation metrics go with the symbols alone.

Legend: T samples.
"""
from __future__ import annotations

import numpy as np

from ..symbolic.midi import Notes

ATTACK_S = 0.01
RELEASE_S = 0.05


def sine_render(notes: Notes, sample_rate: int = 22050, seconds: float | None = None, harmonics: int = 4,
                decay: float = 1.0, peak: float = 0.5) -> np.ndarray:
    """(1, T) float32 additive-sine render of ``notes``; T = ``seconds`` × ``sample_rate`` (default: until the
    last release ends). Drum notes are left out (they have no pitch)."""
    if sample_rate <= 0 or harmonics < 1 or decay <= 0 or not 0 < peak <= 1:
        raise ValueError(f"sine_render: needs sample_rate > 0, harmonics >= 1, decay > 0, 0 < peak <= 1; got "
                         f"{sample_rate}, {harmonics}, {decay}, {peak}")
    pitched = notes.subset(~notes.is_drum)
    if seconds is None:
        seconds = float(pitched.end.max()) + RELEASE_S if len(pitched) else 0.0
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    for pitch, start, end, velocity in zip(pitched.pitch, pitched.start, pitched.end, pitched.velocity):
        i0 = max(int(round(start * sample_rate)), 0)
        i1 = min(int(round((end + RELEASE_S) * sample_rate)), n)
        if i1 <= i0:
            continue
        t = np.arange(i0, i1) / sample_rate - start  # seconds since the onset (may start > 0 in a window)
        held = np.minimum(t, end - start)
        envelope = np.minimum(t / ATTACK_S, 1.0) * np.exp(-held / decay)
        envelope *= np.clip(1.0 - (t - (end - start)) / RELEASE_S, 0.0, 1.0)
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1) if k * f0 < sample_rate / 2)
        out[i0:i1] += (velocity / 127.0) * envelope * tone
    top = np.abs(out).max() if n else 0.0
    if top > 0:
        out *= peak / top
    return out[None].astype(np.float32)
