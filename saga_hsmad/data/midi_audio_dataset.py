"""Paired MIDI + audio windows for HS-MAD, and the dataset type "midi_audio_folder".

Implements HS-MAD spec §7 (seed §3.2.1): random windows of ``sample_size`` samples (30 s in the paper
config) with the MIDI cut to EXACTLY the same time span, rendered in the loader workers into the packed
structure tensor the "hierarchical_midi" conditioner takes (``StructureRender``, shared with it).

One item:

    audio   (audio_channels, sample_size) float32, resampled to the model rate; mono → dual-mono
    metadata
      <structure_id> ("midi")   {"structure": (C, T_H) float32, "render": StructureRender.as_dict()}
      <style_id> ("style")      style text
      "padding_mask"            (sample_size,) bool, True on real audio
      "path", "midi_path"       the audio and MIDI files
      "seconds_start"           window start in the file (s); the MIDI window starts there too
      "seconds_total"           file duration (s)

Time alignment: the window offset is drawn in samples of the file (``windows.read_window``); the MIDI
window is ``StructureRender.window(score, start / file_rate, sample_size / sample_rate)``, so audio sample
k and latent frame h = floor(k / R_VAE) cover the same instant. T_H = floor(sample_size / R_VAE) must be
a multiple of R1·R2 (checked at construction; the error names ``sample_size``). Frames past the end of a short file are
padding (structure mask 0; S_sync and labels masked there).

Windows with notes: a window offset is redrawn (up to ``max_draws`` draws in total) while the MIDI has no
note sounding in the window; if none of the draws has one, the last draw is used. The draws come from
``item_rng(seed, epoch, index)``, so items stay deterministic given (seed, epoch, index).

Parsed MIDI: each dataset (one per loader worker) keeps the last ``SCORE_CACHE`` pieces it read, keyed by path,
size and modification time, so a piece is parsed once rather than once per window (parsing was 60 % of an
item's time on the demo corpus); an edited file is read again.

Shared by the "maestro" and "slakh" types (``maestro.py``, ``slakh.py``), which differ only in how they
list tracks and build the style text.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import typing as tp
from pathlib import Path

import numpy as np
import torch

from ..audio_io import audio_info, list_audio_files
from ..conditioners.hierarchical_midi import RENDER_KEYS, StructureRender, window_error
from ..paths import resolve_path
from ..registry import DATASETS
from ..symbolic.midi import Score
from .scan import MIDI_EXTENSIONS, OnBadFile, keep_readable
from .windows import item_rng, read_window


@dataclasses.dataclass(frozen=True)
class Track:
    """One audio file with its MIDI and style text; ``mask_tempo`` marks performance MIDI whose tempo map is
    not musical (tempo, beat and downbeat labels masked)."""

    audio: Path
    midi: Path
    style: str
    mask_tempo: bool = False


class _NoteSeekingDraw:
    """Stands in for the numpy Generator that ``windows.read_window`` draws its offset from.

    ``read_window`` calls ``rng.integers(0, n)`` once for the window start (in file samples); this draws up
    to ``max_draws`` offsets from the real generator and returns the first whose MIDI window has a note
    sounding (else the last draw)."""

    def __init__(self, rng: np.random.Generator, score: Score, file_rate: int, duration: float, max_draws: int,
                 drop_drums: bool):
        self.rng, self.file_rate, self.duration, self.max_draws = rng, file_rate, duration, max_draws
        notes = score.notes.subset(~score.notes.is_drum) if drop_drums else score.notes
        self.start, self.end = notes.start, notes.end

    def has_notes(self, offset: int) -> bool:
        t0 = offset / self.file_rate
        return bool(np.any((self.end >= t0) & (self.start < t0 + self.duration)))

    def integers(self, low: int, high: int) -> int:
        for _ in range(self.max_draws):
            offset = int(self.rng.integers(low, high))
            if self.has_notes(offset):
                break
        return offset


class MidiAudioDataset(torch.utils.data.Dataset):
    """Base of the HS-MAD dataset types: random aligned audio + MIDI windows of ``self.tracks``.

    Args (JSON keys common to the types; context from the loader marked *):
        sample_size*, sample_rate*, audio_channels*, seed*: window length and rate of the model.
        downsampling_ratio*: the model's pretransform ratio (SR_latent = sample_rate / ratio); the loader
            passes it, or set it in the dataset config.
        structure: render settings (keys of ``StructureRender``: sigma_on, sigma_off, mode, drums, factors,
            with_labels, chroma_norm, velocity_threshold, sustain_pedal); must agree with the model's
            hierarchical_midi conditioner (it checks every item).
        structure_id, style_id: metadata keys = the conditioner ids.
        random_crop: random window offsets (else every window starts at 0).
        max_draws: window draws per item while the MIDI window is silent (1 = no redraw).
        on_bad_file: "skip" tracks whose audio or MIDI is unreadable, with a warning per file, or stop with an
            "error" (``data.scan``); each type calls ``drop_unreadable`` once its tracks are listed.
    """

    type_name = "midi_audio"
    SCORE_CACHE = 256  # parsed pieces kept per dataset object (module docstring)

    def __init__(self, sample_size: int, sample_rate: int, audio_channels: int = 2, seed: int = 0,
                 downsampling_ratio: int | None = None, structure: dict | None = None, structure_id: str = "midi",
                 style_id: str = "style", random_crop: bool = True, max_draws: int = 8,
                 on_bad_file: OnBadFile = "skip"):
        where = self.type_name
        if downsampling_ratio is None:
            raise ValueError(f"{where}: needs the model's pretransform downsampling_ratio (SR_latent = sample_rate / "
                             "ratio); the loader passes it (downsampling_ratio=...), or set it in the dataset config")
        structure = dict(structure or {})
        unknown = sorted(set(structure) - set(RENDER_KEYS))
        if unknown:
            raise TypeError(f"{where}: unknown key(s) {unknown} in 'structure'; accepted: {sorted(RENDER_KEYS)}")
        try:
            self.render = StructureRender(int(sample_rate), int(downsampling_ratio), **structure)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: 'structure': {e}") from e
        if sample_size % downsampling_ratio:
            raise ValueError(f"sample_size = {sample_size} is not a multiple of the pretransform's downsampling "
                             f"ratio {downsampling_ratio}")
        multiple = self.render.length_multiple
        message = window_error(sample_size // downsampling_ratio, multiple, "sample_size", self.render.frame_rate)
        if message:
            lo = max(sample_size // downsampling_ratio // multiple, 1) * multiple * downsampling_ratio
            raise ValueError(f"{where}: {message}; set the model config's sample_size to a multiple of "
                             f"downsampling_ratio × R1 × R2 = {downsampling_ratio * multiple}, e.g. {lo} or "
                             f"{lo + downsampling_ratio * multiple}")
        if max_draws < 1:
            raise ValueError(f"{where}: max_draws must be >= 1, got {max_draws}")
        self.sample_size, self.sample_rate, self.channels = sample_size, sample_rate, audio_channels
        self.duration = sample_size / sample_rate
        self.structure_id, self.style_id = structure_id, style_id
        self.random_crop, self.max_draws, self.seed, self.epoch = random_crop, max_draws, seed, 0
        self.on_bad_file = on_bad_file
        self.tracks: list[Track] = []
        self._scores: collections.OrderedDict[tuple, Score] = collections.OrderedDict()

    def drop_unreadable(self) -> None:
        """Leave out (or refuse, per ``on_bad_file``) the tracks whose audio or MIDI cannot be read."""
        self.tracks = keep_readable(self.tracks, lambda t: (t.audio, t.midi), self.type_name, self.on_bad_file,
                                    self.channels)

    def __len__(self) -> int:
        return len(self.tracks)

    def score(self, track: Track) -> Score:
        """The whole piece, read with the render's MIDI settings; tempo masked for performance MIDI."""
        stat = os.stat(track.midi)
        key = (str(track.midi), stat.st_size, stat.st_mtime_ns)
        cache = self._scores
        if key in cache:
            cache.move_to_end(key)
            score = cache[key]
        else:
            score = cache[key] = self.render.read_midi(track.midi)
            while len(cache) > self.SCORE_CACHE:
                cache.popitem(last=False)
        if track.mask_tempo:
            score = dataclasses.replace(score, has_tempo_info=False, has_time_signature=False)
        return score

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        track = self.tracks[index]
        score = self.score(track)
        file_rate = audio_info(track.audio)[0]
        draw = _NoteSeekingDraw(item_rng(self.seed, self.epoch, index), score, file_rate, self.duration,
                                self.max_draws, self.render.drums == "drop")
        audio, padding, start, total = read_window(track.audio, self.sample_rate, self.sample_size, self.channels,
                                                   draw, self.random_crop)
        real = int(np.count_nonzero(padding.numpy()))
        valid_frames = math.ceil(real / self.render.downsampling_ratio)
        structure = self.render.render(self.render.window(score, start, self.duration), self.duration,
                                       valid_frames)
        metadata = {
            self.structure_id: {"structure": structure, "render": self.render.as_dict()},
            self.style_id: track.style,
            "padding_mask": padding,
            "path": str(track.audio),
            "midi_path": str(track.midi),
            "seconds_start": start,
            "seconds_total": total,
        }
        return audio, metadata


