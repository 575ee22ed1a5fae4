"""dac_local pretransform: a local DAC weights file, continuous pre-quantisation latents, channel folding,
strict loading and errors that name the key; nothing downloads. A tiny randomly initialised dac.DAC saved
in the released file format stands in for the 44.1 kHz weights."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import REPO, StepHarness

import saga_hsmad.pretransforms.dac_local as dac_local  # registers "dac_local"
from saga_hsmad.pretransforms.dac_local import DACLocalPretransform, save_tiny_dac

LATENT = 64  # tiny codec: encoder_dim 4 x 2^4


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny_dac(tmp_path_factory.mktemp("dac") / "tiny_dac.pth", seed=0)


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    import dac

    def refuse(*args, **kwargs):
        raise AssertionError("dac.utils.download was called")

    monkeypatch.setattr(dac.utils, "download", refuse)


def build(weights, **kwargs) -> DACLocalPretransform:
    return DACLocalPretransform(str(weights), **{"latent_dim": LATENT, **kwargs})


def test_shapes_ratio_and_channel_folding(weights):
    pt = build(weights, channels=2, scale=2.0)
    assert (pt.downsampling_ratio, pt.encoded_channels, pt.io_channels, pt.sample_rate) == (512, 2 * LATENT, 2, 44100)
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(3, 2, 8 * 512, generator=g)
    with torch.no_grad():
        z = pt.encode(x)
        y = pt.decode(z)
        assert z.shape == (3, 2 * LATENT, 8) and y.shape == (3, 2, 8 * 512)
        # independent reference: the codec's own encoder / decoder on each channel separately
        codec = dac_local.load_dac(weights)
        for c in range(2):
            ref_z = codec.encoder(x[:, c:c + 1]) / 2.0
            torch.testing.assert_close(z[:, c * LATENT:(c + 1) * LATENT], ref_z, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(y[:, c:c + 1], codec.decoder(ref_z * 2.0), rtol=1e-5, atol=1e-6)


def test_latents_are_before_quantisation_and_quantised_decode_is_optional(weights):
    codec = dac_local.load_dac(weights)
    x = 0.1 * torch.randn(1, 1, 4 * 512, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain, quant = build(weights), build(weights, quantize_on_decode=True)
        z = plain.encode(x)
        z_q = codec.quantizer(codec.encoder(x), n_quantizers=codec.n_codebooks)[0]
        torch.testing.assert_close(z, codec.encoder(x))
        assert not torch.allclose(z, z_q, atol=1e-3)  # DAC.encode would have returned z_q
        torch.testing.assert_close(quant.decode(z), codec.decoder(z_q), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain.decode(z), quant.decode(z), atol=1e-4)


def test_codec_stays_out_of_the_state_dict_and_follows_dtype_moves(weights):
    pt = build(weights)
    assert list(pt.state_dict()) == ["dtype_anchor"] and all(not p.requires_grad for p in pt.parameters())
    pt.train()
    assert not pt.codec.training  # the quantiser must never run in training mode
    pt.to(torch.float64)
    assert next(pt.codec.parameters()).dtype == torch.float64
    z = pt.encode(torch.zeros(1, 1, 512, dtype=torch.float64))
    assert z.dtype == torch.float64


def test_errors_name_the_key_and_the_fix(weights, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"model_path = '.*missing.pth'.*nothing is downloaded"):
        DACLocalPretransform(str(tmp_path / "missing.pth"))
    monkeypatch.delenv("DAC_44KHZ_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError, match="DAC_44KHZ_WEIGHTS.*is not set"):
        DACLocalPretransform("${DAC_44KHZ_WEIGHTS}")
    monkeypatch.setenv("DAC_44KHZ_WEIGHTS", str(weights))
    assert DACLocalPretransform("${DAC_44KHZ_WEIGHTS}", latent_dim=LATENT).encoded_channels == LATENT
    with pytest.raises(ValueError, match="has latent_dim 64, but model.pretransform.config.latent_dim is 1024"):
        DACLocalPretransform(str(weights))
    with pytest.raises(ValueError, match="has hop 512 .*downsampling_ratio is 320"):
        build(weights, downsampling_ratio=320)
    with pytest.raises(ValueError, match="44100 Hz codec but the model's sample_rate is 48000"):
        build(weights, sample_rate=48000)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable DAC weights file"):
        DACLocalPretransform(str(junk))


def test_check_config_flags_channel_and_length_mismatches():
    config = json.loads((REPO / "model_configs/hsmad/paper.json").read_text())
    assert DACLocalPretransform.check_config(config) == []
    bad = copy.deepcopy(config)
    bad["model"]["io_channels"] = 512
    bad["audio_channels"] = 2
    bad["sample_size"] = 1327104 + 256
    assert [p for p, _ in DACLocalPretransform.check_config(bad)] == ["model.io_channels", "audio_channels",
                                                                      "sample_size"]


def test_tiny_hsmad_model_on_dac_latents_trains_and_decodes(weights, tmp_path):
    """The tiny HS-MAD config with dac_local in place of the patch pretransform: one training step through the
    registered wrapper, and generated latents decode to audio of the window's length."""
    import saga_hsmad
    from saga_hsmad.inference.generate import decode

    config = json.loads((REPO / "model_configs/hsmad/tiny.json").read_text())
    config.update(sample_rate=44100, sample_size=16 * 512, audio_channels=1)  # the tiny codec is a 44.1 kHz one
    config["model"]["pretransform"] = {"type": "dac_local", "config": {
        "model_path": str(weights), "channels": 1, "downsampling_ratio": 512, "latent_dim": LATENT}}
    config["model"]["io_channels"] = config["model"]["diffusion"]["config"]["io_channels"] = LATENT
    assert DACLocalPretransform.check_config(config) == []
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    assert model.min_input_length == 512 * 16
    wrapper = saga_hsmad.create_training_wrapper_from_config(config, model)
    from test_hsmad_training import corpus_batch, write_corpus

    wrapper.__class__ = type("Harnessed", (StepHarness, type(wrapper)), {})
    batch = corpus_batch(config, model, write_corpus(tmp_path / "corpus", channels=1))
    loss = wrapper.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.model.encoder.aux_heads.parameters())
    with torch.no_grad():
        audio = decode(model, torch.randn(1, LATENT, 16))
    assert audio.shape == (1, 1, 16 * 512)
