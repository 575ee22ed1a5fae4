"""SAGA-SR evaluation (``python -m saga_hsmad.evaluation.sr_eval``) on two short synthetic clips with a tiny
random model: every artefact is written, the LR baseline row is the LSD of the paper's test-protocol input
computed independently here, and the Fréchet distance matches closed forms."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

TINY = REPO / "model_configs" / "saga_sr" / "tiny.json"
SR = 44100


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    config = json.loads(TINY.read_text())
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_sr.ckpt"
    save_inference_checkpoint(path, model.state_dict(), config, ema=False)
    return path


def wideband(seconds: float, sr: int, channels: int, seed: int) -> np.ndarray:
    """Harmonics up to 15 kHz plus noise: content on both sides of the 4 and 8 kHz cutoffs."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate(range(300, 15000, 1700)))
    return (0.1 * tone[None] + 0.02 * rng.standard_normal((channels, t.size))).astype(np.float32)


def test_eval_writes_every_artefact_and_the_lr_baseline_is_the_direct_lsd(tiny_ckpt, tmp_path):
    from saga_hsmad.audio_io import resample
    from saga_hsmad.dsp.lowpass import test_protocol_lowres
    from saga_hsmad.evaluation.lsd import lsd, lsd_hf
    from saga_hsmad.evaluation.sr_eval import main

    ref = tmp_path / "ref"
    ref.mkdir()
    clips = {"a_stereo": (wideband(0.6, SR, 2, 0), SR), "b_mono48k": (wideband(0.5, 48000, 1, 1), 48000)}
    for name, (audio, sr) in clips.items():
        sf.write(ref / f"{name}.wav", audio.T, sr, subtype="FLOAT")
    out = tmp_path / "eval"
    rc = main(["--ckpt", str(tiny_ckpt), "--reference", str(ref), "--output", str(out), "--cutoffs", "4000", "8000",
               "--steps", "2", "--device", "cpu", "--caption", "synthetic tones", "--plots", "2",
               "--sweep-clips", "1", "--sweep-targets", "0.3", "0.55", "0.8"])
    assert rc == 0
    for name in ("metrics.csv", "report.md", "summary.json", "rolloff_sweep.png", "rolloff_sweep.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in (out / "spectrograms").glob("*.png"))
    assert pngs == ["a_stereo_4000Hz.png", "a_stereo_8000Hz.png", "b_mono48k_4000Hz.png", "b_mono48k_8000Hz.png"]

    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 * 2 * 2 and "fd_openl3" not in rows[0]  # clips x cutoffs x systems, no FD offline
    for name, (audio, sr) in clips.items():
        hr = resample(audio, sr, SR)
        for cutoff in (4000.0, 8000.0):
            lr = test_protocol_lowres(hr, SR, cutoff)
            row = next(r for r in rows if r["clip"] == name and float(r["cutoff_hz"]) == cutoff
                       and r["system"] == "lr_input")
            assert float(row["lsd"]) == pytest.approx(float(lsd(hr, lr)), abs=1e-5)
            assert float(row["lsd_hf"]) == pytest.approx(float(lsd_hf(hr, lr, cutoff, SR)), abs=1e-5)
            sr_row = next(r for r in rows if r["clip"] == name and float(r["cutoff_hz"]) == cutoff
                          and r["system"] == "saga_sr")
            assert np.isfinite(float(sr_row["lsd"])) and float(sr_row["lsd"]) != float(row["lsd"])

    summary = json.loads((out / "summary.json").read_text())
    lr4 = next(e for e in summary["mean"] if e["cutoff_hz"] == 4000.0 and e["system"] == "lr_input")
    per_clip = [float(r["lsd"]) for r in rows if float(r["cutoff_hz"]) == 4000.0 and r["system"] == "lr_input"]
    assert lr4["clips"] == 2 and lr4["lsd"] == pytest.approx(np.mean(per_clip), abs=1e-9)
    assert set(summary["sweep"]["curves"]) == {"a_stereo"}
    assert np.isnan(summary["sweep"]["spearman"]) or -1.0 <= summary["sweep"]["spearman"] <= 1.0
    sweep_rows = list(csv.DictReader(open(out / "rolloff_sweep.csv")))
    assert [float(r["requested_rolloff"]) for r in sweep_rows] == [0.3, 0.55, 0.8]

    report = (out / "report.md").read_text()
    assert "unprocessed LR input" in report and "SAGA-SR" in report and "Spearman" in report
    assert "openl3" in report.lower() and "no OpenL3 FD" in report
    # the report is not silently replaced
    assert main(["--ckpt", str(tiny_ckpt), "--reference", str(ref), "--output", str(out), "--steps", "1",
                 "--caption", "x"]) == 2


def test_frechet_distance_matches_closed_forms():
    from saga_hsmad.evaluation.openl3_fd import frechet_distance, gaussian_stats

    # diagonal covariances: |Δμ|² + Σ (σ1 − σ2)²  =  (1 + 4) + ((1 − 2)² + (2 − 3)²)  =  7
    assert frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 9.0])) \
        == pytest.approx(7.0, abs=1e-9)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    mu, sigma = gaussian_stats(a)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    # a pure shift adds |shift|²
    assert frechet_distance(mu, sigma, mu + np.array([3.0, 0.0, 4.0]), sigma) == pytest.approx(25.0, abs=1e-6)


