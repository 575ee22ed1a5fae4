"""HS-MAD datasets (spec §7): audio and MIDI cut from the same span, latent-rate rendering, MAESTRO split and
tempo masking, Slakh style text, the generic folder with the demo layout, and the shipped dataset configs.

Everything is synthetic and built in tmp_path: clicks in the audio at the times of the MIDI notes, written
with soundfile and mido."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import saga_hsmad.data.maestro  # noqa: F401  (registers "maestro"; until saga_hsmad.data imports it)
import saga_hsmad.data.slakh  # noqa: F401
from saga_hsmad.data import midi_audio_dataset as mad
from saga_hsmad.data.loader import collate, create_dataloader_from_config, create_dataset_from_config
from saga_hsmad.models.structure_packing import SRM_CHANNELS, structure_channels, unpack_structure

REPO = Path(__file__).resolve().parents[1]
SR = 22050                 # model sample rate
RATIO = 256                # pretransform downsampling ratio
FR = SR / RATIO            # SR_latent = 86.1328125 frames/s
SIZE = RATIO * 16 * 16     # sample_size: T_H = 256 latent frames (a multiple of R1·R2 = 16), 2.972 s
DUR = SIZE / SR
FILE_SR = 44100            # files are written at another rate: the dataset resamples
CONTEXT = dict(sample_size=SIZE, sample_rate=SR, audio_channels=2, seed=0, downsampling_ratio=RATIO)
BPM = 100.0                # tempo of the synthetic MIDI (not the 120 bpm default: a real tempo map)


def pitch_at(c: int) -> int:
    return 40 + c


def write_midi(path: Path, note_times: list[float], bpm: float = BPM, ts: tuple[int, int] | None = (3, 4),
               duration: float = 0.25) -> Path:
    """Type-1 MIDI: conductor track (tempo, time signature), one note track; note at t has pitch 40 + t."""
    ppq = 480
    tps = ppq * bpm / 60.0                               # ticks per second
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    if ts is not None:
        conductor.append(mido.MetaMessage("time_signature", numerator=ts[0], denominator=ts[1], time=0))
    events = []
    for t in note_times:
        events.append((round(t * tps), 1, pitch_at(int(t))))
        events.append((round((t + duration) * tps), 0, pitch_at(int(t))))
    events.sort()
    track, now = mido.MidiTrack(), 0
    for tick, on, pitch in events:
        track.append(mido.Message("note_on", note=pitch, velocity=100 if on else 0, time=tick - now))
        now = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    mid.tracks += [conductor, track]
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))
    return path


def write_clicks(path: Path, seconds: float, click_times: list[float], sr: int = FILE_SR, channels: int = 1) -> Path:
    """Silence with a one-sample click (0.5) at each time."""
    audio = np.zeros((int(seconds * sr), channels), np.float32)
    for t in click_times:
        audio[round(t * sr)] = 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr)
    return path


def write_pair(folder: Path, stem: str, seconds: float = 20.0, times=None, style: str | None = "Test style",
               ext: str = ".wav", midi_name: str | None = None, **midi_kwargs) -> tuple[Path, Path]:
    times = list(range(1, int(seconds))) if times is None else times
    audio = write_clicks(folder / f"{stem}{ext}", seconds, times)
    midi = write_midi(folder / (midi_name or f"{stem}.mid"), times, **midi_kwargs)
    if style is not None:
        (folder / f"{stem}.json").write_text(json.dumps({"style": style, "caption": "ignored"}))
    return audio, midi


def folder_dataset(root: Path, **kwargs) -> mad.MidiAudioFolderDataset:
    return create_dataset_from_config({"dataset_type": "midi_audio_folder", "roots": str(root), **kwargs},
                                      **CONTEXT)


class FixedStart:
    """An rng whose only draw (the window offset in file samples) is fixed."""

    def __init__(self, offset: int):
        self.offset = offset

    def integers(self, low, high):
        assert low <= self.offset < high
        return self.offset


def structure_of(metadata: dict) -> torch.Tensor:
    return metadata["midi"]["structure"]


def onset_row(metadata: dict, pitch: int) -> torch.Tensor:
    return structure_of(metadata)[pitch]


def labels_of(metadata: dict) -> dict:
    return unpack_structure(structure_of(metadata)[None], factors=(4, 4))[2]


# -- alignment ------------------------------------------------------------------------------------------
def test_window_at_10s_click_and_note_at_12s_line_up(tmp_path, monkeypatch):
    write_pair(tmp_path, "piece")
    monkeypatch.setattr(mad, "item_rng", lambda seed, epoch, index: FixedStart(10 * FILE_SR))
    audio, md = folder_dataset(tmp_path)[0]
    assert md["seconds_start"] == 10.0 and audio.shape == (2, SIZE)
    assert torch.equal(audio[0], audio[1]), "mono file must become dual-mono"
    # the click at 12.0 s is at sample (12 - 10) * SR of the resampled window
    near = audio[0, 2 * SR - 200: 2 * SR + 200].abs()
    assert int(near.argmax()) + 2 * SR - 200 == 2 * SR
    # the note at 12.0 s peaks at frame floor(2.0 * SR_latent) of its onset row, with the spec's Gaussian value
    row = onset_row(md, pitch_at(12))
    frame = math.floor(2.0 * FR)
    assert int(row.argmax()) == frame == 172
    sigma = 1 / (2 * FR)
    expected = 100 / 127 * math.exp(-((frame / FR - 2.0) ** 2) / (2 * sigma ** 2))
    assert float(row[frame]) == pytest.approx(expected, rel=1e-5)
    # the notes at 10.0 s (window start) and 11.0 s are there; 9.0 s (before) is not; of 13.0 s (28 ms after the
    # window's end, 4.8 sigma) only the far tail of its onset kernel reaches the last frame, as in a full render
    assert int(onset_row(md, pitch_at(10)).argmax()) == 0
    assert int(onset_row(md, pitch_at(11)).argmax()) == round(1.0 * FR)
    assert float(onset_row(md, pitch_at(9)).abs().max()) == 0.0
    assert 0 < float(onset_row(md, pitch_at(13)).abs().max()) < 1e-9
    assert md["midi_path"].endswith("piece.mid") and md["path"].endswith("piece.wav")


def test_random_windows_align_audio_and_midi_everywhere(tmp_path):
    for i in range(3):
        write_pair(tmp_path, f"piece{i}")
    ds = folder_dataset(tmp_path, seed=3)
    starts = []
    for index in range(len(ds)):
        audio, md = ds[index]
        t0 = md["seconds_start"]
        starts.append(t0)
        assert md["seconds_total"] == pytest.approx(20.0)
        assert md["padding_mask"].all()
        inside = [c for c in range(1, 20) if t0 <= c < t0 + DUR - 0.05]
        assert inside, "a 3 s window of a file with a note every second must hold one"
        for c in inside:
            k = round((c - t0) * SR)
            lo = max(k - 100, 0)
            assert int(audio[0, lo: k + 100].abs().argmax()) + lo == k
            assert int(onset_row(md, pitch_at(c)).argmax()) == round((c - t0) * FR)
    assert len(set(starts)) == 3


def test_windows_deterministic_given_seed_epoch_index(tmp_path):
    write_pair(tmp_path, "piece")
    a, b = folder_dataset(tmp_path, seed=5), folder_dataset(tmp_path, seed=5)
    (xa, ma), (xb, mb) = a[0], b[0]
    assert torch.equal(xa, xb) and torch.equal(structure_of(ma), structure_of(mb))
    starts = set()
    for epoch in range(4):
        a.epoch = epoch
        starts.add(a[0][1]["seconds_start"])
    assert len(starts) > 1, "windows must change with the epoch"


def test_parsed_midi_is_cached_and_an_edited_file_read_again(tmp_path, monkeypatch):
    import saga_hsmad.conditioners.hierarchical_midi as hm

    _, midi = write_pair(tmp_path, "piece")
    cached, fresh = folder_dataset(tmp_path, seed=5), folder_dataset(tmp_path, seed=5)
    parsed = []
    real_read = hm.read_midi
    monkeypatch.setattr(hm, "read_midi", lambda path, **kw: parsed.append(path) or real_read(path, **kw))
    windows = []
    for epoch in range(3):
        cached.epoch = epoch
        windows.append(cached[0])
    assert len(parsed) == 1, "three windows of one piece parse its MIDI once"
    for epoch, (xa, ma) in enumerate(windows):
        fresh._scores.clear()
        fresh.epoch = epoch
        xb, mb = fresh[0]
        assert torch.equal(xa, xb) and torch.equal(structure_of(ma), structure_of(mb))
    parsed.clear()
    write_midi(midi, [2.0, 3.0, 4.0])                    # edited: fewer notes, another size
    cached[0]
    assert len(parsed) == 1, "an edited MIDI file is parsed again"
    monkeypatch.setattr(mad.MidiAudioDataset, "SCORE_CACHE", 0)
    uncached = folder_dataset(tmp_path, seed=5)
    uncached[0], uncached[0]
    assert len(parsed) == 3 and not uncached._scores, "a cache of 0 pieces keeps nothing"


def test_silent_windows_are_redrawn(tmp_path):
    write_pair(tmp_path, "sparse", seconds=20.0, times=[15.0])   # one note, at 15 s (0.25 s long)

    def sounding(ds, index):
        md = ds[index][1]
        return float(structure_of(md)[:SRM_CHANNELS].abs().sum()) > 0

    one_draw = folder_dataset(tmp_path, max_draws=1)
    many = folder_dataset(tmp_path, max_draws=60)
    silent = 0
    for epoch in range(10):
        one_draw.epoch = many.epoch = epoch
        silent += not sounding(one_draw, 0)
        assert sounding(many, 0), f"epoch {epoch}: 60 draws should find the note"
    assert silent > 0, "single draws of a mostly silent file should hit silence sometimes"


def test_short_file_is_padded_and_masked(tmp_path):
    write_pair(tmp_path, "short", seconds=1.0, times=[0.5])
    audio, md = folder_dataset(tmp_path)[0]
    real = int(md["padding_mask"].sum())
    assert real == SR and float(audio[:, real:].abs().max()) == 0.0
    packed = structure_of(md)
    valid = math.ceil(SR / RATIO)                       # 87 frames hold audio
    assert packed[SRM_CHANNELS].sum() == valid and bool(packed[SRM_CHANNELS, :valid].all())
    assert float(packed[:SRM_CHANNELS, valid:].abs().max()) == 0.0
    assert not labels_of(md)["chroma_mask"][0, math.ceil(valid / 4):].any()


def test_window_length_must_be_multiple_of_r1_r2(tmp_path):
    write_pair(tmp_path, "piece")
    with pytest.raises(ValueError, match=r"sample_size.*T_H = 100.*multiple of R1·R2 = 16.*e\.g\. 24576 or 28672"):
        create_dataset_from_config({"dataset_type": "midi_audio_folder", "roots": str(tmp_path)},
                                   **{**CONTEXT, "sample_size": RATIO * 100})
    with pytest.raises(ValueError, match="downsampling_ratio"):
        create_dataset_from_config({"dataset_type": "midi_audio_folder", "roots": str(tmp_path)},
                                   **{**CONTEXT, "downsampling_ratio": None})
    # the ratio may also come from the dataset config (the loader then does not override it)
    ds = create_dataset_from_config({"dataset_type": "midi_audio_folder", "roots": str(tmp_path),
                                     "downsampling_ratio": 128}, **CONTEXT)
    assert structure_of(ds[0][1]).shape[-1] == SIZE // 128
    with pytest.raises(TypeError, match=r"unknown key\(s\) \['sigma'\] in 'structure'"):
        folder_dataset(tmp_path, structure={"sigma": 0.1})


def test_structure_settings_reach_the_render(tmp_path):
    write_pair(tmp_path, "piece")
    md = folder_dataset(tmp_path, structure={"mode": "binary", "with_labels": False})[0][1]
    packed = structure_of(md)
    assert packed.shape == (SRM_CHANNELS + 1, SIZE // RATIO)
    assert set(packed[:128].unique().tolist()) <= {0.0, 1.0}
    assert md["midi"]["render"]["mode"] == "binary" and md["midi"]["render"]["downsampling_ratio"] == RATIO


# -- generic folder / demo layout ---------------------------------------------------------------------
def make_demo_layout(root: Path) -> Path:
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        for i in range(n):
            write_pair(root / split, f"{split}_{i:03d}", seconds=6.0, style=f"{split} style {i}")
    return root


def test_folder_with_demo_layout_split_and_style(tmp_path):
    root = make_demo_layout(tmp_path / "demo")
    train = folder_dataset(root, split="train")
    valid = folder_dataset(root, split="valid")
    assert [t.audio.name for t in train.tracks] == ["train_000.wav", "train_001.wav"]
    assert [t.audio.name for t in valid.tracks] == ["valid_000.wav"]
    audio, md = valid[0]
    assert md["style"] == "valid style 0" and audio.shape == (2, SIZE)
    assert structure_of(md).shape == (structure_channels(with_labels=True), SIZE // RATIO)
    assert len(folder_dataset(root)) == 4                               # no split: recursive over all


def test_folder_style_fallbacks_and_missing_midi(tmp_path):
    write_pair(tmp_path, "a", seconds=4.0, style=None)
    with pytest.raises(KeyError, match=r"no style text for .*a\.wav.*default_style"):
        folder_dataset(tmp_path)
    assert folder_dataset(tmp_path, default_style="Solo piano")[0][1]["style"] == "Solo piano"
    write_clicks(tmp_path / "orphan.wav", 4.0, [1.0])
    with pytest.raises(FileNotFoundError, match=r"orphan\.wav has no same-stem \.mid"):
        folder_dataset(tmp_path, default_style="x")
    assert len(folder_dataset(tmp_path, default_style="x", missing_midi="skip")) == 1


def test_folder_tempo_labels_from_the_tempo_map(tmp_path, monkeypatch):
    write_pair(tmp_path, "piece")
    monkeypatch.setattr(mad, "item_rng", lambda seed, epoch, index: FixedStart(10 * FILE_SR))
    labels = labels_of(folder_dataset(tmp_path)[0][1])
    assert labels["tempo_mask"].all() and labels["tempo"][0].tolist() == pytest.approx([math.log2(BPM / 120)] * 16)
    # 100 bpm, 3/4: beats every 0.6 s (10.2, 10.8, ...), downbeats every 1.8 s (10.8, 12.6); window from 10.0 s
    frame_m = 4 / FR
    beat_frames = {math.floor(round(t - 10.0, 6) / frame_m) for t in np.arange(10.2, 10.0 + DUR, 0.6)}
    down_frames = {math.floor(round(t - 10.0, 6) / frame_m) for t in (10.8, 12.6)}
    assert set(torch.nonzero(labels["beat"][0]).flatten().tolist()) == beat_frames
    assert set(torch.nonzero(labels["downbeat"][0]).flatten().tolist()) == down_frames
    assert labels["beat_mask"].all() and labels["downbeat_mask"].all()
    # performance_midi masks them
    labels = labels_of(folder_dataset(tmp_path, performance_midi=True)[0][1])
    assert not labels["tempo_mask"].any() and not labels["beat_mask"].any() and not labels["downbeat_mask"].any()
    assert labels["chroma_mask"].any() and labels["key_mask"].any()


# -- MAESTRO --------------------------------------------------------------------------------------------
def make_maestro(root: Path) -> Path:
    rows = []
    for split, name in (("train", "a"), ("validation", "b"), ("test", "c"), ("train", "d")):
        audio, midi = write_pair(root / "2018", f"MIDI-Unprocessed_{name}", seconds=5.0, style=None,
                                 midi_name=f"MIDI-Unprocessed_{name}.midi")
        rows.append({"canonical_composer": "Composer", "canonical_title": f"Piece {name}", "split": split,
                     "year": 2018, "midi_filename": f"2018/{midi.name}", "audio_filename": f"2018/{audio.name}",
                     "duration": 5.0})
    with (root / "maestro-v3.0.0.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def maestro(root: Path, **kwargs):
    return create_dataset_from_config({"dataset_type": "maestro", "root": str(root), **kwargs}, **CONTEXT)


def test_maestro_split_selection(tmp_path):
    root = make_maestro(tmp_path / "maestro-v3.0.0")
    names = lambda ds: [t.audio.name for t in ds.tracks]  # noqa: E731
    assert names(maestro(root)) == ["MIDI-Unprocessed_a.wav", "MIDI-Unprocessed_d.wav"]
    assert names(maestro(root, split="validation")) == ["MIDI-Unprocessed_b.wav"]
    assert names(maestro(root, split="valid")) == ["MIDI-Unprocessed_b.wav"]
    assert names(maestro(root, split="test")) == ["MIDI-Unprocessed_c.wav"]
    assert len(maestro(root, split=None)) == 4
    with pytest.raises(ValueError, match="split 'dev'"):
        maestro(root, split="dev")
    (root / "2018" / "MIDI-Unprocessed_c.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"line 4 names .*MIDI-Unprocessed_c\.wav"):
        maestro(root, split="test")


def test_maestro_style_and_tempo_masking(tmp_path):
    root = make_maestro(tmp_path / "maestro")
    audio, md = maestro(root, split="validation")[0]
    assert md["style"] == "Classical Piano Performance" and md["midi_path"].endswith(".midi")
    labels = labels_of(md)
    # the MIDI has a real 100 bpm map and 3/4, yet MAESTRO masks tempo and beats: performance captures
    assert not labels["tempo_mask"].any() and not labels["beat_mask"].any() and not labels["downbeat_mask"].any()
    assert labels["chroma_mask"].any()
    # the same files through the generic folder keep their tempo labels (the masking is MAESTRO's)
    folder = folder_dataset(root / "2018", default_style="x")
    assert labels_of(folder[1][1])["tempo_mask"].all()


# -- Slakh ----------------------------------------------------------------------------------------------
STEMS = {
    "S00": {"inst_class": "Piano", "program_num": 0, "is_drum": False, "midi_program_name": "Acoustic Grand Piano",
            "audio_rendered": True},
    "S01": {"inst_class": "Bass", "program_num": 33, "is_drum": False, "midi_program_name": "Electric Bass (finger)",
            "audio_rendered": True},
    "S02": {"inst_class": "Drums", "program_num": 128, "is_drum": True, "midi_program_name": "Drums",
            "audio_rendered": True},
    "S03": {"inst_class": "Guitar", "program_num": 25, "is_drum": False, "midi_program_name": "Acoustic Guitar (steel)",
            "audio_rendered": True},
    "S04": {"inst_class": "Piano", "program_num": 4, "is_drum": False, "midi_program_name": "Electric Piano 1",
            "audio_rendered": True},
    "S05": {"inst_class": "Strings", "program_num": 48, "is_drum": False, "midi_program_name": "String Ensemble 1",
            "audio_rendered": False},
}


def make_slakh(root: Path) -> Path:
    for split, track, extra in (("train", "Track00001", {}), ("train", "Track00002", {"genre": "Rock"}),
                                ("validation", "Track01501", {})):
        folder = root / split / track
        write_pair(folder, "mix", seconds=5.0, style=None, ext=".flac", midi_name="all_src.mid")
        meta = {"UUID": "1a81ae092884234f3264e2f45927f00a", "audio_dir": "stems", "midi_dir": "MIDI",
                "normalization_factor": -13.0, "normalized": True, "overall_gain": 0.18, "stems": STEMS,
                "target_peak": -1.0, **extra}
        (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return root


def slakh(root: Path, **kwargs):
    return create_dataset_from_config({"dataset_type": "slakh", "root": str(root), **kwargs}, **CONTEXT)


def test_slakh_style_text_from_metadata(tmp_path):
    root = make_slakh(tmp_path / "slakh2100")
    ds = slakh(root)
    # classes once each, stem order; the un-rendered Strings stem is not in the mix
    assert [t.style for t in ds.tracks] == ["Piano, Bass, Drums and Guitar", "Rock with Piano, Bass, Drums and Guitar"]
    audio, md = ds[0]
    assert md["style"] == "Piano, Bass, Drums and Guitar" and md["midi_path"].endswith("all_src.mid")
    assert md["path"].endswith("mix.flac") and torch.equal(audio[0], audio[1])
    assert labels_of(md)["tempo_mask"].all(), "Lakh MIDI carry real tempo maps"
    assert [t.audio.parent.name for t in slakh(root, split="valid").tracks] == ["Track01501"]
    assert len(slakh(root, split=None)) == 3


def test_slakh_style_helpers():
    from saga_hsmad.data.slakh import join_names, slakh_style

    assert join_names(["A"]) == "A" and join_names(["A", "B"]) == "A and B"
    metadata = {"stems": {"S00": {"inst_class": "Bass"}}, "genre": ["Jazz", "Funk"]}
    assert slakh_style(metadata) == "Jazz and Funk with Bass"
    assert slakh_style({"stems": {}}) == "Music"


# -- loader, conditioner and shipped configs ------------------------------------------------------------
def test_batches_feed_the_hierarchical_midi_conditioner(tmp_path):
    from saga_hsmad.conditioners.hierarchical_midi import HierarchicalMidiConditioner
    from saga_hsmad.pretransforms.patch_pretransform import PatchPretransform

    root = make_demo_layout(tmp_path / "demo")
    loader = create_dataloader_from_config({"dataset_type": "midi_audio_folder", "roots": str(root),
                                            "split": "train"}, batch_size=2, num_workers=0, **CONTEXT)
    audio, metadata = next(iter(loader))
    assert audio.shape == (2, 2, SIZE) and isinstance(metadata[0]["padding_mask"], list)
    def make(ratio=RATIO, **kwargs):
        return HierarchicalMidiConditioner(pretransform=PatchPretransform(patch_size=ratio, orthogonal_mix=False),
                                           **kwargs)

    cond = make()
    structure, mask = cond([md["midi"] for md in metadata], "cpu")
    assert structure.shape == (2, structure_channels(with_labels=True), SIZE // RATIO) and mask.shape == (2, SIZE // RATIO)
    for i, md in enumerate(metadata):
        assert torch.equal(structure[i], md["midi"]["structure"])
    explicit_default = make(sigma_on=1 / (2 * FR))              # None in the data stands for the same value
    assert torch.equal(explicit_default([md["midi"] for md in metadata], "cpu")[0], structure)
    other = make(sigma_on=0.01)
    with pytest.raises(ValueError, match=r"sigma_on = 0\.0058\d* s in the data, 0\.01 s in the model"):
        other([md["midi"] for md in metadata], "cpu")
    wrong_ratio = make(128)
    with pytest.raises(ValueError, match="downsampling ratio of 256, the model's pretransform has 128"):
        wrong_ratio([md["midi"] for md in metadata], "cpu")
    assert collate  # the loader's collate is what wrapped padding_mask above


SHIPPED = ["demo.json", "demo_valid.json", "maestro.json", "slakh.json", "folder.json"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_dataset_configs_validate_and_build(name, tmp_path, monkeypatch):
    from saga_hsmad.config_check import load_config

    config = load_config(REPO / "dataset_configs" / "hsmad" / name, "dataset")
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(make_demo_layout(tmp_path / "demo")))
    monkeypatch.setenv("MAESTRO_ROOT", str(make_maestro(tmp_path / "maestro")))
    monkeypatch.setenv("SLAKH_ROOT", str(make_slakh(tmp_path / "slakh")))
    monkeypatch.setenv("MIDI_AUDIO_ROOT", str(tmp_path / "demo" / "train"))
    ds = create_dataset_from_config(config, name, **CONTEXT)
    audio, md = ds[0]
    assert audio.shape == (2, SIZE) and isinstance(md["style"], str) and "midi" in md
