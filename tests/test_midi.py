"""MIDI reading: hand-built files (mido, and raw bytes for running status) against hand-computed tables."""
from __future__ import annotations

import struct

import mido
import numpy as np
import pytest

from saga_hsmad.symbolic.midi import (MAX_BEATS, MAX_MIDI_SECONDS, OPEN_NOTE_CAP, MidiError, MidiWarning, Notes, Score,
                                      read_midi)

PPQ = 480


def _file(tmp_path, name, tracks, type=1, ppq=PPQ):
    """Save a MIDI file whose tracks are lists of (delta ticks, message) and return its path."""
    mid = mido.MidiFile(type=type, ticks_per_beat=ppq)
    for events in tracks:
        track = mido.MidiTrack()
        for delta, msg in events:
            track.append(msg.copy(time=delta))
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    path = tmp_path / name
    mid.save(path)
    return path


def on(note, vel=64, ch=0):
    return mido.Message("note_on", note=note, velocity=vel, channel=ch)


def off(note, ch=0):
    return mido.Message("note_off", note=note, velocity=0, channel=ch)


def cc64(value, ch=0):
    return mido.Message("control_change", control=64, value=value, channel=ch)


def tempo(bpm):
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


def ts(num, den):
    return mido.MetaMessage("time_signature", numerator=num, denominator=den)


def table(notes: Notes):
    """Rows (pitch, start, end, velocity) for comparison."""
    return [(int(p), float(s), float(e), float(v)) for p, s, e, v in zip(notes.pitch, notes.start, notes.end,
                                                                           notes.velocity)]


def assert_table(notes, expected):
    got = table(notes)
    assert len(got) == len(expected), f"{got} != {expected}"
    for g, e in zip(got, expected):
        assert g[0] == e[0] and g[3] == e[3], f"{g} != {e}"
        assert g[1] == pytest.approx(e[1], abs=1e-9) and g[2] == pytest.approx(e[2], abs=1e-9), f"{g} != {e}"


# ---------------------------------------------------------------- tempo maps, type 0 and type 1
# 120 bpm for ticks 0..960 (1 tick = 1/960 s), then 60 bpm (1 tick = 1/480 s): tick 960 = 1.0 s.
TEMPO_NOTES = [(60, 0.0, 0.5, 90), (62, 0.75, 1.5, 70), (64, 2.0, 3.0, 50)]


def _tempo_change_type1(tmp_path):
    conductor = [(0, ts(4, 4)), (0, tempo(120)), (960, tempo(60))]
    notes = [(0, on(60, 90)), (480, off(60)),                     # 0 .. 480 ticks = 0 .. 0.5 s
             (240, on(62, 70)), (480, off(62)),                   # 720 .. 1200 = 0.75 .. 1.0 + 240/480 = 1.5 s
             (240, on(64, 50)), (480, off(64))]                   # 1440 .. 1920 = 2.0 .. 3.0 s
    return _file(tmp_path, "tempo1.mid", [conductor, notes])


