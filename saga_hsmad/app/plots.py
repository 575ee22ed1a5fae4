"""Figures of the web page that the evaluation modules do not draw already: the piano roll of a MIDI file.

(Spectrograms side by side come from ``evaluation.sr_plots.plot_spectrograms``, the roll over an output's
spectrogram from ``evaluation.midi_plots.roll_over_spectrogram``.)
"""
from __future__ import annotations

from pathlib import Path

from ..symbolic.midi import Notes


def plot_piano_roll(path: str | Path, notes: Notes, seconds: float, title: str = "") -> Path:
    """Write a PNG: one bar per note at its pitch over its duration, shaded by velocity; drums as grey ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(12, 3.6), dpi=100)
    pitched = notes.subset(~notes.is_drum)
    drums = notes.subset(notes.is_drum)
    cmap = plt.get_cmap("viridis")
    for s, e, p, v in zip(pitched.start, pitched.end, pitched.pitch, pitched.velocity):
        ax.add_patch(Rectangle((s, p - 0.4), max(e - s, 0.01), 0.8, color=cmap(v / 127.0)))
    low, high = (int(pitched.pitch.min()) - 2, int(pitched.pitch.max()) + 2) if len(pitched) else (48, 84)
    if len(drums):
        ax.vlines(drums.start, low - 3, low - 1, color="0.5", lw=0.6, label="drum onsets")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlim(0.0, max(seconds, 1e-3))
    ax.set_ylim(low - 3.5 if len(drums) else low, high)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or "piano roll")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
