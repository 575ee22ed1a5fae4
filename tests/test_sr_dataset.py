"""The super_resolution dataset: random windows anywhere in the file, true stereo, dual-mono, padding masks,
determinism (also across loader workers), LR band-limited below the drawn cutoff, roll-offs measured on the
returned tensors, captions attached or a clear error."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from saga_hsmad.data.captions import MissingCaptionError
from saga_hsmad.data.sr_dataset import SuperResolutionDataset, median_target_rolloff, target_rolloffs
from saga_hsmad.dsp.rolloff import spectral_rolloff

SR = 44100
L = 8192  # small windows keep the test fast; the paper's 262,144 is the config default


def write(path: Path, audio: np.ndarray, sr: int = SR, caption: str | None = "a test sound") -> Path:
    """audio (T,) or (T, C) float → float32 wav (exact samples) plus a sidecar caption."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), sr, subtype="FLOAT")
    if caption is not None:
        path.with_suffix(".txt").write_text(caption)
    return path


def noise(n: int, channels: int = 2, seed: int = 0, scale: float = 0.2) -> np.ndarray:
    out = np.random.default_rng(seed).standard_normal((n, channels)) * scale
    return out[:, 0] if channels == 1 else out


def make(root: Path, **kwargs) -> SuperResolutionDataset:
    return SuperResolutionDataset(root=str(root), sample_size=L, sample_rate=SR, **kwargs)


def test_windows_come_from_anywhere_and_match_the_file(tmp_path):
    n = 10 * L
    stereo = noise(n, seed=1)
    write(tmp_path / "long.wav", stereo)
    ds = make(tmp_path)
    starts = []
    for epoch in range(40):
        ds.epoch = epoch
        hr, mask, start, total, _ = ds.read_hr(0)  # the window __getitem__ uses (checked below)
        s = int(round(start * SR))
        starts.append(s)
        np.testing.assert_array_equal(hr.numpy(), stereo[s:s + L].T.astype(np.float32))  # the window at that offset
        assert total == pytest.approx(n / SR) and bool(mask.all())
    for epoch in (0, 1):
        ds.epoch = epoch
        hr, md = ds[0]
        assert int(round(md["seconds_start"] * SR)) == starts[epoch]
        np.testing.assert_array_equal(hr.numpy(), stereo[starts[epoch]:starts[epoch] + L].T.astype(np.float32))
    starts = np.array(starts)
    assert len(set(starts.tolist())) > 30  # not always the same offset, in particular not always 0
    assert starts.min() < 0.2 * (n - L) and starts.max() > 0.8 * (n - L)
    assert starts.max() <= n - L


def test_true_stereo_is_kept_and_mono_becomes_dual_mono(tmp_path):
    write(tmp_path / "st.wav", noise(2 * L, seed=2))
    write(tmp_path / "mono.wav", noise(2 * L, channels=1, seed=3))
    ds = make(tmp_path)
    by_name = {Path(md["path"]).name: (hr, md) for hr, md in (ds[i] for i in range(len(ds)))}
    hr, md = by_name["st.wav"]
    assert hr.shape == (2, L) and md["lr_audio"].shape == (2, L)
    assert (hr[0] - hr[1]).abs().max() > 0.1
    assert (md["lr_audio"][0] - md["lr_audio"][1]).abs().max() > 0.01
    hr, md = by_name["mono.wav"]
    assert torch.equal(hr[0], hr[1]) and torch.equal(md["lr_audio"][0], md["lr_audio"][1])
    assert hr.abs().max() > 0.1


def test_more_than_two_channels_is_a_clear_error(tmp_path):
    path = write(tmp_path / "six.wav", noise(2 * L, channels=6))
    with pytest.raises(ValueError, match="six.wav.*6 channels"):
        make(tmp_path)[0]


def test_short_file_is_zero_padded_with_a_correct_mask(tmp_path):
    n = 3000
    short = noise(n, seed=4)
    write(tmp_path / "short.wav", short)
    hr, md = make(tmp_path)[0]
    mask = md["padding_mask"]
    assert mask.dtype == torch.bool and mask.shape == (L,)
    assert bool(mask[:n].all()) and not bool(mask[n:].any())
    np.testing.assert_array_equal(hr[:, :n].numpy(), short.T.astype(np.float32))
    assert not hr[:, n:].any() and not md["lr_audio"][:, n:].any()
    assert md["seconds_start"] == 0.0 and md["seconds_total"] == pytest.approx(n / SR)


