"""Low-resolution simulation of SAGA-SR (spec §1) and the paper's test-time degradation.

Training recipe (official code: ``SRMetaDataset.read_data`` + ``UtilAudioLowPassFilterNVSR``):

1. cutoff drawn uniformly from 2,000-16,000 Hz, then clamped to at most 0.94 x the HR window's own
   roll-off frequency, so the filter always removes something;
2. filter family drawn uniformly from Chebyshev I (0.1 dB ripple), Butterworth, Bessel and elliptic
   (0.1 dB ripple, 60 dB stop band); order uniformly from 2..10;
3. zero-phase second-order-section filtering (``sosfiltfilt``), every channel independently;
4. polyphase resampling down to 2 x cutoff and back to the original rate (``resample_poly``), which adds
   the resampler's own anti-aliasing edge (Kaiser-windowed sinc, beta 5: -6 dB at the cutoff, its ~-54 dB
   stop band from ~1.16 x cutoff).

Test protocol (paper §3, official ``SRMetaDatasetEval``): Chebyshev I order 8 at the cutoff (4 or 8 kHz),
then the same resampling.

Speed (this runs per 5.944 s stereo window in data-loader workers):
- SOS designs are cached per (family, order, cutoff, rate);
- every channel is filtered on its own (as in the official code) by :func:`saga_hsmad.dsp.iir.sosfiltfilt`,
  scipy's ``sosfiltfilt`` with the recursion compiled by numba (bit-identical, ~2x faster); a channel equal
  to the previous one (dual-mono windows) is filtered once;
- resampling uses :func:`saga_hsmad.dsp.polyphase.resample_poly_torch`, which computes the same sums as
  ``scipy.signal.resample_poly`` with dense matrix products instead of scipy's scalar loop;
- the drawn cutoff lies on a grid of ``cutoff_step_hz``. ``resample_poly`` works with the exact ratio
  2 x cutoff / rate reduced by their gcd; a 1 Hz grid (the official ``random.randint``) makes that ratio
  as bad as 7001/22050, with a 441,001-tap filter, while on a 25 Hz grid the reduced terms stay at or
  below 882 at 44.1 kHz (17,641 taps at most). The reduced fraction is the "rational approximation" of
  the rate, exact for the drawn cutoff. The long filters cost little here: one 262,144-sample stereo
  window of white noise took 0.072 s on a 1 Hz grid and 0.074 s on a 25 Hz grid (60 windows each, one
  core; plans are cached within a byte budget). The functions here default to the 25 Hz grid; the
  ``super_resolution`` dataset defaults to 1 Hz with ``below_range="range"``, the official draw.
Output equals the straightforward scipy implementation (per channel, float64, scipy ``resample_poly``)
up to float rounding (about 1e-6 of full scale in float32); ``benchmarks/bench_lowres.py`` checks it.

Shape legend: C channels, T samples. Audio is (C, T) or (T,), numpy or torch (CPU or any device: the
filters run on the CPU and the result goes back to the input's device and dtype).
"""
from __future__ import annotations

import functools
import math
import typing as tp
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import signal

from .iir import default_padlen, sosfiltfilt
from .polyphase import resample_poly_torch
from .rolloff import rolloff_to_hz, spectral_rolloff

FilterFamily = tp.Literal["cheby1", "butter", "bessel", "ellip"]
FAMILIES: tuple[FilterFamily, ...] = ("cheby1", "butter", "bessel", "ellip")
PASSBAND_RIPPLE_DB = 0.1  # cheby1 and ellip
STOPBAND_ATTENUATION_DB = 60.0  # ellip

Audio = tp.TypeVar("Audio", np.ndarray, torch.Tensor)


