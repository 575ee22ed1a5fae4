"""LSD / LSD-HF (spec §6) against closed forms and an independent numpy implementation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from saga_hsmad.evaluation.lsd import first_bin_above, lsd, lsd_hf

SR = 44100


def reference_lsd(ref: np.ndarray, est: np.ndarray, min_bin: int = 0) -> float:
    """Plain numpy: per channel, zero-padded centred frames, periodic Hann, power floored at 1e-10,
    per-frame RMS over bins >= min_bin of log10 P_ref - log10 P_est, mean over frames then channels."""
    n_fft, hop = 2048, 512
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    per_channel = []
    for r, e in zip(np.atleast_2d(ref), np.atleast_2d(est)):
        rp, ep = np.pad(r, n_fft // 2), np.pad(e, n_fft // 2)
        frames = []
        for i in range(1 + (len(rp) - n_fft) // hop):
            pr = np.maximum(np.abs(np.fft.rfft(rp[i * hop:i * hop + n_fft] * window)) ** 2, 1e-10)
            pe = np.maximum(np.abs(np.fft.rfft(ep[i * hop:i * hop + n_fft] * window)) ** 2, 1e-10)
            d = (np.log10(pr) - np.log10(pe))[min_bin:]
            frames.append(np.sqrt(np.mean(d ** 2)))
        per_channel.append(np.mean(frames))
    return float(np.mean(per_channel))


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 20000)) * 0.3


def test_identical_signals_give_zero(audio):
    assert lsd(audio, audio).item() == 0.0
    assert lsd_hf(audio, audio, 4000.0).item() == 0.0


@pytest.mark.parametrize("a", [0.5, 0.1, 2.0])
def test_known_attenuation_gives_closed_form(audio, a):
    # every bin's power scales by a^2 (noise keeps all bins far above the 1e-10 floor)
    assert lsd(audio, a * audio).item() == pytest.approx(abs(2 * np.log10(a)), rel=1e-9)
    assert lsd_hf(audio, a * audio, 8000.0).item() == pytest.approx(abs(2 * np.log10(a)), rel=1e-9)


def test_matches_numpy_reference(audio):
    rng = np.random.default_rng(1)
    est = audio + 0.1 * rng.standard_normal(audio.shape)
    est[:, 5000:6000] = 0.0  # exercises the power floor
    assert lsd(audio, est).item() == pytest.approx(reference_lsd(audio, est), rel=1e-9)
    k = first_bin_above(4000.0, SR)
    assert lsd_hf(audio, est, 4000.0).item() == pytest.approx(reference_lsd(audio, est, k), rel=1e-9)
    assert lsd(audio[0], est[0]).item() == pytest.approx(reference_lsd(audio[:1], est[:1]), rel=1e-9)


def test_lsd_hf_ignores_bins_below_the_cutoff(audio):
    rng = np.random.default_rng(2)
    est = audio + 0.05 * rng.standard_normal(audio.shape)
    # add a strong 1 kHz tone with a smooth envelope (no edge clicks): all its energy stays within a
    # few bins of 1 kHz, far below the 4 kHz cutoff
    t = np.arange(audio.shape[-1]) / SR
    changed_low = est + 3.0 * np.sin(2 * np.pi * 1000.0 * t) * signal.windows.tukey(len(t), 0.5)
    assert lsd(audio, changed_low).item() > lsd(audio, est).item() + 0.1
    assert lsd_hf(audio, changed_low, 4000.0).item() == pytest.approx(lsd_hf(audio, est, 4000.0).item(), abs=1e-6)


def test_bin_selection_and_batching(audio):
    assert first_bin_above(4000.0, SR) == 186  # 185 * 44100 / 2048 = 3983.6 Hz, 186 -> 4005.2 Hz
    assert first_bin_above(4005.17578125, SR) == 187  # a bin exactly at the cutoff is excluded
    rng = np.random.default_rng(3)
    est = audio + 0.2 * rng.standard_normal(audio.shape)
    batch_ref = torch.from_numpy(np.stack([audio, audio]))
    batch_est = torch.from_numpy(np.stack([est, audio * 0.5]))
    out = lsd(batch_ref, batch_est)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(lsd(audio, est).item(), rel=1e-12)
    assert out[1].item() == pytest.approx(2 * np.log10(2), rel=1e-9)
    with pytest.raises(AssertionError):
        lsd(audio, audio[:, :-1])
