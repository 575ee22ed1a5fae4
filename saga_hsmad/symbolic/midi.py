"""MIDI reading for HS-MAD: a note table, a tempo map, time signatures and a beat grid in seconds.

Implements the input side of the synchronised rendering module (HS-MAD spec §2, seed §2.2.1): a MIDI
file (type 0 or 1) read with ``mido``, or a plain note list, becomes a :class:`Score` whose times are
seconds. Everything the SRM (``srm.py``) and the auxiliary labels (``labels.py``) need is here.

Parsing rules (each one is a choice; the tests pin them down):

- **Tracks.** Type 0 and type 1 files are read; all tracks are merged into one time-ordered stream
  (stable: equal ticks keep track order, then file order). Type 2 (asynchronous sequences) and SMPTE
  time division raise :class:`MidiError`.
- **Tempo map.** ``set_tempo`` events from any track form one global map (several events on one tick:
  the last one wins). Before the first event the MIDI default 500,000 us per quarter (120 bpm) holds.
  Ticks become seconds through the whole map, vectorised (``_TickClock``). A ``set_tempo`` of 0 us per
  quarter (an infinite tempo) is skipped with a :class:`MidiWarning`; the tempo before it holds.
- **Running status** is decoded by ``mido``; **note-on with velocity 0** is a note-off.
- **A re-struck pitch** ends the note of that pitch still sounding on that channel at the new onset (one
  key, one string; a synthesiser does the same), so at most one note per (channel, pitch) has its key down
  and a note-off ends that one. A note-off with nothing to end is ignored; so is a note-off on the very
  tick of a re-strike that ended a note (a re-strike written "on, off" on one tick: the off belongs to the
  note the re-strike ended, as in ``pretty_midi``). Notes of zero length (on and off on one tick, no
  re-strike) are kept: they carry an onset.
- **Unclosed notes.** A note whose key is never released ends at the end of the file (its last event),
  but at most ``OPEN_NOTE_CAP`` (10 s) after its onset; a note released under a sustain pedal that never
  lifts, at most ``OPEN_NOTE_CAP`` after its key release. A :class:`MidiWarning` says how many notes the
  cap shortened. (``pretty_midi`` drops such notes; a 10 s cap keeps their onsets and a plausible decay.)
- **Sustain pedal** (``sustain=True``): CC64 with value >= ``sustain_threshold`` (default 64) is pedal
  down on that channel. A note whose key is released while the pedal is down keeps sounding until the
  pedal goes up, or until the same pitch is struck again on that channel (the re-strike ends it at the
  new onset; a piano string cannot ring twice), or until the end of the file.
- **Drums** are channel 10 (index 9). ``drums="keep"`` keeps them with ``is_drum=True``;
  ``drums="drop"`` removes them from the note table.
- **Programs** are tracked per channel over time (``program_change`` events, default 0); each note gets
  the program its channel had at the note-on.
- **Beats and downbeats** come from the tempo map and the time signatures (``beat_grid``): a beat is
  one denominator note (``4 * ppq / den`` ticks), except in compound metres (numerator 6, 9, 12, ...
  with denominator >= 8) where a beat is a dotted note of three denominator notes and a bar has
  ``num / 3`` beats. The grid starts at tick 0 and restarts at every time-signature change; before
  the first time signature 4/4 holds. Beats lie in ``[0, end_time)``. A time signature with numerator 0
  or a denominator other than 1, 2, 4, ..., 128 is skipped with a :class:`MidiWarning`.
- ``has_tempo_info`` is **True** when the file has at least one (valid) ``set_tempo`` event, whatever its
  value: an explicit 120 bpm is information, only the absence of a tempo map is not. Performance captures
  whose tempo map is not musical (MAESTRO's Disklavier files) are masked by their dataset
  (``performance_midi``), which replaces it with ``dataclasses.replace(score, has_tempo_info=False)``.
  ``has_time_signature`` is False when the file has no (valid) ``time_signature`` event (4/4 is then
  assumed for the grid, and labels mask downbeats).
- **Limits.** A file longer than ``MAX_MIDI_SECONDS`` (6 hours), or whose beat grid would hold more than
  ``MAX_BEATS`` (1,000,000) beats, raises :class:`MidiError` before anything of that size is allocated
  (a corrupt delta time or tempo; one maximal delta at 1 tick per quarter is 4 years at 120 bpm).
- A file that ``mido`` cannot read (empty, truncated, not MIDI, bad data byte, invalid meta event)
  raises :class:`MidiError` naming the file. A readable file with no notes gives an empty note table.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import os
import typing as tp
import warnings

import mido
import numpy as np

__all__ = ["MidiError", "MidiWarning", "Notes", "Score", "read_midi", "beat_grid", "DEFAULT_TEMPO_US", "DRUM_CHANNEL",
           "OPEN_NOTE_CAP", "MAX_MIDI_SECONDS", "MAX_BEATS"]

DEFAULT_TEMPO_US = 500_000  # MIDI default tempo: 500,000 us per quarter note = 120 bpm
DRUM_CHANNEL = 9            # General MIDI channel 10, zero-based
OPEN_NOTE_CAP = 10.0        # seconds an unclosed note may last after its onset (or its key release under a pedal)
MAX_MIDI_SECONDS = 6 * 3600  # longer files are refused: a corrupt delta time, not music
MAX_BEATS = 1_000_000       # a beat grid larger than this is refused (6 h at 300 bpm in 16ths is 432,000)
_DENOMINATORS = {2 ** k for k in range(8)}  # time-signature denominators accepted: 1 .. 128

NoteLike = tp.Union["Notes", np.ndarray, tp.Sequence[tp.Sequence[float]]]


class MidiError(ValueError):
    """A MIDI file could not be read; the message names the file and the reason."""


class MidiWarning(UserWarning):
    """A MIDI file was read, but part of it was invalid and skipped or repaired; the message names the file
    and says what was done (``<file>: <reason>``)."""


# --------------------------------------------------------------------------------------------------
# Note table
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Notes:
    """A note table as a dataclass of equal-length arrays (N notes), sorted by (start, pitch).

    pitch    (N,) int64    MIDI pitch 0..127 (for drums: the GM drum key)
    start    (N,) float64  onset in seconds; in a window, negative = the note began before the window
    end      (N,) float64  release in seconds (after sustain-pedal extension), end >= start; read from MIDI, a
                           re-strike of the pitch on its channel ends it, and a note never released ends at
                           most ``OPEN_NOTE_CAP`` (10 s) after its onset (module docstring)
    velocity (N,) float64  MIDI velocity 1..127 (float so transcribed velocities fit)
    program  (N,) int64    General MIDI program 0..127 of the note's channel at its onset
    is_drum  (N,) bool     note is on the drum channel (index 9)
    channel  (N,) int64    MIDI channel 0..15, or -1 for notes given as a plain list
    """

    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    is_drum: np.ndarray
    channel: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.pitch)
        for f in dataclasses.fields(self):
            arr = getattr(self, f.name)
            assert isinstance(arr, np.ndarray) and arr.ndim == 1 and len(arr) == n, (
                f"Notes.{f.name} must be a 1-D array of length {n}, got {getattr(arr, 'shape', type(arr))}")

    def __len__(self) -> int:
        return len(self.pitch)

    def subset(self, index: np.ndarray) -> "Notes":
        """Notes selected by a boolean mask or an index array (order kept)."""
        return Notes(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @staticmethod
    def empty() -> "Notes":
        return Notes(pitch=np.zeros(0, np.int64), start=np.zeros(0), end=np.zeros(0), velocity=np.zeros(0),
                     program=np.zeros(0, np.int64), is_drum=np.zeros(0, bool), channel=np.zeros(0, np.int64))

    @staticmethod
    def build(pitch, start, end, velocity, program=0, is_drum=False, channel=-1) -> "Notes":
        """Validated, sorted note table from arrays (scalars broadcast for velocity/program/is_drum/channel)."""
        pitch = np.asarray(pitch, dtype=np.int64).reshape(-1)
        n = len(pitch)
        start = np.asarray(start, dtype=np.float64).reshape(-1)
        end = np.asarray(end, dtype=np.float64).reshape(-1)
        velocity = np.asarray(velocity, dtype=np.float64)
        velocity = np.full(n, float(velocity)) if velocity.ndim == 0 else velocity.reshape(-1)
        program = np.broadcast_to(np.asarray(program, dtype=np.int64), (n,)).copy()
        is_drum = np.broadcast_to(np.asarray(is_drum, dtype=bool), (n,)).copy()
        channel = np.broadcast_to(np.asarray(channel, dtype=np.int64), (n,)).copy()
        if not (len(start) == len(end) == len(velocity) == n):
            raise ValueError(f"note arrays differ in length: pitch {n}, start {len(start)}, end {len(end)}, "
                             f"velocity {len(velocity)}")
        _check(n == 0 or ((pitch >= 0) & (pitch <= 127)).all(), "pitch must be in 0..127", pitch)
        _check(np.isfinite(start).all() and np.isfinite(end).all(), "start/end must be finite", start)
        _check((end >= start).all(), "end must be >= start", end - start)
        _check(n == 0 or ((velocity > 0) & (velocity <= 127)).all(), "velocity must be in (0, 127]", velocity)
        _check(n == 0 or ((program >= 0) & (program <= 127)).all(), "program must be in 0..127", program)
        order = np.lexsort((pitch, start))  # stable: primary start, then pitch, then input order
        return Notes(pitch[order], start[order], end[order], velocity[order], program[order], is_drum[order],
                     channel[order])


def _check(ok: bool, what: str, values: np.ndarray) -> None:
    if not ok:
        raise ValueError(f"invalid note list: {what} (offending values include {values[:5]}...)")


# --------------------------------------------------------------------------------------------------
# Score
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Score:
    """A parsed piece (or a window of one) with every time in seconds.

    notes               Notes                  the note table
    tempo_times (K,)    float64  seconds       start of each tempo segment; tempo_times[0] == 0
    tempo_bpm   (K,)    float64  quarter notes per minute in that segment
    ts_times    (S,)    float64  seconds       start of each time-signature segment; ts_times[0] == 0
    ts_num, ts_den (S,) int64                  numerator / denominator
    beats       (B,)    float64  seconds       beat times in [0, end_time)
    downbeats   (D,)    float64  seconds       first beat of each bar (a subset of beats)
    end_time            float    seconds       last event of the file (window: its duration)
    has_tempo_info      bool     see module docstring for the exact rule
    has_time_signature  bool     the file has at least one time_signature event
    source              str|None file the score came from
    offset              float    start of this score in the source's time (0 unless a window)
    """

    notes: Notes
    tempo_times: np.ndarray
    tempo_bpm: np.ndarray
    ts_times: np.ndarray
    ts_num: np.ndarray
    ts_den: np.ndarray
    beats: np.ndarray
    downbeats: np.ndarray
    end_time: float
    has_tempo_info: bool
    has_time_signature: bool
    source: tp.Optional[str] = None
    offset: float = 0.0

    @classmethod
    def from_notes(cls, notes: NoteLike, *, end_time: tp.Optional[float] = None, program: tp.Any = 0,
                   is_drum: tp.Any = False, source: tp.Optional[str] = None) -> "Score":
        """A score from a plain note list: rows (pitch, start s, end s, velocity 1..127), or ``Notes``.

        It has no tempo information (``has_tempo_info=False``, no beats) and no time signature, so
        labels derived from it mask tempo, beats and downbeats. ``end_time`` defaults to the last note end.
        """
        if not isinstance(notes, Notes):
            arr = np.asarray(notes, dtype=np.float64)
            if arr.size == 0:
                arr = arr.reshape(0, 4)
            if arr.ndim != 2 or arr.shape[1] != 4:
                raise ValueError(f"a note list must have rows (pitch, start, end, velocity); got shape {arr.shape}")
            if not np.array_equal(arr[:, 0], np.round(arr[:, 0])):
                raise ValueError("note pitches must be integers 0..127")
            notes = Notes.build(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], program=program, is_drum=is_drum)
        if end_time is None:
            end_time = float(notes.end.max()) if len(notes) else 0.0
        return cls(notes=notes, tempo_times=np.zeros(1), tempo_bpm=np.full(1, 120.0), ts_times=np.zeros(1),
                   ts_num=np.full(1, 4, np.int64), ts_den=np.full(1, 4, np.int64), beats=np.zeros(0),
                   downbeats=np.zeros(0), end_time=float(end_time), has_tempo_info=False,
                   has_time_signature=False, source=source)

    def tempo_at(self, times: np.ndarray) -> np.ndarray:
        """Tempo in bpm in effect at each time (seconds, this score's time)."""
        idx = np.searchsorted(self.tempo_times, np.asarray(times, dtype=np.float64), side="right") - 1
        return self.tempo_bpm[np.clip(idx, 0, None)]

    def window(self, t0: float, duration: float, margin: float = 0.0) -> "Score":
        """The part of the score that sounds in ``[t0, t0 + duration)``, in the window's own time.

        Notes kept: ``end >= t0 - margin`` and ``start < t0 + duration + margin`` (a note that ends
        exactly at ``t0`` still sounds at ``t0``). Times are shifted by ``-t0``; a note that began before
        the window keeps its **negative start** (the SRM renders it with sustain and no onset); ends are
        clipped to ``duration + margin``. ``margin > 0`` also keeps notes whose release tail or onset
        kernel reaches into the window from outside (use about 7 sigma to make a window render equal to
        the matching frames of a full render, apart from onsets before ``t0``).
        The tempo map and time signatures start with the values in effect at ``t0`` (at time 0);
        beats and downbeats are those in ``[t0, t0 + duration)``. ``end_time`` becomes ``duration``.
        """
        if not duration > 0:
            raise ValueError(f"window duration must be > 0, got {duration}")
        if margin < 0:
            raise ValueError(f"window margin must be >= 0, got {margin}")
        n = self.notes
        keep = (n.end >= t0 - margin) & (n.start < t0 + duration + margin)
        sub = n.subset(keep)
        notes = dataclasses.replace(sub, start=sub.start - t0, end=np.minimum(sub.end - t0, duration + margin))
        tempo_times, (tempo_bpm,) = _window_segments(self.tempo_times, [self.tempo_bpm], t0, duration)
        ts_times, (ts_num, ts_den) = _window_segments(self.ts_times, [self.ts_num, self.ts_den], t0, duration)

        def inside(x: np.ndarray) -> np.ndarray:
            return x[(x >= t0) & (x < t0 + duration)] - t0

        return dataclasses.replace(
            self, notes=notes, tempo_times=tempo_times, tempo_bpm=tempo_bpm, ts_times=ts_times, ts_num=ts_num,
            ts_den=ts_den, beats=inside(self.beats), downbeats=inside(self.downbeats), end_time=float(duration),
            offset=self.offset + float(t0))


def _window_segments(times: np.ndarray, values: tp.List[np.ndarray], t0: float, duration: float):
    """Piecewise-constant segments restricted to [t0, t0+duration) and shifted to start at 0."""
    first = max(int(np.searchsorted(times, t0, side="right")) - 1, 0)
    later = (times > t0) & (times < t0 + duration)
    idx = np.concatenate([[first], np.nonzero(later)[0]])
    new_times = np.concatenate([[0.0], times[later] - t0])
    return new_times, [v[idx] for v in values]


# --------------------------------------------------------------------------------------------------
# Ticks -> seconds
# --------------------------------------------------------------------------------------------------
class _TickClock:
    """Converts ticks to seconds through a full tempo map (vectorised over any array of ticks).

    seconds(tick) = sec[i] + (tick - tick[i]) * us_per_quarter[i] / (1e6 * ppq), i = last change <= tick
    """

    def __init__(self, change_ticks: np.ndarray, us_per_quarter: np.ndarray, ppq: int):
        self.ticks = np.asarray(change_ticks, dtype=np.float64)
        self.sec_per_tick = np.asarray(us_per_quarter, dtype=np.float64) / (1e6 * ppq)
        seg = np.diff(self.ticks) * self.sec_per_tick[:-1]
        self.secs = np.concatenate([[0.0], np.cumsum(seg)])

    def __call__(self, ticks: np.ndarray) -> np.ndarray:
        ticks = np.asarray(ticks, dtype=np.float64)
        i = np.clip(np.searchsorted(self.ticks, ticks, side="right") - 1, 0, None)
        return self.secs[i] + (ticks - self.ticks[i]) * self.sec_per_tick[i]


# --------------------------------------------------------------------------------------------------
# Beat grid
# --------------------------------------------------------------------------------------------------
def beat_grid(ts_ticks: np.ndarray, ts_num: np.ndarray, ts_den: np.ndarray, ppq: int,
              end_tick: float, max_beats: int = MAX_BEATS) -> tp.Tuple[np.ndarray, np.ndarray]:
    """Beat positions in ticks and a downbeat flag for each, from time-signature segments.

    ts_ticks (S,) sorted, ts_ticks[0] == 0. Beat length ``4 * ppq / den`` ticks (compound metres,
    ``num % 3 == 0 and num > 3 and den >= 8``: three times that, ``num / 3`` beats per bar). The grid
    restarts at each segment start. Returns (beat_ticks (B,) float64, is_downbeat (B,) bool), beats < end_tick.
    Raises ValueError, before allocating, when the grid would hold more than ``max_beats`` beats.
    """
    bounds = np.append(np.asarray(ts_ticks, dtype=np.float64), max(float(end_tick), float(ts_ticks[-1])))
    segments = []
    for s in range(len(ts_ticks)):
        num, den = int(ts_num[s]), int(ts_den[s])
        compound = num % 3 == 0 and num > 3 and den >= 8
        beat_len = 4.0 * ppq / den * (3 if compound else 1)
        seg_end = min(bounds[s + 1], float(end_tick))
        segments.append((bounds[s], seg_end, beat_len, num // 3 if compound else num,
                         max(math.ceil((seg_end - bounds[s]) / beat_len), 0)))
    total = sum(seg[-1] for seg in segments)
    if total > max_beats:
        raise ValueError(f"its beat grid would hold more than {max_beats:,} beats ({total:,.0f}); its delta times, "
                         "ticks per quarter or time signatures are corrupt")
    beats, down = [], []
    for start, seg_end, beat_len, per_bar, count in segments:
        k = np.arange(count)
        t = start + k * beat_len
        k, t = k[t < seg_end], t[t < seg_end]
        beats.append(t)
        down.append(k % per_bar == 0)
    if not beats:
        return np.zeros(0), np.zeros(0, bool)
    return np.concatenate(beats), np.concatenate(down)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def read_midi(path: tp.Union[str, os.PathLike], *, sustain: bool = True, sustain_threshold: int = 64,
              drums: tp.Literal["keep", "drop"] = "keep") -> Score:
    """Read a type 0 or type 1 MIDI file into a :class:`Score` (rules in the module docstring).

    Args:
        path: the ``.mid`` file.
        sustain: extend note ends while the sustain pedal (CC64) is down.
        sustain_threshold: CC64 values >= this are "pedal down" (MIDI convention: 64).
        drums: ``"keep"`` drum-channel notes (flagged ``is_drum``) or ``"drop"`` them.
    Raises:
        MidiError: the file is missing, empty, truncated, malformed, type 2 or SMPTE-timed.
    """
    if drums not in ("keep", "drop"):
        raise ValueError(f"drums must be 'keep' or 'drop', got {drums!r}")
    if not 0 <= sustain_threshold <= 127:
        raise ValueError(f"sustain_threshold must be in 0..127, got {sustain_threshold}")
    name = os.fspath(path)
    try:
        mid = mido.MidiFile(name)
    except FileNotFoundError as e:
        raise MidiError(f"{name}: MIDI file not found") from e
    except EOFError as e:
        raise MidiError(f"{name}: empty or truncated MIDI file (unexpected end of data); "
                        "re-export or re-download the file") from e
    except Exception as e:  # mido raises OSError/ValueError/KeyError/KeySignatureError on bad data
        raise MidiError(f"{name}: malformed MIDI file ({type(e).__name__}: {e})") from e
    if mid.type == 2:
        raise MidiError(f"{name}: type 2 (asynchronous) MIDI files are not supported; convert to type 1")
    ppq = mid.ticks_per_beat
    if not 0 < ppq < 0x8000:
        raise MidiError(f"{name}: time division {ppq} is SMPTE or invalid; only ticks-per-quarter files are supported")
    return _score_from_events(mid, name, ppq, sustain=sustain, sustain_threshold=sustain_threshold, drums=drums)


def _merged_events(mid: mido.MidiFile) -> tp.Iterator[tp.Tuple[int, mido.Message]]:
    """(absolute tick, message) over all tracks, stably merged by tick (track order, then file order)."""
    def track_events(track):
        tick = 0
        for msg in track:
            tick += msg.time
            yield tick, msg
    return heapq.merge(*(track_events(t) for t in mid.tracks), key=lambda e: e[0])


def _score_from_events(mid: mido.MidiFile, name: str, ppq: int, *, sustain: bool, sustain_threshold: int,
                       drums: str) -> Score:
    n_start, n_end, n_pitch, n_vel, n_prog, n_chan = [], [], [], [], [], []
    n_release: tp.List[tp.Optional[int]] = []          # tick of the key release (None: key never released)
    sounding: tp.Dict[tp.Tuple[int, int], int] = {}     # (ch, pitch) -> the note whose key is down
    restruck: tp.Dict[tp.Tuple[int, int], int] = {}     # (ch, pitch) -> tick of a re-strike that ended a note
    held: tp.List[tp.Dict[int, tp.List[int]]] = [{} for _ in range(16)]  # ch -> pitch -> ids held by pedal
    pedal = [False] * 16
    program = [0] * 16
    tempo_ticks, tempo_us, ts_ticks, ts_num, ts_den = [], [], [], [], []
    last_tick = 0

    def skip(what: str, tick: int, holds: str) -> None:
        warnings.warn(f"{name}: {what} at tick {tick} skipped; the {holds} before it holds", MidiWarning, stacklevel=4)

    for tick, msg in _merged_events(mid):
        last_tick = tick
        kind = msg.type
        if kind == "note_on" and msg.velocity > 0:
            ch, p = msg.channel, msg.note
            if sustain and held[ch].get(p):          # re-strike ends a pedal-held note of this pitch
                for i in held[ch].pop(p):
                    n_end[i] = tick
            i = sounding.pop((ch, p), None)
            if i is not None:                        # re-strike of a key still down ends that note
                n_end[i], n_release[i] = tick, tick
                restruck[ch, p] = tick
            sounding[ch, p] = len(n_start)
            n_start.append(tick); n_end.append(None); n_release.append(None); n_pitch.append(p)
            n_vel.append(msg.velocity); n_prog.append(program[ch]); n_chan.append(ch)
        elif kind == "note_off" or kind == "note_on":  # note_on with velocity 0 is a note-off
            ch, p = msg.channel, msg.note
            i = sounding.get((ch, p))
            if i is None:
                continue
            if restruck.get((ch, p)) == tick == n_start[i]:
                del restruck[ch, p]                  # "on, off" on one tick: the off belongs to the ended note
                continue
            del sounding[ch, p]
            n_release[i] = tick
            if sustain and pedal[ch]:
                held[ch].setdefault(p, []).append(i)
            else:
                n_end[i] = tick
        elif kind == "control_change" and msg.control == 64:
            down = msg.value >= sustain_threshold
            if pedal[msg.channel] and not down:
                for ids in held[msg.channel].values():
                    for i in ids:
                        n_end[i] = tick
                held[msg.channel].clear()
            pedal[msg.channel] = down
        elif kind == "program_change":
            program[msg.channel] = msg.program
        elif kind == "set_tempo":
            if msg.tempo <= 0:
                skip("set_tempo of 0 us per quarter note (an infinite tempo)", tick, "tempo")
                continue
            tempo_ticks.append(tick); tempo_us.append(msg.tempo)
        elif kind == "time_signature":
            if msg.numerator < 1 or msg.denominator not in _DENOMINATORS:
                den = msg.denominator if msg.denominator < 1024 else f"2**{msg.denominator.bit_length() - 1}"
                skip(f"time_signature {msg.numerator}/{den} (expected a numerator >= 1 and a "
                     "denominator of 1, 2, 4, ..., 128)", tick, "time signature")
                continue
            ts_ticks.append(tick); ts_num.append(msg.numerator); ts_den.append(msg.denominator)

    has_tempo_info = len(tempo_ticks) > 0
    has_time_signature = len(ts_ticks) > 0
    t_ticks, t_us = _segments(tempo_ticks, [tempo_us], default=[DEFAULT_TEMPO_US])
    s_ticks, (s_num, s_den) = _segments(ts_ticks, [ts_num, ts_den], default=[4, 4])
    clock = _TickClock(t_ticks, t_us[0], ppq)
    end_time = float(clock(np.array([last_tick]))[0])
    if end_time > MAX_MIDI_SECONDS:
        raise MidiError(f"{name}: lasts {end_time / 3600:,.1f} hours, longer than the {MAX_MIDI_SECONDS / 3600:g} "
                        "hours this reader accepts; a delta time or tempo in it is corrupt")
    try:
        beat_ticks, is_down = beat_grid(s_ticks, s_num, s_den, ppq, last_tick)
    except ValueError as e:
        raise MidiError(f"{name}: {e}") from e
    beats = clock(beat_ticks)

    # notes whose end no event decided: the end of the file, at most OPEN_NOTE_CAP after their last event
    unclosed = np.array([e is None for e in n_end], dtype=bool)
    anchor = clock(np.array([s if r is None else r for s, r in zip(n_start, n_release)], np.float64))
    end = clock(np.array([last_tick if e is None else e for e in n_end], np.float64))
    capped = unclosed & (anchor + OPEN_NOTE_CAP < end)
    end[capped] = anchor[capped] + OPEN_NOTE_CAP
    if capped.any():
        warnings.warn(f"{name}: {int(capped.sum())} notes without a note-off or pedal release would sound until the "
                      f"end of the file; ended {OPEN_NOTE_CAP:g} s after their onset (or key release)", MidiWarning,
                      stacklevel=3)
    chan = np.asarray(n_chan, dtype=np.int64)
    notes = Notes.build(pitch=np.asarray(n_pitch, np.int64), start=clock(np.asarray(n_start, np.float64)), end=end,
                        velocity=np.asarray(n_vel, np.float64), program=np.asarray(n_prog, np.int64),
                        is_drum=chan == DRUM_CHANNEL, channel=chan)
    if drums == "drop":
        notes = notes.subset(~notes.is_drum)
    return Score(notes=notes, tempo_times=clock(t_ticks), tempo_bpm=60e6 / np.asarray(t_us[0], np.float64),
                 ts_times=clock(s_ticks), ts_num=np.asarray(s_num, np.int64), ts_den=np.asarray(s_den, np.int64),
                 beats=beats, downbeats=beats[is_down], end_time=end_time,
                 has_tempo_info=has_tempo_info, has_time_signature=has_time_signature, source=name)


def _segments(ticks: tp.List[int], values: tp.List[tp.List[int]], default: tp.List[int]):
    """Piecewise-constant segments from change events: one value per distinct tick (last wins),
    starting at tick 0 with ``default`` if no event is at tick 0."""
    out_t: tp.List[int] = []
    out_v: tp.List[tp.List[int]] = [[] for _ in values]
    for j, t in enumerate(ticks):          # ticks arrive sorted (merged stream)
        if out_t and out_t[-1] == t:
            for k, v in enumerate(values):
                out_v[k][-1] = v[j]
        else:
            out_t.append(t)
            for k, v in enumerate(values):
                out_v[k].append(v[j])
    if not out_t or out_t[0] != 0:
        out_t.insert(0, 0)
        for k, d in enumerate(default):
            out_v[k].insert(0, d)
    return np.asarray(out_t, dtype=np.float64), [np.asarray(v, dtype=np.int64) for v in out_v]