@functools.lru_cache(maxsize=8192)
def _design(family: str, order: int, cutoff_hz: float, sr: int) -> np.ndarray:
    wn = cutoff_hz / (sr / 2)
    if family == "cheby1":
        sos = signal.cheby1(order, PASSBAND_RIPPLE_DB, wn, btype="low", output="sos")
    elif family == "butter":
        sos = signal.butter(order, wn, btype="low", output="sos")
    elif family == "bessel":
        # scipy's default norm="phase", as in the official code
        sos = signal.bessel(order, wn, btype="low", output="sos")
    elif family == "ellip":
        sos = signal.ellip(order, PASSBAND_RIPPLE_DB, STOPBAND_ATTENUATION_DB, wn, btype="low", output="sos")
    else:
        raise ValueError(f"unknown low-pass filter family {family!r}; choose one of {FAMILIES}")
    sos.setflags(write=False)
    return sos


def design_lowpass(family: FilterFamily, order: int, cutoff_hz: float, sr: int) -> np.ndarray:
    """Digital low-pass in second-order sections, (order // 2 + order % 2, 6) float64.

    Designs are cached; each call returns a fresh copy (scipy's ``sosfilt`` needs a writable array).

    cheby1: 0.1 dB pass-band ripple; ellip: 0.1 dB ripple and 60 dB stop band; bessel: scipy's default
    phase normalisation; butter: -3 dB at the cutoff.
    """
    assert family in FAMILIES, f"unknown low-pass filter family {family!r}; choose one of {FAMILIES}"
    assert 1 <= int(order) == order, f"filter order must be a positive integer, got {order}"
    assert 0 < cutoff_hz < sr / 2, f"cutoff {cutoff_hz} Hz must lie strictly between 0 and Nyquist ({sr / 2} Hz)"
    return _design(family, int(order), float(cutoff_hz), int(sr)).copy()