def test_tempo_changes_type1(tmp_path):
    s = read_midi(_tempo_change_type1(tmp_path))
    assert_table(s.notes, TEMPO_NOTES)
    np.testing.assert_allclose(s.tempo_times, [0.0, 1.0])
    np.testing.assert_allclose(s.tempo_bpm, [120.0, 60.0])
    assert s.end_time == pytest.approx(3.0)
    assert s.has_tempo_info and s.has_time_signature
    # beats: every quarter = 480 ticks -> 0, 0.5, 1.0, then 1 s per beat: 2.0 (tick 1440); end 3.0 excluded
    np.testing.assert_allclose(s.beats, [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(s.downbeats, [0.0])


def test_type0_equals_type1(tmp_path):
    merged = [(0, ts(4, 4)), (0, tempo(120)), (0, on(60, 90)), (480, off(60)), (240, on(62, 70)),
              (240, tempo(60)), (240, off(62)), (240, on(64, 50)), (480, off(64))]
    s0 = read_midi(_file(tmp_path, "t0.mid", [merged], type=0))
    s1 = read_midi(_tempo_change_type1(tmp_path))
    assert_table(s0.notes, TEMPO_NOTES)
    np.testing.assert_allclose(np.array(table(s0.notes)), np.array(table(s1.notes)))
    np.testing.assert_allclose(s0.beats, s1.beats)


def test_tempo_change_in_a_later_track_applies_globally(tmp_path):
    # tempo events may sit in any track of a type 1 file; the map is global
    path = _file(tmp_path, "late.mid", [[(0, on(60, 90)), (1920, off(60))], [(0, tempo(120)), (960, tempo(60))]])
    s = read_midi(path)
    assert_table(s.notes, [(60, 0.0, 1.0 + 960 / 480, 90)])


# ---------------------------------------------------------------- running status, velocity-0 note-offs
def _raw_midi(track_bytes: bytes, type=0, ppq=96) -> bytes:
    return (b"MThd" + struct.pack(">LHHH", 6, type, 1, ppq) + b"MTrk" + struct.pack(">L", len(track_bytes))
            + track_bytes)


def test_running_status_raw_bytes(tmp_path):
    trk = bytes([
        0x00, 0xFF, 0x51, 0x03, 0x0F, 0x42, 0x40,   # set_tempo 1,000,000 us = 60 bpm: 96 ticks = 1 s
        0x00, 0x90, 60, 100,                        # note_on 60 v100 at 0
        0x00, 64, 80,                               # running status: note_on 64 v80 at 0
        0x30, 60, 0,                                # running status, velocity 0 = note-off 60 at 48 (0.5 s)
        0x30, 64, 0,                                # note-off 64 at 96 (1.0 s)
        0x00, 0x80, 67, 0,                          # explicit note_off for a pitch never on: ignored
        0x18, 0x90, 67, 30,                         # note_on 67 at 120 (1.25 s)
        0x60, 67, 0,                                # running status off at 216 (2.25 s)
        0x00, 0xFF, 0x2F, 0x00])
    path = tmp_path / "running.mid"
    path.write_bytes(_raw_midi(trk))
    s = read_midi(path)
    assert_table(s.notes, [(60, 0.0, 0.5, 100), (64, 0.0, 1.0, 80), (67, 1.25, 2.25, 30)])
    assert s.has_tempo_info
    assert s.end_time == pytest.approx(2.25)


def test_velocity_zero_note_on_is_note_off(tmp_path):
    path = _file(tmp_path, "v0.mid", [[(0, on(60, 100)), (480, on(60, 0)), (0, on(60, 50)), (480, on(60, 0))]])
    s = read_midi(path)
    assert_table(s.notes, [(60, 0.0, 0.5, 100), (60, 0.5, 1.0, 50)])


# ---------------------------------------------------------------- re-struck pitches, unclosed notes
def test_restrike_ends_the_sounding_note(tmp_path):
    # on A @0, on B @240, off @480, off @960: the re-strike ends A (one key, one string, as a synth does);
    # the first off ends B, the second has nothing left to end (FIFO pairing gave A [0, 0.5], B [0.25, 1.0])
    path = _file(tmp_path, "overlap.mid", [[(0, on(60, 10)), (240, on(60, 20)), (240, off(60)), (480, off(60))]])
    assert_table(read_midi(path).notes, [(60, 0.0, 0.25, 10), (60, 0.25, 0.5, 20)])


def test_restrike_without_note_offs(tmp_path):
    # a pitch struck three times and released once, then 100 s of silence (a marker): each strike ends the
    # previous one; before, the off ended the first and the other two rang to the end of the file (101.5 s)
    path = _file(tmp_path, "restrike3.mid", [[(0, on(60, 10)), (480, on(60, 20)), (480, on(60, 30)), (480, off(60)),
                                              (200 * 480, mido.MetaMessage("marker"))]])
    s = read_midi(path)
    assert_table(s.notes, [(60, 0.0, 0.5, 10), (60, 0.5, 1.0, 20), (60, 1.0, 1.5, 30)])
    assert s.end_time == pytest.approx(101.5)


def test_overlap_is_per_channel_and_open_notes_end_at_file_end(tmp_path):
    # the off on channel 1 must not end the channel-0 note; the channel-0 note never ends -> end of file
    path = _file(tmp_path, "chan.mid", [[(0, on(60, 10, ch=0)), (0, on(60, 20, ch=1)), (480, off(60, ch=1)),
                                         (480, mido.Message("program_change", program=1))]])
    s = read_midi(path)
    assert_table(s.notes, [(60, 0.0, 1.0, 10), (60, 0.0, 0.5, 20)])
    assert list(s.notes.channel) == [0, 1]


def test_unclosed_notes_are_capped(tmp_path):
    # no note-off: the note ends at the end of the file, but at most OPEN_NOTE_CAP seconds after its onset;
    # a key released under a pedal that never lifts: at most OPEN_NOTE_CAP seconds after the key release
    assert OPEN_NOTE_CAP == 10.0
    short = _file(tmp_path, "short.mid", [[(0, on(60, 10)), (3 * 960, mido.MetaMessage("marker"))]])
    assert_table(read_midi(short).notes, [(60, 0.0, 3.0, 10)])
    long = _file(tmp_path, "long.mid", [[(0, on(60, 10)), (0, cc64(127)), (0, on(62, 20)), (960, off(62)),
                                         (100 * 960, mido.MetaMessage("marker"))]])
    with pytest.warns(MidiWarning, match=r"long\.mid: 2 notes without a note-off or pedal release"):
        s = read_midi(long)
    assert_table(s.notes, [(60, 0.0, 10.0, 10), (62, 0.0, 11.0, 20)])
    assert s.end_time == pytest.approx(101.0)


def test_same_tick_on_off_order(tmp_path):
    # re-strike written "on, off" on one tick: FIFO ends the old note, the new one sounds on
    path = _file(tmp_path, "restrike.mid", [[(0, on(60, 10)), (480, on(60, 20)), (0, off(60)), (480, off(60))]])
    assert_table(read_midi(path).notes, [(60, 0.0, 0.5, 10), (60, 0.5, 1.0, 20)])


# ---------------------------------------------------------------- sustain pedal
def _pedal_file(tmp_path, down_value=127):
    events = [(0, cc64(down_value)), (0, on(60, 90)), (480, off(60)),   # key up at 0.5 s, pedal held
              (480, cc64(0)),                                            # pedal up at 1.0 s -> 60 ends
              (240, on(62, 80)), (240, off(62)),                         # 1.25 .. 1.5, pedal up: unchanged
              (480, cc64(down_value)), (0, on(64, 70)), (240, off(64)),  # pedal down 2.0, 64 on 2.0, key up 2.25
              (240, on(64, 60)),                                         # re-strike at 2.5 ends the held 64
              (240, off(64)), (240, cc64(0))]                            # key up 2.75 held until pedal up 3.0
    return _file(tmp_path, f"pedal{down_value}.mid", [events])


def test_sustain_pedal_extends_notes(tmp_path):
    s = read_midi(_pedal_file(tmp_path))
    assert_table(s.notes, [(60, 0.0, 1.0, 90), (62, 1.25, 1.5, 80), (64, 2.0, 2.5, 70), (64, 2.5, 3.0, 60)])


def test_sustain_off_and_threshold(tmp_path):
    raw = [(60, 0.0, 0.5, 90), (62, 1.25, 1.5, 80), (64, 2.0, 2.25, 70), (64, 2.5, 2.75, 60)]
    assert_table(read_midi(_pedal_file(tmp_path), sustain=False).notes, raw)
    # the threshold is inclusive: 64 is down, 63 is up
    assert_table(read_midi(_pedal_file(tmp_path, down_value=64)).notes,
                 [(60, 0.0, 1.0, 90), (62, 1.25, 1.5, 80), (64, 2.0, 2.5, 70), (64, 2.5, 3.0, 60)])
    assert_table(read_midi(_pedal_file(tmp_path, down_value=63)).notes, raw)
    # CC64 value 40 is "up" at the default threshold 64, "down" at threshold 32
    path = _pedal_file(tmp_path, down_value=40)
    assert_table(read_midi(path).notes, raw)
    assert_table(read_midi(path, sustain_threshold=32).notes,
                 [(60, 0.0, 1.0, 90), (62, 1.25, 1.5, 80), (64, 2.0, 2.5, 70), (64, 2.5, 3.0, 60)])


def test_pedal_is_per_channel(tmp_path):
    path = _file(tmp_path, "pedch.mid", [[(0, cc64(127, ch=1)), (0, on(60, 90, ch=0)), (0, on(61, 90, ch=1)),
                                          (480, off(60, ch=0)), (0, off(61, ch=1)), (480, cc64(0, ch=1))]])
    assert_table(read_midi(path).notes, [(60, 0.0, 0.5, 90), (61, 0.0, 1.0, 90)])


# ---------------------------------------------------------------- drums and programs
def _band_file(tmp_path):
    melody = [(0, mido.Message("program_change", program=0, channel=0)), (0, on(60, 90)), (480, off(60)),
              (0, mido.Message("program_change", program=40, channel=0)), (0, on(62, 80)), (480, off(62))]
    drums = [(0, on(36, 100, ch=9)), (240, off(36, ch=9)), (240, on(38, 110, ch=9)), (240, off(38, ch=9))]
    return _file(tmp_path, "band.mid", [[(0, tempo(120))], melody, drums])


def test_drums_keep_and_programs(tmp_path):
    s = read_midi(_band_file(tmp_path), drums="keep")
    assert_table(s.notes, [(36, 0.0, 0.25, 100), (60, 0.0, 0.5, 90), (38, 0.5, 0.75, 110), (62, 0.5, 1.0, 80)])
    assert list(s.notes.is_drum) == [True, False, True, False]
    assert list(s.notes.program) == [0, 0, 0, 40]          # program changes over time on channel 0
    assert list(s.notes.channel) == [9, 0, 9, 0]


def test_drums_drop(tmp_path):
    s = read_midi(_band_file(tmp_path), drums="drop")
    assert_table(s.notes, [(60, 0.0, 0.5, 90), (62, 0.5, 1.0, 80)])
    assert not s.notes.is_drum.any()
    with pytest.raises(ValueError, match="drums"):
        read_midi(_band_file(tmp_path), drums="merge")


# ---------------------------------------------------------------- tempo information rule
def test_has_tempo_info_rule(tmp_path):
    # an explicit set_tempo is information, whatever its value; only its absence is not
    notes = [(0, on(60)), (480, off(60))]
    assert not read_midi(_file(tmp_path, "none.mid", [notes])).has_tempo_info           # no set_tempo
    assert read_midi(_file(tmp_path, "d.mid", [[(0, tempo(120))] + notes])).has_tempo_info   # 120 bpm, stated
    assert read_midi(_file(tmp_path, "dd.mid", [[(0, tempo(120)), (240, tempo(120))] + notes])).has_tempo_info
    assert read_midi(_file(tmp_path, "t.mid", [[(0, tempo(100))] + notes])).has_tempo_info
    assert read_midi(_file(tmp_path, "tc.mid", [[(0, tempo(120)), (240, tempo(90))] + notes])).has_tempo_info
    s = read_midi(_file(tmp_path, "none2.mid", [notes]))
    assert not s.has_time_signature
    np.testing.assert_allclose(s.tempo_bpm, [120.0])


def test_tempo_zero_is_skipped_with_a_warning(tmp_path):
    # set_tempo 0 us per quarter is an infinite tempo: before, the map held inf bpm, every time was 0 s and the
    # tempo label was NaN with its mask on. Now the event is skipped (the previous tempo holds) with a warning
    trk = bytes([0x00, 0xFF, 0x51, 0x03, 0x00, 0x00, 0x00,      # set_tempo 0 at tick 0
                 0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0,         # note 60, ticks 0 .. 96 (1 quarter)
                 0x00, 0xFF, 0x51, 0x03, 0x0F, 0x42, 0x40,      # set_tempo 1,000,000 us (60 bpm) at 96
                 0x00, 0xFF, 0x51, 0x03, 0x00, 0x00, 0x00,      # set_tempo 0 again at 96: skipped, 60 bpm holds
                 0x60, 0x90, 62, 100, 0x60, 0x80, 62, 0,        # note 62, ticks 192 .. 288
                 0x00, 0xFF, 0x2F, 0x00])
    path = tmp_path / "tempo0.mid"
    path.write_bytes(_raw_midi(trk))
    with pytest.warns(MidiWarning, match=r"tempo0\.mid.*set_tempo of 0"):
        s = read_midi(path)
    np.testing.assert_allclose(s.tempo_bpm, [120.0, 60.0])
    assert s.has_tempo_info                                     # the valid 60 bpm event is information
    assert_table(s.notes, [(60, 0.0, 0.5, 100), (62, 1.5, 2.5, 100)])
    only_zero = tmp_path / "only0.mid"
    only_zero.write_bytes(_raw_midi(bytes([0x00, 0xFF, 0x51, 0x03, 0x00, 0x00, 0x00, 0x00, 0x90, 60, 100,
                                           0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])))
    with pytest.warns(MidiWarning, match="only0.mid"):
        s = read_midi(only_zero)
    assert not s.has_tempo_info and np.isfinite(s.tempo_bpm).all()
    assert_table(s.notes, [(60, 0.0, 0.5, 100)])


# ---------------------------------------------------------------- beats from time signatures
def test_beats_three_four_with_tempo_change(tmp_path):
    # 3/4; 120 bpm for bar 1 (3 beats, 1.5 s), then 60 bpm; end after 3 bars (3 + 6 beats)
    conductor = [(0, ts(3, 4)), (0, tempo(120)), (3 * PPQ, tempo(60)), (6 * PPQ, mido.MetaMessage("marker"))]
    s = read_midi(_file(tmp_path, "34.mid", [conductor]))
    np.testing.assert_allclose(s.beats, [0, 0.5, 1.0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    np.testing.assert_allclose(s.downbeats, [0, 1.5, 4.5])
    assert s.end_time == pytest.approx(7.5)


def test_beats_time_signature_change_and_compound(tmp_path):
    # 2/4 for one bar, then 6/8 (compound: beat = dotted quarter = 720 ticks, 2 beats per bar), 120 bpm
    conductor = [(0, ts(2, 4)), (0, tempo(120)), (2 * PPQ, ts(6, 8)), (6 * PPQ, mido.MetaMessage("marker"))]
    s = read_midi(_file(tmp_path, "68.mid", [conductor]))
    np.testing.assert_allclose(s.beats, [0, 0.5, 1.0, 1.75, 2.5, 3.25])
    np.testing.assert_allclose(s.downbeats, [0, 1.0, 2.5])
    np.testing.assert_allclose(s.ts_times, [0, 1.0])
    assert list(s.ts_num) == [2, 6] and list(s.ts_den) == [4, 8]


# ---------------------------------------------------------------- errors
def test_malformed_truncated_empty_raise_midi_error(tmp_path):
    good = _tempo_change_type1(tmp_path).read_bytes()
    cases = {"empty.mid": b"", "truncated.mid": good[: len(good) - 10], "header_only.mid": good[:14],
             "garbage.mid": b"this is not a MIDI file at all",
             "baddata.mid": _raw_midi(bytes([0x00, 0x90, 200, 100, 0x00, 0xFF, 0x2F, 0x00]))}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(MidiError, match=name):
            read_midi(path)
    with pytest.raises(MidiError, match="missing.mid"):
        read_midi(tmp_path / "missing.mid")


def test_absurd_length_raises_midi_error_before_allocating(tmp_path):
    # one note-off 0x0FFFFFFF ticks (the largest delta) after its note-on at 1 tick per quarter: 4.3 years at
    # 120 bpm. Before, the beat grid asked numpy for 2 GB (MemoryError); now the length is refused up front
    trk = bytes([0x00, 0x90, 60, 100, 0xFF, 0xFF, 0xFF, 0x7F, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    path = tmp_path / "forever.mid"
    path.write_bytes(_raw_midi(trk, ppq=1))
    with pytest.raises(MidiError, match=r"forever\.mid: lasts 37,282\.7 hours.*longer than the 6 hours"):
        read_midi(path)
    assert MAX_MIDI_SECONDS == 6 * 3600
    # within the length limit but with a beat every microsecond (tempo 1 us per quarter, 1 tick per quarter)
    fast = bytes([0x00, 0xFF, 0x51, 0x03, 0x00, 0x00, 0x01, 0x00, 0x90, 60, 100, 0x81, 0xB7, 0x8D, 0x40, 0x80, 60,
                  0, 0x00, 0xFF, 0x2F, 0x00])                   # off after 3,000,000 ticks = 3 s
    path = tmp_path / "fast.mid"
    path.write_bytes(_raw_midi(fast, ppq=1))
    with pytest.raises(MidiError, match=f"fast\\.mid: .*more than {MAX_BEATS:,} beats"):
        read_midi(path)


def test_invalid_time_signature_is_skipped_with_a_warning(tmp_path):
    # numerator 0 or denominator 2**255: before, an OverflowError traceback (or a division by zero in the grid)
    for name, num, den_power in [("num0.mid", 0, 2), ("den255.mid", 4, 255)]:
        trk = bytes([0x00, 0xFF, 0x58, 0x04, num, den_power, 24, 8, 0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0,
                     0x00, 0xFF, 0x2F, 0x00])
        path = tmp_path / name
        path.write_bytes(_raw_midi(trk))
        with pytest.warns(MidiWarning, match=name.replace(".", r"\.") + ": .*time_signature"):
            s = read_midi(path)
        assert not s.has_time_signature and list(s.ts_num) == [4] and list(s.ts_den) == [4]
        assert len(s.notes) == 1


def test_type2_rejected(tmp_path):
    path = _file(tmp_path, "type2.mid", [[(0, on(60)), (480, off(60))], [(0, on(62)), (480, off(62))]], type=2)
    with pytest.raises(MidiError, match="type 2"):
        read_midi(path)


def test_file_without_notes_is_valid(tmp_path):
    s = read_midi(_file(tmp_path, "silent.mid", [[(0, tempo(100)), (960, mido.MetaMessage("marker"))]]))
    assert len(s.notes) == 0 and s.end_time == pytest.approx(960 * 0.6 / PPQ)


# ---------------------------------------------------------------- note lists and windows
def test_from_notes_sorted_and_validated():
    s = Score.from_notes([(64, 1.0, 2.0, 50), (60, 0.0, 1.5, 100)])
    assert_table(s.notes, [(60, 0.0, 1.5, 100), (64, 1.0, 2.0, 50)])
    assert not s.has_tempo_info and len(s.beats) == 0 and s.end_time == 2.0
    for bad in [[(60, 1.0, 0.5, 80)], [(128, 0, 1, 80)], [(60, 0, 1, 0)], [(60, 0, 1)]]:
        with pytest.raises(ValueError):
            Score.from_notes(bad)
    assert len(Score.from_notes([]).notes) == 0


def test_window(tmp_path):
    s = read_midi(_tempo_change_type1(tmp_path))        # notes (0-0.5) (0.75-1.5) (2.0-3.0); tempo 120 -> 60 at 1 s
    w = s.window(0.6, 1.6)                              # [0.6, 2.2)
    # 60 (ended at 0.5) is out; 62 started before the window: negative start; 64 clipped to the window end
    assert_table(w.notes, [(62, 0.15, 0.9, 70), (64, 1.4, 1.6, 50)])
    w = s.window(1.0, 1.5)
    assert_table(w.notes, [(62, -0.25, 0.5, 70), (64, 1.0, 1.5, 50)])
    np.testing.assert_allclose(w.tempo_times, [0.0])
    np.testing.assert_allclose(w.tempo_bpm, [60.0])
    w = s.window(0.8, 1.5)                              # [0.8, 2.3): tempo 120 at 0, 60 from 0.2
    np.testing.assert_allclose(w.tempo_times, [0.0, 0.2])
    np.testing.assert_allclose(w.tempo_bpm, [120.0, 60.0])
    np.testing.assert_allclose(w.beats, [0.2, 1.2])     # source beats 1.0, 2.0
    assert w.end_time == 1.5 and w.offset == pytest.approx(0.8)
    # a note that ends exactly at t0 still sounds at t0; margin keeps a note that ended just before
    assert_table(s.window(0.5, 0.1).notes, [(60, -0.5, 0.0, 90)])
    assert len(s.window(0.51, 0.1).notes) == 0
    assert_table(s.window(0.51, 0.1, margin=0.02).notes, [(60, -0.51, -0.01, 90)])
