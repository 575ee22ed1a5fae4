"""A per-input default for SAGA-SR's target roll-off, predicted from the LR input alone.

At inference the target roll-off f_h is a user control (spec §2). Its stored default is one number, the median
f_h of the training data. When a corpus' roll-offs are far from one value, that number is wrong for most
inputs: the demo corpus is bimodal (soft timbres near 0.2-0.3, bright ones near 0.85), and a target between the
modes asks the model to fill a soft piece up to 10 kHz or a bright one only to 6 kHz.

This predictor reads the LR window the model is about to process, never the HR audio, and answers with the f_h
of training windows whose LR versions look alike: the median target of the k nearest neighbours, in standardised
feature space, among (LR features, f_h) pairs drawn from the training dataset with its own LR simulation.

Features of a window (mono mix, Hann 2048, hop 512, centred; power summed over frames):

* log10 of the share of the power in six bands: 0-150, 150-300, 300-600, 600-1,200, 1,200-2,400 Hz and above
  (the first four lie below 2 kHz, the lowest cutoff of the paper's range, so they are always in the LR band);
* the LR roll-off f_l (``dsp.rolloff.spectral_rolloff``).

Features and k = 5 were chosen on the demo corpus' valid split (docs/miniature, round 5). On 40 valid windows
of the tiny config (0.74 s) the fitted predictor's mean |predicted - true f_h| is 0.16, against 0.30 for the
training median. A fitted predictor is a plain dict stored in the model config as
``sampling.target_rolloff_predictor``, so it travels inside every checkpoint.
Fit one with ``python -m saga_hsmad.cli.target_rolloff --predictor``.
"""
from __future__ import annotations

import dataclasses
import typing as tp

import numpy as np
import torch

from ..dsp.rolloff import HOP_LENGTH, N_FFT, hann_window, mono_mix, spectral_rolloff

FEATURE_EDGES_HZ = (150.0, 300.0, 600.0, 1200.0, 2400.0)
FEATURES = "lr_band_shares_v1"  # names the feature recipe above; a stored predictor must name the same
N_FEATURES = len(FEATURE_EDGES_HZ) + 2
SHARE_FLOOR = 1e-8  # log10 floor of a band's power share (-80 dB)
DEFAULT_K = 5


