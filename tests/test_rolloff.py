"""Spectral roll-off (spec §2) against an independent numpy reference and known band limits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from saga_hsmad.dsp.rolloff import hz_to_rolloff, rolloff_to_hz, spectral_rolloff, spectral_rolloff_bin

SR = 44100


def reference_rolloff_bin(audio: np.ndarray) -> int:
    """Straightforward numpy version of the official recipe, written independently of the module:
    mono mix, zero-padded centred frames, periodic Hann, |rfft|, sum over time, cumulative sum, and a
    Python loop from the top for the last bin strictly below 0.985 x total (0 if none)."""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    n_fft, hop = 2048, 512
    padded = np.pad(mono.astype(np.float64), (n_fft // 2, n_fft // 2))
    n_frames = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    mag_sum = np.zeros(n_fft // 2 + 1)
    for i in range(n_frames):
        mag_sum += np.abs(np.fft.rfft(padded[i * hop:i * hop + n_fft] * window))
    energy = np.cumsum(mag_sum)
    threshold = 0.985 * energy[-1]
    for k in range(len(energy) - 1, -1, -1):
        if energy[k] < threshold:
            return k
    return 0


def band_limited_noise(rng: np.random.Generator, cutoff_hz: float, n: int = SR * 2, channels: int = 2) -> np.ndarray:
    sos = signal.butter(12, cutoff_hz / (SR / 2), output="sos")
    return np.ascontiguousarray(signal.sosfiltfilt(sos, rng.standard_normal((channels, n)), axis=-1))


def test_matches_numpy_reference_exactly():
    rng = np.random.default_rng(0)
    for i in range(9):
        n = int(rng.integers(3000, 30000))
        x = band_limited_noise(rng, float(rng.uniform(500, 21000)), n=n)
        if i % 3 == 0:
            x[1] = 0.0  # one silent channel still mixes to mono
        assert spectral_rolloff_bin(torch.from_numpy(x)).item() == reference_rolloff_bin(x)
        assert spectral_rolloff(x).item() == pytest.approx(reference_rolloff_bin(x) / 1025, abs=1e-12)


def test_matches_librosa_recipe_of_the_official_code():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    for cutoff in (1500.0, 6000.0, 14000.0):
        x = band_limited_noise(rng, cutoff, n=30000).astype(np.float32)
        mag = np.abs(librosa.stft(x.mean(axis=0), n_fft=2048))  # hop 512, hann, centred, librosa defaults
        energy = np.cumsum(mag.sum(axis=-1))
        expected = int((energy < 0.985 * energy[-1]).sum()) - 1
        assert spectral_rolloff_bin(x).item() == max(expected, 0)


def expected_rolloff_hz(sos: np.ndarray) -> float:
    """Analytic roll-off of white noise through sosfiltfilt(sos): the expected magnitude spectrum is
    proportional to |H(f)|^2, so the roll-off is where its running integral reaches 98.5 %."""
    f = np.linspace(0, SR / 2, 200001)
    _, h = signal.sosfreqz(sos, worN=f, fs=SR)
    energy = np.cumsum(np.abs(h) ** 2)
    return float(f[np.searchsorted(energy, 0.985 * energy[-1])])


def test_band_limits_move_the_rolloff_monotonically_near_the_expected_bin():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, SR * 2))
    bin_hz = SR / 2048
    values = []
    for cutoff in (1000.0, 2000.0, 4000.0, 8000.0, 12000.0, 16000.0):
        sos = signal.butter(12, cutoff / (SR / 2), output="sos")
        x = np.ascontiguousarray(signal.sosfiltfilt(sos, base, axis=-1))
        r = spectral_rolloff(torch.from_numpy(x)).item()
        values.append(r)
        assert abs(rolloff_to_hz(r) - expected_rolloff_hz(sos)) <= 3 * bin_hz, (cutoff, rolloff_to_hz(r))
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_batch_equals_items_and_shapes():
    rng = np.random.default_rng(3)
    items = [band_limited_noise(rng, c, n=20000) for c in (3000.0, 9000.0, 15000.0)]
    batch = torch.from_numpy(np.stack(items))  # (B, C, T)
    out = spectral_rolloff(batch)
    assert out.shape == (3,)
    for b, item in enumerate(items):
        assert out[b].item() == spectral_rolloff(torch.from_numpy(item)).item()
    assert spectral_rolloff(torch.from_numpy(items[0])).shape == ()
    assert spectral_rolloff(torch.from_numpy(items[0][0])).shape == ()  # (T,)
    # (C, T) mixes to mono: equals the roll-off of the explicit mean
    assert spectral_rolloff(torch.from_numpy(items[1])).item() == spectral_rolloff(torch.from_numpy(items[1].mean(0))).item()


def test_dtypes_and_silence():
    rng = np.random.default_rng(4)
    x = band_limited_noise(rng, 7000.0, n=20000)
    r64 = spectral_rolloff(torch.from_numpy(x))
    assert r64.dtype == torch.float64
    r32 = spectral_rolloff(torch.from_numpy(x).float())
    assert r32.dtype == torch.float32 and abs(r32.item() - r64.item()) <= 1 / 1025 + 1e-6
    r16 = spectral_rolloff(torch.from_numpy(x).to(torch.bfloat16))
    assert r16.dtype == torch.float32
    assert spectral_rolloff(torch.zeros(2, 10000)).item() == 0.0  # documented: silence -> 0
    assert spectral_rolloff(torch.zeros(3, 2, 10000)).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(TypeError):
        spectral_rolloff(torch.zeros(2, 100, dtype=torch.int16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_input_device():
    x = torch.randn(2, 2, 20000, device="cuda")
    out = spectral_rolloff(x)
    assert out.device == x.device
    assert torch.equal(out.cpu(), spectral_rolloff(x.cpu()))


def test_hz_conversion_round_trip():
    assert rolloff_to_hz(0.5, 44100) == pytest.approx(11025.0)
    assert hz_to_rolloff(rolloff_to_hz(0.37, 48000), 48000) == pytest.approx(0.37)
    t = torch.tensor([0.1, 0.9])
    assert torch.allclose(hz_to_rolloff(rolloff_to_hz(t)), t)
