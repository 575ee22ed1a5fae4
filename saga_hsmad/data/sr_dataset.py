"""Dataset type ``super_resolution``: SAGA-SR training pairs made on the fly (spec §1-§3).

Per item: a random 262,144-sample window (5.944 s at 44.1 kHz) from anywhere in an audio file, kept in true
stereo (a mono file becomes dual-mono; other channel counts are an error), zero-padded with a padding mask
when the file is shorter; the LR input simulated from that HR window (``dsp.lowpass.simulate_lowres``:
random filter family/order, cutoff U(2, 16) kHz clamped to 0.94 x the window's own roll-off, zero-phase
filtering, resampling down to 2 x cutoff and back); both roll-offs measured with
``dsp.rolloff.spectral_rolloff`` (f_h on the returned HR window, f_l on the returned LR window); and the
window's caption from a caption store (``data.captions``; a missing caption is an error unless
``allow_empty_captions``).

Items are ``(hr (2, L) float32, metadata)`` with metadata keys = conditioner ids of the SAGA-SR configs:
``prompt`` (caption), ``lr_audio`` ((2, L) float32), ``rolloff_in`` (f_l), ``rolloff_target`` (f_h),
plus ``padding_mask`` ((L,) bool, True on real audio), ``path``, ``relpath``, ``seconds_start``,
``seconds_total`` and ``lowpass`` (family, order, cutoff_hz, drawn_cutoff_hz, hr_rolloff; for logging).
The LR window is zero wherever the padding mask is False.

Each item is a function of (seed, epoch, index) only (``data.windows.item_rng``): the same whatever the
number of loader workers; the loader sets ``epoch`` (the pass over the files) per item to draw new windows
and filters in every pass (``loader.RepeatedDataset``).

Which file a training draw reads (``sampling``, applied by the training loader through
``loader.WeightedDraws``): ``"duration"`` (default) picks files with probability proportional to their
length in 5 s-hop segments, and balances ``domains`` by ``domain_weights``. That is the official recipe:
its data list holds one entry per segment of a fixed 5 s grid (the commented ``hop_sec: 5.0``,
``length_sec_threshold: 1.5`` of its preprocessor config), read from the segment's start, and
``BalancedMultiDataset`` visits the types music / speech / general in turn (1:1:1 whatever their hours).
Here a draw picks a domain by weight, a file of it by its segment count, then a random window anywhere in
the file. ``"file"`` is the other choice: every pass reads one window per file, whatever its length.

Legend: L = sample_size samples.
"""
from __future__ import annotations

import math
import typing as tp
from pathlib import Path

import numpy as np
import torch

from ..audio_io import AUDIO_EXTENSIONS, audio_info, list_audio_files
from ..dsp.lowpass import FAMILIES, FilterFamily, simulate_lowres
from ..dsp.rolloff import spectral_rolloff
from ..paths import resolve_path
from ..registry import DATASETS
from .captions import CaptionStore
from .scan import OnBadFile, keep_readable
from .windows import item_rng, read_window

SPLITS = ("train", "valid", "test")
ALL_DOMAIN = "all"


def segment_count(seconds: np.ndarray | float, hop: float = 5.0, min_seconds: float = 1.5) -> np.ndarray:
    """Segments of a file of ``seconds``: starts 0, hop, 2 hop, ... that leave at least ``min_seconds``; >= 1."""
    seconds = np.asarray(seconds, dtype=np.float64)
    return np.maximum(1, np.floor((seconds - min_seconds) / hop).astype(np.int64) + 1)


def _read_file_list(path: Path) -> list[Path]:
    """Audio paths listed one per line (``#`` comments); relative paths are relative to the list's folder."""
    if not path.is_file():
        raise FileNotFoundError(f"super_resolution: file_list {path} does not exist")
    files = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            p = resolve_path(line, f"file_list {path}")
            files.append(p if p.is_absolute() else path.parent / p)
    return files


