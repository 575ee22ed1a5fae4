"""Caption stores: where the text condition of each training file comes from (SAGA-SR spec §3).

Captions are computed once (``python -m saga_hsmad.cli.caption``, Qwen2-Audio) and read here. A store is
one of

* a JSON file ``{key: caption}``, where key is the audio file's path relative to the store's root (the
  dataset root by default), with or without extension, or any trailing part of the file's path
  (``"train/a.wav"``, ``"a.wav"``, ``"a"``; the longest matching key wins, so keep stems unique); a value may
  also be ``{"caption": str}`` or a list of time ranges ``[{"start": s, "end": s, "caption": str}, ...]``;
* a CSV file with a header ``path,caption`` (optionally ``start,end`` columns for time ranges; several
  rows per path allowed), same key rules;
* sidecar files next to the audio (``"sidecar"``): ``<stem>.txt`` (the whole text) or ``<stem>.json``
  with a ``"caption"`` key (the demo corpus layout).

Per-window captions: when a file has time ranges, the caption of the range overlapping the window most is
used; a window that overlaps no range takes the range whose centre is nearest.

A missing caption raises ``MissingCaptionError`` naming the file and the store, unless the dataset config
sets ``allow_empty_captions: true`` (then the caption is ``""``; note that the T5 encoding of "" is not the
all-zero null sequence the model's text dropout uses).
"""
from __future__ import annotations

import csv
import json
import os
import typing as tp
from pathlib import Path


class MissingCaptionError(KeyError):
    """No caption for an audio file; the message names the file, the store and the fix."""

    def __str__(self) -> str:
        return str(self.args[0])


class CaptionRange(tp.NamedTuple):
    start: float
    end: float
    caption: str


Entry = tp.Union[str, tp.List[CaptionRange]]


def _entry(value: tp.Any, where: str) -> Entry:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("caption"), str):
        return value["caption"]
    if isinstance(value, list):
        ranges = []
        for i, r in enumerate(value):
            try:
                ranges.append(CaptionRange(float(r["start"]), float(r["end"]), str(r["caption"])))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{where}[{i}]: a time range needs start, end and caption ({e})") from e
        return ranges
    raise ValueError(f"{where}: a caption must be a string, {{'caption': str}} or a list of "
                     f"{{'start', 'end', 'caption'}} ranges; got {type(value).__name__}")


def _merge(entries: dict[str, Entry], key: str, value: Entry, where: str) -> None:
    old = entries.get(key)
    if old is None:
        entries[key] = value
    elif isinstance(old, list) and isinstance(value, list):
        old.extend(value)
    else:
        raise ValueError(f"{where}: {key!r} has several whole-file captions")


