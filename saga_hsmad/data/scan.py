"""Start-up scan of a dataset's files: unusable ones are listed and left out, or stop the run.

Every dataset type passes its items (audio files, or audio + MIDI pairs) through ``keep_readable`` when it
is built. With the dataset config key ``"on_bad_file": "skip"`` (the default) it prints one line
``WARNING <file>: <reason>`` per bad file to stderr, then ``<type>: skipped k of n items ...``, and leaves
those items out; with ``"on_bad_file": "error"`` it raises ``UnreadableFilesError`` naming every bad file.
A dataset left with no usable item is an error either way.

What is checked, per file (a few milliseconds; no full decode):

- audio: the header (libsndfile; pedalboard for formats libsndfile does not know, e.g. m4a), at least one
  frame, and that the first and the last ``PROBE_FRAMES`` frames decode to finite samples with that same
  decoder. A compressed file cut short after its header (a truncated FLAC) fails at its last frames. A
  truncated WAV is only a shorter file (libsndfile sizes it from its data) and is used as it is.
- the audio's channel count fits the dataset (mono is duplicated, an equal count kept, and anything goes
  into a mono dataset: the rule of ``windows.to_channels``).
- MIDI (``MIDI_EXTENSIONS``): the whole file is read into a note table (``symbolic.midi.read_midi``).

Damage in the middle of a compressed audio file is not found: decoding every file in full would cost one
pass over the whole corpus at start-up for every new or changed file (about 20 minutes for MAESTRO's
200 h of audio on one core), while the probe finds the faults seen in practice (empty, foreign or
truncated files) in milliseconds.

Results are cached per file in ``$SAGA_HSMAD_CACHE/scan/`` (default ``~/.cache/saga_hsmad/scan``), one JSON
file per dataset folder, keyed by absolute path, size and modification time: a restart probes only new or
changed files. A cache that cannot be written is skipped (the scan then simply runs again next time).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import typing as tp
from pathlib import Path

import numpy as np

from ..paths import cache_dir

MIDI_EXTENSIONS = (".mid", ".midi")
PROBE_FRAMES = 4096
SCAN_VERSION = 1  # bump when the checks change, so cached verdicts are redone
OnBadFile = tp.Literal["skip", "error"]
ON_BAD_FILE = tp.get_args(OnBadFile)

T = tp.TypeVar("T")


class UnreadableFilesError(ValueError):
    """Files a dataset cannot use; ``bad`` maps each file to its reason (one ``ERROR`` line each)."""

    def __init__(self, message: str, bad: dict[Path, str]):
        super().__init__(message)
        self.bad = bad


def _decode_error(e: Exception) -> str:
    return f"cannot be decoded to its end ({e}); the file is truncated or damaged: re-export or re-download it"


def probe_audio(path: Path) -> tuple[int | None, str | None]:
    """(channels, None) for a usable audio file, else (None, reason)."""
    import soundfile as sf

    if path.stat().st_size == 0:
        return None, "is empty (0 bytes)"
    try:
        info = sf.info(str(path))
    except Exception as sf_error:  # not a format libsndfile knows: pedalboard (ffmpeg-like decoders) may
        return _probe_pedalboard(path, sf_error)
    if info.frames <= 0:
        return None, "has no samples"
    try:
        with sf.SoundFile(str(path)) as f:
            head = f.read(min(PROBE_FRAMES, f.frames), dtype="float32")
            f.seek(max(f.frames - PROBE_FRAMES, 0))
            tail = f.read(dtype="float32")
    except Exception as e:
        return None, _decode_error(e)
    return _check_samples(head, tail, info.frames, info.channels)


def _probe_pedalboard(path: Path, sf_error: Exception) -> tuple[int | None, str | None]:
    try:
        from pedalboard.io import AudioFile

        with AudioFile(str(path)) as f:
            frames, channels = int(f.frames), int(f.num_channels)
            if frames <= 0:
                return None, "has no samples"
            head = f.read(min(PROBE_FRAMES, frames)).T
            f.seek(max(frames - PROBE_FRAMES, 0))
            tail = f.read(min(PROBE_FRAMES, frames)).T
    except Exception as pb_error:
        # libsndfile's own words ("Format not recognised."), without the path the WARNING line already names
        reason = getattr(sf_error, "error_string", None) or f"{sf_error}; {pb_error}"
        return None, f"is not readable audio ({reason})"
    return _check_samples(head, tail, frames, channels)


def _check_samples(head: np.ndarray, tail: np.ndarray, frames: int, channels: int) -> tuple[int | None, str | None]:
    if len(tail) < min(PROBE_FRAMES, frames):
        return None, (f"its header promises {frames} frames but it ends early; the file is truncated: re-export or "
                      "re-download it")
    if not (np.isfinite(head).all() and np.isfinite(tail).all()):
        return None, "contains NaN or infinite samples"
    return channels, None


def probe_midi(path: Path) -> tuple[None, str | None]:
    """(None, None) for a MIDI file that reads into a note table, else (None, reason)."""
    from ..symbolic.midi import read_midi

    if path.stat().st_size == 0:
        return None, "is empty (0 bytes)"
    try:
        read_midi(path)
    except Exception as e:  # MidiError for damaged files; anything else the reader hits would stop training too
        message = str(e)
        prefix = f"{os.fspath(path)}: "
        reason = message[len(prefix):] if message.startswith(prefix) else f"{type(e).__name__}: {message}"
        return None, f"is not readable MIDI: {reason}"
    return None, None


def probe(path: Path) -> tuple[int | None, str | None]:
    """(audio channels or None, problem or None) of one file, by its extension."""
    return probe_midi(path) if path.suffix.lower() in MIDI_EXTENSIONS else probe_audio(path)


class _ScanCache:
    """Per-file verdicts ``[size, mtime_ns, channels, problem]`` in one JSON file per dataset folder."""

    def __init__(self, paths: tp.Sequence[Path]):
        root = os.path.commonpath([str(p.parent) for p in paths])
        self.path = cache_dir() / "scan" / f"{hashlib.sha1(root.encode()).hexdigest()[:16]}.json"
        self.entries, self.changed = self._read(), False

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data.get("files", {}) if isinstance(data, dict) and data.get("version") == SCAN_VERSION else {}

    def verdict(self, path: Path) -> tuple[int | None, str | None]:
        try:
            stat = path.stat()
        except OSError as e:
            return None, f"cannot be read ({e.strerror})"
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        entry = self.entries.get(key)
        if entry is not None and entry[:2] == stamp:
            return entry[2], entry[3]
        try:
            channels, problem = probe(path)
        except OSError as e:
            return None, f"cannot be read ({e.strerror})"
        self.entries[key], self.changed = stamp + [channels, problem], True
        return channels, problem

    def save(self) -> None:
        if not self.changed:
            return
        from ..checkpoints import atomic_write

        entries = {**self._read(), **self.entries}  # keep what a concurrent scan of this folder added
        text = json.dumps({"version": SCAN_VERSION, "files": entries})
        try:
            atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))
        except OSError:
            pass  # a read-only cache only costs a new scan next time


def channel_problem(file_channels: int, channels: int) -> str | None:
    """Why a file with ``file_channels`` cannot feed a ``channels`` dataset (``windows.to_channels``), or None."""
    if file_channels in (1, channels) or channels == 1:
        return None
    return (f"has {file_channels} channels; this dataset uses {channels} (mono files are duplicated, other counts "
            "are not guessed)")


def scan(paths: tp.Sequence[Path], channels: int | None = None) -> dict[Path, str]:
    """The files of ``paths`` that a dataset of ``channels`` cannot use, each with its reason (cached)."""
    paths = [Path(p).absolute() for p in dict.fromkeys(paths)]
    if not paths:
        return {}
    cache = _ScanCache(paths)
    bad = {}
    for path in paths:
        file_channels, problem = cache.verdict(path)
        if problem is None and file_channels is not None and channels is not None:
            problem = channel_problem(file_channels, channels)
        if problem is not None:
            bad[path] = problem
    cache.save()
    return bad


def keep_readable(items: tp.Sequence[T], files: tp.Callable[[T], tp.Iterable[Path]], where: str,
                  on_bad_file: OnBadFile = "skip", channels: int | None = None) -> list[T]:
    """The items whose files are all usable (module docstring: what is checked, what is printed).

    Args:
        items: the dataset's items (paths, tracks ...).
        files: the files of one item (e.g. its audio and its MIDI).
        where: the dataset type, for messages.
        on_bad_file: ``"skip"`` items with a bad file (one ``WARNING`` line each, then the count) or raise
            ``UnreadableFilesError`` (``"error"``).
        channels: the dataset's audio channels (a file that cannot be mapped to them is bad), or None.
    """
    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"{where}: on_bad_file must be one of {list(ON_BAD_FILE)}, got {on_bad_file!r}")
    item_files = [[Path(f).absolute() for f in files(item)] for item in items]
    bad = scan([f for fs in item_files for f in fs], channels)
    if not bad:
        return list(items)
    kept = [item for item, fs in zip(items, item_files) if not any(f in bad for f in fs)]
    skipped = len(items) - len(kept)
    if on_bad_file == "error" or not kept:
        why = ("none of its items is usable" if not kept else
               f'{skipped} of {len(items)} items have unusable files (on_bad_file "error")')
        lines = "\n".join(f"  ERROR {path}: {reason}" for path, reason in bad.items())
        raise UnreadableFilesError(f"{where}: {why}; fix or remove these files"
                                   + ("" if not kept else ', or set "on_bad_file": "skip" to leave them out')
                                   + f":\n{lines}", bad)
    for path, reason in bad.items():
        print(f"WARNING {path}: {reason}", file=sys.stderr)
    print(f'{where}: skipped {skipped} of {len(items)} items with unusable files (listed above; set '
          '"on_bad_file": "error" to stop instead)', file=sys.stderr)
    return kept
