"""Exact, fast equivalent of ``scipy.signal.resample_poly(x, up, down, axis=-1)`` in torch.

scipy's ``resample_poly`` zero-stuffs by ``up``, filters with a Kaiser-windowed sinc (``firwin(20 *
max(up, down) + 1, 1 / max(up, down), window=("kaiser", 5.0))``, gain ``up``), keeps every ``down``-th
sample and trims the filter delay; ``upfirdn`` does that with a scalar polyphase loop (~2 GMAC/s). This
module computes the same sums with a few dense matrix products (BLAS speed), the same filter taps and the
same trimming, so results agree with scipy to floating-point rounding (tested: ~1e-15 in float64).

Derivation (gcd(up, down) = 1, h of length L already scaled by ``up``): scipy's output is

    out[i] = sum_j x[j] h[(i + R) * down - P - j * up],  P = down - half_len % down, R = (half_len + P) // down

Write i = s * up + o (block s, output phase o). With a_o = (o + R) * down - P and j = s * down + q the
tap index a_o - q * up does not depend on s: every block of ``up`` outputs applies the same weights to a
window of inputs that advances by ``down`` samples. For a group of consecutive phases the windows of all
its phases are one contiguous range [q_lo, q_hi], so the group is one product

    out[s * up + o] = frames[s, :] @ W_group[:, o],  frames[s, :] = x[s * down + q_lo : s * down + q_hi + 1].

Phases are grouped so a group's window is about twice the filter support per output, which keeps the
zero padding inside the weight matrices around 2x and the number of products at ~min(up, down) / 20.

Shape legend: ... leading (channel) dims, T input samples, S output blocks, W window, G phases in a group.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import firwin


@dataclass(frozen=True)
class _PhaseGroup:
    first_phase: int
    q_lo: int  # window start relative to s * down
    weights: torch.Tensor  # (W, G) float64, CPU


@dataclass(frozen=True)
class PolyphasePlan:
    """Weights and bookkeeping for one reduced (up, down) pair; independent of the signal length."""

    up: int
    down: int
    groups: tuple[_PhaseGroup, ...]


class _ByteBudgetCache:
    """LRU cache bounded by the total size of its values (bytes), not by their number.

    Ratios from a 1 Hz cutoff grid (e.g. 7001/22050) need 441,001-tap filters; a count-bounded cache of
    such plans could hold gigabytes in every data-loader worker.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_build(self, key, build, nbytes):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = build()
        size = nbytes(value)
        if size <= self.max_bytes:
            with self._lock:
                self._entries[key] = (value, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._bytes -= dropped
        return value


_FILTERS = _ByteBudgetCache(16 * 2**20)
_PLANS = _ByteBudgetCache(64 * 2**20)


def kaiser_sinc_filter(max_rate: int) -> np.ndarray:
    """scipy.signal.resample_poly's default anti-aliasing filter for max(up, down) = ``max_rate``
    (before the gain ``up``). Cached: few ``max_rate`` values occur (divisors of the rate), read-only.
    """
    def build() -> np.ndarray:
        h = firwin(20 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
        h.setflags(write=False)
        return h

    return _FILTERS.get_or_build(max_rate, build, lambda h: h.nbytes)


def polyphase_plan(up: int, down: int) -> PolyphasePlan:
    """Plan for ``resample_poly(x, up, down)``; ``up`` and ``down`` must already be coprime.

    Cached within a 64 MB budget: the LR simulation draws cutoffs on a 25 Hz grid, i.e. at most ~1,100
    (up, down) pairs at 44.1 kHz of ~130 kB each on average; building one takes about half a millisecond.
    """
    assert math.gcd(up, down) == 1, f"polyphase_plan expects a reduced ratio, got {up}/{down}"
    return _PLANS.get_or_build((up, down), lambda: _build_plan(up, down),
                               lambda plan: sum(g.weights.numel() * g.weights.element_size() for g in plan.groups))


def _build_plan(up: int, down: int) -> PolyphasePlan:
    h = kaiser_sinc_filter(max(up, down)) * up
    filt_len = h.size
    half_len = (filt_len - 1) // 2
    n_pre_pad = down - half_len % down  # scipy's bookkeeping, see module docstring
    n_pre_remove = (half_len + n_pre_pad) // down
    # a_o for every output phase o; phase o reads q in [ceil((a_o - L + 1) / up), floor(a_o / up)]
    a = (np.arange(up) + n_pre_remove) * down - n_pre_pad
    q_hi = np.floor_divide(a, up)
    q_lo = -np.floor_divide(-(a - filt_len + 1), up)
    phases_per_group = int(min(up, max(1, round(filt_len / down))))
    firsts = np.arange(0, up, phases_per_group)
    lasts = np.minimum(firsts + phases_per_group, up) - 1
    # a_o increases with o, so a group's window runs from its first phase's q_lo to its last phase's q_hi
    group_lo, widths = q_lo[firsts], q_hi[lasts] - q_lo[firsts] + 1
    lo_of_phase = np.repeat(group_lo, lasts - firsts + 1)
    k = a[None, :] - (lo_of_phase[None, :] + np.arange(int(widths.max()))[:, None]) * up  # (W_max, up) taps
    h_ext = np.append(h, 0.0)  # index filt_len reads the zero
    all_weights = h_ext[np.where((k >= 0) & (k < filt_len), k, filt_len)]
    groups = tuple(
        _PhaseGroup(first_phase=int(first), q_lo=int(lo),
                    weights=torch.from_numpy(np.ascontiguousarray(all_weights[:width, first:last + 1])))
        for first, last, lo, width in zip(firsts, lasts, group_lo, widths))
    return PolyphasePlan(up=up, down=down, groups=groups)


def resample_poly_torch(x: torch.Tensor, up: int, down: int) -> torch.Tensor:
    """``scipy.signal.resample_poly(x, up, down, axis=-1)`` (default Kaiser window, zero padding).

    Args:
        x: (..., T) float tensor, any device; half precision is computed in float32.
    Returns:
        (..., ceil(T * up / down)) tensor on x's device (float32 for half-precision input).
    """
    assert up >= 1 and down >= 1, f"up and down must be positive integers, got {up}, {down}"
    assert x.is_floating_point(), f"resample_poly_torch expects floating-point audio, got {x.dtype}"
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down == 1:
        return x.clone()
    lead, n_in = x.shape[:-1], x.shape[-1]
    n_out = -(-n_in * up // down)
    n_blocks = -(-n_out // up)
    plan = polyphase_plan(up, down)
    # zero padding so that every group's frames stay inside the padded signal
    pad_left = max(0, -min(gr.q_lo for gr in plan.groups))
    right_end = max(gr.q_lo + gr.weights.shape[0] for gr in plan.groups) + (n_blocks - 1) * down
    x_pad = torch.nn.functional.pad(x.reshape(-1, n_in), (pad_left, max(0, right_end - n_in)))  # (M, T')
    if len(plan.groups) == 1:
        # One group means a wide, heavily overlapping window (small up or small down): a strided
        # convolution avoids materialising the frames.
        group = plan.groups[0]
        width = group.weights.shape[0]
        start = pad_left + group.q_lo
        kernel = group.weights.T.to(dtype=x.dtype, device=x.device).unsqueeze(1)  # (G, 1, W)
        segment = x_pad[:, None, start:start + (n_blocks - 1) * down + width]
        out = torch.nn.functional.conv1d(segment, kernel, stride=down).transpose(-1, -2)  # (M, S, up)
    else:
        out = x_pad.new_empty(x_pad.shape[0], n_blocks, up)
        for group in plan.groups:
            width, n_phases = group.weights.shape
            start = pad_left + group.q_lo
            frames = x_pad[:, start:].unfold(-1, width, down)[:, :n_blocks]  # (M, S, W)
            weights = group.weights.to(dtype=x.dtype, device=x.device)  # (W, G)
            out[:, :, group.first_phase:group.first_phase + n_phases] = frames @ weights
    return out.reshape(*lead, n_blocks * up)[..., :n_out]
