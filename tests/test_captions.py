"""Caption stores (JSON, CSV, sidecar, time ranges, missing → error) and the captioner's resume logic
with a stub model (no weights)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from saga_hsmad.cli import caption as cap
from saga_hsmad.data.captions import CaptionStore, MissingCaptionError


def touch_audio(path: Path, seconds: float = 0.1, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr)
    return path


def test_json_store_relative_path_stem_and_ranges(tmp_path):
    root = tmp_path / "data"
    a, b, c = root / "sub" / "a.wav", root / "b.flac", root / "c.wav"
    store_file = tmp_path / "captions.json"
    store_file.write_text(json.dumps({
        "sub/a.wav": "a dog barks",
        "b": {"caption": "rain on a roof"},
        "c.wav": [{"start": 0.0, "end": 5.0, "caption": "speech"},
                  {"start": 5.0, "end": 10.0, "caption": "applause"}],
    }))
    store = CaptionStore(store_file, root=root)
    assert store.lookup(a) == "a dog barks"
    assert store.lookup(b) == "rain on a roof"
    assert store.lookup(c, 0.5, 3.0) == "speech"
    assert store.lookup(c, 4.0, 9.0) == "applause"  # 4 s overlap with the second range vs 1 s
    assert store.lookup(c, 20.0, 25.0) == "applause"  # no overlap: nearest range
    # a key that is a trailing part of the path works whatever the dataset root (e.g. a split subfolder)
    assert CaptionStore(store_file, root=root / "sub").lookup(a) == "a dog barks"


def test_csv_store_with_and_without_ranges(tmp_path):
    root = tmp_path / "data"
    store_file = tmp_path / "captions.csv"
    store_file.write_text("path,caption,start,end\n"
                          "x.wav,\"a piano, softly\",,\n"
                          "y.wav,birds,0,2\n"
                          "y.wav,a car passes,2,4\n")
    store = CaptionStore(store_file, root=root)
    assert store.lookup(root / "x.wav") == "a piano, softly"
    assert store.lookup(root / "y.wav", 2.5, 3.5) == "a car passes"
    assert store.lookup(root / "y.wav", 0.0, 1.0) == "birds"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,text\nx.wav,hi\n")
    with pytest.raises(ValueError, match="'path' and 'caption'"):
        CaptionStore(bad)


def test_sidecar_txt_and_json(tmp_path):
    wav_txt, wav_json = tmp_path / "one.wav", tmp_path / "two.wav"
    (tmp_path / "one.txt").write_text("  an engine idles \n")
    (tmp_path / "two.json").write_text(json.dumps({"caption": "a violin melody", "other": 1}))
    store = CaptionStore("sidecar")
    assert store.lookup(wav_txt) == "an engine idles"
    assert store.lookup(wav_json) == "a violin melody"


def test_missing_or_empty_caption_is_an_error_naming_file_and_store(tmp_path):
    store_file = tmp_path / "captions.json"
    store_file.write_text(json.dumps({"known.wav": "x", "blank.wav": "   "}))
    store = CaptionStore(store_file, root=tmp_path)
    with pytest.raises(MissingCaptionError) as e:
        store.lookup(tmp_path / "unknown.wav")
    assert "unknown.wav" in str(e.value) and str(store_file) in str(e.value)
    assert "allow_empty_captions" in str(e.value)
    with pytest.raises(MissingCaptionError, match="empty caption"):
        store.lookup(tmp_path / "blank.wav")
    with pytest.raises(MissingCaptionError, match="sidecar"):
        CaptionStore("sidecar").lookup(tmp_path / "nothing.wav")
    lenient = CaptionStore(store_file, root=tmp_path, allow_empty=True)
    assert lenient.lookup(tmp_path / "unknown.wav") == ""
    assert lenient.lookup(tmp_path / "known.wav") == "x"
    with pytest.raises(FileNotFoundError, match="cli.caption"):
        CaptionStore(tmp_path / "absent.json")


class StubCaptioner:
    """Captions an array by its length; can fail on a given call to simulate a crash."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def __call__(self, audios):
        self.calls.append(len(audios))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("simulated crash")
        return [f"len {len(a)}" for a in audios]


def make_folder(tmp_path: Path, n: int) -> Path:
    root = tmp_path / "audio"
    for i in range(n):
        touch_audio(root / ("d" if i % 2 else "") / f"f{i}.wav", seconds=0.01 * (i + 1))
    return root


