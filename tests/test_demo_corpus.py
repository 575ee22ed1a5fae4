"""The embedded demo corpus (saga_hsmad/data/demo_corpus.py).

Most tests read the session fixture ``demo_corpus`` from conftest.py (4 pieces of 4 s, seed 0, built
once in a temporary directory); tests that change a corpus work on a copy.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from saga_hsmad.data import demo_corpus as dc

SR = 44100
FIXTURE_PARAMS = dict(num_pieces=4, seconds=4.0, seed=0)
META_KEYS = {"style", "caption", "programs", "has_drums", "source", "seconds"}


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _pieces(root: Path) -> list[tuple[str, str]]:
    return [(split, stem) for split, stems in _manifest(root)["splits"].items() for stem in stems]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _midi_notes(path: Path) -> list[tuple[int, int, float, float]]:
    """(channel, key, start s, end s) of every note, paired FIFO, independently of the module."""
    open_: dict = {}
    notes, now = [], 0.0
    for msg in mido.MidiFile(str(path)):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_.setdefault((msg.channel, msg.note), []).append(now)
        elif msg.type in ("note_on", "note_off"):
            start = open_[(msg.channel, msg.note)].pop(0)
            notes.append((msg.channel, msg.note, start, now))
    assert not any(open_.values()), f"{path}: notes without note-off"
    return notes


def _band_share_db(audio: np.ndarray, cutoff: float = 16000.0) -> float:
    """Share of power above ``cutoff`` in dB, from scipy's STFT (an implementation independent of the module)."""
    f, _, z = signal.stft(audio.mean(axis=1), fs=SR, nperseg=4096, noverlap=3072)
    power = (np.abs(z) ** 2).sum(axis=1)
    return float(10 * np.log10(power[f >= cutoff].sum() / power.sum() + 1e-30))


# ---------------------------------------------------------------------------------------------
# Hand-checked pieces
# ---------------------------------------------------------------------------------------------

def test_tempo_map_against_hand_values():
    # 480 ticks per quarter; 120 BPM (0.5 s per quarter) up to tick 960, then 60 BPM (1 s per quarter).
    tm = dc.TempoMap(480, [(0, 500_000), (960, 1_000_000)])
    np.testing.assert_allclose(tm.seconds([0, 480, 960, 1440, 1920]), [0.0, 0.5, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(tm.tick([0.25, 1.0, 2.5]), [240, 960, 1680])


def _write_midi(path: Path, notes: list[tuple[int, int, int]], end_tick: int, program: int = 73) -> Path:
    """Type-1 MIDI, 480 ticks per quarter at 120 BPM (1 tick = 1/960 s), one flute track."""
    mf = mido.MidiFile(type=1, ticks_per_beat=480)
    mf.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0),
                                     mido.MetaMessage("end_of_track", time=end_tick)]))
    events = []
    for start, end, key in notes:
        events += [(start, 1, mido.Message("note_on", channel=0, note=key, velocity=100)),
                   (end, 0, mido.Message("note_off", channel=0, note=key, velocity=0))]
    track = mido.MidiTrack([mido.Message("program_change", channel=0, program=program, time=0)])
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=end_tick - now))
    mf.tracks.append(track)
    mf.save(str(path))
    return path


