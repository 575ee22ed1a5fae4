"""The non-learned noise_fill baseline: LR kept below the cutoff, noise at the scaled average spectrum above."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from saga_hsmad.evaluation.baselines import average_power_spectrum, noise_fill, power_spectrum
from saga_hsmad.evaluation.lsd import lsd_hf

SR = 44100
FREQS = np.arange(1025) * SR / 2048


def test_average_power_spectrum_of_white_noise_is_flat_at_its_level(tmp_path):
    rng = np.random.default_rng(0)
    for i, sigma in enumerate([0.1, 0.2]):
        sf.write(tmp_path / f"n{i}.wav", (sigma * rng.standard_normal((SR, 2))).astype(np.float32), SR)
    avg = average_power_spectrum(sorted(tmp_path.glob("*.wav")))
    window_power = np.sum(np.hanning(2049)[:-1] ** 2)  # periodic Hann 2048
    expected = (0.1 ** 2 + 0.2 ** 2) / 2 * window_power
    inner = avg[20:1000]
    assert abs(np.median(inner) / expected - 1) < 0.05
    assert np.percentile(inner, 95) / np.percentile(inner, 5) < 1.5  # flat


def tilted_average() -> np.ndarray:
    return 1.0 / (1.0 + FREQS / 1000.0) ** 2  # a falling spectrum like music's


def test_keeps_the_input_below_the_cutoff_and_fills_above_at_the_scaled_average():
    rng = np.random.default_rng(1)
    from saga_hsmad.dsp.lowpass import test_protocol_lowres

    lr = test_protocol_lowres((0.1 * rng.standard_normal((2, 2 * SR))).astype(np.float32), SR, 4000.0)
    avg = tilted_average()
    out = noise_fill(lr, 4000.0, avg, SR, seed=0)
    assert out.shape == lr.shape and out.dtype == np.float32
    added, frames = power_spectrum(out - lr)
    added /= frames
    below, above = FREQS < 3500, FREQS > 4300
    assert added[below].max() < 1e-4 * added[above].max()  # nothing below the cutoff but the window's leakage
    clip, n = power_spectrum(lr)
    band = (FREQS >= 0.9 * 4000) & (FREQS <= 4000)
    gain = (clip[band].sum() / n) / avg[band].sum()
    ratio = added[above] / (gain * avg[above])
    assert abs(np.mean(ratio) - 1) < 0.05  # the realised noise has the target spectrum ...
    assert np.ptp(np.log10([ratio[i:i + 64].mean() for i in range(0, len(ratio) - 64, 64)])) < 0.15  # ... at every height
    # louder input, louder fill (4x power for 2x amplitude); a seed gives the same noise
    louder, _ = power_spectrum(noise_fill(2 * lr, 4000.0, avg, SR, seed=0) - 2 * lr)
    assert abs(louder[above].sum() / (added[above].sum() * frames) - 4) < 0.05
    assert np.array_equal(out, noise_fill(lr, 4000.0, avg, SR, seed=0))
    assert not np.array_equal(out, noise_fill(lr, 4000.0, avg, SR, seed=1))


def test_beats_the_unprocessed_input_on_a_signal_with_the_average_spectrum():
    """On audio whose spectrum is the average, filling the gap must beat leaving it empty."""
    rng = np.random.default_rng(2)
    from saga_hsmad.dsp.lowpass import test_protocol_lowres

    white = rng.standard_normal((1, 3 * SR))
    spec = np.fft.rfft(white) * np.sqrt(np.interp(np.fft.rfftfreq(3 * SR, 1 / SR), FREQS, tilted_average()))
    hr = (0.1 * np.fft.irfft(spec, n=3 * SR) / np.std(np.fft.irfft(spec, n=3 * SR))).astype(np.float32)
    lr = test_protocol_lowres(hr, SR, 4000.0)
    filled = noise_fill(lr, 4000.0, tilted_average(), SR)
    assert float(lsd_hf(hr, filled, 4000.0)) < 0.5 * float(lsd_hf(hr, lr, 4000.0))
    assert float(lsd_hf(hr, filled, 4000.0)) < 1.0  # about the floor of two independent noise draws (0.79)


def test_refuses_a_cutoff_without_a_reference_band():
    with pytest.raises(ValueError, match="reference band"):
        noise_fill(np.zeros((1, SR), np.float32), 10.0, tilted_average(), SR)
