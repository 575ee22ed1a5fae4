"""Auxiliary labels (spec §3): key, chroma, beats/downbeats, tempo, masks and grid lengths."""
from __future__ import annotations

import dataclasses
import math

import mido
import numpy as np
import pytest
import torch

from saga_hsmad.conditioners.hierarchical_midi import StructureRender
from saga_hsmad.models.structure_packing import unpack_structure
from saga_hsmad.symbolic.labels import (KEY_IGNORE_INDEX, KEY_NAMES, KK_MAJOR, KK_MINOR, derive_labels,
                                        denormalise_bpm, estimate_key, normalise_bpm)
from saga_hsmad.symbolic.midi import Notes, Score, read_midi
from saga_hsmad.symbolic.srm import latent_frame_rate

FR = latent_frame_rate(44100, 512)          # 86.1328125 frames/s
T_H = 640                                   # multiple of 16: T_M = 160, T_L = 40
DUR = T_H / FR                              # 7.4304 s
LEN_M, LEN_L = 4 / FR, 16 / FR              # 0.04644 s, 0.18576 s


def labels(score, **kw):
    return derive_labels(score, DUR, FR, (4, 4), **kw)


# ---------------------------------------------------------------- key
def scale_and_triad(tonic, minor=False):
    """Ascending (harmonic minor) scale from the tonic, then a held tonic triad."""
    steps = [0, 2, 3, 5, 7, 8, 11, 12] if minor else [0, 2, 4, 5, 7, 9, 11, 12]
    rows = [(48 + tonic + s, 0.5 * i, 0.5 * i + 0.5, 80) for i, s in enumerate(steps)]
    rows += [(48 + tonic + x, 4.0, 6.0, 80) for x in (0, 3 if minor else 4, 7)]
    return rows


def cadence(tonic, minor=False):
    """I - IV - V7 - I (major) or i - iv - V7 - i (minor, raised leading tone), one chord per second, with bass."""
    third, sixth = (3, 8) if minor else (4, 9)
    chords = [(0, third, 7), (5, sixth, 12), (7, 11, 14, 17), (0, third, 7)]
    rows = []
    for i, chord in enumerate(chords):
        rows += [(48 + tonic + x, float(i), i + 1.0, 80) for x in chord] + [(36 + tonic + chord[0], float(i), i + 1.0, 80)]
    return rows


@pytest.mark.parametrize("tonic", [0, 2, 4, 5, 7, 9, 10, 11])
@pytest.mark.parametrize("minor", [False, True])
@pytest.mark.parametrize("piece", [scale_and_triad, cadence])
def test_key_of_scales_and_cadences(tonic, minor, piece):
    lab = labels(Score.from_notes(piece(tonic, minor)))
    expected = tonic + (12 if minor else 0)
    assert KEY_NAMES[expected].startswith(["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"][tonic])
    assert lab["key"].tolist() == [expected] * 40, f"{KEY_NAMES[lab['key'][0]]} != {KEY_NAMES[expected]}"
    assert lab["key_mask"].all()


def test_key_index_convention():
    assert KEY_NAMES[0] == "C major" and KEY_NAMES[9] == "A major" and KEY_NAMES[12] == "C minor"
    assert KEY_NAMES[21] == "A minor" and KEY_NAMES[23] == "B minor"
    # a histogram equal to a rotated profile correlates perfectly with that key
    assert estimate_key(np.roll(KK_MAJOR, 7)) == 7            # G major
    assert estimate_key(np.roll(KK_MINOR, 4)) == 12 + 4        # E minor


def test_key_is_duration_weighted():
    # C-E-G held long, with short passing notes that alone would suggest another key
    rows = [(60, 0, 4, 80), (64, 0, 4, 80), (67, 0, 4, 80)] + [(66 + i % 2, 4 + 0.05 * i, 4.05 + 0.05 * i, 80)
                                                               for i in range(10)]
    assert labels(Score.from_notes(rows))["key"][0] == 0


def test_key_masked_without_enough_pitched_notes():
    for rows in ([], [(60, 0, 1, 80)], [(60, 0, 1, 80), (67, 0, 1, 80)]):
        lab = labels(Score.from_notes(rows))
        assert not lab["key_mask"].any() and (lab["key"] == KEY_IGNORE_INDEX).all()
    drums = Notes.build([36, 38, 42, 46], [0, 0.5, 1, 1.5], [0.1, 0.6, 1.1, 1.6], [100] * 4, is_drum=True)
    lab = labels(Score.from_notes(drums))                       # drums only: no key, no chroma
    assert not lab["key_mask"].any() and not lab["chroma_mask"].any() and lab["chroma"].abs().sum() == 0


