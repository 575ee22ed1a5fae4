"""LR simulation (spec §1): filter responses, zero phase, channel independence, clamp, determinism, and
agreement with a straightforward scipy implementation of the official recipe."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from saga_hsmad.dsp import lowpass as lp
from saga_hsmad.dsp.polyphase import resample_poly_torch
from saga_hsmad.dsp.rolloff import rolloff_to_hz

SR = 44100


def reference_lowres(x: np.ndarray, sr: int, family: str, order: int, cutoff: float) -> np.ndarray:
    """The official recipe written plainly: per channel, float64 sosfiltfilt with a freshly designed
    filter, scipy resample_poly down to 2 x cutoff and back, cut or zero-pad to the input length."""
    wn = cutoff / (sr / 2)
    sos = {"cheby1": lambda: signal.cheby1(order, 0.1, wn, output="sos"),
           "butter": lambda: signal.butter(order, wn, output="sos"),
           "bessel": lambda: signal.bessel(order, wn, output="sos"),
           "ellip": lambda: signal.ellip(order, 0.1, 60, wn, output="sos")}[family]()
    out = np.zeros(x.shape, dtype=np.float64)
    for c in range(x.shape[0]):
        y = signal.sosfiltfilt(sos, x[c].astype(np.float64))
        rate = int(round(2 * cutoff))
        y = signal.resample_poly(signal.resample_poly(y, rate, sr), sr, rate)
        out[c] = y[:x.shape[1]] if len(y) >= x.shape[1] else np.pad(y, (0, x.shape[1] - len(y)))
    return out


def psd_ratio_db(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, px = signal.welch(x, SR, nperseg=4096)
    _, py = signal.welch(y, SR, nperseg=4096)
    return f, 10 * np.log10(py / px + 1e-30)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, SR))


@pytest.mark.parametrize("family", lp.FAMILIES)
@pytest.mark.parametrize("order", [2, 10])
def test_filter_response_pass_band_and_attenuation(noise, family, order):
    cutoff = 4000.0
    sos = lp.design_lowpass(family, order, cutoff, SR)
    f, measured = psd_ratio_db(noise[0], lp.lowpass_zero_phase(noise, sos)[0])
    _, h = signal.sosfreqz(sos, worN=f, fs=SR)
    expected = 20 * np.log10(np.abs(h) ** 2 + 1e-30)  # forward-backward: |H|^2
    pass_band = f <= 0.5 * cutoff
    # the zero-phase filter has exactly the designed response |H|^2 in the pass band ...
    assert np.abs(measured[pass_band] - expected[pass_band]).max() < 0.3
    # ... and attenuates above the cutoff
    stop = (f >= 2 * cutoff) & (f <= 4 * cutoff)
    assert measured[stop].max() < -6.0
    assert measured[stop].max() < max(expected[stop].max(), -120.0) + 3.0  # -120: float64 noise floor
    # the full LR degradation (filter + resampling through 2 x cutoff): pass band kept, and the
    # resampler's own edge removes everything above 1.25 x cutoff by > 50 dB
    f, full = psd_ratio_db(noise[0], lp.apply_lowres(noise, SR, family, order, cutoff)[0])
    assert np.abs(full[pass_band] - expected[pass_band]).max() < 0.5
    assert full[f >= 1.25 * cutoff].max() < -50.0


def band_limited_pulse(n: int, center: int, bandwidth_hz: float) -> np.ndarray:
    t = (np.arange(n) - center) / SR
    return np.sinc(2 * bandwidth_hz * t) * np.exp(-0.5 * (t / 0.002) ** 2)


@pytest.mark.parametrize("family", lp.FAMILIES)
def test_zero_phase_no_shift(family):
    n, center = 8192, 3001
    pulse = band_limited_pulse(n, center, 1000.0)[None]
    for order in (2, 10):
        out = lp.apply_lowres(pulse, SR, family, order, 3000.0)[0]
        xcorr = signal.correlate(out, pulse[0], mode="full")
        assert int(np.argmax(xcorr)) - (n - 1) == 0
        assert int(np.argmax(np.abs(out))) == center
        # zero phase: the response to a symmetric pulse stays symmetric about its centre
        left, right = out[center - 400:center], out[center + 1:center + 401][::-1]
        assert np.abs(left - right).max() < 1e-3 * np.abs(out).max()


def test_channels_are_filtered_independently_and_silence_stays_silent():
    rng = np.random.default_rng(1)
    n = 20000
    noise_ch = rng.standard_normal(n)
    sine_ch = np.sin(2 * np.pi * 440.0 * np.arange(n) / SR)
    stereo = np.stack([noise_ch, sine_ch])
    out = lp.apply_lowres(stereo, SR, "ellip", 6, 5000.0)
    for c in range(2):
        alone = lp.apply_lowres(stereo[c:c + 1], SR, "ellip", 6, 5000.0)[0]
        np.testing.assert_allclose(out[c], alone, atol=1e-12)
    assert np.abs(out[0] - out[1]).max() > 0.5  # different content stays different
    with_silence = lp.apply_lowres(np.stack([noise_ch, np.zeros(n)]), SR, "ellip", 6, 5000.0)
    assert np.all(with_silence[1] == 0.0)
    np.testing.assert_allclose(with_silence[0], out[0], atol=1e-12)
    # a dual-mono window (filtered once internally) gives the same as filtering both channels
    dual = lp.apply_lowres(np.stack([noise_ch, noise_ch]), SR, "bessel", 4, 7000.0)
    single = lp.apply_lowres(noise_ch[None], SR, "bessel", 4, 7000.0)[0]
    np.testing.assert_array_equal(dual[0], dual[1])
    np.testing.assert_allclose(dual[0], single, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_straightforward_scipy_recipe(dtype):
    rng = np.random.default_rng(2)
    x = (0.5 * rng.standard_normal((2, 30011))).astype(dtype)
    tol = 1e-10 if dtype == np.float64 else 2e-6
    for family, order, cutoff in [("cheby1", 8, 4000.0), ("ellip", 10, 7025.0), ("butter", 2, 15975.0),
                                  ("bessel", 5, 2000.0), ("cheby1", 3, 11025.0)]:
        ours = lp.apply_lowres(x, SR, family, order, cutoff)
        assert ours.shape == x.shape and ours.dtype == x.dtype
        np.testing.assert_allclose(ours, reference_lowres(x, SR, family, order, cutoff), atol=tol)
    np.testing.assert_allclose(lp.test_protocol_lowres(x, SR, 8000.0), reference_lowres(x, SR, "cheby1", 8, 8000.0),
                               atol=tol)


def test_torch_input_keeps_type_dtype_and_exact_length():
    rng = np.random.default_rng(3)
    for n in (1001, 44100, 262144 // 8 + 7):
        x = torch.from_numpy(rng.standard_normal((2, n))).float()
        y = lp.test_protocol_lowres(x, SR, 4000.0)
        assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == x.shape
    mono = rng.standard_normal(5000)
    assert lp.test_protocol_lowres(mono, SR, 4000.0).shape == (5000,)


@pytest.mark.parametrize("up,down", [(1, 2), (2, 1), (3, 7), (40, 441), (441, 40), (281, 882), (882, 281),
                                     (71, 98), (320, 441)])
def test_polyphase_resampler_equals_scipy(up, down):
    rng = np.random.default_rng(4)
    for n in (1, 50, 4097):
        x = rng.standard_normal((2, n))
        expected = signal.resample_poly(x, up, down, axis=-1)
        got = resample_poly_torch(torch.from_numpy(x), up, down).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-12)
        got32 = resample_poly_torch(torch.from_numpy(x).float(), up, down).numpy()
        np.testing.assert_allclose(got32, expected, atol=1e-5)


def test_resample_through_equals_scipy_and_keeps_length():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 12345))
    for cutoff in (2000.0, 5550.0, 11025.0, 16000.0):
        rate = int(2 * cutoff)
        expected = signal.resample_poly(signal.resample_poly(x, rate, SR, axis=-1), SR, rate, axis=-1)[:, :12345]
        np.testing.assert_allclose(lp.resample_through(x, SR, cutoff), expected, atol=1e-12)
    np.testing.assert_array_equal(lp.resample_through(x, SR, 22050.0), x)  # nothing to do at Nyquist


def test_design_lowpass_matches_scipy_and_validates():
    np.testing.assert_array_equal(lp.design_lowpass("ellip", 7, 5000.0, SR),
                                  signal.ellip(7, 0.1, 60, 5000.0 / 22050.0, output="sos"))
    np.testing.assert_array_equal(lp.design_lowpass("cheby1", 4, 9000.0, SR),
                                  signal.cheby1(4, 0.1, 9000.0 / 22050.0, output="sos"))
    for bad in [dict(family="cheby2", order=4, cutoff_hz=5000.0), dict(family="butter", order=4, cutoff_hz=22050.0),
                dict(family="butter", order=0, cutoff_hz=5000.0)]:
        with pytest.raises(AssertionError):
            lp.design_lowpass(sr=SR, **bad)


def test_cutoff_clamp_is_honoured():
    rng = np.random.default_rng(6)
    for _ in range(500):
        hr_rolloff = float(rng.uniform(0.1, 0.99))
        params = lp.draw_lowres_params(rng, SR, hr_rolloff)
        bound = 0.94 * rolloff_to_hz(hr_rolloff, SR)
        assert params.cutoff_hz <= bound
        assert params.cutoff_hz == min(params.drawn_cutoff_hz, math.floor(bound / 25) * 25) \
            or params.cutoff_hz == 25.0
        assert params.cutoff_hz % 25 == 0
    # the official code's choice: never below the range, even if that exceeds the clamp
    params = lp.draw_lowres_params(np.random.default_rng(0), SR, 0.05, below_range="range")
    assert params.cutoff_hz == 2000.0
    params = lp.draw_lowres_params(np.random.default_rng(0), SR, 0.05)
    assert params.cutoff_hz <= 0.94 * rolloff_to_hz(0.05)
    # without a clamp the draw covers the range on the grid, all families and orders
    draws = [lp.draw_lowres_params(rng, SR, None) for _ in range(800)]
    cutoffs = np.array([d.cutoff_hz for d in draws])
    assert cutoffs.min() >= 2000 and cutoffs.max() <= 16000 and np.all(cutoffs % 25 == 0)
    assert cutoffs.min() < 2500 and cutoffs.max() > 15500
    assert {d.family for d in draws} == set(lp.FAMILIES)
    assert {d.order for d in draws} == set(range(2, 11))


def test_simulate_lowres_clamps_with_measured_rolloff_and_is_deterministic():
    rng = np.random.default_rng(7)
    # HR band-limited at ~5 kHz: the measured roll-off is ~0.23, so every cutoff ends below ~4.7 kHz
    hr = np.ascontiguousarray(signal.sosfiltfilt(signal.butter(10, 5000 / 22050, output="sos"),
                                                 rng.standard_normal((2, 30000)), axis=-1))
    outs = []
    for seed in (11, 11, 12):
        lr, params = lp.simulate_lowres(hr, SR, np.random.default_rng(seed))
        assert params.hr_rolloff is not None
        assert params.cutoff_hz <= 0.94 * rolloff_to_hz(params.hr_rolloff) < 5000.0
        assert lr.shape == hr.shape
        outs.append((lr, params))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    assert outs[0][1] == outs[1][1]
    assert outs[0][1] != outs[2][1]
    assert outs[0][1].as_dict()["family"] == outs[0][1].family


@pytest.mark.parametrize("use_numba", [True, False])
def test_fast_sosfiltfilt_equals_scipy(monkeypatch, use_numba):
    from saga_hsmad.dsp import iir

    monkeypatch.setattr(iir, "_USE_NUMBA", use_numba and iir.numba is not None)
    rng = np.random.default_rng(8)
    x = rng.standard_normal(5000)
    for family in lp.FAMILIES:
        for order in (1, 2, 5, 10):
            sos = lp.design_lowpass(family, order, 3000.0 + 700.0 * order, SR)
            for n, padlen in ((5000, None), (40, None), (10, 9), (5000, 0)):
                expected = signal.sosfiltfilt(sos, x[:n], padlen=padlen)
                np.testing.assert_allclose(iir.sosfiltfilt(sos, x[:n], padlen=padlen), expected, rtol=0, atol=1e-12)