def test_openl3_absent_is_reported_not_fatal(monkeypatch):
    import importlib.util

    from saga_hsmad.evaluation.openl3_fd import load_openl3

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openl3" else real(name, *a))
    embedder, note = load_openl3()
    assert embedder is None and "not installed" in note


def one_file_test_split(tmp_path, seconds: float):
    """(test folder, dataset config path) of a super_resolution test split holding one captioned file."""
    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    sf.write(data / "only.wav", wideband(seconds, SR, 2, 3).T, SR, subtype="FLOAT")
    (data / "only.txt").write_text("tones")
    config = tmp_path / "test.json"
    config.write_text(json.dumps({"dataset_type": "super_resolution", "root": str(tmp_path / "data"), "split": "test"}))
    return data, config


def test_eval_takes_the_references_from_a_dataset_config(tiny_ckpt, tmp_path):
    from saga_hsmad.evaluation.sr_eval import main

    data, config = one_file_test_split(tmp_path, seconds=0.4)
    out = tmp_path / "eval"
    assert main(["--ckpt", str(tiny_ckpt), "--dataset-config", str(config), "--output", str(out), "--cutoffs", "8000",
                 "--steps", "1", "--device", "cpu", "--caption", "tones", "--plots", "0", "--sweep-clips", "0"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["clip"], r["system"]) for r in rows] == [("test/only", "lr_input"), ("test/only", "saga_sr")]
    assert not (out / "rolloff_sweep.png").exists() and not list((out / "spectrograms").glob("*.png"))


def test_eval_adds_the_noise_fill_row_and_several_windows_per_file(tiny_ckpt, tmp_path):
    from saga_hsmad.dsp.lowpass import test_protocol_lowres
    from saga_hsmad.evaluation.baselines import average_power_spectrum, noise_fill
    from saga_hsmad.evaluation.lsd import lsd_hf
    from saga_hsmad.evaluation.sr_eval import load_clip, main

    data, config = one_file_test_split(tmp_path, seconds=1.5)
    out = tmp_path / "eval"
    assert main(["--ckpt", str(tiny_ckpt), "--dataset-config", str(config), "--output", str(out), "--cutoffs", "4000",
                 "--steps", "1", "--device", "cpu", "--caption", "tones", "--plots", "0", "--sweep-clips", "0",
                 "--clip-seconds", "0.5", "--windows-per-clip", "2", "--train-dataset-config", str(config)]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["clip"], r["system"]) for r in rows] == [
        (f"test/only@{s}s", system) for s in ("0.0", "1.0") for system in ("lr_input", "noise_fill", "saga_sr")]
    hr = load_clip(data / "only.wav", 0.5, start=1.0)
    lr = test_protocol_lowres(hr, SR, 4000.0)
    filled = noise_fill(lr, 4000.0, average_power_spectrum([data / "only.wav"]), SR, seed=0)
    assert abs(float(rows[4]["lsd_hf"]) - float(lsd_hf(hr, filled, 4000.0))) < 1e-4
    summary = json.loads((out / "summary.json").read_text())
    assert {e["system"] for e in summary["mean"]} == {"lr_input", "noise_fill", "saga_sr"}
