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
from saga_hsmad.symbolic.labels import derive_labels, normalise_bpm
from saga_hsmad.symbolic.midi import read_midi

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


def _write_midi(path: Path, notes: list[tuple[int, int, int]], end_tick: int, program: int = 73,
                velocity: int = 100) -> Path:
    """Type-1 MIDI, 480 ticks per quarter at 120 BPM (1 tick = 1/960 s), one flute track."""
    mf = mido.MidiFile(type=1, ticks_per_beat=480)
    mf.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0),
                                     mido.MetaMessage("end_of_track", time=end_tick)]))
    events = []
    for start, end, key in notes:
        events += [(start, 1, mido.Message("note_on", channel=0, note=key, velocity=velocity)),
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


# ---------------------------------------------------------------------------------------------
# Tempo and dynamics
# ---------------------------------------------------------------------------------------------

def test_plan_tempo_keeps_own_marks_and_draws_the_rest():
    tpq = 480
    assert dc.plan_tempo([(0, 625_000), (960, 500_000)], tpq, 20.0, np.random.default_rng(0)) == \
        ([(0, 625_000), (960, 500_000)], None), "a score's own metronome marks are kept"
    changes = {None: 0, "ritardando": 0, "accelerando": 0}
    for seed in range(200):
        tempos, change = dc.plan_tempo([(0, 500_000)], tpq, 20.0, np.random.default_rng(seed))
        changes[change] += 1
        bpm = 6e7 / np.asarray([us for _, us in tempos], dtype=np.float64)
        # never 120 bpm: the reader takes any set_tempo, 120 included, as tempo information, so a drawn 120
        # could not be told from the default music21 writes for a score without a metronome mark
        assert tempos[0][0] == 0 and 500_000 not in [us for _, us in tempos], "120 bpm is music21's default"
        assert 70 - 0.5 <= bpm[0] <= 150 + 0.5 and abs(bpm[0] - round(bpm[0])) < 0.01
        if change is None:
            assert len(tempos) == 1
            continue
        # one step per quarter note, from quarter round(0.55 N) + 1 to round(0.9 N), N = 20 s of quarters
        quarters = 20.0 * round(bpm[0]) / 60.0
        q0, q1 = round(0.55 * quarters), round(0.9 * quarters)
        assert [t for t, _ in tempos[1:]] == [q * tpq for q in range(q0 + 1, q1 + 1)]
        ratio = {"ritardando": 0.85, "accelerando": 1.12}[change]
        assert bpm[-1] / bpm[0] == pytest.approx(ratio, rel=2e-3)
        steps = np.diff(bpm)
        assert np.all(steps < 0) if change == "ritardando" else np.all(steps > 0), "a ramp moves one way"
    assert 30 < changes["ritardando"] + changes["accelerando"] < 90, f"about 30 % of 200 should change: {changes}"


def test_corpus_midi_has_tempo_information_and_unmasked_labels(demo_corpus):
    for split, stem in _pieces(demo_corpus):
        score = read_midi(demo_corpus / split / f"{stem}.mid")
        assert score.has_tempo_info, f"{stem}: the MIDI reader sees no tempo information"
        assert not np.any(score.tempo_bpm == 120.0)
        assert 40.0 <= score.tempo_bpm.min() and score.tempo_bpm.max() <= 300.0
        assert len(score.beats) >= 2
        steps = np.abs(np.diff(np.log(score.tempo_bpm)))
        assert np.all(steps < np.log(1.025)), f"{stem}: a tempo change is not gentle: {score.tempo_bpm}"
        frame_rate, duration = 44100 / 2048, 64 * 2048 / 44100          # T_H = 64 frames, R1 = R2 = 4
        labels = derive_labels(score.window(0.0, min(duration, score.end_time)), duration, frame_rate)
        assert labels["beat_mask"].all() and labels["tempo_mask"].all(), f"{stem}: beat/tempo labels masked"
        assert labels["beat"].sum() >= 2
        first = float(normalise_bpm(score.tempo_bpm[0]))
        assert abs(float(labels["tempo"][0]) - first) < 0.1 and abs(first) > 1e-3


def test_caption_pace_follows_the_written_tempo(demo_corpus):
    for split, stem in _pieces(demo_corpus):
        score = read_midi(demo_corpus / split / f"{stem}.mid")
        seg = np.diff(np.append(score.tempo_times, score.end_time))
        bpm = float(np.sum(seg * score.tempo_bpm) / seg.sum())
        pace = "slow" if bpm < 80 else "moderate" if bpm < 110 else "lively"
        caption = json.loads((demo_corpus / split / f"{stem}.json").read_text())["caption"]
        assert f" a {pace} " in caption, f"{stem}: {bpm:.1f} bpm but caption {caption!r}"
        assert _manifest(demo_corpus)["pieces"][stem]["has_tempo_info"]
    by = {ins.program: ins for ins in dc.PALETTE}
    assert dc.describe([by[73]], False, 75.0, None, "ritardando") == \
        ("flute", "A flute plays a slow piece, gradually slowing down.")
    assert dc.describe([by[73], by[42]], True, 130.0, "a shaker", "accelerando")[1] == \
        "A flute and a cello play a lively two-part piece over drums with a shaker, gradually speeding up."


def test_corpus_velocities_vary(demo_corpus):
    pooled = []
    for split, stem in _pieces(demo_corpus):
        score = read_midi(demo_corpus / split / f"{stem}.mid")
        pitched = score.notes.velocity[~score.notes.is_drum]
        assert pitched.min() >= 30 and pitched.max() <= 120
        pooled.append(pitched)
        if len(pitched) >= 12:          # (a 4 s clip of a motet may hold two notes)
            assert len(np.unique(pitched)) >= 6 and pitched.std() > 3.0, f"{stem}: {np.unique(pitched)}"
        if score.notes.is_drum.any():
            assert len(np.unique(score.notes.velocity[score.notes.is_drum])) >= 5
    pooled = np.concatenate(pooled)
    assert pooled.std() > 8.0, f"velocity std over the corpus {pooled.std():.1f}"


def _bwv66_score(seconds: float = 20.0) -> "dc.CutScore":
    return dc.extract_score(dc.Candidate("bach/bwv66.6.mxl"), seconds)


def test_phrase_dynamics_levels_accents_and_drums():
    score = _bwv66_score()                          # 96 bpm, 4/4 with a quarter pickup: ~8 bars in 20 s
    assert score.tempos == [(0, 625_000)] and len({n[3] for p in score.parts for n in p}) == 1
    dyn = dc.plan_dynamics(score, dc.piece_rng(0, "x", "dynamics"))
    levels = [name for _, name, _ in dyn.phrases]
    assert len(dyn.phrases) >= 3, dyn.phrases
    assert all(a != b for a, b in zip(levels, levels[1:])), "consecutive phrases move"
    assert len(set(levels)) >= 2 and set(levels) <= set(dc.DYNAMIC_LEVELS)
    tm = score.tempo_map
    starts = [t for t, _, _ in dyn.phrases]
    bar_starts = {b[0] for b in score.bars}
    assert set(starts) <= bar_starts, "phrases start on bar lines"
    lengths = np.diff(tm.seconds(np.maximum(starts + [score.end_tick], 0)))
    assert np.all(lengths[:-1] >= 2.5 - 1e-9) and np.all(lengths[:-1] <= 6.0 + 2.6), lengths
    for start, name, _ in dyn.phrases:
        assert dyn.level(start) == dc.DYNAMIC_LEVELS[name]

    parts = dc.apply_dynamics(score, dyn, dc.piece_rng(0, "x", "velocity"))
    assert [[n[:3] for n in p] for p in parts] == [[n[:3] for n in p] for p in score.parts], "only velocities change"
    notes = np.asarray([n for p in parts for n in p], dtype=np.float64)
    # the level explains most of the variance, and notes on a downbeat sit above notes off the beat
    residual = notes[:, 3] - dyn.level(notes[:, 0])
    assert np.corrcoef(notes[:, 3], dyn.level(notes[:, 0]))[0, 1] > 0.8
    tpq = score.ticks_per_beat
    downbeat = np.isin(notes[:, 0], [b[0] for b in score.bars])
    offbeat = (notes[:, 0] % tpq) != 0
    assert downbeat.any() and offbeat.any()
    gap = residual[downbeat].mean() - residual[offbeat].mean()
    assert gap == pytest.approx(dc.ACCENTS["downbeat"] - dc.ACCENTS["off-beat"], abs=3.0), gap

    flat_pattern, flat = dc.drum_track(score, dc.piece_rng(0, "x", "drums"))
    pattern, drums = dc.drum_track(score, dc.piece_rng(0, "x", "drums"), dyn)
    assert pattern == flat_pattern and [d[:3] for d in drums] == [d[:3] for d in flat]
    shift = np.asarray([d[3] - f[3] for d, f in zip(drums, flat)], dtype=np.float64)
    expected = 0.6 * (dyn.level([d[0] for d in drums]) - dc.DYNAMIC_LEVELS["mf"])
    unclipped = np.asarray([20 < d[3] < 127 for d in drums])
    assert np.abs(shift - expected)[unclipped].max() <= 0.5 + 1e-9, "drums follow the level"


def test_rendered_loudness_follows_velocity(tmp_path):
    # The same three notes at velocity 40 and 100: TinySoundFont scales a voice's amplitude by
    # velocity / 127 (20 log10 of it in dB), so the RMS ratio is 100 / 40 = 2.5.
    notes = [(0, 480, 60), (480, 960, 64), (960, 1440, 67)]
    soft = dc.render_midi(_write_midi(tmp_path / "soft.mid", notes, 1920, program=0, velocity=40))
    loud = dc.render_midi(_write_midi(tmp_path / "loud.mid", notes, 1920, program=0, velocity=100))
    rms = [float(np.sqrt(np.mean(x ** 2))) for x in (soft, loud)]
    assert rms[1] / rms[0] == pytest.approx(2.5, rel=0.05), rms


def test_corpus_audio_loudness_follows_its_dynamics(demo_corpus, tmp_path):
    """Re-render a corpus piece with every velocity set to 90: the level difference between the
    corpus render and the flat one, per 0.25 s, tracks the mean velocity of the notes struck there."""
    split, stem = max(_pieces(demo_corpus), key=lambda p: _manifest(demo_corpus)["pieces"][p[1]]["velocity"]["std"])
    mid = demo_corpus / split / f"{stem}.mid"
    mf = mido.MidiFile(str(mid))
    for track in mf.tracks:
        for i, msg in enumerate(track):
            if msg.type == "note_on" and msg.velocity > 0:
                track[i] = msg.copy(velocity=90)
    mf.save(str(tmp_path / "flat.mid"))
    shaped, flat = dc.render_midi(mid), dc.render_midi(tmp_path / "flat.mid")
    hop = SR // 4
    notes = _midi_notes(mid)
    velocities = {}
    now = 0.0
    for msg in mido.MidiFile(str(mid)):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            velocities.setdefault(int(now * 4), []).append(msg.velocity)
    diff_db, mean_vel = [], []
    for k, vels in sorted(velocities.items()):
        a, b = shaped[k * hop:(k + 1) * hop], flat[k * hop:(k + 1) * hop]
        if len(a) == hop and np.sqrt(np.mean(b ** 2)) > 1e-3:
            diff_db.append(20 * np.log10(np.sqrt(np.mean(a ** 2)) / np.sqrt(np.mean(b ** 2))))
            mean_vel.append(20 * np.log10(np.mean(vels) / 90))
    assert len(notes) > 0 and len(diff_db) >= 8
    r = np.corrcoef(diff_db, mean_vel)[0, 1]
    assert r > 0.7, f"{stem}: loudness change vs velocity change r = {r:.2f}"


def test_builds_are_byte_identical(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        dc.build_demo_corpus(root, num_pieces=2, seconds=2.0, seed=3, workers=1)
    files = sorted(str(p.relative_to(roots[0])) for p in roots[0].rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(roots[1])) for p in roots[1].rglob("*") if p.is_file())
    for name in files:
        a, b = (root / name for root in roots)
        if name == "manifest.json":
            ma, mb = (json.loads(x.read_text()) for x in (a, b))
            ma.pop("build_seconds"), mb.pop("build_seconds")
            assert ma == mb
        else:
            assert a.read_bytes() == b.read_bytes(), f"{name} differs between two builds"


def test_a_cache_of_an_older_format_is_rebuilt(tmp_path):
    root = tmp_path / "corpus"
    dc.build_demo_corpus(root, num_pieces=1, seconds=1.0, seed=2, workers=1)
    for name in ("manifest.json", ".build_params.json"):
        data = json.loads((root / name).read_text())
        params = data["params"] if name == "manifest.json" else data
        params["format_version"] = dc.FORMAT_VERSION - 1
        (root / name).write_text(json.dumps(data))
    stem = _manifest(root)["splits"]["train"][0]
    (root / "train" / f"{stem}.wav").write_bytes(b"stale")
    assert dc.ensure_demo_corpus(root, num_pieces=1, seconds=1.0, seed=2, workers=1) == root
    assert _manifest(root)["params"]["format_version"] == dc.FORMAT_VERSION
    assert sf.info(str(root / "train" / f"{stem}.wav")).frames > 0


def test_a_score_with_its_own_dynamics_keeps_them():
    # Two bars of 4/4 at 480 ticks per quarter; music21 gave the notes velocities 40 (p) and 127 (fff).
    score = dc.CutScore(candidate=dc.Candidate("x/y.mxl"), ticks_per_beat=480, tempos=[(0, 600_000)],
                        time_signatures=[(0, 4, 4)], key_signatures=[], bars=[(0, 1920, 4), (1920, 1920, 4)],
                        parts=[[(0, 480, 60, 40), (1920, 2400, 62, 127), (2160, 2400, 64, 127)]],
                        part_names=["a"], end_tick=3840)
    dyn = dc.plan_dynamics(score, np.random.default_rng(0))
    assert dyn.phrases == () and dyn.level(0) == 40 and dyn.level(1920) == 127   # bar means of the notes
    for seed in range(20):
        (a, b, c), = dc.apply_dynamics(score, dyn, np.random.default_rng(seed))
        # level + downbeat accent 8 (off-beat -3 for c) + jitter within 2.5 x 3, rounded (+-0.5);
        # 127 is first clipped to ff = 106, and the result to 120
        assert 40 + 8 - 8 <= a[3] <= 40 + 8 + 8
        assert 106 + 8 - 8 <= b[3] <= 120
        assert 106 - 3 - 8 <= c[3] <= 106 - 3 + 8