@DATASETS.register("super_resolution")
class SuperResolutionDataset(torch.utils.data.Dataset):
    """HR windows with their simulated LR input, roll-offs and caption (SAGA-SR spec §1).

    Args:
        root: folder(s) searched recursively for audio (``~`` and ``${VARS}`` expanded; the demo corpus is
            ``${SAGA_HSMAD_DEMO_CORPUS}``). Give ``root`` or ``file_list``.
        file_list: a text file listing audio files instead (relative to the list's folder).
        split: a subfolder of each root ("train", "valid", "test"). A root holding train/ and test/ needs it.
        captions: ``"sidecar"`` (``<stem>.txt`` or ``<stem>.json`` with "caption" next to the audio) or a
            ``.json``/``.csv`` caption store (a relative path is relative to the first root, or to the
            file list's folder).
        allow_empty_captions: a missing caption becomes "" instead of an error.
        random_crop: random window offsets (else every window starts at 0).
        on_bad_file: "skip" unreadable files with a warning each, or stop with an "error" (``data.scan``).
        sampling: "duration" (each training draw picks a file by its number of segments, within its domain's
            share) or "file" (one window per file per pass). Validation loaders (no shuffling) always read
            every file once.
        segment_hop_seconds, segment_min_seconds: a file of d seconds counts as
            ``max(1, floor((d - min) / hop) + 1)`` segments (starts 0, hop, 2 hop, ... that leave at least
            ``min`` seconds); official 5.0 and 1.5.
        domains: domain name -> a folder (or list of folders) relative to the root(s) (to the split folder
            when ``split`` is set), e.g.
            ``{"speech": ["OpenSLR"], "music": ["MUSDB18-HQ", "MoisesDB"]}``; every file must lie in exactly one
            domain. Without it all files form one domain.
        domain_weights: domain name -> relative share of the draws (default: equal shares; the official
            1:1:1 for music, speech, general). Needs ``domains`` and the same names.
        cutoff_range, filter_orders, filter_families, max_cutoff_ratio, cutoff_step_hz, below_range: the LR
            simulation (``dsp.lowpass.simulate_lowres``: ``cutoff_range``, ``orders``, ``families``,
            ``clamp``, ``cutoff_step_hz``, ``below_range``). The defaults are the official code's draw
            (``SRMetaDataset.read_data``): cutoff ``random.randint(2000, 16000)``, i.e. a 1 Hz grid, lowered to
            at most 0.94 x the window's roll-off frequency and then raised back to 2 kHz when that bound lies
            below it (``below_range: "range"``). ``cutoff_step_hz: 25`` with ``below_range: "clamp"`` is the
            other choice (the tiny demo configs use it): a 25 Hz grid, and a cutoff that stays under
            0.94 x the roll-off even for a narrow-band window, down to one grid step.
        sample_size, sample_rate, audio_channels, seed: given by the loader from the model config.
    """

    def __init__(self, root: str | list[str] | None = None, file_list: str | None = None,
                 split: str | None = None, captions: str = "sidecar", allow_empty_captions: bool = False,
                 random_crop: bool = True, sample_size: int = 262144, sample_rate: int = 44100,
                 audio_channels: int = 2, seed: int = 0,
                 cutoff_range: tp.Sequence[float] = (2000.0, 16000.0), filter_orders: tp.Sequence[int] = (2, 10),
                 filter_families: tp.Sequence[FilterFamily] = FAMILIES, max_cutoff_ratio: float | None = 0.94,
                 cutoff_step_hz: int = 1, below_range: tp.Literal["clamp", "range"] = "range",
                 on_bad_file: OnBadFile = "skip", sampling: tp.Literal["duration", "file"] = "duration",
                 segment_hop_seconds: float = 5.0, segment_min_seconds: float = 1.5,
                 domains: dict[str, str | list[str]] | None = None,
                 domain_weights: dict[str, float] | None = None):
        if (root is None) == (file_list is None):
            raise ValueError("super_resolution: give exactly one of 'root' (folder or list of folders) and "
                             "'file_list'")
        if audio_channels != 2:
            raise ValueError(f"super_resolution: SAGA-SR is stereo (audio_channels 2), got {audio_channels}")
        self.roots: list[Path] = []
        self.files: list[Path] = []
        if root is not None:
            for r in ([root] if isinstance(root, str) else list(root)):
                self.roots.append(resolve_path(r, "root"))
                self.files += self._folder_files(self.roots[-1], split)
        else:
            listing = resolve_path(file_list, "file_list")
            self.roots.append(listing.parent)
            self.files = _read_file_list(listing)
        if not self.files:
            raise FileNotFoundError(f"super_resolution: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under "
                                    f"{[str(r) for r in self.roots]}" + (f" split {split!r}" if split else ""))
        self.files = keep_readable(self.files, lambda path: [path], "super_resolution", on_bad_file, audio_channels)
        self.captions = self._caption_store(captions, allow_empty_captions)
        self.sample_size, self.sample_rate, self.channels = sample_size, sample_rate, audio_channels
        self.seed, self.epoch, self.random_crop = seed, 0, random_crop
        self.lowres_options = dict(cutoff_range=tuple(float(c) for c in cutoff_range),
                                   orders=tuple(int(o) for o in filter_orders), families=tuple(filter_families),
                                   clamp=max_cutoff_ratio, cutoff_step_hz=cutoff_step_hz, below_range=below_range)
        if sampling not in ("duration", "file"):
            raise ValueError(f"super_resolution.sampling: 'duration' or 'file', got {sampling!r}")
        if not (segment_hop_seconds > 0 and segment_min_seconds >= 0):
            raise ValueError("super_resolution: segment_hop_seconds must be > 0 and segment_min_seconds >= 0, got "
                             f"{segment_hop_seconds} and {segment_min_seconds}")
        self.sampling, self.segment_hop, self.segment_min = sampling, segment_hop_seconds, segment_min_seconds
        self.split = split
        self.domain_of = self._assign_domains(domains)
        self.domain_weights = self._check_domain_weights(domain_weights, domains)

    @staticmethod
    def _folder_files(root: Path, split: str | None) -> list[Path]:
        folder = root
        if split is not None:
            folder = root / split
            if not folder.is_dir():
                hint = (" (build the demo corpus: python -m saga_hsmad.data.demo_corpus)"
                        if "demo_corpus" in str(root) else "")
                raise FileNotFoundError(f"super_resolution: split folder {folder} does not exist{hint}")
        elif not root.exists():
            raise FileNotFoundError(f"super_resolution: root {root} does not exist")
        elif all((root / s).is_dir() for s in ("train", "test")):
            raise ValueError(f"super_resolution: {root} has train/ and test/ subfolders; set 'split' so the "
                             "splits are not mixed")
        return list_audio_files(folder)

    def _caption_store(self, captions: str, allow_empty: bool) -> CaptionStore:
        if captions == "sidecar":
            return CaptionStore("sidecar", allow_empty=allow_empty)
        path = resolve_path(captions, "captions")
        if not path.is_absolute():
            path = self.roots[0] / path
        return CaptionStore(path, root=self.roots[0], allow_empty=allow_empty)

    def _assign_domains(self, domains: dict[str, str | list[str]] | None) -> list[str]:
        """Each file's domain name (``ALL_DOMAIN`` without ``domains``)."""
        if domains is None:
            return [ALL_DOMAIN] * len(self.files)
        if not isinstance(domains, dict) or not domains:
            raise ValueError("super_resolution.domains: a JSON object of domain name -> folder(s), got "
                             f"{domains!r}")
        prefixes = {name: [str(f).strip("/") + "/" for f in ([folders] if isinstance(folders, str) else folders)]
                    for name, folders in domains.items()}
        assigned = []
        for path in self.files:
            rel = self.relpath(path)
            if self.split is not None and rel.startswith(f"{self.split}/"):
                rel = rel[len(self.split) + 1:]  # domains name folders inside the split folder
            names = [name for name, pre in prefixes.items() if any(rel.startswith(p) for p in pre)]
            if len(names) != 1:
                problem = "in none of the domains' folders" if not names else f"in several domains {names}"
                raise ValueError(f"super_resolution.domains: {path} (relative path {rel!r}) is {problem}; "
                                 f"domains: {domains}")
            assigned.append(names[0])
        empty = sorted(set(domains) - set(assigned))
        if empty:
            raise ValueError(f"super_resolution.domains: no files in domain(s) {empty} (folders "
                             f"{[domains[n] for n in empty]} under {[str(r) for r in self.roots]})")
        return assigned

    @staticmethod
    def _check_domain_weights(weights: dict[str, float] | None, domains: dict | None) -> dict[str, float]:
        names = [ALL_DOMAIN] if domains is None else list(domains)
        if weights is None:
            return {name: 1.0 for name in names}
        if domains is None:
            raise ValueError("super_resolution.domain_weights needs 'domains' (which folders form each domain)")
        if set(weights) != set(names):
            raise ValueError(f"super_resolution.domain_weights: names {sorted(weights)} differ from the domains "
                             f"{sorted(names)}")
        bad = {k: v for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0}
        if bad:
            raise ValueError(f"super_resolution.domain_weights: weights must be positive numbers, got {bad}")
        return {name: float(weights[name]) for name in names}

    def segment_counts(self) -> np.ndarray:
        """(N,) int64: each file's length in segments (the ``segment_hop_seconds`` grid; at least 1). The
        file headers are read once, on the first call."""
        if getattr(self, "_segment_counts", None) is None:
            info = [audio_info(path) for path in self.files]  # (rate, channels, frames)
            seconds = np.array([frames / rate for rate, _, frames in info], dtype=np.float64)
            self._segment_counts = segment_count(seconds, self.segment_hop, self.segment_min)
        return self._segment_counts

    def draw_probabilities(self) -> np.ndarray | None:
        """(N,) probability of each file per training draw under ``sampling: "duration"`` (None for "file"):
        the domain's share of ``domain_weights`` times the file's share of its domain's segments."""
        if self.sampling == "file":
            return None
        counts = self.segment_counts().astype(np.float64)
        domain = np.array(self.domain_of)
        total_weight = sum(self.domain_weights.values())
        p = np.zeros(len(self.files), dtype=np.float64)
        for name, weight in self.domain_weights.items():
            members = domain == name
            p[members] = weight / total_weight * counts[members] / counts[members].sum()
        return p

    def draws_per_pass(self) -> int:
        """Training draws per pass under ``sampling: "duration"``: the corpus length in segments."""
        return int(self.segment_counts().sum())

    def __len__(self) -> int:
        return len(self.files)

    def relpath(self, path: Path) -> str:
        for root in self.roots:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                continue
        return path.name

    def read_hr(self, index: int) -> tuple[torch.Tensor, torch.Tensor, float, float, np.random.Generator]:
        """(hr (2, L), padding mask (L,), seconds_start, seconds_total, the item's generator after the crop)."""
        rng = item_rng(self.seed, self.epoch, index)
        hr, mask, start, total = read_window(self.files[index], self.sample_rate, self.sample_size, self.channels,
                                             rng, self.random_crop)
        return hr, mask, start, total, rng

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        path = self.files[index]
        hr, mask, start, total, rng = self.read_hr(index)
        caption = self.captions.lookup(path, start, start + self.sample_size / self.sample_rate)
        f_h = float(spectral_rolloff(hr))
        lr, params = simulate_lowres(hr, self.sample_rate, rng, hr_rolloff=f_h, **self.lowres_options)
        lr = (lr * mask).to(torch.float32).contiguous()  # no LR content where the HR window is padding
        f_l = float(spectral_rolloff(lr))
        metadata = {
            "prompt": caption, "lr_audio": lr, "rolloff_in": f_l, "rolloff_target": f_h, "padding_mask": mask,
            "path": str(path), "relpath": self.relpath(path), "seconds_start": start, "seconds_total": total,
            "lowpass": {"family": params.family, "order": params.order, "cutoff_hz": params.cutoff_hz,
                        "drawn_cutoff_hz": params.drawn_cutoff_hz, "hr_rolloff": params.hr_rolloff},
        }
        return hr.to(torch.float32), metadata