def lr_features(audio: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
    """(7,) float64 features of an LR window, (T,) or (C, T) at ``sample_rate``; zeros give share floors."""
    mono = mono_mix(audio).to(torch.float32)
    assert mono.dim() == 1, f"one window at a time, (T,) or (C, T); got shape {tuple(torch.as_tensor(audio).shape)}"
    spec = torch.stft(mono, N_FFT, HOP_LENGTH, window=hann_window(N_FFT, torch.float32, mono.device),
                      center=True, pad_mode="constant", return_complex=True)
    power = (spec.real.square() + spec.imag.square()).sum(dim=-1).double().cpu().numpy()  # (F,)
    freqs = np.arange(power.shape[0]) * sample_rate / N_FFT
    edges = (0.0, *FEATURE_EDGES_HZ, np.inf)
    total = max(float(power.sum()), 1e-30)
    shares = [power[(freqs >= lo) & (freqs < hi)].sum() / total for lo, hi in zip(edges[:-1], edges[1:])]
    return np.array([np.log10(s + SHARE_FLOOR) for s in shares] + [float(spectral_rolloff(mono))])


@dataclasses.dataclass
class RolloffPredictor:
    """k-nearest-neighbour regression of f_h on ``lr_features``.

    points: (N, 7) training features; targets: (N,) their f_h; scale: (7,) per-feature divisor (the training
    features' standard deviation); k: neighbours whose median target is the answer.
    """

    points: np.ndarray
    targets: np.ndarray
    scale: np.ndarray
    k: int = DEFAULT_K
    source: str = ""

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        self.targets = np.asarray(self.targets, dtype=np.float64)
        self.scale = np.asarray(self.scale, dtype=np.float64)

    def predict_features(self, features: np.ndarray) -> float:
        distance = np.sqrt((((self.points - features) / self.scale) ** 2).sum(axis=1))
        nearest = np.argsort(distance, kind="stable")[: self.k]
        return float(np.median(self.targets[nearest]))

    def __call__(self, audio: torch.Tensor | np.ndarray, sample_rate: int) -> float:
        """The predicted target roll-off of one LR window, in [0, 1)."""
        return self.predict_features(lr_features(audio, sample_rate))

    def to_config(self) -> dict[str, tp.Any]:
        """The dict stored as ``sampling.target_rolloff_predictor``: each point is [7 features..., f_h]."""
        return {"type": "knn", "features": FEATURES, "k": int(self.k), "source": self.source,
                "scale": [round(float(s), 5) for s in self.scale],
                "points": [[round(float(v), 4) for v in p] + [round(float(t), 4)]
                           for p, t in zip(self.points, self.targets)]}

    @classmethod
    def from_config(cls, config: tp.Any, where: str = "sampling.target_rolloff_predictor") -> "RolloffPredictor":
        """Validate and load a stored predictor; errors name ``where`` and the key."""
        if not isinstance(config, dict):
            raise ValueError(f"{where}: expected a dict, got {type(config).__name__}")
        if config.get("type") != "knn":
            raise ValueError(f"{where}.type: only 'knn' is known, got {config.get('type')!r}")
        if config.get("features") != FEATURES:
            raise ValueError(f"{where}.features: this version computes {FEATURES!r}, the config names "
                             f"{config.get('features')!r}; refit it (python -m saga_hsmad.cli.target_rolloff --predictor)")
        try:
            rows = np.asarray(config["points"], dtype=np.float64)
            scale = np.asarray(config["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: 'points' and 'scale' must be lists of numbers ({e})") from None
        if rows.ndim != 2 or rows.shape[1] != N_FEATURES + 1 or rows.shape[0] == 0:
            raise ValueError(f"{where}.points: expected a non-empty list of [{N_FEATURES} features, f_h] rows, got "
                             f"shape {rows.shape}")
        if scale.shape != (N_FEATURES,) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"{where}.scale: expected {N_FEATURES} positive numbers, got {scale.tolist()}")
        k = config.get("k", DEFAULT_K)
        if not isinstance(k, int) or not 1 <= k <= rows.shape[0]:
            raise ValueError(f"{where}.k: expected an integer in [1, {rows.shape[0]}] (the number of points), got {k!r}")
        targets = rows[:, -1]
        if not (np.isfinite(rows).all() and ((targets >= 0) & (targets < 1)).all()):
            raise ValueError(f"{where}.points: features must be finite and each f_h in [0, 1)")
        return cls(rows[:, :-1], targets, scale, k, str(config.get("source", "")))


def fit_rolloff_predictor(pairs: tp.Iterable[tuple[np.ndarray | torch.Tensor, float]], sample_rate: int,
                          k: int = DEFAULT_K, source: str = "") -> RolloffPredictor:
    """Fit on (LR window (C, T), f_h of its HR window) pairs; silent windows (f_h 0) are skipped."""
    points, targets = [], []
    for lr, f_h in pairs:
        if f_h > 0:
            points.append(lr_features(lr, sample_rate))
            targets.append(float(f_h))
    if len(points) < k:
        raise ValueError(f"fit_rolloff_predictor: {len(points)} non-silent window(s), fewer than k = {k}")
    points_arr = np.stack(points)
    scale = points_arr.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)  # a constant feature (e.g. one band always empty) gets weight 1
    return RolloffPredictor(points_arr, np.asarray(targets), scale, k, source)


def dataset_pairs(dataset, draws: int = 4, max_windows: int = 2048) -> tp.Iterator[tuple[torch.Tensor, float]]:
    """(LR window, f_h) from a ``SuperResolutionDataset``: ``draws`` passes over up to ``max_windows`` items
    spread over it, each pass with other windows and other LR filters (the dataset's own simulation)."""
    from ..data.sr_dataset import spread_indices

    indices = spread_indices(len(dataset), max(1, max_windows // max(draws, 1)))
    for draw in range(draws):
        dataset.epoch = draw  # item_rng(seed, epoch, index): other windows and filters per pass
        for i in indices:
            _, metadata = dataset[int(i)]
            yield metadata["lr_audio"], float(metadata["rolloff_target"])