def _to_numpy(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        return audio.detach().cpu().numpy()
    if isinstance(audio, np.ndarray):
        return audio
    raise TypeError(f"audio must be a numpy array or torch.Tensor, got {type(audio).__name__}")


def _like(result: np.ndarray | torch.Tensor, template: Audio) -> Audio:
    """Return ``result`` as the type, dtype and device of ``template``."""
    if isinstance(template, torch.Tensor):
        out = torch.as_tensor(result) if isinstance(result, np.ndarray) else result
        return out.to(device=template.device, dtype=template.dtype)
    out = result.numpy() if isinstance(result, torch.Tensor) else result
    return np.ascontiguousarray(out, dtype=template.dtype)


def _check_audio(audio: np.ndarray | torch.Tensor) -> None:
    assert audio.ndim in (1, 2), f"audio must be (C, T) or (T,), got shape {tuple(audio.shape)}"
    dtype_ok = audio.is_floating_point() if isinstance(audio, torch.Tensor) else np.issubdtype(audio.dtype, np.floating)
    assert dtype_ok, f"audio must be floating point, got {audio.dtype}; convert integer PCM to float first"


def _filtfilt(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Zero-phase SOS filtering of (C, T) or (T,) along time in float64, one channel at a time.

    :func:`saga_hsmad.dsp.iir.sosfiltfilt` equals ``scipy.signal.sosfiltfilt`` (scipy's default odd padding,
    its pad length shortened for very short inputs); a channel equal to the previous one is filtered once.
    """
    padlen = min(default_padlen(sos), x.shape[-1] - 1)
    if x.ndim == 1:
        return sosfiltfilt(sos, x, padlen=padlen)
    out = np.empty(x.shape, dtype=np.float64)
    for c in range(x.shape[0]):
        if c > 0 and np.array_equal(x[c], x[c - 1]):
            out[c] = out[c - 1]
        else:
            out[c] = sosfiltfilt(sos, x[c], padlen=padlen)
    return out


def lowpass_zero_phase(audio: Audio, sos: np.ndarray) -> Audio:
    """Zero-phase (forward-backward) SOS filtering of every channel: (C, T) or (T,) -> same shape and type.

    Computed in float64, equal to ``scipy.signal.sosfiltfilt`` per channel (odd padding, default pad length).
    """
    _check_audio(audio)
    return _like(_filtfilt(_to_numpy(audio), sos), audio)


def _resample_through(x: torch.Tensor, sr: int, cutoff_hz: float) -> torch.Tensor:
    rate_low = int(round(2 * cutoff_hz))
    if rate_low >= sr:
        return x.clone()
    g = math.gcd(rate_low, sr)
    up, down = rate_low // g, sr // g
    if x.dim() == 2 and x.shape[0] == 2 and torch.equal(x[0], x[1]):
        return _resample_through(x[0], sr, cutoff_hz).expand(2, -1).clone()
    low = resample_poly_torch(x, up, down)
    back = resample_poly_torch(low, down, up)
    n = x.shape[-1]
    if back.shape[-1] >= n:
        return back[..., :n]
    return torch.nn.functional.pad(back, (0, n - back.shape[-1]))


def resample_through(audio: Audio, sr: int, cutoff_hz: float) -> Audio:
    """Polyphase resampling to ``round(2 * cutoff_hz)`` Hz and back to ``sr``; output length = input length.

    Equal (to float rounding) to ``resample_poly(resample_poly(x, r, sr), sr, r)`` with r = round(2 *
    cutoff) and the ratio reduced by gcd(r, sr), as the official code does; the result is cut or
    zero-padded to the input length (the official ``align_length``). Computed in the input's float
    precision (float32 for float32 input, half precision in float32). No-op when 2 x cutoff >= sr.
    """
    _check_audio(audio)
    x = audio if isinstance(audio, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(audio))
    x = x.detach().cpu()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return _like(_resample_through(x, sr, cutoff_hz), audio)


def apply_lowres(audio: Audio, sr: int, family: FilterFamily, order: int, cutoff_hz: float) -> Audio:
    """One LR degradation with fixed parameters: zero-phase low-pass, then :func:`resample_through`.

    (C, T) or (T,) -> same shape, type, dtype and device. All-zero input returns zeros.
    """
    _check_audio(audio)
    x = _to_numpy(audio)
    if not np.any(x):
        return _like(np.zeros_like(x), audio)  # filtering and resampling zeros gives zeros
    filtered = _filtfilt(x, design_lowpass(family, order, cutoff_hz, sr))
    # the resampler runs in the input's precision (float32 for training windows)
    compute = torch.float64 if x.dtype == np.float64 else torch.float32
    out = _resample_through(torch.from_numpy(filtered).to(compute), sr, cutoff_hz)
    return _like(out, audio)


@dataclass(frozen=True)
class LowResParams:
    """What :func:`simulate_lowres` drew, for logging. ``cutoff_hz`` is the cutoff actually used."""

    family: FilterFamily
    order: int
    cutoff_hz: float
    drawn_cutoff_hz: float
    hr_rolloff: float | None

    def as_dict(self) -> dict[str, tp.Any]:
        return asdict(self)


def draw_lowres_params(
    rng: np.random.Generator,
    sr: int,
    hr_rolloff: float | None,
    cutoff_range: tuple[float, float] = (2000.0, 16000.0),
    orders: tuple[int, int] = (2, 10),
    families: tp.Sequence[FilterFamily] = FAMILIES,
    clamp: float | None = 0.94,
    cutoff_step_hz: int = 25,
    below_range: tp.Literal["clamp", "range"] = "clamp",
) -> LowResParams:
    """Draw (family, order, cutoff) for one window. See :func:`simulate_lowres` for the arguments."""
    lo, hi = cutoff_range
    assert 0 < lo <= hi < sr / 2, f"cutoff_range {cutoff_range} must satisfy 0 < low <= high < sr/2 = {sr / 2}"
    assert orders[0] >= 1 and orders[0] <= orders[1], f"orders must be (min, max) with 1 <= min <= max, got {orders}"
    assert len(families) > 0 and all(f in FAMILIES for f in families), \
        f"families must be a non-empty subset of {FAMILIES}, got {families}"
    assert cutoff_step_hz >= 1, f"cutoff_step_hz must be a positive integer, got {cutoff_step_hz}"
    step = int(cutoff_step_hz)
    k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
    assert k_lo <= k_hi, f"cutoff_range {cutoff_range} contains no multiple of cutoff_step_hz={step}"
    drawn = float(rng.integers(k_lo, k_hi + 1) * step)
    family = families[int(rng.integers(len(families)))]
    order = int(rng.integers(orders[0], orders[1] + 1))
    cutoff = drawn
    if clamp is not None and hr_rolloff is not None:
        bound = math.floor(clamp * float(rolloff_to_hz(float(hr_rolloff), sr)) / step) * step
        cutoff = min(cutoff, float(bound))
    if cutoff < lo:
        # "clamp" keeps the spec's promise (cutoff <= clamp x roll-off, the filter removes something) down
        # to one grid step; "range" is the official code, which never goes below the range and then may
        # leave a narrow-band window unchanged.
        cutoff = float(max(cutoff, step)) if below_range == "clamp" else float(lo)
    return LowResParams(family=family, order=order, cutoff_hz=cutoff, drawn_cutoff_hz=drawn,
                        hr_rolloff=None if hr_rolloff is None else float(hr_rolloff))


def simulate_lowres(
    hr: Audio,
    sr: int,
    rng: np.random.Generator,
    hr_rolloff: float | None = None,
    cutoff_range: tuple[float, float] = (2000.0, 16000.0),
    orders: tuple[int, int] = (2, 10),
    families: tp.Sequence[FilterFamily] = FAMILIES,
    clamp: float | None = 0.94,
    cutoff_step_hz: int = 25,
    below_range: tp.Literal["clamp", "range"] = "clamp",
) -> tuple[Audio, LowResParams]:
    """Training-time LR simulation of spec §1: random low-pass filter, then down/up resampling.

    Args:
        hr: (C, T) or (T,) high-resolution window at ``sr``.
        sr: sample rate of ``hr`` (44,100 in SAGA-SR).
        rng: the only source of randomness (same seed, same window -> same output).
        hr_rolloff: normalised roll-off of ``hr`` (:func:`saga_hsmad.dsp.rolloff.spectral_rolloff`); measured
            here when None. Pass it when the data pipeline already has it (it is f_h).
        cutoff_range: (low, high) Hz of the uniform cutoff draw, inclusive.
        orders: (min, max) filter order, inclusive.
        families: filter families drawn uniformly.
        clamp: the cutoff is lowered to at most ``clamp * rolloff_to_hz(hr_rolloff)``; None disables it.
        cutoff_step_hz: grid of the cutoff draw and of the clamped value (see the module docstring).
        below_range: when the clamp pushes the cutoff below ``cutoff_range[0]``: "clamp" keeps it (spec:
            at most 0.94 x roll-off; floored at one grid step), "range" raises it back to
            ``cutoff_range[0]`` (the official code's ``max(2000, ...)``).
    Returns:
        (lr, params): lr has hr's shape, type, dtype and device; params records what was drawn.
    """
    _check_audio(hr)
    if hr_rolloff is None and clamp is not None:
        hr_rolloff = float(spectral_rolloff(hr))
    params = draw_lowres_params(rng, sr, hr_rolloff, cutoff_range, orders, families, clamp, cutoff_step_hz,
                                below_range)
    return apply_lowres(hr, sr, params.family, params.order, params.cutoff_hz), params


def test_protocol_lowres(hr: Audio, sr: int, cutoff_hz: float) -> Audio:
    """Paper test protocol: Chebyshev I (0.1 dB) order 8 at ``cutoff_hz``, then the same resampling."""
    return apply_lowres(hr, sr, "cheby1", 8, cutoff_hz)


test_protocol_lowres.__test__ = False  # keep pytest from collecting it when imported into a test module