def spread_indices(length: int, count: int) -> np.ndarray:
    """Up to ``count`` distinct item indices spread evenly over ``range(length)``, first and last included."""
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(int))


def target_rolloffs(dataset: SuperResolutionDataset, n: int = 512) -> np.ndarray:
    """f_h (the HR roll-off) of up to ``n`` windows spread evenly over the dataset, one window per file
    (the items' own windows at the dataset's seed and epoch); silent windows (roll-off 0) are skipped."""
    values = []
    for i in spread_indices(len(dataset), n):
        hr, mask, *_ = dataset.read_hr(int(i))
        value = float(spectral_rolloff(hr))
        if value > 0:
            values.append(value)
    return np.asarray(values, dtype=np.float64)


def median_target_rolloff(dataset: SuperResolutionDataset, n: int = 512) -> float:
    """The default target roll-off stored with a model (spec §2): the median f_h of its training windows."""
    values = target_rolloffs(dataset, n)
    if values.size == 0:
        raise ValueError("median_target_rolloff: every sampled window is silent")
    return float(np.median(values))


def rolloff_summary(values: np.ndarray) -> dict[str, float]:
    """Median and spread of roll-off values, with the median in Hz at 44.1 kHz (``rolloff_to_hz``)."""
    from ..dsp.rolloff import rolloff_to_hz

    q = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"n": int(values.size), "p10": float(q[0]), "p25": float(q[1]), "median": float(q[2]),
            "p75": float(q[3]), "p90": float(q[4]), "median_hz": float(rolloff_to_hz(float(q[2]))),
            "mean": float(values.mean()) if values.size else math.nan}