def key_section(tonic, minor, t0, t1):
    """A held tonic triad under the (harmonic minor) scale repeated in 0.1 s notes: every 1 s excerpt is in the key."""
    steps = [0, 2, 3, 5, 7, 8, 11] if minor else [0, 2, 4, 5, 7, 9, 11]
    rows = [(48 + tonic + x, t0, t1, 80) for x in (0, 3 if minor else 4, 7)]
    rows += [(60 + tonic + steps[i % 7], t0 + 0.1 * i, t0 + 0.1 * (i + 1), 80) for i in range(int((t1 - t0) / 0.1))]
    return rows


def test_local_key_context():
    rows = key_section(0, False, 0.0, 3.7) + key_section(4, True, 3.7, DUR)     # C major, then E minor
    lab = labels(Score.from_notes(rows), key_context=1.0)
    centre = (np.arange(40) + 0.5) * LEN_L
    c_major, e_minor = torch.from_numpy(centre + 0.5 < 3.7), torch.from_numpy(centre - 0.5 > 3.7)
    assert (lab["key"][c_major] == 0).all() and (lab["key"][e_minor] == 16).all()
    assert c_major.sum() > 10 and e_minor.sum() > 10 and lab["key_mask"].all()
    glob = labels(Score.from_notes(key_section(4, True, 0.0, DUR)))              # whole-window key, broadcast
    assert glob["key"].tolist() == [16] * 40


# ---------------------------------------------------------------- chroma
def dense_chroma(rows, T_M, frame_len):
    """Reference: per note and per frame, the overlap of [start, end] with the frame (plain loops)."""
    out = np.zeros((T_M, 12))
    for p, s, e, _ in rows:
        for k in range(T_M):
            out[k, int(p) % 12] += max(0.0, min(e, (k + 1) * frame_len) - max(s, k * frame_len))
    return out


def test_chroma_duration_weighted_and_normalised():
    # frame 0 = [0, LEN_M): C for the whole frame, E for its second half
    rows = [(60, 0.0, 1.0, 80), (64, LEN_M / 2, 1.0, 80), (55, 1.0, 2.0, 80)]
    lab = labels(Score.from_notes(rows))
    np.testing.assert_allclose(lab["chroma"][0].numpy()[[0, 4]], [1 / 1.5, 0.5 / 1.5], rtol=1e-5)
    np.testing.assert_allclose(lab["chroma"][5].numpy()[[0, 4]], [0.5, 0.5], rtol=1e-5)
    k_g = int(1.5 / LEN_M)                                    # only G (pitch 55) sounds there
    assert lab["chroma"][k_g, 7] == pytest.approx(1.0)
    assert lab["chroma_mask"][: int(2.0 / LEN_M)].all() and not lab["chroma_mask"][int(2.0 / LEN_M) + 1:].any()
    lab_max = labels(Score.from_notes(rows), chroma_norm="max")
    np.testing.assert_allclose(lab_max["chroma"][0].numpy()[[0, 4]], [1.0, 0.5], rtol=1e-5)


def test_chroma_matches_dense_reference_and_ignores_drums():
    rng = np.random.default_rng(3)
    starts = rng.uniform(-1, DUR, 150)
    rows = np.stack([rng.integers(21, 109, 150), starts, starts + rng.exponential(0.5, 150), rng.integers(1, 128, 150)], 1)
    ref = dense_chroma(rows, 160, LEN_M)
    total = ref.sum(1)
    drums = Notes.build(rng.integers(35, 60, 40), np.linspace(0, 7, 40), np.linspace(0, 7, 40) + 0.1, 100, is_drum=True)
    pitched = Score.from_notes(rows).notes
    both = Notes(**{f: np.concatenate([getattr(pitched, f), getattr(drums, f)]) for f in pitched.__dataclass_fields__})
    lab = labels(Score.from_notes(both))
    np.testing.assert_array_equal(lab["chroma_mask"].numpy(), total > 0)
    np.testing.assert_allclose(lab["chroma"].numpy()[total > 0], (ref / total[:, None])[total > 0], atol=1e-6)


# ---------------------------------------------------------------- beats, downbeats, tempo from MIDI
def midi_file(tmp_path, name, conductor, ppq=480):
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    track = mido.MidiTrack()
    for delta, msg in conductor:
        track.append(msg.copy(time=delta))
    mid.tracks.append(track)
    notes = mido.MidiTrack([mido.Message("note_on", note=60, velocity=80, time=0),
                            mido.Message("note_off", note=60, velocity=0, time=ppq * 16)])
    mid.tracks.append(notes)
    path = tmp_path / name
    mid.save(path)
    return path


def tempo(bpm):
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


def ts(num, den):
    return mido.MetaMessage("time_signature", numerator=num, denominator=den)