class CaptionStore:
    """Captions per audio file (and per time range), looked up by path relative to ``root``.

    Args:
        source: a ``.json`` or ``.csv`` caption file, or ``"sidecar"``.
        root: the folder relative paths are taken from (the dataset root); defaults to the file's folder.
        allow_empty: return ``""`` for a missing caption instead of raising.
    """

    def __init__(self, source: str | os.PathLike = "sidecar", root: str | os.PathLike | None = None,
                 allow_empty: bool = False):
        self.allow_empty = allow_empty
        self.entries: dict[str, Entry] = {}
        self._by_name: dict[str, list[str]] = {}
        if str(source) == "sidecar":
            self.kind, self.path = "sidecar", None
            self.root = Path(root) if root is not None else None
            return
        self.path = Path(source)
        if not self.path.is_file():
            raise FileNotFoundError(f"caption store {self.path} does not exist; create it with "
                                    f"python -m saga_hsmad.cli.caption, or use captions: 'sidecar'")
        self.root = Path(root) if root is not None else self.path.parent
        suffix = self.path.suffix.lower()
        if suffix == ".json":
            self.kind = "json"
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"{self.path}: a JSON caption store is an object {{path: caption}}")
            for key, value in data.items():
                self.entries[_norm(key)] = _entry(value, f"{self.path}: {key!r}")
        elif suffix == ".csv":
            self.kind = "csv"
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                fields = set(reader.fieldnames or [])
                if not {"path", "caption"} <= fields:
                    raise ValueError(f"{self.path}: a CSV caption store needs a header with 'path' and 'caption' "
                                     f"columns (and optionally 'start', 'end'); found {sorted(fields)}")
                ranged = {"start", "end"} <= fields
                for line, row in enumerate(reader, start=2):
                    where = f"{self.path}:{line}"
                    if ranged and row.get("start") not in (None, "") and row.get("end") not in (None, ""):
                        value: Entry = [CaptionRange(float(row["start"]), float(row["end"]), row["caption"])]
                    else:
                        value = row["caption"]
                    _merge(self.entries, _norm(row["path"]), value, where)
        else:
            raise ValueError(f"caption store {self.path}: use a .json or .csv file, or 'sidecar'")
        for key in self.entries:  # index by last path component, for tail matches
            self._by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)

    def describe(self) -> str:
        return "sidecar .txt/.json files next to the audio" if self.kind == "sidecar" else str(self.path)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, audio_path: str | os.PathLike) -> bool:
        return self._find(Path(audio_path)) is not None

    def keys_for(self, audio_path: Path) -> list[str]:
        """Keys that name a file: its path relative to ``root`` with and without suffix, then any store key
        that is a trailing part of its path (``"train/a.wav"``, ``"a"``), most specific first."""
        audio_path = Path(audio_path)
        keys = []
        if self.root is not None:
            try:
                rel = audio_path.resolve().relative_to(self.root.resolve())
                keys += [rel.as_posix(), rel.with_suffix("").as_posix()]
            except ValueError:
                pass
        full = "/" + audio_path.resolve().as_posix()
        bare = "/" + audio_path.resolve().with_suffix("").as_posix()
        tails = [k for k in self._by_name.get(audio_path.name, []) + self._by_name.get(audio_path.stem, [])
                 if full.endswith("/" + k) or bare.endswith("/" + k)]
        keys += sorted(tails, key=len, reverse=True)
        return list(dict.fromkeys(keys))

    def _find(self, audio_path: Path) -> Entry | None:
        if self.kind == "sidecar":
            return _sidecar(audio_path)
        for key in self.keys_for(audio_path):
            if key in self.entries:
                return self.entries[key]
        return None

    def lookup(self, audio_path: str | os.PathLike, start: float | None = None, end: float | None = None) -> str:
        """The caption of ``audio_path`` (for the window [start, end) seconds when the store has ranges)."""
        audio_path = Path(audio_path)
        entry = self._find(audio_path)
        if isinstance(entry, list):
            entry = _best_range(entry, start, end)
        if entry is None or not entry.strip():
            if self.allow_empty:
                return ""
            tried = ([audio_path.with_suffix(".txt").name, audio_path.with_suffix(".json").name + " 'caption'"]
                     if self.kind == "sidecar" else self.keys_for(audio_path))
            raise MissingCaptionError(
                f"{'empty' if entry is not None else 'no'} caption for {audio_path} in the caption store ({self.describe()}); tried {tried}. Caption it "
                "(python -m saga_hsmad.cli.caption --resume ...) or set allow_empty_captions: true in the dataset "
                "config")
        return entry


def _norm(key: str) -> str:
    key = str(key).replace("\\", "/")
    return key[2:] if key.startswith("./") else key


def _best_range(ranges: list[CaptionRange], start: float | None, end: float | None) -> str | None:
    """The caption of the range overlapping [start, end) most; without a window, or when no range overlaps
    it, the range whose centre is nearest the window's (the first range without a window)."""
    if not ranges:
        return None
    if start is None or end is None:
        return ranges[0].caption
    best = max(ranges, key=lambda r: min(end, r.end) - max(start, r.start))
    if min(end, best.end) - max(start, best.start) > 0:
        return best.caption
    centre = 0.5 * (start + end)
    return min(ranges, key=lambda r: abs(0.5 * (r.start + r.end) - centre)).caption


def _sidecar(audio_path: Path) -> str | None:
    text = audio_path.with_suffix(".txt")
    if text.is_file():
        return text.read_text(encoding="utf-8").strip()
    meta = audio_path.with_suffix(".json")
    if meta.is_file():
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta}: not valid JSON ({e})") from e
        value = data.get("caption") if isinstance(data, dict) else None
        if isinstance(value, str):
            return value
    return None
