"""Zero-phase SOS filtering equal to ``scipy.signal.sosfiltfilt``, about 2x faster on one core.

scipy's ``sosfilt`` keeps each section's two state values in an array, so every sample's recursion goes
through memory. :func:`sosfiltfilt` below runs the same transposed direct form II recursion, with the same
operations in the same order, from a numba kernel generated for the number of sections, which keeps all
states and coefficients in local variables (registers). The results are bit-identical to scipy in our
tests. The forward-backward wrapper repeats scipy's ``sosfiltfilt`` step by step: odd extension by
``padlen`` samples, initial state ``sosfilt_zi(sos) * first sample``, forward pass, the same backwards
from the last sample (in place instead of on a reversed copy), then trimming.

numba ships with librosa; without it (or with ``SAGA_HSMAD_NO_NUMBA=1``) scipy's ``sosfiltfilt`` is used.
A kernel is compiled once per process per section count (0.3-1 s; five kernels cover orders 1-10).
"""
from __future__ import annotations

import functools
import os
import typing as tp

import numpy as np
from scipy import signal

try:  # numba is a librosa dependency, so normally present
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

_USE_NUMBA = numba is not None and os.environ.get("SAGA_HSMAD_NO_NUMBA", "") not in ("1", "true", "yes")


def _cascade_source(n_sections: int) -> str:
    """Source of ``cascade(sos, x, zi, reverse)``: filters x in place through ``n_sections`` biquads,
    from the last sample to the first when ``reverse`` (the backward pass of filtfilt without copies).

    Per section s and sample v (scipy's _sosfilt, a0 = 1):
        y = b0 v + z0;  z0 = b1 v - a1 y + z1;  z1 = b2 v - a2 y;  v = y
    """
    lines = ["def cascade(sos, x, zi, reverse):"]
    for s in range(n_sections):
        lines.append(f"    b0_{s}, b1_{s}, b2_{s} = sos[{s}, 0], sos[{s}, 1], sos[{s}, 2]")
        lines.append(f"    a1_{s}, a2_{s} = sos[{s}, 4], sos[{s}, 5]")
        lines.append(f"    z0_{s}, z1_{s} = zi[{s}, 0], zi[{s}, 1]")
    lines.append("    last = x.shape[0] - 1")
    lines.append("    for i in range(x.shape[0]):")
    lines.append("        n = last - i if reverse else i")
    lines.append("        v = x[n]")
    for s in range(n_sections):
        lines.append(f"        y = b0_{s} * v + z0_{s}")
        lines.append(f"        z0_{s} = b1_{s} * v - a1_{s} * y + z1_{s}")
        lines.append(f"        z1_{s} = b2_{s} * v - a2_{s} * y")
        lines.append("        v = y")
    lines.append("        x[n] = v")
    return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def _cascade_kernel(n_sections: int) -> tp.Callable[[np.ndarray, np.ndarray, np.ndarray, bool], None]:
    namespace: dict = {}
    exec(compile(_cascade_source(n_sections), f"<biquad cascade, {n_sections} sections>", "exec"), namespace)
    return numba.njit(nogil=True, cache=False)(namespace["cascade"])


@functools.lru_cache(maxsize=4096)
def _steady_state(sos_bytes: bytes, n_sections: int) -> np.ndarray:
    zi = signal.sosfilt_zi(np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6))
    zi.setflags(write=False)
    return zi


def default_padlen(sos: np.ndarray) -> int:
    """scipy.signal.sosfiltfilt's default pad length for ``sos``."""
    n_zero_b = int((sos[:, 2] == 0).sum())
    n_zero_a = int((sos[:, 5] == 0).sum())
    return 3 * (2 * len(sos) + 1 - min(n_zero_b, n_zero_a))


def _odd_extension(x: np.ndarray, n: int) -> np.ndarray:
    if n == 0:
        return x.copy()
    left = 2 * x[0] - x[n:0:-1]
    right = 2 * x[-1] - x[-2:-(n + 2):-1]
    return np.concatenate((left, x, right))


def sosfiltfilt(sos: np.ndarray, x: np.ndarray, padlen: int | None = None) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, padtype="odd", padlen=padlen)`` for a 1-D signal, float64.

    Args:
        sos: (n_sections, 6) second-order sections.
        x: (T,) signal with T > padlen.
        padlen: odd-extension length; scipy's default when None.
    Returns:
        (T,) float64, C-contiguous.
    """
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    assert x.ndim == 1, f"sosfiltfilt filters one channel at a time, got shape {x.shape}"
    padlen = default_padlen(sos) if padlen is None else padlen
    assert x.shape[0] > padlen, f"signal of {x.shape[0]} samples is too short for padlen {padlen}"
    if not _USE_NUMBA:
        return np.ascontiguousarray(signal.sosfiltfilt(sos, x, padlen=padlen))
    cascade = _cascade_kernel(len(sos))
    zi = _steady_state(sos.tobytes(), len(sos))  # (n_sections, 2) steady state for a unit step
    y = _odd_extension(x, padlen)
    cascade(sos, y, zi * y[0], False)
    cascade(sos, y, zi * y[-1], True)
    return y[padlen:len(y) - padlen]