def test_render_timing_pitch_length_and_short_notes(tmp_path):
    # A4 from 0.5 s to 1.0 s, file ends at 1.5 s.
    audio = dc.render_midi(_write_midi(tmp_path / "a.mid", [(480, 960, 69)], 1440))
    assert audio.shape == (round(1.5 * SR), 2) and audio.dtype == np.float32
    assert np.all(audio[: SR // 2] == 0.0), "sound before the note-on at 0.5 s"
    onset = int(np.argmax(np.abs(audio).max(axis=1) > 0))
    assert SR // 2 <= onset <= SR // 2 + 221, f"sound starts at {onset / SR:.4f} s, not within 5 ms of 0.5 s"
    assert np.abs(audio[SR // 2: SR // 2 + 2205]).max() > 0.01, "no real sound within 50 ms of the note-on"
    seg = audio[int(0.6 * SR): int(0.95 * SR)].mean(axis=1)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    peak = np.fft.rfftfreq(len(seg), 1 / SR)[spectrum.argmax()]
    assert abs(peak - 440.0) < 5.0, f"A4 rendered with its strongest partial at {peak:.1f} Hz"

    # A note of 4 ticks (4.2 ms) is dropped; one of 20 ticks (20.8 ms) is played.
    short = dc.render_midi(_write_midi(tmp_path / "short.mid", [(480, 484, 69)], 960))
    assert short.shape == (SR, 2) and np.all(short == 0.0)
    kept = dc.render_midi(_write_midi(tmp_path / "kept.mid", [(480, 500, 69)], 960))
    assert np.abs(kept).max() > 0.01
    # The output length is bounded.
    assert dc.render_midi(tmp_path / "a.mid", max_seconds=1.0).shape == (SR, 2)


def test_fluidsynth_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dc.shutil, "which", lambda name: None)
    mid = _write_midi(tmp_path / "a.mid", [(0, 480, 60)], 480)
    with pytest.raises(FileNotFoundError, match="apt-get install fluidsynth"):
        dc.render_midi(mid, renderer="fluidsynth", soundfont=dc.default_soundfont())


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not dc.DEBIAN_SOUNDFONT.is_file(),
                    reason="optional renderer: apt-get install fluidsynth fluid-soundfont-gm")
def test_fluidsynth_renders_the_same_timing_and_drops_short_notes(tmp_path):
    audio = dc.render_midi(_write_midi(tmp_path / "a.mid", [(480, 960, 69)], 1440), renderer="fluidsynth")
    assert audio.shape == (round(1.5 * SR), 2)
    loud = np.abs(audio).max(axis=1) > 1e-4
    onset = int(np.argmax(loud))
    assert SR // 2 <= onset <= SR // 2 + 441, f"sound starts at {onset / SR:.4f} s, not within 10 ms of 0.5 s"
    seg = audio[int(0.6 * SR): int(0.95 * SR)].mean(axis=1)
    peak = np.fft.rfftfreq(len(seg), 1 / SR)[np.abs(np.fft.rfft(seg * np.hanning(len(seg)))).argmax()]
    assert abs(peak - 440.0) < 5.0
    short = dc.render_midi(_write_midi(tmp_path / "s.mid", [(480, 484, 69)], 960), renderer="fluidsynth")
    assert short.shape == (SR, 2) and np.abs(short).max() < 1e-4


def test_high_band_measure_on_known_signals():
    t = np.arange(SR) / SR
    low = np.sin(2 * np.pi * 1000 * t)
    both = low + np.sin(2 * np.pi * 18000 * t)     # equal power below and above 16 kHz -> -3.01 dB
    assert dc.high_band_db(np.stack([low, low], 1)) < -60
    assert dc.high_band_db(np.stack([both, both], 1)) == pytest.approx(-3.01, abs=0.3)


def test_split_and_drum_assignment_counts():
    s48 = dc.assign_splits(48, seed=0)
    assert [s48.count(s) for s in dc.SPLITS] == [38, 5, 5]
    assert s48 == dc.assign_splits(48, seed=0) and s48 != dc.assign_splits(48, seed=1)
    assert sorted(dc.assign_splits(3, seed=0)) == ["test", "train", "valid"]
    assert dc.assign_splits(2, seed=0) == ["train", "train"]
    d48 = dc.assign_drums(s48, 0.45, seed=0)
    assert sum(d48) == 22                                     # round(0.45 * 48)
    assert all(any(d for d, s in zip(d48, s48) if s == split) for split in dc.SPLITS)
    for n in (2, 3, 4):
        drums = dc.assign_drums(dc.assign_splits(n, 0), 0.45, 0)
        assert 0 < sum(drums) < n, f"n={n}: need pieces with and without drums"
    assert not any(dc.assign_drums(s48, 0.0, 0)) and all(dc.assign_drums(s48, 1.0, 0))


def test_describe_wording():
    by = {ins.program: ins for ins in dc.PALETTE}
    style, caption = dc.describe([by[40], by[40], by[41], by[42]], True, 120.0, "a shaker")
    assert style == "violin, viola and cello with drums"
    assert caption == "Two violins, a viola and a cello play a lively four-part piece over drums with a shaker."
    style, caption = dc.describe([by[0]] * 4, False, 70.0)
    assert (style, caption) == ("piano", "A piano plays a slow four-part piece.")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGA_HSMAD_CACHE", str(tmp_path))
    assert dc.default_cache_dir() == tmp_path / "demo_corpus"
    monkeypatch.delenv("SAGA_HSMAD_CACHE")
    assert dc.default_cache_dir() == Path.home() / ".cache" / "saga_hsmad" / "demo_corpus"


def test_candidates_and_seeded_order():
    cands = dc.list_candidates()
    assert len(cands) > 1500, "music21's corpus holds about 2,000 multi-part works"
    assert len({c.stem for c in cands}) == len(cands), "one file per work"
    assert not any(c.composer_dir in dc.EXCLUDED_CORPUS_DIRS for c in cands)
    first = [c.stem for c in dc.candidate_order(cands, 0)[:100]]
    assert first == [c.stem for c in dc.candidate_order(cands, 0)[:100]]
    assert first != [c.stem for c in dc.candidate_order(cands, 1)[:100]]
    share = np.mean([s.startswith("palestrina-") for s in first])
    assert share < 0.5, f"Palestrina holds 2/3 of the works but should not swamp the order ({share:.0%})"


# ---------------------------------------------------------------------------------------------
# The built corpus
# ---------------------------------------------------------------------------------------------

def test_layout_and_manifest(demo_corpus):
    m = _manifest(demo_corpus)
    assert m["params"]["num_pieces"] == 4 and m["params"]["seconds"] == 4.0 and m["params"]["seed"] == 0
    assert m["counts"]["total"] == 4 and all(m["counts"][s] >= 1 for s in dc.SPLITS)
    assert {s: len(v) for s, v in m["splits"].items()} == {s: m["counts"][s] for s in dc.SPLITS}
    expected = {f"{split}/{stem}{ext}" for split, stem in _pieces(demo_corpus) for ext in (".wav", ".mid", ".json")}
    found = {str(p.relative_to(demo_corpus)) for p in demo_corpus.glob("*/*") if not p.name.startswith(".")}
    assert found == expected
    assert m["counts"]["with_drums"] == sum(p["has_drums"] for p in m["pieces"].values())
    assert 0 < m["counts"]["with_drums"] < 4
    for split, stem in _pieces(demo_corpus):
        meta = json.loads((demo_corpus / split / f"{stem}.json").read_text())
        assert set(meta) == META_KEYS
        assert isinstance(meta["style"], str) and meta["style"] and meta["caption"].endswith(".")
        assert meta["style"].endswith(" with drums") == meta["has_drums"]
        assert all(isinstance(p, int) and 0 <= p < 128 for p in meta["programs"]) and meta["programs"]
        assert meta["source"].split("#")[0].rsplit(".", 1)[-1] in {"mxl", "musicxml", "xml", "krn", "abc"}
        assert m["pieces"][stem]["split"] == split


def test_audio_is_44k_stereo_and_as_long_as_its_midi(demo_corpus):
    for split, stem in _pieces(demo_corpus):
        wav, mid = demo_corpus / split / f"{stem}.wav", demo_corpus / split / f"{stem}.mid"
        meta = json.loads((demo_corpus / split / f"{stem}.json").read_text())
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels) == (SR, 2)
        length = mido.MidiFile(str(mid)).length
        assert abs(info.frames - length * SR) <= 1, f"{stem}: {info.frames} samples for a {length:.6f} s MIDI file"
        assert length <= 4.0 + 1e-6 and meta["seconds"] == pytest.approx(info.frames / SR, abs=1e-5)
        audio, _ = sf.read(str(wav), dtype="float32")
        assert np.sqrt(np.mean(audio ** 2)) > 0.01, f"{stem} is (nearly) silent"
        assert np.abs(audio).max() == pytest.approx(10 ** (-1 / 20), abs=2e-3), "peak should be -1 dBFS"
        if len(meta["programs"]) > 1:
            assert not np.allclose(audio[:, 0], audio[:, 1]), f"{stem}: parts are panned, not dual mono"


def test_midi_carries_the_assigned_programs_and_drums(demo_corpus):
    for split, stem in _pieces(demo_corpus):
        mid = demo_corpus / split / f"{stem}.mid"
        meta = json.loads((demo_corpus / split / f"{stem}.json").read_text())
        mf = mido.MidiFile(str(mid))
        programs = {}
        for track in mf.tracks:
            for msg in track:
                if msg.type == "program_change" and msg.channel != 9:
                    programs[msg.channel] = msg.program
        assert [programs[c] for c in sorted(programs)] == meta["programs"]
        notes = _midi_notes(mid)
        channels = {n[0] for n in notes}
        assert (9 in channels) == meta["has_drums"]
        assert channels - {9} == set(programs), "every part plays on its own channel"
        assert min(end - start for _, _, start, end in notes) >= 0.010 - 1e-9, "notes under 10 ms"
        assert max(end for *_, end in notes) <= mf.length + 1e-9


def test_drum_pieces_have_clearly_more_energy_above_16k(demo_corpus):
    drums, plain = [], []
    for split, stem in _pieces(demo_corpus):
        audio, _ = sf.read(str(demo_corpus / split / f"{stem}.wav"), dtype="float32")
        has = json.loads((demo_corpus / split / f"{stem}.json").read_text())["has_drums"]
        (drums if has else plain).append(_band_share_db(audio))
    assert drums and plain
    assert min(drums) > -30.0, f"drum clips put too little power above 16 kHz: {drums}"
    assert min(drums) > max(plain) + 10.0, f"drums {drums} vs no drums {plain} (dB above 16 kHz)"
    m = _manifest(demo_corpus)
    assert m["high_band"]["fraction"] == pytest.approx(
        np.mean([p["high_band_db"] > dc.HIGH_BAND_THRESHOLD_DB for p in m["pieces"].values()]))


def test_splits_are_disjoint_by_piece(demo_corpus):
    m = _manifest(demo_corpus)
    stems = [stem for stems in m["splits"].values() for stem in stems]
    sources = [m["pieces"][stem]["source"] for stem in stems]
    assert len(set(stems)) == len(stems) and len(set(sources)) == len(sources)
    for split in dc.SPLITS:
        on_disk = {p.stem for p in (demo_corpus / split).glob("*.json")}
        assert on_disk == set(m["splits"][split])


def test_rebuild_is_a_noop(demo_corpus, capsys):
    before = _snapshot(demo_corpus)
    assert dc.ensure_demo_corpus(demo_corpus, **FIXTURE_PARAMS) == demo_corpus
    assert dc.main(["--out", str(demo_corpus), "--num-pieces", "4", "--seconds", "4", "--seed", "0", "-q"]) == 0
    assert str(demo_corpus) in capsys.readouterr().out
    assert _snapshot(demo_corpus) == before


def test_other_parameters_raise_without_overwrite(demo_corpus):
    before = _snapshot(demo_corpus)
    with pytest.raises(dc.CorpusMismatchError, match="--overwrite"):
        dc.ensure_demo_corpus(demo_corpus, **{**FIXTURE_PARAMS, "seconds": 3.0})
    with pytest.raises(SystemExit) as exit_info:
        dc.main(["--out", str(demo_corpus), "--num-pieces", "5", "--seconds", "4", "-q"])
    assert exit_info.value.code == 2
    assert _snapshot(demo_corpus) == before


def test_a_foreign_directory_is_never_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(dc.CorpusMismatchError, match="not a demo corpus"):
        dc.build_demo_corpus(tmp_path, num_pieces=1, seconds=1.0, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_partial_build_is_completed_identically(demo_corpus, tmp_path):
    """Delete one piece and the manifest: the rebuild re-creates exactly the same files (the whole chain
    from music21 to the WAV is deterministic given the seed) and touches nothing else."""
    root = tmp_path / "corpus"
    shutil.copytree(demo_corpus, root)
    split, stem = next((s, st) for s, st in _pieces(root) if s == "test")
    original = {ext: (root / split / f"{stem}{ext}").read_bytes() for ext in (".wav", ".mid", ".json")}
    old_manifest = _manifest(root)
    for ext in original:
        (root / split / f"{stem}{ext}").unlink()
    (root / "manifest.json").unlink()
    others = _snapshot(root)
    dc.build_demo_corpus(root, **FIXTURE_PARAMS, workers=1)
    for ext, data in original.items():
        assert (root / split / f"{stem}{ext}").read_bytes() == data, f"{stem}{ext} differs after the rebuild"
    after = _snapshot(root)
    assert {k: v for k, v in after.items() if k in others and k != ".build_params.json"} == \
        {k: v for k, v in others.items() if k != ".build_params.json"}
    new_manifest = _manifest(root)
    for key in ("params", "splits", "counts", "pieces"):
        assert new_manifest[key] == old_manifest[key]


def test_overwrite_replaces_a_corpus_with_other_parameters(tmp_path):
    root = tmp_path / "corpus"
    (root / "train").mkdir(parents=True)
    (root / "train" / "old.wav").write_bytes(b"old")
    (root / ".build_params.json").write_text(json.dumps({"format_version": 0}))
    with pytest.raises(dc.CorpusMismatchError):
        dc.build_demo_corpus(root, num_pieces=1, seconds=1.0, seed=2, workers=1)
    dc.build_demo_corpus(root, num_pieces=1, seconds=1.0, seed=2, workers=1, overwrite=True)
    assert not (root / "train" / "old.wav").exists()
    m = _manifest(root)
    assert m["params"]["num_pieces"] == 1 and m["counts"]["total"] == 1


def test_pickup_bar_gets_its_own_time_signature(tmp_path):
    # BWV 66.6 (music21 corpus) opens with a one-quarter pickup in 4/4 at 96 quarter notes per minute.
    score = dc.extract_score(dc.Candidate("bach/bwv66.6.mxl"), 6.0)
    tpq = score.ticks_per_beat
    assert score.bars[0] == (-3 * tpq, 4 * tpq, 4) and score.bars[1][0] == tpq
    assert score.time_signatures[:2] == [(0, 1, 4), (tpq, 4, 4)]
    assert score.tempos == [(0, 625_000)]
    by = {ins.program: ins for ins in dc.PALETTE}
    dc.write_midi(tmp_path / "p.mid", score, [by[0]] * len(score.parts), [], [64] * len(score.parts))
    sigs = [(m.numerator, m.denominator) for m in mido.MidiFile(str(tmp_path / "p.mid")).tracks[0]
            if m.type == "time_signature"]
    assert sigs == [(1, 4), (4, 4)]


def test_seed_drives_instruments_and_drums():
    cand = dc.candidate_order(dc.list_candidates(), 2)[0]
    score = dc.extract_score(cand, 2.0)
    again = dc.extract_score(cand, 2.0)
    assert score.parts == again.parts and score.bars == again.bars

    def programs_for(seed: int) -> list[int]:
        rng = dc.piece_rng(seed, cand.stem, "instruments")
        return [ins.program for ins in dc.choose_instruments(score.parts, rng)]

    programs = {seed: programs_for(seed) for seed in range(8)}
    assert programs[0] == programs_for(0)
    assert len({tuple(p) for p in programs.values()}) > 1, "the seed does not change the instrumentation"
    pattern, drums = dc.drum_track(score, dc.piece_rng(0, cand.stem, "drums"))
    assert (pattern, drums) == dc.drum_track(score, dc.piece_rng(0, cand.stem, "drums"))
    assert pattern in dc.DRUM_PATTERNS and drums and all(0 <= s < e <= score.end_tick for s, e, _, _ in drums)
