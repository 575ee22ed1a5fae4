"""Dataset type "slakh": Slakh2100 mixtures with their source MIDI (HS-MAD spec §7).

Layout (as distributed): ``root/{train,validation,test}/TrackXXXXX/`` holding ``mix.flac`` (mono, 44.1 kHz),
``all_src.mid`` (the Lakh MIDI of all sources, aligned with the mix) and ``metadata.yaml``::

    UUID: 1a81ae09...            (Lakh file name)
    stems:
      S00: {inst_class: Guitar, program_num: 30, is_drum: false, midi_program_name: Distortion Guitar,
            audio_rendered: true, ...}
      S01: ...

Style text: the instrument classes of the stems that are in the mix (``audio_rendered`` not false), each
once, in stem order, joined as "Piano, Bass, Drums and Guitar"; when the metadata has a ``genre`` entry
(Slakh itself has none; annotated copies may), "<genre> with <instruments>", e.g.
"Rock with Piano, Bass and Drums". Tempo, beat and downbeat labels come from the MIDI's own tempo map:
a file with at least one valid ``set_tempo`` event, whatever its value (an explicit 120 bpm included), has
tempo information (``Score.has_tempo_info``); only a file without any ``set_tempo`` has its tempo and beat
labels masked (downbeats also need a time signature).
Windows, alignment and metadata: ``midi_audio_dataset``.
"""
from __future__ import annotations

import typing as tp

import yaml

from ..paths import resolve_path
from ..registry import DATASETS
from .midi_audio_dataset import MidiAudioDataset, Track
from .scan import OnBadFile

SPLITS = ("train", "validation", "test", "omitted")
SPLIT_ALIASES = {"valid": "validation", "val": "validation"}


def join_names(names: tp.Sequence[str]) -> str:
    """["A"] → "A"; ["A", "B"] → "A and B"; ["A", "B", "C"] → "A, B and C"."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def slakh_style(metadata: dict, fallback: str = "Music") -> str:
    """Style text from a Slakh ``metadata.yaml`` (module docstring)."""
    stems = metadata.get("stems") or {}
    classes: list[str] = []
    for name in sorted(stems):
        stem = stems[name] or {}
        if stem.get("audio_rendered", True) is False:
            continue
        cls = stem.get("inst_class") or ("Drums" if stem.get("is_drum") else stem.get("midi_program_name"))
        if cls and str(cls) not in classes:
            classes.append(str(cls))
    instruments = join_names(classes) or fallback
    genre = metadata.get("genre")
    if isinstance(genre, (list, tuple)):
        genre = join_names([str(g) for g in genre])
    return f"{genre} with {instruments}" if genre else instruments


@DATASETS.register("slakh")
class SlakhDataset(MidiAudioDataset):
    """Slakh2100 windows.

    Args (besides ``MidiAudioDataset``'s):
        root: the Slakh2100 folder (holding the split folders).
        split: "train", "validation" ("valid" accepted), "test" or "omitted"; None = every track under root.
        mix_name, midi_name: file names inside a track folder.
        fallback_style: style text when no stem class is listed.
    """

    type_name = "slakh"

    def __init__(self, root: str, sample_size: int, sample_rate: int, audio_channels: int = 2, seed: int = 0,
                 downsampling_ratio: int | None = None, split: str | None = "train", mix_name: str = "mix.flac",
                 midi_name: str = "all_src.mid", fallback_style: str = "Music", structure: dict | None = None,
                 structure_id: str = "midi", style_id: str = "style", random_crop: bool = True, max_draws: int = 8,
                 on_bad_file: OnBadFile = "skip"):
        super().__init__(sample_size, sample_rate, audio_channels, seed, downsampling_ratio, structure, structure_id,
                         style_id, random_crop, max_draws, on_bad_file)
        folder = resolve_path(root, "root")
        split = SPLIT_ALIASES.get(split, split)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"slakh: split {split!r} is not one of {list(SPLITS)} (or None for all tracks)")
            folder = folder / split
        if not folder.is_dir():
            raise FileNotFoundError(f"slakh: folder {folder} does not exist")
        for meta in sorted(folder.rglob("metadata.yaml")):
            track = meta.parent
            audio, midi = track / mix_name, track / midi_name
            for path in (audio, midi):
                if not path.is_file():
                    raise FileNotFoundError(f"slakh: {track} has metadata.yaml but no {path.name}")
            try:
                metadata = yaml.safe_load(meta.read_text()) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"slakh: {meta} is not valid YAML ({e})") from e
            self.tracks.append(Track(audio, midi, slakh_style(metadata, fallback_style)))
        if not self.tracks:
            raise FileNotFoundError(f"slakh: no track folders (with metadata.yaml) under {folder}")
        self.drop_unreadable()
