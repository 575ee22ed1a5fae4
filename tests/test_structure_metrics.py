"""Transcriber-free structure metrics: high for audio that plays the MIDI, about 0 for unrelated audio."""
from __future__ import annotations

import numpy as np
import pytest
from test_hsmad_training import piece_notes

from saga_hsmad.evaluation.structure_metrics import HOP, chroma_r, midi_chroma, midi_onsets, onset_r
from saga_hsmad.symbolic.midi import Notes

SR = 44100
SECONDS = 6.0


def render_notes(notes, seconds: float) -> np.ndarray:
    """Plucked harmonic tones (5 ms attack, exponential decay, 30 ms fade at the note end, so note ends make
    no clicks a flux detector would count as onsets): (2, n) float32."""
    t = np.arange(int(round(seconds * SR))) / SR
    out = np.zeros_like(t)
    for pitch, start, end, vel in notes:
        f = 440.0 * 2 ** ((pitch - 69) / 12)
        local = t - start
        env = np.clip(local / 0.005, 0, 1) * np.exp(-4 * np.clip(local, 0, None))
        env *= np.clip((end + 0.03 - t) / 0.03, 0, 1) * (t >= start)
        tone = sum(np.sin(2 * np.pi * k * f * local) / k for k in (1, 2, 3))
        out += (vel / 127) * 0.15 * env * tone
    return np.stack([out, out]).astype(np.float32)


def as_notes(notes) -> Notes:
    pitch, start, end, velocity = map(np.asarray, zip(*notes))
    return Notes.build(pitch, start, end, velocity)


@pytest.fixture(scope="module")
def piece():
    notes = piece_notes(1, SECONDS)
    return notes, render_notes(notes, SECONDS)


def test_midi_side_by_hand():
    notes = Notes.build([60, 64, 72], [0.0, 0.5, 0.5], [1.0, 1.0, 0.75], [100, 50, 20])
    frames = int(np.ceil(1.2 * SR / HOP))
    chroma = midi_chroma(notes, SR, frames)
    at = lambda s: int(np.floor(s * SR / HOP + 0.5))  # noqa: E731
    assert chroma[0, at(0.25)] == 100 and chroma[4, at(0.25)] == 0
    assert chroma[0, at(0.6)] == 120 and chroma[4, at(0.6)] == 50     # C4 and C5 share pitch class 0
    assert chroma[0, at(0.9)] == 100 and chroma[:, at(1.1)].sum() == 0
    late = Notes.build([60, 64, 72], [0.2, 0.5, 0.5], [1.0, 1.0, 0.75], [100, 50, 20])
    onsets = midi_onsets(late, SR, frames)
    assert onsets.argmax() == at(0.2) and onsets.sum() == pytest.approx(170, rel=1e-6)   # smoothing keeps mass
    assert onsets[at(0.5)] / onsets[at(0.2)] == pytest.approx(70 / 100, rel=1e-6)
    assert onsets[at(0.35)] < 1e-3 * onsets[at(0.2)]


def test_audio_of_the_piece_scores_high_and_unrelated_audio_near_zero(piece):
    notes, audio = piece
    ref = as_notes(notes)
    assert chroma_r(audio, SR, ref) > 0.6
    assert onset_r(audio, SR, ref) > 0.45
    noise = np.random.default_rng(0).standard_normal(audio.shape).astype(np.float32) * 0.1
    assert abs(chroma_r(noise, SR, ref)) < 0.15 and abs(onset_r(noise, SR, ref)) < 0.15
    other_notes = piece_notes(7, SECONDS)                     # another piece: pitches and onsets unrelated
    other = render_notes(other_notes, SECONDS)
    assert chroma_r(other, SR, ref) < chroma_r(audio, SR, ref) - 0.3
    assert onset_r(other, SR, ref) < onset_r(audio, SR, ref) - 0.3


def test_loudness_does_not_matter_and_transposition_does(piece):
    notes, audio = piece
    ref = as_notes(notes)
    assert chroma_r(audio * 0.05, SR, ref) == pytest.approx(chroma_r(audio, SR, ref), abs=1e-3)
    assert onset_r(audio * 0.05, SR, ref) == pytest.approx(onset_r(audio, SR, ref), abs=1e-2)
    tritone = render_notes([(p + 6, s, e, v) for p, s, e, v in notes], SECONDS)
    assert chroma_r(tritone, SR, ref) < 0.2                   # same rhythm, wrong pitch classes
    assert onset_r(tritone, SR, ref) > 0.45                   # rhythm still right


def test_silence_is_undefined_not_zero(piece):
    notes, audio = piece
    assert np.isnan(chroma_r(np.zeros_like(audio), SR, as_notes(notes)))
    assert np.isnan(onset_r(np.zeros_like(audio), SR, as_notes(notes)))