def test_captioner_writes_all_files_with_relative_keys(tmp_path):
    root = make_folder(tmp_path, 5)
    out = tmp_path / "captions.json"
    store = cap.caption_folder(StubCaptioner(), root, out, batch_size=2, save_every=2, log=lambda s: None)
    on_disk = json.loads(out.read_text())
    assert on_disk == store and len(store) == 5
    assert on_disk["f0.wav"] == "len 160" and on_disk["d/f1.wav"] == "len 320"  # 16 kHz mono input
    # the written store is readable by the dataset's CaptionStore
    assert CaptionStore(out, root=root).lookup(root / "d" / "f3.wav") == "len 640"
    with pytest.raises(FileExistsError, match="--resume"):
        cap.caption_folder(StubCaptioner(), root, out, log=lambda s: None)


def test_crash_keeps_finished_files_and_resume_skips_them(tmp_path):
    root = make_folder(tmp_path, 7)
    out = tmp_path / "captions.json"
    crashing = StubCaptioner(fail_on_call=3)  # batches of 2: files 0-3 done, crash in the third batch
    with pytest.raises(RuntimeError, match="simulated crash"):
        cap.caption_folder(crashing, root, out, batch_size=2, save_every=100, log=lambda s: None)
    saved = json.loads(out.read_text())
    assert len(saved) == 4
    assert not list(out.parent.glob(".*.part"))  # no temporary file left behind
    resumed = StubCaptioner()
    store = cap.caption_folder(resumed, root, out, resume=True, batch_size=2, save_every=100, log=lambda s: None)
    assert sum(resumed.calls) == 3  # only the three missing files were captioned
    assert len(store) == 7 and json.loads(out.read_text()) == store
    assert all(store[k] == v for k, v in saved.items())


def test_store_writes_are_atomic(tmp_path, monkeypatch):
    out = tmp_path / "captions.json"
    cap.write_store(out, {"a.wav": "first"})

    def broken_dump(obj, f, **kwargs):
        f.write('{"a.wav": "half')  # a partial write, then the process dies
        raise OSError("disk full")

    monkeypatch.setattr(cap.json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        cap.write_store(out, {"a.wav": "second", "b.wav": "x"})
    monkeypatch.undo()
    assert json.loads(out.read_text()) == {"a.wav": "first"}
    assert not list(tmp_path.glob(".*.part"))


def test_periodic_saves_happen_before_the_end(tmp_path):
    root = make_folder(tmp_path, 6)
    out = tmp_path / "captions.json"
    sizes = []

    class Watching(StubCaptioner):
        def __call__(self, audios):
            sizes.append(len(json.loads(out.read_text())) if out.exists() else 0)
            return super().__call__(audios)

    cap.caption_folder(Watching(), root, out, batch_size=1, save_every=2, log=lambda s: None)
    assert sizes == [0, 0, 2, 2, 4, 4]


def test_segment_captions_become_time_ranges(tmp_path):
    root = tmp_path / "audio"
    touch_audio(root / "long.wav", seconds=2.5)
    out = tmp_path / "captions.json"
    store = cap.caption_folder(StubCaptioner(), root, out, segment_seconds=1.0, batch_size=2, log=lambda s: None)
    ranges = store["long.wav"]
    assert [(r["start"], r["end"]) for r in ranges] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert [r["caption"] for r in ranges] == ["len 16000", "len 16000", "len 8000"]
    assert CaptionStore(out, root=root).lookup(root / "long.wav", 1.2, 1.9) == "len 16000"


def test_real_captioner_refuses_a_missing_local_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        cap.Qwen2AudioCaptioner(tmp_path / "no-model")


def test_prompt_matches_the_official_format():
    assert cap.PROMPT == "<|audio_bos|><|AUDIO|><|audio_eos|>Generate the caption in English:"


def test_caption_audio_is_16k_mono_mix(tmp_path):
    sr, n = 44100, 44100
    t = np.arange(n) / sr
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t + np.pi)  # cancel in a mix
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right + 0.25], axis=1).astype(np.float32), sr, subtype="FLOAT")
    audio = cap.load_caption_audio(path)
    assert audio.ndim == 1 and abs(len(audio) - 16000) <= 1
    np.testing.assert_allclose(audio[1000:-1000], 0.125, atol=2e-3)  # (L + R) / 2 = 0.125
