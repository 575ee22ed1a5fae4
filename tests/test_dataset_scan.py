"""Issue 12, item 10: a 0-byte, corrupt or truncated file in a dataset folder is found when the dataset is
built (one WARNING line each and a count) and left out, for SAGA-SR and HS-MAD alike, instead of killing
training at step 0 with worker tracebacks; ``"on_bad_file": "error"`` stops instead, naming the files; the
verdicts are cached by path, size and mtime; config_check reports the files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, load_json

from saga_hsmad.data import scan as scan_module
from saga_hsmad.data.loader import create_dataloader_from_config, create_dataset_from_config
from saga_hsmad.data.scan import UnreadableFilesError, scan

CONTEXT = dict(sample_size=32768, sample_rate=44100, audio_channels=2, seed=0, downsampling_ratio=64)
CONFIGS = ["dataset_configs/saga_sr/demo.json", "dataset_configs/hsmad/demo.json", "dataset_configs/demo_audio.json"]


@pytest.fixture(autouse=True)
def _own_scan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGA_HSMAD_CACHE", str(tmp_path / "cache"))


def add_piece(folder: Path, stem: str, audio_bytes: bytes | None = None, midi_bytes: bytes | None = None) -> Path:
    """A piece named ``stem`` with the sidecars (style, caption) and MIDI of a good piece; its audio (and MIDI)
    replaced by ``audio_bytes`` (``midi_bytes``) when given."""
    good = sorted(folder.glob("*.wav"))[0]
    for ext in (".json", ".mid", ".wav"):
        shutil.copy(good.with_suffix(ext), folder / f"{stem}{ext}")
    if audio_bytes is not None:
        (folder / f"{stem}.wav").write_bytes(audio_bytes)
    if midi_bytes is not None:
        (folder / f"{stem}.mid").write_bytes(midi_bytes)
    return folder / f"{stem}.wav"


def corpus_copy(demo_corpus: Path, tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(demo_corpus / "train", root / "train")
    return root


def garbage(n: int = 3000) -> bytes:
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("config_path", CONFIGS)
def test_bad_audio_files_are_listed_skipped_and_counted(config_path, demo_corpus, tmp_path, monkeypatch, capsys):
    root = corpus_copy(demo_corpus, tmp_path)
    good = len(list((root / "train").glob("*.wav")))
    empty = add_piece(root / "train", "empty", audio_bytes=b"")
    corrupt = add_piece(root / "train", "corrupt", audio_bytes=garbage())
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(root))
    config = load_json(REPO / config_path)

    dataset = create_dataset_from_config(config, config_path, **CONTEXT)
    err = capsys.readouterr().err
    assert len(dataset) == good
    assert f"WARNING {empty}: is empty (0 bytes)" in err
    assert f"WARNING {corrupt}: is not readable audio" in err
    assert f"skipped 2 of {good + 2} items" in err
    assert len(err.strip().splitlines()) == 3, err  # one line per bad file and the count, no traceback
    # the loader trains on the rest: a whole pass over the data reads only good files
    loader = create_dataloader_from_config({**config, "repeat": 1}, batch_size=good, num_workers=0, **{
        k: v for k, v in CONTEXT.items() if k != "audio_channels"})
    audio, metadata = next(iter(loader))
    assert audio.shape == (good, 2, CONTEXT["sample_size"])
    assert {Path(m["path"]).stem for m in metadata}.isdisjoint({"empty", "corrupt"})

    with pytest.raises(UnreadableFilesError) as info:
        create_dataset_from_config({**config, "on_bad_file": "error"}, config_path, **CONTEXT)
    message = str(info.value)
    assert f"ERROR {empty}: is empty" in message and f"ERROR {corrupt}: is not readable audio" in message
    assert "2 of 4 items" in message and set(info.value.bad) == {empty, corrupt}


def test_unreadable_midi_skips_its_track(demo_corpus, tmp_path, monkeypatch, capsys):
    root = corpus_copy(demo_corpus, tmp_path)
    add_piece(root / "train", "bad_midi", midi_bytes=b"MThd\x00\x00\x00\x06\x00\x01")  # cut inside the header
    add_piece(root / "train", "empty_midi", midi_bytes=b"")
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(root))
    config = load_json(REPO / "dataset_configs/hsmad/demo.json")
    dataset = create_dataset_from_config(config, **CONTEXT)
    err = capsys.readouterr().err
    assert [t.audio.stem for t in dataset.tracks] == sorted(p.stem for p in demo_corpus.glob("train/*.wav"))
    assert f"WARNING {root / 'train' / 'bad_midi.mid'}: is not readable MIDI: empty or truncated" in err
    assert f"WARNING {root / 'train' / 'empty_midi.mid'}: is empty (0 bytes)" in err
    assert "skipped 2 of 4 items" in err
    with pytest.raises(UnreadableFilesError, match=r"ERROR .*bad_midi\.mid"):
        create_dataset_from_config({**config, "on_bad_file": "error"}, **CONTEXT)


def test_maestro_and_slakh_skip_tracks_with_bad_files(tmp_path, capsys):
    from test_midi_audio_dataset import CONTEXT as MIDI_CONTEXT
    from test_midi_audio_dataset import make_maestro, make_slakh

    slakh = make_slakh(tmp_path / "slakh")
    mix = slakh / "train" / "Track00002" / "mix.flac"
    mix.write_bytes(mix.read_bytes()[:200])
    dataset = create_dataset_from_config({"dataset_type": "slakh", "root": str(slakh)}, **MIDI_CONTEXT)
    assert [t.audio.parent.name for t in dataset.tracks] == ["Track00001"]
    assert f"WARNING {mix}: " in capsys.readouterr().err
    maestro = make_maestro(tmp_path / "maestro")
    midi = sorted(maestro.rglob("*.midi"))[0]
    midi.write_bytes(b"")
    with pytest.raises(UnreadableFilesError, match=f"ERROR {midi}: is empty"):
        create_dataset_from_config({"dataset_type": "maestro", "root": str(maestro), "split": None,
                                    "on_bad_file": "error"}, **MIDI_CONTEXT)


def test_a_dataset_with_no_usable_file_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"")
    with pytest.raises(UnreadableFilesError, match=r"none of its items is usable.*\n  ERROR .*x\.wav: is empty"):
        create_dataset_from_config({"dataset_type": "audio_folder", "roots": str(tmp_path / "a")}, **CONTEXT)


def test_truncated_nan_and_foreign_channel_files(tmp_path):
    noise = (0.1 * np.random.default_rng(0).standard_normal((44100 * 2, 2))).astype(np.float32)
    sf.write(tmp_path / "good.flac", noise, 44100)
    sf.write(tmp_path / "mono.wav", noise[:, 0], 44100)
    data = (tmp_path / "good.flac").read_bytes()
    (tmp_path / "half.flac").write_bytes(data[: len(data) // 2])  # header says 2 s, half the frames are there
    nan = noise.copy()
    nan[-10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 44100, subtype="FLOAT")
    sf.write(tmp_path / "six.wav", np.zeros((1000, 6), np.float32), 44100)
    names = ["good.flac", "mono.wav", "half.flac", "nan.wav", "six.wav"]
    bad = {p.name: reason for p, reason in scan([tmp_path / n for n in names], channels=2).items()}
    assert set(bad) == {"half.flac", "nan.wav", "six.wav"}
    assert "truncated" in bad["half.flac"] and "NaN" in bad["nan.wav"] and "6 channels" in bad["six.wav"]
    assert scan([tmp_path / "six.wav"], channels=1) == {}  # a mono dataset takes the mean of any channels


def test_verdicts_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", np.zeros((500, 2), np.float32), 44100)
    (tmp_path / "bad.wav").write_bytes(garbage())
    probed = []
    real_probe = scan_module.probe
    monkeypatch.setattr(scan_module, "probe", lambda path: probed.append(path.name) or real_probe(path))
    files = sorted(tmp_path.glob("*.wav"))

    first = scan(files)
    assert sorted(probed) == ["0.wav", "1.wav", "2.wav", "bad.wav"] and [p.name for p in first] == ["bad.wav"]
    assert list((tmp_path / "cache" / "scan").glob("*.json")), "the cache lives under $SAGA_HSMAD_CACHE/scan"
    probed.clear()
    assert scan(files) == first and probed == []  # nothing re-read
    sf.write(tmp_path / "1.wav", np.zeros((700, 2), np.float32), 44100)  # changed: size and mtime
    (tmp_path / "bad.wav").write_bytes(b"")
    second = scan(files)
    assert sorted(probed) == ["1.wav", "bad.wav"] and "0 bytes" in second[tmp_path / "bad.wav"]


def test_config_check_reports_bad_files_with_the_model(demo_corpus, tmp_path, monkeypatch, capsys):
    from saga_hsmad.config_check import main

    root = corpus_copy(demo_corpus, tmp_path)
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(root))
    model = str(REPO / "model_configs/hsmad/tiny.json")
    data = str(REPO / "dataset_configs/hsmad/demo.json")
    assert main([model, data]) == 0
    assert f"{data}: ok" in capsys.readouterr().out

    empty = add_piece(root / "train", "empty", audio_bytes=b"")
    assert main([model, data]) == 1
    out = capsys.readouterr()
    assert f"ERROR {empty}: is empty (0 bytes)" in out.err and f"{data}: ok" not in out.out
    assert "Traceback" not in out.err
    # a SAGA-SR pair sees the same file
    assert main([str(REPO / "model_configs/saga_sr/tiny.json"), str(REPO / "dataset_configs/saga_sr/demo.json")]) == 1
    assert f"ERROR {empty}: is empty (0 bytes)" in capsys.readouterr().err


def test_on_bad_file_is_a_validated_config_key():
    from saga_hsmad.config_check import validate_dataset_config

    for path in CONFIGS:
        config = load_json(REPO / path)
        assert validate_dataset_config({**config, "on_bad_file": "error"}) == []
        assert [p.path for p in validate_dataset_config({**config, "on_bad_file": "ignore"})] == ["dataset.on_bad_file"]


def test_train_py_with_on_bad_file_error_prints_one_line_per_file(demo_corpus, tmp_path, monkeypatch, capsys):
    """train.py stops before training, one ``ERROR <file>: <reason>`` line per bad file, status 1, no traceback."""
    import importlib.util

    root = corpus_copy(demo_corpus, tmp_path)
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(root))
    empty = add_piece(root / "train", "empty", audio_bytes=b"")
    data = tmp_path / "data.json"
    data.write_text(json.dumps({**load_json(REPO / "dataset_configs/saga_sr/demo.json"), "on_bad_file": "error"}))
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)
    rc = train_script.main(["--model-config", str(REPO / "model_configs/saga_sr/tiny.json"), "--dataset-config",
                            str(data), "--max-steps", "1", "--save-dir", str(tmp_path / "runs"), "--accelerator", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"ERROR {empty}: is empty (0 bytes)" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))