def same_stem_midi(audio: Path) -> Path | None:
    for ext in MIDI_EXTENSIONS + tuple(e.upper() for e in MIDI_EXTENSIONS):
        candidate = audio.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


@DATASETS.register("midi_audio_folder")
class MidiAudioFolderDataset(MidiAudioDataset):
    """Audio files with same-stem MIDI files under one or more folders (recursive); the demo corpus layout
    ``root/{train,valid,test}/<stem>.{wav,mid,json}`` is one.

    Args (besides ``MidiAudioDataset``'s):
        roots: folder(s) (``~``, ``$VARS`` and ``${SAGA_HSMAD_DEMO_CORPUS}`` expanded).
        split: a subfolder of each root (e.g. "train"), or None for the whole root.
        style_field: key of the same-stem ``.json`` holding the style text.
        default_style: style text for files without one (None: such a file is an error).
        missing_midi: "error" or "skip" audio files that have no same-stem .mid/.midi.
        performance_midi: the MIDI are performance captures: mask tempo, beat and downbeat labels.
    """

    type_name = "midi_audio_folder"

    def __init__(self, roots: str | list[str], sample_size: int, sample_rate: int, audio_channels: int = 2,
                 seed: int = 0, downsampling_ratio: int | None = None, split: str | None = None,
                 style_field: str = "style", default_style: str | None = None,
                 missing_midi: tp.Literal["error", "skip"] = "error", performance_midi: bool = False,
                 structure: dict | None = None, structure_id: str = "midi", style_id: str = "style",
                 random_crop: bool = True, max_draws: int = 8, on_bad_file: OnBadFile = "skip"):
        super().__init__(sample_size, sample_rate, audio_channels, seed, downsampling_ratio, structure, structure_id,
                         style_id, random_crop, max_draws, on_bad_file)
        if missing_midi not in ("error", "skip"):
            raise ValueError(f"{self.type_name}: missing_midi must be 'error' or 'skip', got {missing_midi!r}")
        roots = [roots] if isinstance(roots, str) else list(roots)
        for root in roots:
            folder = resolve_path(root, "roots")
            if split is not None:
                folder = folder / split
            if not folder.is_dir():
                hint = " (build it: python -m saga_hsmad.data.demo_corpus)" if "demo_corpus" in str(folder) else ""
                raise FileNotFoundError(f"{self.type_name}: folder {folder} does not exist{hint}")
            for audio in list_audio_files(folder):
                midi = same_stem_midi(audio)
                if midi is None:
                    if missing_midi == "skip":
                        continue
                    raise FileNotFoundError(f"{self.type_name}: {audio} has no same-stem .mid/.midi file; add it or "
                                            "set missing_midi: \"skip\"")
                style = self._style(audio, style_field, default_style)
                self.tracks.append(Track(audio, midi, style, mask_tempo=performance_midi))
        self.drop_unreadable()

    def _style(self, audio: Path, field: str, default: str | None) -> str:
        sidecar = audio.with_suffix(".json")
        if sidecar.is_file():
            try:
                value = json.loads(sidecar.read_text()).get(field)
            except (json.JSONDecodeError, AttributeError) as e:
                raise ValueError(f"{self.type_name}: {sidecar} is not a JSON object ({e})") from e
            if value is not None:
                return str(value)
        if default is None:
            raise KeyError(f"{self.type_name}: no style text for {audio}: add {sidecar.name} with a {field!r} key, "
                           "or set default_style in the dataset config")
        return default