def test_beats_four_four_with_tempo_change(tmp_path):
    # 4/4, 120 bpm for one bar (beats 0, .5, 1, 1.5), then 60 bpm: beats 2, 3, 4, ... (file ends at 16 quarters)
    s = read_midi(midi_file(tmp_path, "44.mid", [(0, ts(4, 4)), (0, tempo(120)), (4 * 480, tempo(60))]))
    lab = labels(s)
    # beat frames = floor(t / LEN_M) = floor(t * 21.533): 0, .5, 1, 1.5, 2, 3, 4, 5, 6, 7 s
    assert torch.nonzero(lab["beat"]).flatten().tolist() == [0, 10, 21, 32, 43, 64, 86, 107, 129, 150]
    # downbeats every 4 beats: 0 s, 2 s (bar 2 at 60 bpm), 6 s
    assert torch.nonzero(lab["downbeat"]).flatten().tolist() == [0, 43, 129]
    assert lab["beat_mask"].all() and lab["downbeat_mask"].all() and lab["tempo_mask"].all()
    # tempo: log2(120/120) = 0 before 2 s, log2(60/120) = -1 after; the T_L frame holding 2 s is averaged
    k = int(2.0 / LEN_L)                                       # frame 10 = [1.8576, 2.0433)
    frac = ((k + 1) * LEN_L - 2.0) / LEN_L
    np.testing.assert_allclose(lab["tempo"][:k].numpy(), 0.0, atol=1e-6)
    assert lab["tempo"][k] == pytest.approx(-frac, abs=1e-5)
    np.testing.assert_allclose(lab["tempo"][k + 1:].numpy(), -1.0, atol=1e-6)


def test_beats_three_four_with_tempo_change_in_a_window(tmp_path):
    # 3/4 at 100 bpm (beat 0.6 s) for 2 bars (3.6 s), then 150 bpm (beat 0.4 s)
    s = read_midi(midi_file(tmp_path, "34.mid", [(0, ts(3, 4)), (0, tempo(100)), (6 * 480, tempo(150))]))
    np.testing.assert_allclose(s.beats[:9], [0, 0.6, 1.2, 1.8, 2.4, 3.0, 3.6, 4.0, 4.4])
    w = s.window(1.0, DUR)                                      # window from 1.0 s: beats at 0.2, 0.8, 1.4, ...
    lab = labels(w)
    # source beats 1.2 .. 3.0 (100 bpm), 3.6, 4.0, ... 7.2 (150 bpm; the file ends at 3.6 + 4.0 = 7.6 s)
    beats_w = [0.2, 0.8, 1.4, 2.0, 2.6, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0, 5.4, 5.8, 6.2]
    frames = [4, 17, 30, 43, 55, 64, 73, 81, 90, 99, 107, 116, 124, 133]      # floor(t * 86.1328125 / 4)
    assert [int(t * FR / 4) for t in beats_w] == frames
    assert torch.nonzero(lab["beat"]).flatten().tolist() == frames
    # downbeats: source 1.8 (bar 2), 3.6 (bar 3), then every 1.2 s: 4.8, 6.0, 7.2 -> window 0.8, 2.6, 3.8, 5.0, 6.2
    assert torch.nonzero(lab["downbeat"]).flatten().tolist() == [17, 55, 81, 107, 133]
    # tempo in window time: 100 bpm until 2.6 s, then 150 bpm
    assert lab["tempo"][0] == pytest.approx(math.log2(100 / 120), abs=1e-6)
    assert lab["tempo"][-1] == pytest.approx(math.log2(150 / 120), abs=1e-6)


def test_tempo_and_beats_masked_without_tempo_information(tmp_path):
    lab = labels(read_midi(midi_file(tmp_path, "none.mid", [(0, ts(4, 4))])))
    assert not lab["tempo_mask"].any() and not lab["beat_mask"].any() and not lab["downbeat_mask"].any()
    assert lab["chroma_mask"].any() and lab["key_mask"].sum() == 0   # one pitch class: no key either
    # an explicit set_tempo is information even at the MIDI default 120 bpm (before: masked like no tempo)
    lab = labels(read_midi(midi_file(tmp_path, "default.mid", [(0, ts(4, 4)), (0, tempo(120))])))
    assert lab["tempo_mask"].all() and lab["beat_mask"].all() and lab["downbeat_mask"].all()
    np.testing.assert_allclose(lab["tempo"].numpy(), 0.0)
    # tempo but no time signature: beats usable, downbeats (a 4/4 guess) masked
    lab = labels(read_midi(midi_file(tmp_path, "nots.mid", [(0, tempo(90))])))
    assert lab["beat_mask"].all() and lab["tempo_mask"].all() and not lab["downbeat_mask"].any()
    # a plain note list has no tempo information
    lab = labels(Score.from_notes(cadence(0)))
    assert not lab["tempo_mask"].any() and not lab["beat_mask"].any()