def test_other_sample_rates_are_resampled_to_44k(tmp_path):
    sr = 16000
    write(tmp_path / "low.wav", noise(3 * sr, seed=5), sr=sr)
    hr, md = make(tmp_path)[0]
    assert hr.shape == (2, L) and bool(md["padding_mask"].all())
    assert md["seconds_total"] == pytest.approx(3.0)
    # a 16 kHz file has nothing above 8 kHz once at 44.1 kHz
    assert float(md["rolloff_target"]) * SR / 2 < 8000


def test_deterministic_given_seed_and_index_and_independent_of_workers(tmp_path):
    for i in range(3):
        write(tmp_path / f"f{i}.wav", noise(4 * L, seed=10 + i))
    a, b = make(tmp_path, seed=7), make(tmp_path, seed=7)
    for i in range(len(a)):
        (ha, ma), (hb, mb) = a[i], b[i]
        assert torch.equal(ha, hb) and torch.equal(ma["lr_audio"], mb["lr_audio"])
        assert ma["lowpass"] == mb["lowpass"] and ma["seconds_start"] == mb["seconds_start"]
    other = make(tmp_path, seed=8)
    assert any(other[i][1]["seconds_start"] != a[i][1]["seconds_start"] for i in range(len(a)))
    direct = [a[i][1]["lr_audio"] for i in range(len(a))]
    loader = torch.utils.data.DataLoader(a, batch_size=None, num_workers=2, shuffle=False)
    for i, (hr, md) in enumerate(loader):
        assert torch.equal(md["lr_audio"], direct[i])


def band_energy(x: torch.Tensor, lo_hz: float) -> float:
    """Energy above ``lo_hz`` of a Hann-tapered spectrum (no leakage from the pass band through the window edges)."""
    taper = torch.hann_window(x.shape[-1], dtype=torch.float64)
    spec = torch.fft.rfft(x.double() * taper, dim=-1).abs().square()
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return float(spec[..., freqs >= lo_hz].sum())


def test_lr_is_band_limited_below_the_drawn_cutoff(tmp_path):
    write(tmp_path / "white.wav", noise(40 * L, seed=6))  # full-band: roll-off close to 1, no clamp
    ds = make(tmp_path)
    families = set()
    for epoch in range(8):
        ds.epoch = epoch
        hr, md = ds[0]
        cutoff = md["lowpass"]["cutoff_hz"]
        assert 2000 <= cutoff <= 16000 and cutoff <= 0.94 * md["rolloff_target"] * SR / 2 + 1e-6
        families.add(md["lowpass"]["family"])
        # resample_poly's Kaiser filter (transition about 0.1 x cutoff wide) lets images of the band just
        # below the cutoff through just above it, as in the official recipe: measure from 1.1 x cutoff
        above_lr = band_energy(md["lr_audio"], 1.1 * cutoff)
        above_hr = band_energy(hr, 1.1 * cutoff)
        assert band_energy(md["lr_audio"], 1.2 * cutoff) < 1e-5 * band_energy(hr, 1.2 * cutoff)
        below_lr = band_energy(md["lr_audio"], 0) - band_energy(md["lr_audio"], 0.5 * cutoff)
        below_hr = band_energy(hr, 0) - band_energy(hr, 0.5 * cutoff)
        assert above_lr < 1e-3 * above_hr, (md["lowpass"], above_lr / above_hr)
        assert below_lr > 0.5 * below_hr  # the pass band is kept
        assert md["rolloff_in"] < md["rolloff_target"]
    assert len(families) >= 2


def test_cutoff_is_clamped_by_the_windows_own_rolloff(tmp_path):
    write(tmp_path / "narrow.wav", noise(4 * L, seed=7), sr=8000)  # nothing above 4 kHz
    ds = make(tmp_path)
    clamped = 0
    for epoch in range(6):
        ds.epoch = epoch
        hr, md = ds[0]
        bound = 0.94 * md["rolloff_target"] * SR / 2
        assert bound < 6000  # the window's roll-off is low (not exactly 4 kHz: the window edges add a little)
        assert md["lowpass"]["cutoff_hz"] <= bound + 1e-6
        clamped += md["lowpass"]["cutoff_hz"] < md["lowpass"]["drawn_cutoff_hz"]
    assert clamped >= 3


