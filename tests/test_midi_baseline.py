"""The non-learned MIDI baseline (``midi_baseline.sine_render``): energy at the note's pitch and harmonics,
velocity and timing follow the notes, and the structure metric tells its own MIDI from another piece's."""
from __future__ import annotations

import numpy as np
import pytest

from saga_hsmad.evaluation.midi_baseline import sine_render
from saga_hsmad.evaluation.structure_metrics import chroma_r
from saga_hsmad.symbolic.midi import Notes

SR = 22050


def spectrum_peak_hz(audio: np.ndarray, sr: int) -> float:
    mag = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[np.argmax(mag)])


def test_one_note_has_its_energy_at_its_pitch_and_harmonics():
    audio = sine_render(Notes.build([69], [0.1], [0.9], [100]), SR, seconds=1.0)
    assert audio.shape == (1, SR) and audio.dtype == np.float32
    held = audio[0, int(0.2 * SR): int(0.8 * SR)]
    assert spectrum_peak_hz(held, SR) == pytest.approx(440.0, abs=3.0)
    mag = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    freqs = np.fft.rfftfreq(len(held), 1 / SR)
    power = lambda f: mag[np.abs(freqs - f) < 5].max()  # noqa: E731
    assert power(880.0) > 100 * power(660.0)  # the second harmonic, nothing between them
    assert np.abs(audio[0, : int(0.09 * SR)]).max() == 0  # silent before the onset
    assert np.abs(audio[0, int(0.96 * SR):]).max() == 0  # silent after the 50 ms release


def test_velocity_scales_the_note_and_drums_are_left_out():
    notes = Notes.build([60, 72, 38], [0.0, 0.5, 0.2], [0.4, 0.9, 0.3], [127, 32, 100], is_drum=[False, False, True])
    audio = sine_render(notes, SR, seconds=1.0, peak=0.5)
    assert np.abs(audio).max() == pytest.approx(0.5, rel=1e-5)
    loud, soft = np.abs(audio[0, : int(0.4 * SR)]).max(), np.abs(audio[0, int(0.5 * SR): int(0.9 * SR)]).max()
    assert loud / soft == pytest.approx(127 / 32, rel=0.15)
    drum_only = Notes.build([38], [0.2], [0.3], [100], is_drum=True)
    assert np.abs(sine_render(drum_only, SR, seconds=1.0)).max() == 0


def random_piece(seed: int, seconds: float = 6.0) -> Notes:
    rng = np.random.default_rng(seed)
    starts = np.arange(0.0, seconds - 0.5, 0.25)
    pitch = rng.integers(48, 84, size=len(starts))
    return Notes.build(pitch, starts, starts + 0.4, rng.integers(40, 120, size=len(starts)))


def test_chroma_r_is_high_against_its_own_midi_and_low_against_another():
    a, b = random_piece(1), random_piece(2)
    audio = sine_render(a, SR, seconds=6.0)
    own, other = chroma_r(audio, SR, a), chroma_r(audio, SR, b)
    assert own > 0.7, own
    assert abs(other) < 0.3, other


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="harmonics"):
        sine_render(random_piece(0), SR, harmonics=0)


def test_roll_over_spectrogram_puts_a_note_on_its_pitch_row(tmp_path):
    from saga_hsmad.evaluation.midi_plots import log_frequency_spectrogram, roll_over_spectrogram

    notes = Notes.build([57], [0.2], [1.2], [100])
    audio = sine_render(notes, SR, seconds=1.5, harmonics=1)
    db, pitches, times = log_frequency_spectrogram(audio, SR)
    during = (times > 0.4) & (times < 1.0)
    assert pitches[np.argmax(db[:, during].mean(axis=1))] == pytest.approx(57.0, abs=0.5)
    png = roll_over_spectrogram(tmp_path / "p" / "roll.png", audio, SR, notes, "one note")
    assert png.read_bytes()[:4] == b"\x89PNG"
