"""Low-frequency replacement (LFR) after decoding (spec §5) and full-band detection.

LFR, as the official code does it (``UtilAudioSR.wav_replace_ops``, copied from AudioSR), for every
channel of every item on its own:

1. k_c = roll-off bin of that channel of the low-resolution input (the 0.985 rule of
   :mod:`saga_hsmad.dsp.rolloff`);
2. X = STFT(input), Y = STFT(generated), same STFT: Hann 2048, hop 512, centred, zero padding;
3. energy ratio r = sum_frames |X[k_c]| / sum_frames |Y[k_c]|, clamped to [0.8, 1.2];
4. Y[k] = X[k] / r for every bin k < k_c (magnitude and phase), Y[k] unchanged for k >= k_c;
5. inverse STFT to the original length.

Dividing by r scales the copied low band to the generated signal's level at the cutoff bin, so the seam
at k_c has no step; the clamp bounds that correction to -1.6 ... +1.9 dB (1/1.2 ... 1/0.8).

Stereo (``channels``): the official function squeezes its input to two dimensions (a (1, 2, T) stereo
item becomes (2, T)) and loops over the rows, so the two channels are two rows, each with its own k_c
and r. ``channels="each"`` (the default)
does the same. ``channels="mix"`` is the alternative: one k_c from the channel mix (the f_l the model is
conditioned on) and one r per item, summed over channels and frames, which keeps the input's stereo
balance in the copied band but, when the channels have different bandwidths (say 4 and 7 kHz), copies
the narrow channel's empty band above its own cutoff over the generated content there (a hole up to
the mix's cutoff, which lies near the wide channel's).

Our choices where the official code is silent:
- r = 1 when both sums are 0 (the official code would produce NaN), 1.2 (clamped) when only the
  generated sum is 0;
- a batch (B, C, T) is processed at once with per-item (and per-channel) k_c and r.

Full-band detection (:func:`is_full_band`), used to skip SR for input that needs none. The input is
full-band when its rate is at least 2 x ``threshold_hz`` and the power above ``threshold_hz`` is at least
``min_fraction_db`` of its total power (channel mix, time-summed power spectrum of uncentred frames, so
the abrupt edges of an excerpt add no click). Defaults: 19 kHz and -55 dB. Why 19 kHz: training cutoffs
end at 16 kHz, and scipy's resampler (Kaiser window, beta 5) used by the LR recipe and the test protocol
rolls off over ~16 % above the cutoff (to ~18.6 kHz for 16 kHz); above that only its ~-54 dB stop band
and images remain. Measured on synthetic noise (262,144 samples at 44.1 kHz): full-band white and pink
noise have -9 and -20 dB above 19 kHz; the simulated LR of white, pink, brown and -9 dB/octave noise
(every family, orders 2 and 10, cutoffs 2-16 kHz, float and 16-bit) at most -66 dB. Limits, by design
conservative: a steep full-band spectrum (brown noise: -63 dB) or speech with little air above 19 kHz
counts as band-limited and simply goes through SR; silence (no power) is not full-band. A level-only
test ("is anything within N dB of the peak?") does not work: the resampler's images sit only ~54 dB
below the content they mirror.

Shape legend: B batch, C channels, T samples, F = n_fft // 2 + 1 bins, N frames.
"""
from __future__ import annotations

import typing as tp

import numpy as np
import torch

from .rolloff import HOP_LENGTH, N_FFT, ROLL_PERCENT, spectral_rolloff_bin

RATIO_RANGE = (0.8, 1.2)
LFRChannels = tp.Literal["each", "mix"]