@pytest.mark.parametrize("bad_bpm", [math.inf, math.nan, 0.0])
def test_non_finite_tempo_label_is_masked_never_nan(bad_bpm):
    """Belt and braces behind the reader's tempo checks: a tempo map that gives a non-finite label (inf bpm from
    a 0 us set_tempo, NaN, 0 bpm) masks the frames it touches and writes 0 there, so no NaN reaches a loss."""
    score = dataclasses.replace(Score.from_notes(cadence(0), end_time=DUR), tempo_times=np.array([0.0, 3.0]),
                                tempo_bpm=np.array([90.0, bad_bpm]), has_tempo_info=True)
    lab = labels(score)
    tempo, mask = lab["tempo"], lab["tempo_mask"]
    assert torch.isfinite(tempo).all()
    k = int(3.0 / LEN_L)                                        # the first frame the bad segment touches
    assert mask[:k].all() and not mask[k:].any()
    np.testing.assert_allclose(tempo[:k].numpy(), math.log2(90 / 120), atol=1e-6)
    assert not tempo[k:].any()
    # and the packed training structure (what a batch carries) has no NaN at all, labels included
    packed = StructureRender(44100, 512).render(score, DUR)
    assert torch.isfinite(packed).all()
    _, _, unpacked = unpack_structure(packed[None], factors=(4, 4))
    assert not bool(unpacked["tempo_mask"][0, k:].any())


def test_bpm_normalisation_round_trip():
    assert normalise_bpm(120) == 0 and normalise_bpm(60) == -1 and normalise_bpm(240) == 1
    np.testing.assert_allclose(denormalise_bpm(normalise_bpm([47.0, 133.0])), [47.0, 133.0])


# ---------------------------------------------------------------- lengths and errors
@pytest.mark.parametrize("ratio, factors, frames", [(512, (4, 4), 2576), (2048, (4, 4), 640), (256, (2, 4), 5160),
                                                    (320, (4, 2), 4128)])
def test_label_lengths(ratio, factors, frames):
    fr = latent_frame_rate(44100, ratio)
    lab = derive_labels(Score.from_notes(cadence(2)), frames / fr, fr, factors)
    r1, r2 = factors
    for key in ("chroma", "chroma_mask", "beat", "beat_mask", "downbeat", "downbeat_mask"):
        assert lab[key].shape[0] == frames // r1, key
    assert lab["chroma"].shape == (frames // r1, 12)
    for key in ("tempo", "tempo_mask", "key", "key_mask"):
        assert lab[key].shape == (frames // (r1 * r2),), key
    assert lab["key"].dtype == torch.int64 and lab["beat_mask"].dtype == torch.bool


def test_length_not_multiple_raises():
    with pytest.raises(ValueError, match=r"2583 is not a positive multiple of R1 x R2 = 16.*2576"):
        derive_labels(Score.from_notes(cadence(0)), 30.0, FR)
    with pytest.raises(ValueError, match="multiple"):
        derive_labels(Score.from_notes(cadence(0)), 641 / FR, FR, (4, 4))


# ---------------------------------------------------------------- key: independent reference
def test_key_agrees_with_music21_krumhansl_schmuckler():
    """music21's KrumhanslSchmuckler (its own weights and correlation code) on random tonal note sets."""
    stream_mod = pytest.importorskip("music21.stream")
    from music21 import analysis, note

    rng = np.random.default_rng(0)
    for _ in range(12):
        tonic, minor = int(rng.integers(12)), bool(rng.random() < 0.5)
        steps = np.array([0, 2, 3, 5, 7, 8, 11] if minor else [0, 2, 4, 5, 7, 9, 11])
        pitches = 48 + tonic + rng.choice(steps, 25) + 12 * rng.integers(0, 2, 25)
        pitches[rng.random(25) < 0.15] += 1                       # chromatic colour
        durs = rng.integers(1, 8, 25) * 0.25
        s = stream_mod.Stream()
        for p, d in zip(pitches, durs):
            s.append(note.Note(int(p), quarterLength=float(d)))
        k = analysis.discrete.KrumhanslSchmuckler().getSolution(s)
        expected = k.tonic.pitchClass + (12 if k.mode == "minor" else 0)
        secs = 0.5 * durs                                         # quarter = 0.5 s; the piece fits the window
        starts = np.concatenate([[0.0], np.cumsum(secs)[:-1]])
        assert starts[-1] + secs[-1] < 2048 / FR
        rows = np.stack([pitches, starts, starts + secs, np.full(25, 80)], 1)
        lab = derive_labels(Score.from_notes(rows), 2048 / FR, FR, key_min_pitch_classes=1)
        assert int(lab["key"][0]) == expected, f"{KEY_NAMES[int(lab['key'][0])]} != {k}"
