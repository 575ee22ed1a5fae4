"""The log-magnitude STFT pretransform: layout, dB scale, standardisation, Griffin-Lim decode, corpus statistics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from saga_hsmad.pretransforms.log_stft import LogSTFTPretransform

SR = 8000


def tone(freq: float, seconds: float = 1.024, amplitude: float = 0.5, channels: int = 1) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (amplitude * torch.sin(2 * np.pi * freq * t)).repeat(channels, 1)[None]


def test_layout_and_db_scale_of_a_tone():
    """A full-scale-relative sine of amplitude a sits in bin f·n_fft/sr at 20·log10(a) dB; channel c's bins
    are latent channels c·f .. c·f + f - 1; t samples give t / hop frames."""
    p = LogSTFTPretransform(channels=2, n_fft=512, hop=128)
    x = torch.cat([tone(1000.0), tone(2000.0)], dim=1)  # (1, 2, 8192)
    db = p.power_db(x)
    assert db.shape == (1, 2, 257, 64)
    middle = db[0, :, :, 8:-8].mean(-1)  # away from the reflect-padded ends
    assert middle[0].argmax() == 64 and middle[1].argmax() == 128
    assert abs(float(middle[0, 64]) - 20 * np.log10(0.5)) < 0.1
    assert float(middle[0, 180]) < -60  # far from the tone: leakage of the Hann window only
    z = p.encode(x)
    assert z.shape == (1, 2 * 257, 64) and p.encoded_channels == 514 and p.downsampling_ratio == 128
    assert z[0, 257:, 8:-8].mean(-1).argmax() == 128  # the second channel's block


def test_silence_encodes_to_the_floor_and_decodes_to_silence():
    p = LogSTFTPretransform(channels=1, floor_db=-90.0)
    db = p.power_db(torch.zeros(1, 1, 1024))
    assert torch.allclose(db, torch.full_like(db, -90.0), atol=1e-3)
    assert p.decode(p.encode(torch.zeros(1, 1, 1024))).abs().max() < 1e-6


def test_band_statistics_standardise():
    bins = 257
    mean = [float(v) for v in np.linspace(-80, -40, bins)]
    std = [float(v) for v in np.linspace(5, 20, bins)]
    p = LogSTFTPretransform(channels=1, band_mean=mean, band_std=std)
    x = tone(700.0) + 0.01 * torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(0))
    z = p.encode(x)
    expected = (p.power_db(x)[:, 0] - torch.tensor(mean)[:, None]) / torch.tensor(std)[:, None]
    assert torch.allclose(z, expected, atol=1e-4)
    # the magnitudes decode back from the standardised latents
    spec = torch.stft(x[:, 0], 512, 128, window=torch.hann_window(512), return_complex=True)[..., :64].abs()
    assert torch.allclose(p.magnitude(z), spec, rtol=1e-3, atol=1e-4)


def test_griffin_lim_decode_keeps_the_magnitude_spectrum():
    """decode rebuilds a phase whose STFT magnitudes match the encoded ones: a two-note chord comes back at its
    levels (within 1 dB in its bins) and re-encodes close to the original latents, deterministically."""
    p = LogSTFTPretransform(channels=1, n_fft=512, hop=128, griffin_lim_iters=32)
    x = tone(440.0, amplitude=0.3) + tone(660.0, amplitude=0.1)
    z = p.encode(x)
    y = p.decode(z)
    assert y.shape == x.shape
    assert torch.equal(y, p.decode(z))  # zero initial phase: no randomness
    again = p.power_db(y)[0, 0, :, 8:-8].mean(-1)
    first = p.power_db(x)[0, 0, :, 8:-8].mean(-1)
    for k in (28, 42):  # 440 and 660 Hz at 15.6 Hz per bin
        assert abs(float(again[k] - first[k])) < 1.0
    loud = first > -40  # spectral error where there is signal
    assert float((again[loud] - first[loud]).abs().mean()) < 1.5
    # a different phase than the input (Griffin-Lim does not recover the waveform), but the same energy
    assert abs(float(y.square().mean() / x.square().mean()) - 1) < 0.1


def test_an_error_in_a_silent_bin_stays_quiet():
    """The latent is in dB: the same latent error that would be audible noise in a linear latent moves a silent
    bin by a few dB of the floor only."""
    p = LogSTFTPretransform(channels=1, floor_db=-100.0)
    x = tone(1000.0)
    z = p.encode(x)
    noisy = z + 0.1 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    db = p.power_db(p.decode(noisy))[0, 0, :, 8:-8].mean(-1)
    assert float(db[64]) > -10 and float(db[200:].max()) < -60


@pytest.mark.parametrize("kwargs, match", [
    ({"n_fft": 511}, "even n_fft"),
    ({"hop": 300}, "hop <= n_fft / 2"),
    ({"floor_db": 0.0}, "floor_db"),
    ({"griffin_lim_iters": 0}, "griffin_lim_iters"),
    ({"momentum": 1.0}, "momentum"),
    ({"band_mean": [0.0] * 10}, "band_mean must be a list of 257"),
    ({"band_std": [1.0] * 256 + [0.0]}, r"band_std\[256\]"),
    ({"band_mean": [0.0] * 256 + [float("nan")]}, r"band_mean\[256\]"),
])
def test_bad_configs_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogSTFTPretransform(channels=1, **kwargs)


def test_config_check_knows_its_channels_and_ratio():
    from saga_hsmad.config_check import validate_model_config, pretransform_channels

    assert pretransform_channels({"type": "log_stft", "config": {"channels": 2, "n_fft": 256}}) == (2, 258)
    from conftest import REPO

    config = json.loads((REPO / "model_configs/hsmad/tiny.json").read_text())
    config["model"]["pretransform"] = {"type": "log_stft", "config": {"channels": 1, "n_fft": 512, "hop": 128}}
    config["model"]["io_channels"] = config["model"]["diffusion"]["config"]["io_channels"] = 257
    assert not validate_model_config(config)
    config["model"]["io_channels"] = 128
    assert any(p.path == "model.io_channels" for p in validate_model_config(config))
    config["model"]["io_channels"] = 257
    config["model"]["pretransform"]["config"]["hop"] = 96
    assert any(p.path == "sample_size" for p in validate_model_config(config))


def test_latent_stats_writes_band_mean_and_std(tmp_path):
    """For a band_mean pretransform latent_stats writes each bin's dB mean and std; with them a corpus window's
    latents have about zero mean and unit std per bin."""
    import soundfile as sf

    from saga_hsmad.cli.latent_stats import main

    rng = np.random.default_rng(0)
    for i in range(3):
        brown = np.cumsum(rng.standard_normal(3 * SR), axis=0)
        brown = (brown - brown.mean()) / np.abs(brown).max() * 0.5
        sf.write(tmp_path / f"c{i}.wav", brown.astype(np.float32), SR)
        (tmp_path / f"c{i}.txt").write_text("noise")
    from conftest import REPO

    model = json.loads((REPO / "model_configs/generate/tiny.json").read_text())
    model.update(sample_rate=SR, sample_size=8192, audio_channels=1)
    model["model"]["pretransform"] = {"type": "log_stft", "config": {"channels": 1, "n_fft": 128, "hop": 64}}
    model["model"]["io_channels"] = model["model"]["diffusion"]["config"]["io_channels"] = 65
    dataset = {"dataset_type": "audio_folder", "roots": str(tmp_path)}
    (tmp_path / "model.json").write_text(json.dumps(model))
    (tmp_path / "data.json").write_text(json.dumps(dataset))
    out = tmp_path / "stats.json"
    args = ["--model-config", str(tmp_path / "model.json"), "--dataset-config", str(tmp_path / "data.json"),
            "--windows", "24", "--output", str(out)]
    assert main(args) == 0
    config = json.loads(out.read_text())["model"]["pretransform"]["config"]
    mean, std = np.array(config["band_mean"]), np.array(config["band_std"])
    assert mean.shape == std.shape == (65,)
    assert mean[1] - mean[-1] > 30  # brown noise: the low bins are tens of dB louder
    from saga_hsmad.data.loader import create_dataset_from_config
    from saga_hsmad.factory import create_pretransform_from_config

    standardised = create_pretransform_from_config(json.loads(out.read_text())["model"]["pretransform"], SR)
    data = create_dataset_from_config(dataset, "data.json", sample_size=8192, sample_rate=SR, audio_channels=1,
                                      seed=1)
    z = torch.cat([standardised.encode(data[i][0][None]) for i in range(3)], dim=-1)
    assert float(z.mean(dim=(0, 2)).abs().max()) < 0.5
    assert np.all((z.std(dim=(0, 2)).numpy() > 0.5) & (z.std(dim=(0, 2)).numpy() < 1.5))
    assert main(args) == 2  # no silent overwrite
