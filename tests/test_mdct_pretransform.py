"""The MDCT pretransform: exact inversion, orthogonality, band layout, per-band statistics."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from saga_hsmad.pretransforms.mdct_pretransform import MDCTPretransform, mdct_basis


def test_round_trip_and_orthogonality():
    p = MDCTPretransform(channels=2, hop=32).double()
    x = torch.randn(3, 2, 32 * 12, dtype=torch.float64)
    z = p.encode(x)
    assert z.shape == (3, 64, 12)
    assert torch.allclose(p.decode(z), x, atol=1e-5)
    # orthogonal: energy is kept, and white latent noise decodes to white audio noise of the same power
    assert torch.allclose(z.square().sum(), x.square().sum(), rtol=1e-5)
    noise = torch.randn(2, 64, 400, dtype=torch.float64)
    assert torch.allclose(p.decode(noise).square().mean(), torch.tensor(1.0, dtype=torch.float64), atol=0.02)


def test_matches_the_textbook_mdct_of_one_frame():
    """Frame l of the encoder is the direct-sum MDCT of samples [l·n, l·n + 2n) with the sine window."""
    n = 16
    p = MDCTPretransform(channels=1, hop=n).double()
    x = torch.randn(1, 1, n * 6, dtype=torch.float64)
    frame = x[0, 0, 2 * n: 4 * n].numpy()
    i, k = np.arange(2 * n), np.arange(n)
    window = np.sin(np.pi * (i + 0.5) / (2 * n))
    ref = math.sqrt(2 / n) * np.sum(window * frame * np.cos(np.pi / n * (i[None] + 0.5 + n / 2) * (k[:, None] + 0.5)), axis=1)
    assert np.allclose(p.encode(x)[0, :, 2].numpy(), ref, atol=1e-6)
    assert mdct_basis(n).shape == (n, 2 * n)


def test_a_tone_lands_in_its_band_of_its_channel():
    hop, sr = 64, 44100
    p = MDCTPretransform(channels=2, hop=hop)
    t = torch.arange(hop * 64, dtype=torch.float64)
    tone = torch.sin(2 * math.pi * (20.5 * sr / (2 * hop)) * t / sr).float()  # centre of band 20
    energy = p.encode(torch.stack([torch.zeros_like(tone), tone])[None]).square().sum(-1)[0]
    assert energy[:hop].sum() < 1e-8 * energy.sum()  # nothing in the silent left channel
    assert energy[hop + 20] / energy.sum() > 0.8
    assert energy[hop + 19: hop + 22].sum() / energy.sum() > 0.99


def test_band_std_whitens_and_inverts():
    std = [float(v) for v in np.geomspace(1.0, 1e-3, 32)]
    p = MDCTPretransform(channels=1, hop=32, band_std=std).double()
    plain = MDCTPretransform(channels=1, hop=32).double()
    x = torch.randn(2, 1, 32 * 8, dtype=torch.float64)
    assert torch.allclose(p.encode(x) * torch.tensor(std, dtype=torch.float64)[:, None], plain.encode(x), atol=1e-6)
    assert torch.allclose(p.decode(p.encode(x)), x, atol=1e-5)


def test_compression_is_a_power_law_on_whitened_coefficients_and_inverts():
    std = [float(v) for v in np.geomspace(1.0, 1e-2, 16)]
    p = MDCTPretransform(channels=1, hop=16, band_std=std, compression=0.5).double()
    plain = MDCTPretransform(channels=1, hop=16, band_std=std).double()
    x = torch.randn(2, 1, 16 * 10, dtype=torch.float64) * torch.logspace(-3, 0, 16 * 10, dtype=torch.float64)
    u = plain.encode(x)
    assert torch.allclose(p.encode(x), torch.sign(u) * u.abs().sqrt(), atol=1e-12)
    assert torch.allclose(p.decode(p.encode(x)), x, atol=1e-5)
    # a quiet frame 40 dB down sits only 20 dB down in the latent
    quiet, loud = x.clone(), x.clone()
    quiet[..., :] = 0.01 * torch.randn(2, 1, 160, dtype=torch.float64)
    loud[..., :] = torch.randn(2, 1, 160, dtype=torch.float64)
    ratio = (p.encode(quiet).square().mean() / p.encode(loud).square().mean()).log10() * 10
    assert abs(float(ratio) + 20) < 1.5


@pytest.mark.parametrize("kwargs, match", [
    (dict(hop=33), "even hop"),
    (dict(hop=8, band_std=[1.0] * 15), "list of 16"),
    (dict(hop=8, band_std=[1.0] * 15 + [0.0]), r"band_std\[15\]"),
    (dict(hop=8, band_std=[1.0] * 15 + [float("nan")]), r"band_std\[15\]"),
    (dict(hop=8, scale=0.0), "scale"),
    (dict(hop=8, compression=0.0), "compression"),
    (dict(hop=8, compression=1.5), "compression"),
])
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MDCTPretransform(channels=2, **kwargs)


def test_latent_stats_whitens_a_corpus(tmp_path):
    """latent_stats writes band_std into a copy of the config; with it the corpus' latent bands have about
    unit RMS, although the audio is strongly tilted (brown noise: bands span tens of dB)."""
    import soundfile as sf

    from saga_hsmad.cli.latent_stats import main

    rng = np.random.default_rng(0)
    for i in range(3):
        brown = np.cumsum(rng.standard_normal((44100, 2)), axis=0)
        brown = (brown - brown.mean(0)) / np.abs(brown).max() * 0.5
        sf.write(tmp_path / f"c{i}.wav", brown.astype(np.float32), 44100)
        (tmp_path / f"c{i}.txt").write_text("noise")
    from conftest import REPO

    model = json.loads((REPO / "model_configs/saga_sr/tiny.json").read_text())
    model["model"]["pretransform"] = {"type": "mdct", "config": {"channels": 2, "hop": 64, "scale": 1.0}}
    dataset = {"dataset_type": "super_resolution", "root": str(tmp_path)}
    (tmp_path / "model.json").write_text(json.dumps(model))
    (tmp_path / "data.json").write_text(json.dumps(dataset))
    out = tmp_path / "whitened.json"
    args = ["--model-config", str(tmp_path / "model.json"), "--dataset-config", str(tmp_path / "data.json"),
            "--windows", "24", "--output", str(out)]
    assert main(args) == 0
    std = json.loads(out.read_text())["model"]["pretransform"]["config"]["band_std"]
    assert len(std) == 128 and max(std) / min(std) > 100  # the tilt was there
    from saga_hsmad.data.loader import create_dataset_from_config
    from saga_hsmad.factory import create_pretransform_from_config

    whitened = create_pretransform_from_config(json.loads(out.read_text())["model"]["pretransform"], 44100)
    data = create_dataset_from_config(dataset, "data.json", sample_size=32768, sample_rate=44100, seed=1)
    z = torch.cat([whitened.encode(data[i][0][None]) for i in range(3)], dim=-1)  # other windows than the fit
    rms = z.square().mean(dim=(0, 2)).sqrt().numpy()
    assert np.all((rms > 0.7) & (rms < 1.4)), rms
    assert main(args) == 2  # no silent overwrite


def test_band_level_log_mean_is_a_typical_window_not_the_loudest():
    from saga_hsmad.cli.latent_stats import band_level

    rms = np.array([[1.0, 2.0], [100.0, 2.0], [0.0, 2.0]])  # one loud window, one silent one in band 0
    assert np.allclose(band_level(rms, "log_mean"), [10.0, 2.0])  # silence has no level; geometric mean
    assert np.allclose(band_level(rms, "rms"), [np.sqrt((1 + 100 ** 2) / 3), 2.0])
    with pytest.raises(ValueError, match="statistic"):
        band_level(rms, "median")


def test_config_check_knows_the_mdct_latent_shape():
    """A model config whose io_channels or sample_size does not fit the mdct pretransform is refused."""
    from conftest import REPO

    from saga_hsmad.config_check import validate_model_config

    config = json.loads((REPO / "model_configs/saga_sr/tiny.json").read_text())
    assert validate_model_config(config) == []
    config["model"]["io_channels"] = 64
    config["sample_size"] = 32768 + 32
    paths = {p.path for p in validate_model_config(config)}
    assert {"model.io_channels", "sample_size"} <= paths
