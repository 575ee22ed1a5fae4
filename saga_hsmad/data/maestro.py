"""Dataset type "maestro": MAESTRO v3 piano performances with their aligned MIDI (HS-MAD spec §7).

Layout (as distributed): ``root/maestro-v3.0.0.csv`` with the columns canonical_composer, canonical_title,
split (train | validation | test), year, midi_filename, audio_filename, duration; the file names are
relative to ``root`` (``2018/MIDI-Unprocessed_....midi`` and ``.wav``).

Style text: "Classical Piano Performance" (spec §7), config ``style``.
MAESTRO MIDI are Disklavier captures of performances: their tempo map (one default tempo) is not musical,
so tempo, beat and downbeat labels are masked for every file (``performance_midi``, default true), whatever
``Score.has_tempo_info`` would say; chroma and key labels are kept.
Windows, alignment and metadata: ``midi_audio_dataset``.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..paths import resolve_path
from ..registry import DATASETS
from .midi_audio_dataset import MidiAudioDataset, Track
from .scan import OnBadFile

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"valid": "validation", "val": "validation"}
COLUMNS = ("split", "midi_filename", "audio_filename")


@DATASETS.register("maestro")
class MaestroDataset(MidiAudioDataset):
    """MAESTRO v3 windows.

    Args (besides ``MidiAudioDataset``'s):
        root: the MAESTRO folder (holding the CSV).
        split: "train", "validation" ("valid" accepted) or "test"; None = every row.
        csv_name: the metadata CSV; None = the one ``maestro-v*.csv`` in ``root``.
        style: style text of every item.
        performance_midi: mask tempo, beat and downbeat labels (performance captures).
    """

    type_name = "maestro"

    def __init__(self, root: str, sample_size: int, sample_rate: int, audio_channels: int = 2, seed: int = 0,
                 downsampling_ratio: int | None = None, split: str | None = "train", csv_name: str | None = None,
                 style: str = "Classical Piano Performance", performance_midi: bool = True,
                 structure: dict | None = None, structure_id: str = "midi", style_id: str = "style",
                 random_crop: bool = True, max_draws: int = 8, on_bad_file: OnBadFile = "skip"):
        super().__init__(sample_size, sample_rate, audio_channels, seed, downsampling_ratio, structure, structure_id,
                         style_id, random_crop, max_draws, on_bad_file)
        folder = resolve_path(root, "root")
        split = SPLIT_ALIASES.get(split, split)
        if split is not None and split not in SPLITS:
            raise ValueError(f"maestro: split {split!r} is not one of {list(SPLITS)} (or None for all rows)")
        table = self._csv(folder, csv_name)
        with table.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"maestro: {table} lacks the column(s) {missing}; columns: {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                if split is not None and row["split"] != split:
                    continue
                audio, midi = folder / row["audio_filename"], folder / row["midi_filename"]
                for path in (audio, midi):
                    if not path.is_file():
                        raise FileNotFoundError(f"maestro: {table.name} line {line} names {path}, which does not exist")
                self.tracks.append(Track(audio, midi, style, mask_tempo=performance_midi))
        self.drop_unreadable()

    @staticmethod
    def _csv(folder: Path, csv_name: str | None) -> Path:
        if csv_name is not None:
            table = folder / csv_name
            if not table.is_file():
                raise FileNotFoundError(f"maestro: {table} does not exist (config key csv_name)")
            return table
        found = sorted(folder.glob("maestro-v*.csv"))
        if len(found) != 1:
            raise FileNotFoundError(f"maestro: expected one maestro-v*.csv in {folder}, found "
                                    f"{[p.name for p in found]}; set csv_name")
        return found[0]
