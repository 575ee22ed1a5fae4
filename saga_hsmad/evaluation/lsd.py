"""Log-spectral distance, LSD and LSD-HF, as spec §6 defines them.

    P = max(|STFT(x)|^2, 1e-10)                    STFT: Hann 2048, hop 512, centred (zero padding)
    d(k, n) = log10 P_ref(k, n) - log10 P_est(k, n)
    LSD_frame(n) = sqrt(mean_k d(k, n)^2)            RMS over frequency bins k
    LSD = mean over frames n and channels c

LSD-HF is the same with k restricted to bins strictly above the cutoff: k * sr / n_fft > cutoff_hz.
Evaluation runs at 44.1 kHz (both signals at the output rate, same length). The unit is log10 of power
("bels"), as in AudioSR/NVSR, not dB; an attenuation x -> a x gives exactly |2 log10 a|.

Shape legend: B batch, C channels, T samples, F = n_fft // 2 + 1 bins, N frames.
"""
from __future__ import annotations

import numpy as np
import torch

N_FFT = 2048
HOP_LENGTH = 512
POWER_FLOOR = 1e-10


def _prepare(ref: torch.Tensor | np.ndarray, est: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, bool]:
    ref_t = torch.from_numpy(np.ascontiguousarray(ref)) if isinstance(ref, np.ndarray) else ref
    est_t = torch.from_numpy(np.ascontiguousarray(est)) if isinstance(est, np.ndarray) else est
    assert ref_t.is_floating_point() and est_t.is_floating_point(), "LSD expects floating-point audio"
    assert ref_t.shape == est_t.shape, \
        f"reference {tuple(ref_t.shape)} and estimate {tuple(est_t.shape)} must have the same shape (same rate, length)"
    assert ref_t.dim() in (1, 2, 3), f"audio must be (T,), (C, T) or (B, C, T), got shape {tuple(ref_t.shape)}"
    dtype = torch.promote_types(ref_t.dtype, est_t.dtype)
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    unbatched = ref_t.dim() < 3
    shape3 = (1, 1, ref_t.shape[-1]) if ref_t.dim() == 1 else ((1, *ref_t.shape) if ref_t.dim() == 2 else ref_t.shape)
    return (ref_t.to(dtype).reshape(shape3), est_t.to(device=ref_t.device, dtype=dtype).reshape(shape3), unbatched)


def stft(audio: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """(B, T) -> (B, F, N) complex: the measure's STFT (periodic Hann, centred, zero padding)."""
    window = torch.hann_window(n_fft, periodic=True, dtype=audio.dtype, device=audio.device)
    return torch.stft(audio, n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)


def log_power(audio: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
              floor: float = POWER_FLOOR) -> torch.Tensor:
    """(..., T) -> (..., F, N): log10(max(|STFT|^2, floor))."""
    lead = audio.shape[:-1]
    spec = stft(audio.reshape(-1, audio.shape[-1]), n_fft, hop_length)
    power = spec.real.square() + spec.imag.square()
    return torch.log10(power.clamp_min(floor)).reshape(*lead, *power.shape[-2:])


def _lsd(ref: torch.Tensor | np.ndarray, est: torch.Tensor | np.ndarray, min_bin: int,
         n_fft: int, hop_length: int) -> torch.Tensor:
    ref3, est3, unbatched = _prepare(ref, est)
    diff = log_power(ref3, n_fft, hop_length) - log_power(est3, n_fft, hop_length)  # (B, C, F, N)
    diff = diff[:, :, min_bin:]
    assert diff.shape[2] > 0, f"no frequency bin lies above the cutoff (first bin {min_bin}, n_fft {n_fft})"
    per_frame = diff.square().mean(dim=2).sqrt()  # (B, C, N)
    per_item = per_frame.mean(dim=(1, 2))  # (B,)
    return per_item[0] if unbatched else per_item


def lsd(ref: torch.Tensor | np.ndarray, est: torch.Tensor | np.ndarray, n_fft: int = N_FFT,
        hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Log-spectral distance (spec §6) over all bins.

    Args:
        ref, est: (T,), (C, T) or (B, C, T), same shape, same rate (44.1 kHz in the protocol).
    Returns:
        () for unbatched input, (B,) for a batch: mean over frames and channels of the per-frame RMS.
    """
    return _lsd(ref, est, 0, n_fft, hop_length)


def first_bin_above(cutoff_hz: float, sr: int, n_fft: int = N_FFT) -> int:
    """Index of the first bin whose centre frequency k * sr / n_fft is strictly above ``cutoff_hz``."""
    return int(np.floor(cutoff_hz * n_fft / sr)) + 1


def lsd_hf(ref: torch.Tensor | np.ndarray, est: torch.Tensor | np.ndarray, cutoff_hz: float, sr: int = 44100,
           n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """LSD over the bins strictly above ``cutoff_hz`` (k * sr / n_fft > cutoff_hz). Shapes as :func:`lsd`."""
    return _lsd(ref, est, first_bin_above(cutoff_hz, sr, n_fft), n_fft, hop_length)