def test_rolloffs_are_those_of_the_returned_tensors(tmp_path):
    write(tmp_path / "a.wav", noise(3 * L, seed=8))
    write(tmp_path / "b.wav", noise(L // 2, channels=1, seed=9))
    ds = make(tmp_path)
    for i in range(len(ds)):
        hr, md = ds[i]
        assert isinstance(md["rolloff_in"], float) and isinstance(md["rolloff_target"], float)
        assert md["rolloff_target"] == float(spectral_rolloff(hr))
        assert md["rolloff_in"] == float(spectral_rolloff(md["lr_audio"]))
        assert 0 <= md["rolloff_in"] < 1 and 0 <= md["rolloff_target"] < 1


def test_caption_attached_and_missing_caption_names_the_file(tmp_path):
    write(tmp_path / "has.wav", noise(2 * L), caption="rain on a tin roof")
    assert make(tmp_path)[0][1]["prompt"] == "rain on a tin roof"
    write(tmp_path / "none.wav", noise(2 * L), caption=None)
    ds = make(tmp_path)
    index = [Path(p).name for p in map(str, ds.files)].index("none.wav")
    with pytest.raises(MissingCaptionError, match="none.wav"):
        ds[index]
    assert make(tmp_path, allow_empty_captions=True)[index][1]["prompt"] == ""


def test_json_caption_store_and_demo_split_layout(tmp_path):
    for split in ("train", "valid", "test"):
        for i in range(2):
            path = write(tmp_path / split / f"{split}{i}.wav", noise(2 * L, seed=i), caption=None)
            path.with_suffix(".json").write_text(json.dumps({"caption": f"{split} piece {i}", "style": "x"}))
    ds = make(tmp_path, split="valid")
    assert sorted(Path(md["path"]).name for _, md in (ds[i] for i in range(len(ds)))) == ["valid0.wav", "valid1.wav"]
    assert sorted(ds[i][1]["prompt"] for i in range(len(ds))) == ["valid piece 0", "valid piece 1"]
    with pytest.raises(ValueError, match="split"):
        make(tmp_path)
    (tmp_path / "captions.json").write_text(json.dumps({"train/train0.wav": "from the store"}))
    ds = make(tmp_path, split="train", captions="captions.json")  # relative to the root
    names = [p.name for p in ds.files]
    assert ds[names.index("train0.wav")][1]["prompt"] == "from the store"
    with pytest.raises(MissingCaptionError, match="train1.wav"):
        ds[names.index("train1.wav")]


def test_median_target_rolloff_of_band_limited_files(tmp_path):
    # white noise at 16, 22.05 and 32 kHz: at 44.1 kHz nothing above 8, 11.025, 16 kHz; the roll-off
    # (98.5 % of the flat magnitude sum) sits just below each band edge
    edges = {}
    for sr in (16000, 22050, 32000):
        write(tmp_path / f"n{sr}.wav", noise(3 * sr, seed=sr), sr=sr)
        edges[f"n{sr}.wav"] = sr / 2 / (SR / 2)
    ds = make(tmp_path)
    values = target_rolloffs(ds, n=10)
    assert values.shape == (3,)
    expected = sorted(0.985 * e for e in edges.values())
    np.testing.assert_allclose(np.sort(values), expected, atol=0.03)
    assert median_target_rolloff(ds) == pytest.approx(float(np.median(values)))
    assert median_target_rolloff(ds) == pytest.approx(expected[1], abs=0.03)


def test_target_rolloff_cli_writes_the_median_into_the_model_config(tmp_path):
    from saga_hsmad.cli import target_rolloff

    data = tmp_path / "data"
    for sr in (16000, 22050, 32000):
        write(data / f"n{sr}.wav", noise(3 * sr, seed=sr), sr=sr)
    model_config = tmp_path / "model.json"
    model_config.write_text(json.dumps({"sample_size": L, "sample_rate": SR, "audio_channels": 2,
                                        "sampling": {"target_rolloff": None}}))
    dataset_config = tmp_path / "dataset.json"
    dataset_config.write_text(json.dumps({"dataset_type": "super_resolution", "root": str(data)}))
    assert target_rolloff.main(["--dataset-config", str(dataset_config), "--model-config", str(model_config),
                                "--write"]) == 0
    stored = json.loads(model_config.read_text())["sampling"]
    assert stored["target_rolloff"] == pytest.approx(0.985 * 11025 / 22050, abs=0.03)
    assert "median f_h of 3 windows" in stored["target_rolloff_source"]


def test_folder_lists_file_lists_and_compressed_formats(tmp_path):
    a = write(tmp_path / "one" / "a.wav", noise(2 * L, seed=1))
    b = tmp_path / "two" / "b.flac"
    b.parent.mkdir()
    sf.write(b, noise(2 * L, seed=2).astype(np.float32), SR, subtype="PCM_16")
    b.with_suffix(".txt").write_text("flac file")
    c = tmp_path / "two" / "c.ogg"
    sf.write(c, noise(2 * L, seed=3).astype(np.float32), SR, format="OGG", subtype="VORBIS")
    c.with_suffix(".txt").write_text("ogg file")
    ds = SuperResolutionDataset(root=[str(tmp_path / "one"), str(tmp_path / "two")], sample_size=L)
    assert sorted(p.name for p in ds.files) == ["a.wav", "b.flac", "c.ogg"]
    for i in range(len(ds)):
        hr, md = ds[i]
        assert hr.shape == (2, L) and hr.abs().max() > 0.05 and md["prompt"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# training files\n{a}\ntwo/c.ogg\n")
    ds = SuperResolutionDataset(file_list=str(listing), sample_size=L)
    assert [p.name for p in ds.files] == ["a.wav", "c.ogg"] and ds[1][1]["prompt"] == "ogg file"
    with pytest.raises(ValueError, match="exactly one"):
        SuperResolutionDataset(sample_size=L)


REPO = Path(__file__).resolve().parents[1]


def test_default_cutoff_draw_is_the_official_one(tmp_path):
    """Without draw keys (the paper's folder.json): a 1 Hz grid, and a window whose 0.94 x roll-off bound lies
    below 2 kHz is filtered at 2 kHz (official ``max(2000, min(randint(2000, 16000), 0.94 x roll-off))``)."""
    from saga_hsmad.dsp.lowpass import draw_lowres_params

    write(tmp_path / "white.wav", noise(4 * L, seed=11))
    ds = make(tmp_path)
    drawn = []
    for epoch in range(10):
        ds.epoch = epoch
        drawn.append(ds[0][1]["lowpass"]["drawn_cutoff_hz"])
    assert all(float(c).is_integer() and 2000 <= c <= 16000 for c in drawn)
    assert any(c % 25 for c in drawn)  # off the old 25 Hz grid
    # a narrow-band window (roll-off 0.05: 0.94 x 1.1 kHz bound) is filtered at 2 kHz
    narrow = [draw_lowres_params(np.random.default_rng(e), SR, 0.05, **ds.lowres_options) for e in range(10)]
    assert [p.cutoff_hz for p in narrow] == [2000.0] * 10
    # the other choice: 25 Hz grid, and the narrow window's cutoff stays under its own roll-off bound
    ds = make(tmp_path, cutoff_step_hz=25, below_range="clamp")
    for epoch in range(4):
        ds.epoch = epoch
        assert ds[0][1]["lowpass"]["drawn_cutoff_hz"] % 25 == 0
        p = draw_lowres_params(np.random.default_rng(epoch), SR, 0.05, **ds.lowres_options)
        assert p.cutoff_hz <= 0.94 * 0.05 * SR / 2 < 2000


def test_shipped_sr_dataset_configs_draw_cutoffs_as_documented(tmp_path, monkeypatch):
    """folder.json (paper) gets the official draw from the defaults; the tiny demo configs use the 25 Hz grid
    and no roll-off bound on the cutoff (docs/miniature, round 5)."""
    from saga_hsmad.data.loader import create_dataset_from_config

    write(tmp_path / "a.wav", noise(2 * L, seed=13), caption=None)
    (tmp_path / "captions.json").write_text(json.dumps({"a.wav": "a test sound"}))
    for split in ("train", "valid"):
        write(tmp_path / split / "b.wav", noise(2 * L, seed=14))
    monkeypatch.setenv("SAGA_SR_AUDIO_DIR", str(tmp_path))
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(tmp_path))
    expected = {"folder.json": (1, "range", 0.94), "demo.json": (25, "clamp", None),
                "demo_valid.json": (25, "clamp", None)}
    for name, (step, below, clamp) in expected.items():
        config = json.loads((REPO / "dataset_configs/saga_sr" / name).read_text())
        ds = create_dataset_from_config(config, name, sample_size=L, sample_rate=SR, audio_channels=2, seed=0)
        options = ds.lowres_options
        assert (options["cutoff_step_hz"], options["below_range"]) == (step, below), name
        assert options["cutoff_range"] == (2000.0, 16000.0) and options["clamp"] == clamp, name
