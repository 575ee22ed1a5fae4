"""The per-window target roll-off predictor (``inference.rolloff_predictor``): its features, its fit and its
stored form, how inference chooses a target (explicit > predictor > stored median), and the CLI that fits it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from saga_hsmad.inference.rolloff_predictor import (N_FEATURES, RolloffPredictor, fit_rolloff_predictor,
                                                    lr_features)

SR = 44100
L = 8192


def tone(freq: float, n: int = L, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return np.stack([np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28)) for _ in range(2)]).astype(np.float32)


def lowpassed_noise(cutoff: float, n: int = L, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal((2, n)), axis=-1)
    spec[:, np.fft.rfftfreq(n, 1 / SR) > cutoff] = 0
    return (0.1 * np.fft.irfft(spec, n, axis=-1)).astype(np.float32)


def two_kinds(count: int, seed: int = 0):
    """Dark windows (a low tone, f_h 0.2) and bright ones (noise up to 3 kHz in the LR, f_h 0.85)."""
    pairs = []
    for i in range(count):
        pairs.append((tone(110.0 + 10 * i, seed=seed + i), 0.2))
        pairs.append((lowpassed_noise(3000.0, seed=seed + i), 0.85))
    return pairs


def test_features_are_band_shares_and_the_lr_rolloff():
    low = lr_features(tone(220.0), SR)
    assert low.shape == (N_FEATURES,)
    assert low[1] == pytest.approx(0.0, abs=0.05)  # all power in 150-300 Hz: share 1, log10 0
    assert low[0] < -1.5 and low[3] < -1.5 and low[5] < -1.5
    bright = lr_features(lowpassed_noise(6000.0), SR)
    assert bright[5] > -0.5  # most of white noise up to 6 kHz lies above 2.4 kHz
    assert bright[-1] > lr_features(lowpassed_noise(1000.0), SR)[-1] + 0.15  # f_l follows the band edge
    np.testing.assert_allclose(lr_features(torch.from_numpy(tone(220.0)), SR), low)  # tensor or array, same
    assert np.isfinite(lr_features(np.zeros((2, L), np.float32), SR)).all()  # silence: floors, not NaN


def test_fit_predicts_the_kind_of_an_unseen_window():
    predictor = fit_rolloff_predictor(two_kinds(6), SR, k=3)
    assert len(predictor.targets) == 12 and predictor.scale.shape == (N_FEATURES,)
    assert predictor(tone(173.0, seed=99), SR) == pytest.approx(0.2)
    assert predictor(lowpassed_noise(3000.0, seed=99), SR) == pytest.approx(0.85)


def test_silent_windows_are_skipped_and_too_few_windows_is_an_error():
    pairs = two_kinds(2) + [(np.zeros((2, L), np.float32), 0.0)]
    assert len(fit_rolloff_predictor(pairs, SR, k=3).targets) == 4
    with pytest.raises(ValueError, match="fewer than k = 5"):
        fit_rolloff_predictor(pairs, SR, k=5)


def test_stored_form_round_trips_and_bad_entries_name_the_key():
    predictor = fit_rolloff_predictor(two_kinds(4), SR, k=3)
    predictor.source = "test"
    stored = json.loads(json.dumps(predictor.to_config()))
    loaded = RolloffPredictor.from_config(stored)
    assert loaded.k == 3 and loaded.source == "test"
    for audio in (tone(150.0, seed=7), lowpassed_noise(3000.0, seed=7)):
        assert loaded(audio, SR) == pytest.approx(predictor(audio, SR))

    def broken(**change):
        return {**stored, **change}

    cases = [
        ("nope", "expected a dict"),
        (broken(type="ridge"), r"\.type: only 'knn'"),
        (broken(features="old_recipe"), r"\.features: .*refit"),
        (broken(points=[[0.0] * N_FEATURES]), r"\.points: expected a non-empty list"),
        (broken(points="x"), "must be lists of numbers"),
        (broken(scale=[1.0] * (N_FEATURES - 1)), r"\.scale: expected 7 positive"),
        (broken(scale=[0.0] * N_FEATURES), r"\.scale"),
        (broken(k=0), r"\.k: expected an integer"),
        (broken(k=1000), r"\.k: expected an integer"),
        (broken(points=[[0.0] * N_FEATURES + [1.5]] * 3), r"each f_h in \[0, 1\)"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            RolloffPredictor.from_config(config, "my.json sampling.target_rolloff_predictor")
        assert "my.json sampling.target_rolloff_predictor" in str(info.value)


def constant_predictor(value: float) -> RolloffPredictor:
    """Every neighbour says ``value``."""
    return RolloffPredictor(np.zeros((3, N_FEATURES)), np.full(3, value), np.ones(N_FEATURES), k=3)


def test_inference_target_is_explicit_then_predicted_then_stored():
    from saga_hsmad.inference.super_resolution import (SROptions, SuperResolver, describe_target,
                                                       resolve_rolloff_predictor)
    from test_sr_inference import StubWrapper, IdentityFlow, tiny_config
    import saga_hsmad

    config = tiny_config()
    model = saga_hsmad.create_model_from_config(config).eval()
    model.model = IdentityFlow()  # exact flow: fast, and the target only has to be recorded
    from saga_hsmad.inference.super_resolution import FixedCaption

    lr = torch.from_numpy(tone(200.0, n=config["sample_size"]))
    plain = SuperResolver(model, config, SROptions(steps=1, target_rolloff=0.4), FixedCaption("x"))
    assert plain.target_for(lr, None) == 0.4 and plain.target_for(lr, 0.7) == 0.7
    predicted = SuperResolver(model, config, SROptions(steps=1, target_rolloff=0.4,
                                                       rolloff_predictor=constant_predictor(0.33)), FixedCaption("x"))
    assert predicted.target_for(lr, None) == pytest.approx(0.33) and predicted.target_for(lr, 0.7) == 0.7
    _, report = predicted.super_resolve_array(lr.numpy(), SR)
    assert report.rolloff_target and all(t == pytest.approx(0.33) for t in report.rolloff_target)
    assert "target f_h 0.330" in report.summary()
    assert "predicted per window" in describe_target(predicted.options, "model")

    config["sampling"]["target_rolloff_predictor"] = constant_predictor(0.33).to_config()
    assert isinstance(resolve_rolloff_predictor(config, None), RolloffPredictor)
    assert resolve_rolloff_predictor(config, 0.6) is None  # an explicit target wins
    assert resolve_rolloff_predictor(config, None, disabled=True) is None  # --no-rolloff-predictor
    config["sampling"]["target_rolloff_predictor"]["k"] = 99
    with pytest.raises(ValueError, match="model config sampling.target_rolloff_predictor.k"):
        resolve_rolloff_predictor(config, None)


def test_cli_fits_and_writes_the_predictor_keeping_the_median(tmp_path):
    from saga_hsmad.cli import target_rolloff

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):  # dark and bright files; the dataset's own LR simulation makes the windows
        sf.write(data / f"dark{i}.wav", lowpassed_noise(1500.0, n=3 * L, seed=i).T, SR, subtype="FLOAT")
        sf.write(data / f"bright{i}.wav", lowpassed_noise(16000.0, n=3 * L, seed=i).T, SR, subtype="FLOAT")
    model_config = tmp_path / "model.json"
    model_config.write_text(json.dumps({"sample_size": L, "sample_rate": SR, "audio_channels": 2,
                                        "sampling": {"target_rolloff": 0.5, "target_rolloff_source": "kept"}}))
    dataset_config = tmp_path / "dataset.json"
    dataset_config.write_text(json.dumps({"dataset_type": "super_resolution", "root": str(data),
                                          "allow_empty_captions": True}))
    assert target_rolloff.main(["--dataset-config", str(dataset_config), "--model-config", str(model_config),
                                "--only-predictor", "--draws", "2", "--k", "3", "--write"]) == 0
    stored = json.loads(model_config.read_text())["sampling"]
    assert stored["target_rolloff"] == 0.5 and stored["target_rolloff_source"] == "kept"
    predictor = RolloffPredictor.from_config(stored["target_rolloff_predictor"])
    assert len(predictor.targets) == 12 and predictor.k == 3 and "2 draws" in predictor.source
    assert predictor(lowpassed_noise(1500.0, seed=50), SR) < 0.3 < 0.6 < predictor(lowpassed_noise(8000.0, seed=50), SR)
    assert '"points": [\n' in model_config.read_text() and "[-" in model_config.read_text()  # one row per line