def _as_float_tensor(audio: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    assert isinstance(audio, torch.Tensor) and audio.is_floating_point(), \
        f"{name} must be floating-point audio (tensor or numpy array)"
    assert audio.dim() in (1, 2, 3), f"{name} must be (T,), (C, T) or (B, C, T), got shape {tuple(audio.shape)}"
    return audio if audio.dtype in (torch.float32, torch.float64) else audio.float()


def _stft(x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """(M, T) -> (M, F, N) complex, centred with zero padding."""
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    return torch.stft(x, n_fft, hop_length, window=window, center=True, pad_mode="constant", return_complex=True)


def replace_low_band(spec_generated: torch.Tensor, spec_input: torch.Tensor, cutoff_bin: torch.Tensor,
                     ratio_range: tuple[float, float] = RATIO_RANGE,
                     channels: LFRChannels = "each") -> tuple[torch.Tensor, torch.Tensor]:
    """The STFT-domain step of LFR.

    Args:
        spec_generated, spec_input: (B, C, F, N) complex STFTs of the same length.
        cutoff_bin: (B,) or (B, C) int64; bins k < cutoff_bin[b, c] are replaced in channel c of item b
            ((B,): the same bin for every channel).
        ratio_range: clamp of the energy ratio.
        channels: "each" channel gets its own ratio; "mix": one ratio per item, summed over channels.
    Returns:
        (spec, ratio): (B, C, F, N) with spec[b, c, k] = spec_input[b, c, k] / ratio[b, c] for
        k < cutoff_bin[b, c] and spec_generated elsewhere; ratio (B, C) ("each") or (B,) ("mix") =
        clamp(sum |X[k_c]| / sum |Y[k_c]|).
    """
    assert spec_generated.shape == spec_input.shape, \
        f"STFT shapes differ: generated {tuple(spec_generated.shape)} vs input {tuple(spec_input.shape)}"
    assert channels in ("each", "mix"), f"channels must be 'each' or 'mix', got {channels!r}"
    n_batch, n_ch, n_bins, n_frames = spec_generated.shape
    k_c = cutoff_bin.to(spec_generated.device).clamp(0, n_bins - 1)
    if k_c.dim() == 1:
        k_c = k_c.view(n_batch, 1).expand(n_batch, n_ch)
    assert k_c.shape == (n_batch, n_ch), f"cutoff_bin must be (B,) or (B, C), got {tuple(cutoff_bin.shape)}"
    index = k_c.reshape(n_batch, n_ch, 1, 1).expand(-1, -1, 1, n_frames)
    energy_in = torch.gather(spec_input, 2, index).abs().sum(dim=(2, 3))  # (B, C)
    energy_gen = torch.gather(spec_generated, 2, index).abs().sum(dim=(2, 3))
    if channels == "mix":
        energy_in, energy_gen = energy_in.sum(dim=1), energy_gen.sum(dim=1)  # (B,)
    both_zero = (energy_in == 0) & (energy_gen == 0)
    ratio = torch.where(both_zero, torch.ones_like(energy_in), energy_in / energy_gen)  # x/0 -> inf -> clamped
    ratio = ratio.clamp(*ratio_range)
    per_channel = ratio if channels == "each" else ratio.view(n_batch, 1).expand(n_batch, n_ch)
    low = torch.arange(n_bins, device=k_c.device).view(1, 1, -1, 1) < k_c.view(n_batch, n_ch, 1, 1)  # (B, C, F, 1)
    divisor = per_channel.view(n_batch, n_ch, 1, 1).to(spec_input.real.dtype)
    spec = torch.where(low, spec_input / divisor, spec_generated)
    return spec, ratio


def low_frequency_replacement(generated: torch.Tensor, lowres: torch.Tensor | np.ndarray,
                              cutoff_bin: int | torch.Tensor | None = None,
                              ratio_range: tuple[float, float] = RATIO_RANGE,
                              n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                              return_ratio: bool = False, channels: LFRChannels = "each",
                              ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Replace the generated audio's bins below the input's cutoff with the input's (spec §5, module doc).

    Args:
        generated: decoded model output, (T,), (C, T) or (B, C, T) at the output rate.
        lowres: the low-resolution input resampled to the same rate, same shape as ``generated``.
        cutoff_bin: replace bins k < cutoff_bin (an int, (B,) or (B, C)); default: the roll-off bin of
            each channel of ``lowres`` ("each") or of each item's channel mix ("mix").
        ratio_range: clamp of the energy-ratio correction.
        return_ratio: also return the ratios: (B, C) for "each", (B,) for "mix"; without the batch axis
            for unbatched input.
        channels: "each" (official) or "mix" (module docstring).
    Returns:
        audio of ``generated``'s shape, dtype (float32 for half) and device; optionally the ratios.
    """
    gen = _as_float_tensor(generated, "generated")
    low = _as_float_tensor(lowres, "lowres").to(device=gen.device, dtype=gen.dtype)
    assert gen.shape == low.shape, f"generated {tuple(gen.shape)} and lowres {tuple(low.shape)} must match; " \
                                   "resample the input to the output rate and trim/pad it to the same length first"
    unbatched = gen.dim() < 3
    gen3 = gen.reshape(1, 1, -1) if gen.dim() == 1 else (gen.unsqueeze(0) if gen.dim() == 2 else gen)
    low3 = low.reshape(gen3.shape)
    n_batch, n_ch, length = gen3.shape
    assert channels in ("each", "mix"), f"channels must be 'each' or 'mix', got {channels!r}"
    if cutoff_bin is None and channels == "each":
        k_c = spectral_rolloff_bin(low3.reshape(n_batch * n_ch, 1, length), n_fft, hop_length, ROLL_PERCENT)
        k_c = k_c.view(n_batch, n_ch)
    elif cutoff_bin is None:
        k_c = spectral_rolloff_bin(low3, n_fft, hop_length, ROLL_PERCENT)
    else:
        k_c = torch.as_tensor(cutoff_bin, device=gen.device)
        k_c = k_c.reshape(n_batch, n_ch) if k_c.dim() == 2 else k_c.reshape(-1).expand(n_batch)
    spec_gen = _stft(gen3.reshape(n_batch * n_ch, length), n_fft, hop_length)
    spec_in = _stft(low3.reshape(n_batch * n_ch, length), n_fft, hop_length)
    spec, ratio = replace_low_band(spec_gen.unflatten(0, (n_batch, n_ch)), spec_in.unflatten(0, (n_batch, n_ch)),
                                   k_c, ratio_range, channels)
    window = torch.hann_window(n_fft, periodic=True, dtype=gen.dtype, device=gen.device)
    out = torch.istft(spec.flatten(0, 1), n_fft, hop_length, window=window, center=True, length=length)
    out = out.reshape(gen.shape)
    if return_ratio:
        return out, (ratio[0] if unbatched else ratio)
    return out


def high_band_fraction_db(audio: torch.Tensor | np.ndarray, sr: int, threshold_hz: float = 19000.0,
                          n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """10 log10(power above ``threshold_hz`` / total power) of the channel mix; -inf for silence.

    (T,)/(C, T) -> (), (B, C, T) -> (B,). Bins with centre frequency k * sr / n_fft >= threshold count as above.
    """
    x = _as_float_tensor(audio, "audio")
    mono = x if x.dim() == 1 else x.mean(dim=-2)
    lead = mono.shape[:-1]
    mono = mono.reshape(-1, mono.shape[-1])
    if mono.shape[-1] < n_fft:
        mono = torch.nn.functional.pad(mono, (0, n_fft - mono.shape[-1]))
    # uncentred frames lie inside the signal: an abrupt start or end of an excerpt would otherwise put
    # a broadband click into the zero-padded edge frames
    window = torch.hann_window(n_fft, periodic=True, dtype=mono.dtype, device=mono.device)
    spec = torch.stft(mono, n_fft, hop_length, window=window, center=False, return_complex=True)
    power = (spec.real.square() + spec.imag.square()).sum(dim=-1)  # (M, F)
    freqs = torch.arange(power.shape[-1], device=power.device, dtype=power.dtype) * (sr / n_fft)
    high = power[:, freqs >= threshold_hz].sum(dim=-1)
    total = power.sum(dim=-1)
    fraction = torch.where(total > 0, high / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(total))
    return (10.0 * torch.log10(fraction)).reshape(lead)


def is_full_band(audio: torch.Tensor | np.ndarray, sr: int, threshold_hz: float = 19000.0,
                 min_fraction_db: float = -55.0) -> torch.Tensor:
    """True where the input already has content above ``threshold_hz``, so SR can be skipped.

    (T,)/(C, T) -> () bool, (B, C, T) -> (B,) bool. Rule, defaults and limits: module docstring.
    """
    fraction = high_band_fraction_db(audio, sr, threshold_hz)
    if sr < 2 * threshold_hz:
        return torch.zeros_like(fraction, dtype=torch.bool)
    return fraction >= min_fraction_db
