"""Low-frequency replacement (spec §5) and full-band detection."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saga_hsmad.dsp import lowpass as lp
from saga_hsmad.dsp.lfr import high_band_fraction_db, is_full_band, low_frequency_replacement, replace_low_band
from saga_hsmad.dsp.rolloff import spectral_rolloff_bin

SR = 44100


def stft_mag(x: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(2048, periodic=True, dtype=x.dtype)
    return torch.stft(x, 2048, 512, window=window, center=True, pad_mode="constant", return_complex=True).abs()


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    hr = 0.3 * rng.standard_normal((2, SR))
    lowres = torch.from_numpy(lp.test_protocol_lowres(hr, SR, 4000.0))
    generated = torch.from_numpy(0.3 * rng.standard_normal((2, SR)))  # unrelated full-band content
    return lowres, generated


def test_stft_domain_replacement_is_exact():
    torch.manual_seed(1)
    shape = (2, 2, 1025, 9)
    spec_in = torch.complex(torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64))
    spec_gen = torch.complex(torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64))
    spec_gen[1] *= 1.05  # item 1: ratio inside the clamp range
    spec_gen[0] *= 10.0  # item 0: generated much louder -> ratio clamped to 0.8
    k_c = torch.tensor([100, 400])
    spec, ratio = replace_low_band(spec_gen, spec_in, k_c, channels="mix")
    expected_1 = spec_in[1, :, 400].abs().sum() / spec_gen[1, :, 400].abs().sum()
    assert 0.8 < expected_1.item() < 1.2
    assert torch.allclose(ratio, torch.stack([torch.tensor(0.8, dtype=torch.float64), expected_1]))
    for b, k in enumerate(k_c.tolist()):
        assert torch.equal(spec[b, :, :k], spec_in[b, :, :k] / ratio[b])
        assert torch.equal(spec[b, :, k:], spec_gen[b, :, k:])
    # per channel (the default): each (item, channel) has its own cutoff bin and ratio
    k_c = torch.tensor([[100, 300], [400, 50]])
    spec, ratio = replace_low_band(spec_gen, spec_in, k_c)
    assert ratio.shape == (2, 2)
    for b in range(2):
        for c in range(2):
            k = int(k_c[b, c])
            expected = (spec_in[b, c, k].abs().sum() / spec_gen[b, c, k].abs().sum()).clamp(0.8, 1.2)
            assert torch.allclose(ratio[b, c], expected)
            assert torch.equal(spec[b, c, :k], spec_in[b, c, :k] / ratio[b, c])
            assert torch.equal(spec[b, c, k:], spec_gen[b, c, k:])


def test_output_takes_the_input_below_the_cutoff_and_keeps_the_generated_high_band(pair):
    lowres, generated = pair
    out, ratio = low_frequency_replacement(generated, lowres, return_ratio=True)
    assert out.shape == generated.shape and out.dtype == generated.dtype and ratio.shape == (2,)
    k_c = min(int(spectral_rolloff_bin(channel)) for channel in lowres)
    assert 180 <= k_c <= 190  # 4 kHz cutoff -> bin ~186
    ratio = ratio.view(2, 1, 1)
    m_out, m_in, m_gen = stft_mag(out), stft_mag(lowres), stft_mag(generated)
    # away from the seam (Hann leakage reaches a few bins) and from the two outermost frames at each end
    # (their zero-padded halves are cut off by the inverse STFT) the magnitudes are the input's / the
    # generated signal's
    low, high, inner = slice(1, k_c - 10), slice(k_c + 10, None), slice(2, -2)
    scale = m_gen.max()
    assert (m_out[:, low, inner] - m_in[:, low, inner] / ratio).abs().max() < 1e-3 * scale
    assert (m_out[:, high, inner] - m_gen[:, high, inner]).abs().max() < 1e-3 * scale
    # and they really differed before
    assert (m_gen[:, low] - m_in[:, low]).abs().max() > 0.3 * scale


def test_ratio_clamp_and_consistent_level_change(pair):
    lowres, generated = pair
    # the unrelated generated noise is far louder at the cutoff bin than the filtered input: clamp 0.8
    _, ratio = low_frequency_replacement(generated, lowres, return_ratio=True)
    assert ratio.tolist() == pytest.approx([0.8, 0.8])
    # generated much quieter: clamp 1.2
    _, ratio = low_frequency_replacement(generated * 1e-3, lowres, return_ratio=True)
    assert ratio.tolist() == pytest.approx([1.2, 1.2])
    # generated = a * input with 1/a inside [0.8, 1.2]: ratio = 1/a, the replaced band a * X_in equals the
    # generated band, so the output is the generated signal itself
    for a in (0.9, 1.1):
        out, ratio = low_frequency_replacement(a * lowres, lowres, return_ratio=True)
        assert ratio.tolist() == pytest.approx([1 / a, 1 / a], rel=1e-9)
        assert (out - a * lowres).abs().max() < 1e-9
    # a wider clamp lets the full correction through
    _, ratio = low_frequency_replacement(generated * 1e-3, lowres, ratio_range=(0.01, 1e4), return_ratio=True)
    assert bool((ratio > 10).all())


def test_batch_matches_items_and_explicit_cutoff(pair):
    lowres, generated = pair
    batch = low_frequency_replacement(torch.stack([generated, 0.5 * generated]), torch.stack([lowres, lowres]))
    assert torch.allclose(batch[0], low_frequency_replacement(generated, lowres), atol=1e-12)
    assert torch.allclose(batch[1], low_frequency_replacement(0.5 * generated, lowres), atol=1e-12)
    # cutoff 0 replaces nothing
    untouched = low_frequency_replacement(generated, lowres, cutoff_bin=0)
    assert torch.allclose(untouched, generated, atol=1e-9)
    mono = low_frequency_replacement(generated[0].float(), lowres[0].float())
    assert mono.shape == (SR,) and mono.dtype == torch.float32


def test_stereo_channels_of_different_bandwidth_each_get_their_own_cutoff():
    """Official LFR treats each channel on its own: a 4 kHz left and a 7 kHz right channel are each replaced
    below their own cutoff, so the right channel keeps the input up to 7 kHz and the left keeps the generated
    band above 4 kHz (the mix would give one cutoff between the two and one ratio for both)."""
    rng = np.random.default_rng(3)
    hr = 0.3 * rng.standard_normal((2, SR))
    lowres = torch.from_numpy(np.stack([lp.test_protocol_lowres(hr[0], SR, 4000.0),
                                        lp.test_protocol_lowres(hr[1], SR, 7000.0)]))
    generated = torch.from_numpy(0.3 * rng.standard_normal((2, SR)))
    k_left, k_right = (int(spectral_rolloff_bin(channel)) for channel in lowres)
    k_mix = int(spectral_rolloff_bin(lowres))
    assert 180 <= k_left <= 195 and 320 <= k_right <= 340 and k_mix > k_left + 100
    out = low_frequency_replacement(generated, lowres)
    m_out, m_in, m_gen = stft_mag(out), stft_mag(lowres), stft_mag(generated)
    inner, scale = slice(2, -2), m_gen.max()
    # left: generated content above its own 4 kHz cutoff, not the empty band of the input up to k_mix
    between = slice(k_left + 10, k_mix)
    assert (m_out[0, between, inner] - m_gen[0, between, inner]).abs().max() < 1e-3 * scale
    # right: the input's content up to 7 kHz, as a mono call on that channel alone gives it
    assert torch.allclose(out[1], low_frequency_replacement(generated[1], lowres[1]), atol=1e-9)
    assert torch.allclose(out[0], low_frequency_replacement(generated[0], lowres[0]), atol=1e-9)
    # the channel-mix alternative leaves the hole in the narrow channel: the input's (empty) band up to k_mix
    mixed = stft_mag(low_frequency_replacement(generated, lowres, channels="mix"))
    assert mixed[0, between, inner].mean() < 0.05 * m_gen[0, between, inner].mean()


def test_batch_of_stereo_items_equals_every_channel_alone(pair):
    lowres, generated = pair
    narrow = torch.from_numpy(lp.test_protocol_lowres(lowres.numpy(), SR, 2500.0))
    low = torch.stack([lowres, torch.stack([lowres[0], narrow[1]])])
    gen = torch.stack([generated, 0.7 * generated])
    out, ratio = low_frequency_replacement(gen, low, return_ratio=True)
    assert ratio.shape == (2, 2)
    for b in range(2):
        for c in range(2):
            alone, r = low_frequency_replacement(gen[b, c], low[b, c], return_ratio=True)
            assert torch.allclose(out[b, c], alone, atol=1e-9) and torch.allclose(ratio[b, c], r)


def colored_noise(rng: np.random.Generator, alpha: float, n: int = SR) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal((2, n)), axis=-1)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (alpha / 2), n=n, axis=-1)
    return 0.5 * x / np.abs(x).max()


def test_full_band_detection():
    rng = np.random.default_rng(2)
    for alpha in (0.0, 1.0):  # white and pink noise are full band
        x = colored_noise(rng, alpha)
        assert bool(is_full_band(x, SR))
        assert not bool(is_full_band(x, 32000))  # a 32 kHz file cannot reach 19 kHz
        for family in lp.FAMILIES:
            for order, cutoff in ((2, 16000.0), (10, 8000.0), (6, 2000.0)):
                lowres = lp.apply_lowres(x, SR, family, order, cutoff)
                assert not bool(is_full_band(lowres, SR)), (alpha, family, order, cutoff)
                assert high_band_fraction_db(lowres, SR).item() < -60.0
    assert not bool(is_full_band(np.zeros((2, 4096)), SR))  # silence: nothing above 19 kHz
    batch = torch.from_numpy(np.stack([colored_noise(rng, 0.0), lp.test_protocol_lowres(colored_noise(rng, 0.0), SR, 8000.0)]))
    assert is_full_band(batch, SR).tolist() == [True, False]
