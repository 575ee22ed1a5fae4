"""A small paired MIDI + audio corpus built offline from music21's bundled scores.

Nothing is downloaded: the scores come from music21's core corpus (about 2,000 multi-part works),
the sound from a SoundFont synthesizer (by default tinysoundfont with the ``TimGM6mb.sf2`` that
ships inside the pretty_midi wheel; optionally the Debian ``fluidsynth`` binary). Each piece is
cut to its first ``seconds`` seconds at the score's tempo (repeats are not taken), its parts get
General MIDI programs from a varied palette and spread across the stereo field, and a share of
the pieces (45 % by default) gets a drum track on the bar and beat grid whose shaker, hi-hats,
tambourine or ride give those clips real energy above 16 kHz, which the super-resolution model
needs to learn from (the instruments of TimGM6mb alone hardly reach that band). The audio is
rendered from the MIDI file written to disk, so the two agree exactly: the audio lasts as long as
the MIDI file, to the nearest sample, and every note starts at its own sample (the renderers are in
:mod:`saga_hsmad.data.demo_render`; ``render_midi``, ``finish_audio`` and ``default_soundfont`` are
re-exported here).

Tempo and dynamics. For a score without a metronome mark music21 still writes a ``set_tempo`` of the
MIDI default (120 bpm), and one velocity for every note of a score without dynamic marks. The MIDI
reader (``saga_hsmad.symbolic.midi``) takes any ``set_tempo`` event, 120 bpm included, as tempo
information (only a file without one has none), so every such piece would be played and labelled at
exactly 120 bpm. So such a piece gets a tempo drawn from the seed (70 to 150 quarter notes per minute,
never 120; 30 % of them with a gentle ritardando or accelerando written as one ``set_tempo`` per quarter
note), and every piece gets phrase dynamics (levels pp..ff per phrase of a few bars, terraced, ramped
or swelling, with metric accents, part balance and jitter; velocities 30..120), which the drum track
follows too.
Both live in the MIDI file the audio is rendered from, so tempo and loudness agree with the audio.

Layout under the root (default ``$SAGA_HSMAD_CACHE/demo_corpus`` or
``~/.cache/saga_hsmad/demo_corpus``)::

    root/manifest.json                 parameters, per-split lists, counts, per-piece measurements
                                       (share of power above 16 kHz, SAGA-SR roll-off), skipped works
    root/{train,valid,test}/<stem>.wav 44.1 kHz, stereo, 16-bit PCM, peak at -1 dBFS
    root/{train,valid,test}/<stem>.mid type-1 MIDI: conductor track, one track per part, drums on channel 10
    root/{train,valid,test}/<stem>.json {"style", "caption", "programs", "has_drums", "source", "seconds"}

The build is deterministic given its parameters and resumable: files are written atomically (the
per-piece JSON last, the manifest last of all), an interrupted build is completed, a finished
build with the same parameters is reused, one written by an older version of this builder (a lower
``format_version``, same parameters otherwise) is rebuilt, and a corpus built with other parameters
is never overwritten unless asked.

Command line: ``python -m saga_hsmad.data.demo_corpus --help``.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import dataclasses
import io
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import time
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np

from .demo_render import (DEBIAN_SOUNDFONT, DRUM_CHANNEL, MIN_NOTE_SECONDS, SAMPLE_RATE, Renderer,  # noqa: F401
                          default_soundfont, finish_audio, midi_events, render_midi)

log = logging.getLogger(__name__)

Split = Literal["train", "valid", "test"]

SPLITS: tuple[Split, ...] = ("train", "valid", "test")
FORMAT_VERSION = 2                        # bump whenever the files a build writes change, so caches are rebuilt
                                         # (2: drawn tempi with gentle ritardandi/accelerandi, phrase dynamics)
MANIFEST = "manifest.json"
BUILD_PARAMS = ".build_params.json"     # written first; marks a (possibly partial) build
END_TAIL_SECONDS = 1.0                   # release tail kept after the last note of a piece shorter than the cut
HIGH_BAND_HZ = 16000.0
HIGH_BAND_THRESHOLD_DB = -40.0           # a clip "has content above 16 kHz" if that band holds > 0.01 % of its power
PART_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
EXCLUDED_CORPUS_DIRS = ("demos", "theoryExercises")   # music21's test files, not works
FORMAT_PREFERENCE = (".mxl", ".musicxml", ".xml", ".krn", ".abc")  # a work stored twice is kept once
MAX_PARTS = 8

DEFAULTS: dict[str, Any] = dict(num_pieces=48, seconds=20.0, seed=0, renderer="tinysoundfont",
                                soundfont=None, drum_fraction=0.45)


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$SAGA_HSMAD_DEMO_CORPUS``, else ``$SAGA_HSMAD_CACHE/demo_corpus``, else
    ``~/.cache/saga_hsmad/demo_corpus`` (the place the shipped dataset configs point at)."""
    from ..paths import demo_corpus_dir

    return demo_corpus_dir()


# ----------------------------------------------------------------------------------------------
# Instrument palette
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Instrument:
    """A General MIDI program with a readable name and the pitch range it sounds natural in."""
    program: int
    name: str
    plural: str
    low: int
    high: int
    bass: bool = False          # may take the lowest part of a mixed ensemble


PALETTE: tuple[Instrument, ...] = (
    Instrument(0, "piano", "pianos", 21, 108, bass=True),
    Instrument(4, "electric piano", "electric pianos", 28, 103, bass=True),
    Instrument(6, "harpsichord", "harpsichords", 29, 89, bass=True),
    Instrument(11, "vibraphone", "vibraphones", 53, 89),
    Instrument(12, "marimba", "marimbas", 45, 96),
    Instrument(16, "electric organ", "electric organs", 36, 96, bass=True),
    Instrument(19, "church organ", "church organs", 24, 96, bass=True),
    Instrument(21, "accordion", "accordions", 41, 89),
    Instrument(24, "nylon guitar", "nylon guitars", 40, 83),
    Instrument(25, "steel guitar", "steel guitars", 40, 83),
    Instrument(27, "electric guitar", "electric guitars", 40, 86),
    Instrument(32, "acoustic bass", "acoustic basses", 28, 55, bass=True),
    Instrument(33, "electric bass", "electric basses", 28, 60, bass=True),
    Instrument(40, "violin", "violins", 55, 103),
    Instrument(41, "viola", "violas", 48, 88),
    Instrument(42, "cello", "cellos", 36, 76, bass=True),
    Instrument(43, "contrabass", "contrabasses", 28, 60, bass=True),
    Instrument(45, "pizzicato strings", "pizzicato strings", 28, 96, bass=True),
    Instrument(46, "harp", "harps", 24, 103, bass=True),
    Instrument(48, "string ensemble", "string ensembles", 28, 96, bass=True),
    Instrument(52, "choir", "choirs", 40, 84),
    Instrument(56, "trumpet", "trumpets", 54, 82),
    Instrument(57, "trombone", "trombones", 40, 72, bass=True),
    Instrument(58, "tuba", "tubas", 28, 58, bass=True),
    Instrument(60, "french horn", "french horns", 34, 77),
    Instrument(61, "brass section", "brass sections", 36, 84, bass=True),
    Instrument(64, "soprano saxophone", "soprano saxophones", 56, 88),
    Instrument(65, "alto saxophone", "alto saxophones", 49, 81),
    Instrument(66, "tenor saxophone", "tenor saxophones", 44, 76),
    Instrument(68, "oboe", "oboes", 58, 91),
    Instrument(70, "bassoon", "bassoons", 34, 75, bass=True),
    Instrument(71, "clarinet", "clarinets", 50, 94),
    Instrument(72, "piccolo", "piccolos", 74, 108),
    Instrument(73, "flute", "flutes", 60, 96),
    Instrument(74, "recorder", "recorders", 60, 96),
    Instrument(81, "sawtooth synth lead", "sawtooth synth leads", 36, 96),
    Instrument(89, "warm synth pad", "warm synth pads", 36, 96, bass=True),
)
KEYBOARDS = (0, 4, 6, 16, 19)            # programs for the single-keyboard ensembles
SINGLE_KEYBOARD_PROB = 0.2
_BY_PROGRAM = {ins.program: ins for ins in PALETTE}

# Drum sounds (General MIDI key numbers). Measured with TimGM6mb (one hit, velocity 115): kick and
# snare hold about 1,000 times the power of a closed hi-hat, and each puts about -41 dB of its
# power above 16 kHz; the hi-hat -19 dB, tambourine -30 dB, ride -36 dB, and the shaker -8 dB at
# 20 dB more absolute power above 16 kHz than any other voice. Crash and open hi-hat samples are
# stored at 22 kHz and add almost nothing up there. So kick and snare are kept soft and every
# pattern carries a shaker (alone, hi-hats alone left the mix at about -37 dB above 16 kHz).
KICK, SNARE, CLOSED_HAT, PEDAL_HAT, RIDE, TAMBOURINE, SHAKER = 36, 38, 42, 44, 51, 54, 82
DrumVoice = tuple[int, float, int, int]       # (key, step in seconds, accent velocity, off-beat velocity)
DRUM_PATTERNS: dict[str, tuple[DrumVoice, ...]] = {
    "hi-hats and a shaker": ((CLOSED_HAT, 0.25, 110, 90), (SHAKER, 0.125, 80, 60)),
    "sixteenth-note hi-hats and a soft shaker": ((CLOSED_HAT, 0.125, 115, 90), (SHAKER, 0.25, 60, 45)),
    "a shaker": ((SHAKER, 0.125, 95, 75),),
    "a tambourine and a shaker": ((TAMBOURINE, 0.25, 105, 85), (SHAKER, 0.25, 80, 65)),
    "a ride cymbal and a shaker": ((RIDE, 0.25, 120, 100), (PEDAL_HAT, 0.5, 100, 100), (SHAKER, 0.125, 70, 55)),
}
DrumPattern = str                              # a key of DRUM_PATTERNS, worded for the caption
DRUM_NOTE_SECONDS = 0.08
DRUM_VELOCITY = {"kick": 90, "snare": 80}
# Tempo. A score without a metronome mark of its own (music21 then writes a set_tempo of the MIDI
# default, 120 quarter notes per minute, which saga_hsmad.symbolic.midi, like any set_tempo, reads as
# tempo information) gets a tempo drawn log-uniformly in TEMPO_RANGE_BPM (never exactly 120, so a drawn
# tempo is never mistaken for music21's default), and a share of those pieces a gentle
# ritardando or accelerando: a geometric ramp by the ratio below, one set_tempo per quarter note, over
# TEMPO_RAMP_SPAN of the quarter notes the cut holds at the drawn tempo. A score's own marks are kept.
TEMPO_RANGE_BPM = (70.0, 150.0)
TEMPO_CHANGE_PROB = 0.3
TEMPO_CHANGES = {"ritardando": 0.85, "accelerando": 1.12}
TEMPO_RAMP_SPAN = (0.55, 0.9)
TEMPO_RAMP_MIN_STEPS = 6                 # fewer quarter notes in the span (a short cut): no ramp, it would lurch
TempoChange = Literal["ritardando", "accelerando"]

# Dynamics. Phrases of whole bars lasting about PHRASE_SECONDS each get a level (a random walk over
# pp..ff that moves by one or two steps per phrase) and a shape: terraced (the level holds and steps
# at the next phrase), a crescendo/diminuendo ramp into the next phrase's level, or a swell. On top:
# metric accents, a per-part balance (the top part a little forward) and per-note jitter. A score
# whose own dynamics music21 turned into varied velocities keeps them as the level.
DYNAMIC_LEVELS = {"pp": 36, "p": 50, "mp": 64, "mf": 78, "f": 92, "ff": 106}
PHRASE_SECONDS = (2.5, 6.0)
PHRASE_SHAPES = {"terraced": 0.35, "ramp": 0.45, "swell": 0.2}
SWELL_VELOCITY = 12
ACCENTS = {"downbeat": 8, "mid-bar": 4, "beat": 2, "off-beat": -3}
MELODY_VELOCITY = 3                      # the top part sits this much above the level
PART_BALANCE = (-4, 2)                   # other parts: an offset drawn in this range (inclusive)
VELOCITY_JITTER = 3.0                    # standard deviation, clipped at 2.5 sigma
VELOCITY_RANGE = (30, 120)
DRUM_DYNAMICS_GAIN = 0.6                 # drum velocity moves by this share of the level's distance from mf
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen")


# ----------------------------------------------------------------------------------------------
# Tempo map
# ----------------------------------------------------------------------------------------------

class TempoMap:
    """Converts MIDI ticks to seconds and back through a piecewise-constant tempo.

    Args:
        ticks_per_beat: MIDI resolution (ticks per quarter note).
        changes: ``(tick, microseconds_per_quarter)`` pairs; 120 BPM holds until the first one.
    """

    def __init__(self, ticks_per_beat: int, changes: Iterable[tuple[int, int]] = ()):
        ticks, tempos = [0], [500_000]
        for tick, tempo in sorted(changes):
            if tick == ticks[-1]:
                tempos[-1] = tempo
            else:
                ticks.append(tick)
                tempos.append(tempo)
        self.ticks_per_beat = ticks_per_beat
        self.ticks = np.asarray(ticks, dtype=np.float64)
        self.tempos = np.asarray(tempos, dtype=np.float64)
        seconds_per_tick = self.tempos / (1e6 * ticks_per_beat)
        self.starts = np.concatenate([[0.0], np.cumsum(np.diff(self.ticks) * seconds_per_tick[:-1])])
        self._spt = seconds_per_tick

    def seconds(self, tick: float | np.ndarray) -> np.ndarray:
        """Time in seconds of a tick (vectorised)."""
        tick = np.asarray(tick, dtype=np.float64)
        i = np.searchsorted(self.ticks, tick, side="right") - 1
        i = np.clip(i, 0, len(self.ticks) - 1)
        return self.starts[i] + (tick - self.ticks[i]) * self._spt[i]

    def tick(self, seconds: float | np.ndarray) -> np.ndarray:
        """Tick (fractional) at a time in seconds (vectorised)."""
        seconds = np.asarray(seconds, dtype=np.float64)
        i = np.searchsorted(self.starts, seconds, side="right") - 1
        i = np.clip(i, 0, len(self.starts) - 1)
        return self.ticks[i] + (seconds - self.starts[i]) / self._spt[i]


# ----------------------------------------------------------------------------------------------
# Candidates from music21's corpus
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Candidate:
    """One work of music21's core corpus: its corpus path and, for multi-work files, its number."""
    path: str
    number: str | None = None

    @property
    def stem(self) -> str:
        """File stem in the corpus, e.g. ``bach-bwv10_7`` or ``airdsAirs-book6-1003``."""
        parts = os.path.splitext(self.path)[0].split("/") + ([self.number] if self.number else [])
        return "-".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") for p in parts)

    @property
    def source(self) -> str:
        return self.path if self.number is None else f"{self.path}#{self.number}"

    @property
    def composer_dir(self) -> str:
        return self.path.split("/", 1)[0]


def list_candidates(max_parts: int = MAX_PARTS) -> list[Candidate]:
    """Multi-part works (2 to ``max_parts`` parts) of music21's core corpus, sorted, one file per work.

    Uses the metadata bundle that ships with music21 (no parsing). music21's own test files
    (``demos``, ``theoryExercises``) are left out; a work stored in two formats is kept once.
    """
    from music21 import corpus
    by_stem: dict[str, tuple[int, Candidate]] = {}
    # bundle[:] is one list; iterating the bundle itself goes through __getitem__(i), which rebuilds
    # the list of all 15,000 entries for every index (minutes).
    for entry in corpus.corpora.CoreCorpus().metadataBundle[:]:
        md = entry.metadata
        parts = getattr(md, "numberOfParts", None) if md is not None else None
        if not parts or not 2 <= parts <= max_parts:
            continue
        path = Path(str(entry.sourcePath)).as_posix()
        ext = os.path.splitext(path)[1].lower()
        if path.split("/", 1)[0] in EXCLUDED_CORPUS_DIRS or ext not in FORMAT_PREFERENCE:
            continue
        cand = Candidate(path, None if entry.number is None else str(entry.number))
        rank = FORMAT_PREFERENCE.index(ext)
        if cand.stem not in by_stem or rank < by_stem[cand.stem][0]:
            by_stem[cand.stem] = (rank, cand)
    return sorted((c for _, c in by_stem.values()), key=lambda c: (c.path, c.number or ""))


def candidate_order(candidates: Sequence[Candidate], seed: int) -> list[Candidate]:
    """A seeded order of the candidates in which no composer swamps the rest.

    Weighted sampling without replacement (Efraimidis & Spirakis 2006, key u^(1/w)) with weight
    1/sqrt(n_c) per work of a composer directory holding n_c works: a composer's expected share
    of the first picks is proportional to sqrt(n_c) instead of n_c (Palestrina holds 2/3 of the
    multi-part works; here he gets about a third).
    """
    counts = collections.Counter(c.composer_dir for c in candidates)
    rng = np.random.default_rng([seed, 0x5EED])
    u = rng.random(len(candidates))
    keys = u ** np.sqrt([counts[c.composer_dir] for c in candidates])
    return [candidates[i] for i in np.argsort(-keys, kind="stable")]


# ----------------------------------------------------------------------------------------------
# A cut score
# ----------------------------------------------------------------------------------------------

Note = tuple[int, int, int, int]  # (start tick, end tick, pitch, velocity)


@dataclasses.dataclass
class CutScore:
    """The first seconds of a work, in MIDI ticks, with everything needed to write its MIDI file."""
    candidate: Candidate
    ticks_per_beat: int
    tempos: list[tuple[int, int]]                 # (tick, microseconds per quarter)
    time_signatures: list[tuple[int, int, int]]   # (tick, numerator, denominator)
    key_signatures: list[tuple[int, str]]         # (tick, key)
    bars: list[tuple[int, int, int]]              # (start tick, length in ticks, beats per bar)
    parts: list[list[Note]]                       # notes of each part (parts with no note dropped)
    part_names: list[str]
    end_tick: int
    tempo_change: TempoChange | None = None       # a drawn ramp that the piece reaches before its end

    @property
    def tempo_map(self) -> TempoMap:
        return TempoMap(self.ticks_per_beat, self.tempos)

    def mean_bpm(self) -> float:
        """Quarter notes per minute over the whole piece (the tempo the caption's pace describes)."""
        return 60.0 * self.end_tick / self.ticks_per_beat / max(float(self.tempo_map.seconds(self.end_tick)), 1e-9)


def plan_tempo(own: Sequence[tuple[int, int]], ticks_per_beat: int, seconds: float,
               rng: np.random.Generator) -> tuple[list[tuple[int, int]], TempoChange | None]:
    """The tempo map of a piece: ``(tick, microseconds per quarter)`` changes and the drawn ramp, if any.

    ``own`` are the ``set_tempo`` events music21 wrote. If one of them is not the MIDI default
    (500,000 us = 120 bpm) the score has a metronome mark of its own, and the map is kept as it is.
    Otherwise (music21's default, which the MIDI reader would take as a stated 120 bpm: any ``set_tempo``
    is tempo information there) a base tempo is drawn log-uniformly in ``TEMPO_RANGE_BPM`` (whole bpm,
    never 120, so a drawn tempo cannot be confused with music21's default), and with probability
    ``TEMPO_CHANGE_PROB`` a ritardando (x 0.85) or accelerando (x 1.12): the tempo moves geometrically,
    one step per quarter note, from quarter ``0.55 N`` to ``0.9 N`` (N = quarter notes in ``seconds`` at
    the base tempo) and then holds; a span of fewer than ``TEMPO_RAMP_MIN_STEPS`` quarter notes gets no
    ramp.
    The map does not depend on where the piece is cut, so the cut can be taken through it.
    """
    own = sorted(set(own))
    if any(us != 500_000 for _, us in own):
        return own, None
    lo, hi = TEMPO_RANGE_BPM
    bpm = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    if bpm == 120:
        bpm = 119 if rng.random() < 0.5 else 121
    change: TempoChange | None = None
    tempos = [(0, int(round(6e7 / bpm)))]
    if rng.random() < TEMPO_CHANGE_PROB:
        change = "ritardando" if rng.random() < 0.5 else "accelerando"
        quarters = seconds * bpm / 60.0
        q0, q1 = (int(round(f * quarters)) for f in TEMPO_RAMP_SPAN)
        if q0 >= 1 and q1 - q0 >= TEMPO_RAMP_MIN_STEPS:
            ratio = TEMPO_CHANGES[change]
            for q in range(q0 + 1, q1 + 1):
                tempos.append((q * ticks_per_beat, int(round(6e7 / (bpm * ratio ** ((q - q0) / (q1 - q0)))))))
        else:
            change = None
    return tempos, change


def _pair_notes(events: Iterable[tuple[int, int, int, int]]) -> list[Note]:
    """Note-on/off events ``(tick, channel, pitch, velocity)`` (velocity 0 = off) to notes, FIFO per key."""
    open_: dict[tuple[int, int], collections.deque] = collections.defaultdict(collections.deque)
    notes: list[Note] = []
    for tick, ch, pitch, vel in events:
        if vel > 0:
            open_[ch, pitch].append((tick, vel))
        elif open_[ch, pitch]:
            start, v = open_[ch, pitch].popleft()
            notes.append((start, tick, pitch, v))
    return notes


def _clean_part(notes: list[Note], end_tick: int, tempo: TempoMap) -> list[Note]:
    """Cut notes at ``end_tick``, end a note where the same key starts again, drop notes under 10 ms."""
    out: list[Note] = []
    last: dict[int, int] = {}
    for start, end, pitch, vel in sorted(n for n in notes if n[0] < end_tick):
        end = min(end, end_tick)
        if pitch in last:
            i = last[pitch]
            s0, e0, p0, v0 = out[i]
            if e0 > start:
                out[i] = (s0, start, p0, v0)
        last[pitch] = len(out)
        out.append((start, end, pitch, vel))
    if not out:
        return []
    arr = np.asarray(out, dtype=np.int64)
    dur = tempo.seconds(arr[:, 1]) - tempo.seconds(arr[:, 0])
    return [n for n, d in zip(out, dur) if d >= MIN_NOTE_SECONDS]


def _bars_from_score(score: Any, tpq: int, end_tick: int) -> list[tuple[int, int, int]]:
    """Bar starts, lengths and beat counts from the first part's measures up to ``end_tick``
    (a pickup bar starts before zero)."""
    from music21 import meter, stream
    bars = []
    for m in score.parts[0].getElementsByClass(stream.Measure):
        start = float(m.offset) - float(m.paddingLeft or 0.0)
        if start * tpq >= end_tick:
            break
        ts = m.timeSignature or m.getContextByClass(meter.TimeSignature) or meter.TimeSignature("4/4")
        length = float(m.barDuration.quarterLength)
        if length > 0:
            bars.append((round(start * tpq), round(length * tpq), max(1, int(ts.beatCount))))
    return bars


def _bars_from_time_signatures(time_signatures: list[tuple[int, int, int]], tpq: int,
                               end_tick: int) -> list[tuple[int, int, int]]:
    """Bars laid out from the MIDI time signatures (used when the score has no measures)."""
    sigs = sorted(time_signatures) or [(0, 4, 4)]
    if sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    bars, tick, k = [], 0, 0
    while tick < end_tick:
        while k + 1 < len(sigs) and sigs[k + 1][0] <= tick:
            k += 1
        _, num, den = sigs[k]
        length = max(1, round(num * tpq * 4 / den))
        beats = num // 3 if den == 8 and num % 3 == 0 and num > 3 else num
        bars.append((tick, length, max(1, beats)))
        tick += length
    return bars


def _with_pickup_signature(sigs: list[tuple[int, int, int]], bars: list[tuple[int, int, int]],
                           tpq: int) -> list[tuple[int, int, int]]:
    """Give a pickup bar its own time signature (a quarter-note pickup in 4/4: 1/4, then 4/4 where
    bar 1 starts), so that bars and downbeats read from the MIDI file fall where the score has them.
    music21 writes the piece's signature at tick 0, which would put every downbeat early by the pickup."""
    if not bars or bars[0][0] >= 0:
        return sigs
    pickup = bars[0][0] + bars[0][1]            # ticks from 0 to the first full bar
    if pickup <= 0 or any(0 < t < pickup for t, _, _ in sigs):
        return sigs
    for den in (4, 8, 16, 32, 64):
        num = pickup * den / (4 * tpq)
        if abs(num - round(num)) < 1e-9 and 1 <= round(num) <= 255:
            break
    else:
        return sigs                             # not expressible as n/2^k: leave the file as it was
    first = next(((n, d) for t, n, d in sigs if t == 0), (4, 4))
    rest = [x for x in sigs if x[0] > 0]
    if not rest or rest[0][0] != pickup:
        rest.insert(0, (pickup, *first))
    return [(0, int(round(num)), den)] + rest


def _measures_for(score: Any, seconds: float) -> int:
    """Number of bars of the first part that surely cover ``seconds`` (tempo marks of the first
    part, the fastest tempo :func:`plan_tempo` may draw before the first; half as much again plus
    two bars spare)."""
    from music21 import stream, tempo
    qpm, total = TEMPO_RANGE_BPM[1] * max(TEMPO_CHANGES.values()), 0.0
    for i, m in enumerate(score.parts[0].getElementsByClass(stream.Measure)):
        for mark in m.getElementsByClass(tempo.MetronomeMark):
            bpm = mark.getQuarterBPM()
            qpm = bpm if bpm else qpm
        total += float(m.duration.quarterLength) * 60.0 / qpm
        if total >= 1.5 * seconds:
            return i + 3
    return 1 << 30


def _strip_repeats(score: Any) -> None:
    """Remove repeat barlines, repeat brackets and jumps (da capo, segno, ...), in place, so that
    music21's MIDI export (which expands repeats) plays the bars as written, once, in order."""
    from music21 import bar, repeat, spanner
    for m in score.recurse().getElementsByClass("Measure"):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = bar.Barline("regular")
    for el in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
        el.activeSite.remove(el)
    for sp in list(score.recurse().getElementsByClass(spanner.RepeatBracket)):
        sp.activeSite.remove(sp)


def _tempo_events(mf: Any) -> list[tuple[int, int]]:
    """``(tick, microseconds per quarter)`` of every ``set_tempo`` event of a mido file."""
    out = []
    for track in mf.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                out.append((tick, msg.tempo))
    return out


def extract_score(candidate: Candidate, seconds: float, seed: int = 0) -> CutScore:
    """Parse a work with music21, export its opening bars to MIDI and keep the first ``seconds`` seconds.

    The cut is taken through the piece's tempo map from :func:`plan_tempo`: the score's own
    metronome marks, or (for a score without one) a tempo drawn from ``seed`` and the work, with
    an occasional gentle ritardando or accelerando. Repeats are not taken: the bars play as
    written, once. Notes that sound at the cut end there; notes under 10 ms are dropped.
    A piece shorter than the cut ends one second (release tail) after its last note.

    Raises:
        ValueError: the work has no note in the window, or more parts than MIDI channels.
        Exception: whatever music21 raises for a file it cannot parse (the caller skips it).
    """
    import mido
    from music21 import corpus, midi as m21midi, stream
    number = None
    if candidate.number is not None:
        number = int(candidate.number) if candidate.number.isdigit() else candidate.number
    score = corpus.parse(candidate.path, number=number) if number is not None else corpus.parse(candidate.path)
    if not hasattr(score, "parts") or len(score.parts) == 0:
        raise ValueError("parsed to something without parts")
    measures = len(score.parts[0].getElementsByClass(stream.Measure))
    take = _measures_for(score, seconds)
    while True:   # export an excerpt of whole bars; take more bars if it falls short of the cut
        excerpt = score.measures(0, take, indicesNotNumbers=True) if take < measures else score
        _strip_repeats(excerpt)
        mf = mido.MidiFile(file=io.BytesIO(m21midi.translate.streamToMidiFile(excerpt).writestr()))
        tpq = mf.ticks_per_beat
        tempos, tempo_change = plan_tempo(_tempo_events(mf), tpq, seconds,
                                          piece_rng(seed, candidate.stem, "tempo"))
        last_tick = max(sum(msg.time for msg in track) for track in mf.tracks)
        if take >= measures or float(TempoMap(tpq, tempos).seconds(last_tick)) >= seconds:
            break
        take *= 2
    score = excerpt

    sigs, keys, tracks, names = [], [], [], []
    for track in mf.tracks:
        tick, events, name = 0, [], None
        for msg in track:
            tick += msg.time
            if msg.type == "time_signature":
                sigs.append((tick, msg.numerator, msg.denominator))
            elif msg.type == "key_signature":
                keys.append((tick, msg.key))
            elif msg.type == "track_name" and name is None:
                name = msg.name
            elif msg.type in ("note_on", "note_off"):
                events.append((tick, msg.channel, msg.note, msg.velocity if msg.type == "note_on" else 0))
        if events:
            tracks.append(_pair_notes(events))
            names.append(name or f"part {len(names) + 1}")
    tempo_map = TempoMap(tpq, tempos)
    cut_tick = int(math.floor(float(tempo_map.tick(seconds)) + 1e-9))

    parts, part_names = [], []
    for notes, name in zip(tracks, names):
        cleaned = _clean_part(notes, cut_tick, tempo_map)
        if cleaned:
            parts.append(cleaned)
            part_names.append(name)
    if not parts:
        raise ValueError(f"no note in the first {seconds:g} s")
    if len(parts) > len(PART_CHANNELS):
        raise ValueError(f"{len(parts)} parts, more than the {len(PART_CHANNELS)} melodic MIDI channels")
    last_end = max(n[1] for p in parts for n in p)
    end_tick = cut_tick
    if last_end < cut_tick:
        tail_tick = int(math.floor(float(tempo_map.tick(float(tempo_map.seconds(last_end)) + END_TAIL_SECONDS))))
        end_tick = min(cut_tick, tail_tick)

    bars = _bars_from_score(score, tpq, end_tick) or _bars_from_time_signatures(sigs, tpq, end_tick)
    sigs = _with_pickup_signature(sorted(set(sigs)), bars, tpq)

    def before_end(xs: list) -> list:
        return [x for x in sorted(set(xs)) if x[0] < end_tick]

    tempos = before_end(tempos) or [(0, 500_000)]
    if tempo_change is not None and abs(math.log(tempos[-1][1] / tempos[0][1])) < math.log(1.03):
        tempo_change = None                     # the piece ends before its ramp gets anywhere
    return CutScore(candidate=candidate, ticks_per_beat=tpq, tempos=tempos,
                    time_signatures=before_end(sigs), key_signatures=before_end(keys),
                    bars=bars, parts=parts, part_names=part_names, end_tick=end_tick,
                    tempo_change=tempo_change)


# ----------------------------------------------------------------------------------------------
# Instrumentation, drums, description
# ----------------------------------------------------------------------------------------------

def piece_rng(seed: int, stem: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on the seed, the piece and what it is used for."""
    return np.random.default_rng([seed, zlib.crc32(stem.encode()), zlib.crc32(purpose.encode())])


def choose_instruments(parts: Sequence[Sequence[Note]], rng: np.random.Generator) -> list[Instrument]:
    """One palette instrument per part.

    With probability 0.2 every part plays the same keyboard (piano, electric piano, harpsichord,
    organ). Otherwise each part draws an instrument whose range holds the part's mean pitch, the
    lowest part from the instruments that can carry a bass line.
    """
    if rng.random() < SINGLE_KEYBOARD_PROB:
        ins = _BY_PROGRAM[KEYBOARDS[rng.integers(len(KEYBOARDS))]]
        return [ins] * len(parts)
    means = [float(np.mean([n[2] for n in p])) for p in parts]
    lowest = int(np.argmin(means)) if len(parts) > 1 else -1
    chosen = []
    for i, mean in enumerate(means):
        fits = [ins for ins in PALETTE if ins.low <= mean <= ins.high and (ins.bass or i != lowest)]
        chosen.append(fits[rng.integers(len(fits))] if fits else _BY_PROGRAM[0])
    return chosen


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """The dynamics of a piece: a level in velocity units, piecewise linear over ticks.

    ``phrases`` holds ``(start tick, level name, shape)`` per phrase (empty when the level comes
    from the score's own dynamics); ``ticks``/``values`` are the envelope's corners.
    """
    ticks: np.ndarray
    values: np.ndarray
    phrases: tuple[tuple[int, str, str], ...] = ()

    def level(self, ticks: float | np.ndarray) -> np.ndarray:
        """Velocity level at ticks (held flat before the first and after the last corner)."""
        return np.interp(np.asarray(ticks, dtype=np.float64), self.ticks, self.values)


def _score_bars(score: CutScore) -> list[tuple[int, int, int]]:
    """The score's bars, or 4/4 bars from tick 0 when it has none."""
    return score.bars or [(t, 4 * score.ticks_per_beat, 4) for t in range(0, max(score.end_tick, 1),
                                                                           4 * score.ticks_per_beat)]


def plan_dynamics(score: CutScore, rng: np.random.Generator) -> Dynamics:
    """Phrase dynamics of a piece (see ``DYNAMIC_LEVELS`` and the notes above it).

    Phrases are runs of whole bars lasting at least a duration drawn in ``PHRASE_SECONDS`` (a pickup
    joins the first phrase). The first level is drawn from p..f, each next one moves one or two
    steps (reflected at pp and ff). A phrase is terraced (flat, stepping at the next phrase), a ramp
    (crescendo or diminuendo into the next level) or a swell (up ``SWELL_VELOCITY`` mid-phrase and back).
    If the score's notes already carry varied velocities (music21 turns the score's dynamic marks into
    velocities) the level follows them instead: the mean velocity of the notes starting in each bar.
    """
    tm = score.tempo_map
    bars = [b for b in _score_bars(score) if b[0] < score.end_tick]
    own = np.asarray([(n[0], n[3]) for part in score.parts for n in part], dtype=np.float64)
    if len(np.unique(own[:, 1])) > 1:
        ticks, values = [], []
        for start, length, _ in bars:
            inside = (own[:, 0] >= start) & (own[:, 0] < start + length)
            if inside.any():
                ticks.append(float(start))
                values.append(float(own[inside, 1].mean()))
        if not ticks:
            ticks, values = [0.0], [float(own[:, 1].mean())]
        return Dynamics(np.asarray(ticks), np.asarray(values))
    starts: list[int] = []
    begin = 0
    while begin < len(bars):
        target, end = rng.uniform(*PHRASE_SECONDS), begin
        start_s = float(tm.seconds(max(bars[begin][0], 0)))
        while end < len(bars) and (end == begin or float(tm.seconds(max(bars[end][0], 0))) - start_s < target):
            end += 1
        starts.append(bars[begin][0])
        begin = end
    names = list(DYNAMIC_LEVELS)
    idx = [int(rng.integers(1, 5))]
    for _ in starts:                       # one more level than phrases: where the last one heads
        step = int(rng.choice([-2, -1, 1, 2]))
        nxt = idx[-1] + step
        idx.append(nxt if 0 <= nxt < len(names) else idx[-1] - step)
    shape_names, shape_p = list(PHRASE_SHAPES), np.asarray(list(PHRASE_SHAPES.values()))
    bounds = starts + [score.end_tick]
    ticks, values, phrases = [], [], []
    for i, start in enumerate(starts):
        stop = bounds[i + 1]
        here, there = DYNAMIC_LEVELS[names[idx[i]]], DYNAMIC_LEVELS[names[idx[i + 1]]]
        shape = shape_names[int(rng.choice(len(shape_names), p=shape_p))]
        phrases.append((int(start), names[idx[i]], shape))
        ticks.append(float(start))
        values.append(float(here))
        if shape == "swell":
            ticks.append((start + stop) / 2.0)
            values.append(float(here + SWELL_VELOCITY))
        last = float(stop) if shape == "ramp" else float(stop) - 1.0
        ticks.append(last)
        values.append(float(there if shape == "ramp" else here))
    ticks_arr, values_arr = np.asarray(ticks), np.asarray(values)
    keep = np.concatenate([np.diff(ticks_arr) > 0, [True]])   # a ramp's end is the next phrase's start
    return Dynamics(ticks_arr[keep], values_arr[keep], tuple(phrases))


def metric_accents(score: CutScore, ticks: np.ndarray) -> np.ndarray:
    """Velocity offset of a note starting at each tick (``ACCENTS``): downbeat, the middle of a
    four- or six-beat bar, another beat, or between beats. Ticks outside the bars get none."""
    bars = np.asarray(_score_bars(score), dtype=np.float64)
    ticks = np.asarray(ticks, dtype=np.float64)
    i = np.clip(np.searchsorted(bars[:, 0], ticks, side="right") - 1, 0, len(bars) - 1)
    start, length, beats = bars[i, 0], bars[i, 1], bars[i, 2]
    pos = (ticks - start) / (length / beats)                   # position in beats
    on_beat = np.abs(pos - np.round(pos)) * (length / beats) < 0.5
    beat = np.round(pos)
    out = np.where(on_beat, ACCENTS["beat"], ACCENTS["off-beat"]).astype(np.float64)
    out[on_beat & (beat == beats / 2) & np.isin(beats, (4, 6))] = ACCENTS["mid-bar"]
    out[on_beat & (beat % beats == 0)] = ACCENTS["downbeat"]
    out[(ticks < start) | (ticks >= start + length)] = 0.0
    return out


def apply_dynamics(score: CutScore, dynamics: Dynamics, rng: np.random.Generator) -> list[list[Note]]:
    """The score's parts with new velocities: level + metric accent + part balance + jitter, rounded
    and clipped to ``VELOCITY_RANGE``. A score with its own dynamics keeps each note's velocity as
    its level, clipped to pp..ff (music21 writes accents and fff up to 127, which would saturate)."""
    means = [float(np.mean([n[2] for n in part])) for part in score.parts]
    top = int(np.argmax(means))
    own = len({n[3] for part in score.parts for n in part}) > 1
    out = []
    for k, part in enumerate(score.parts):
        arr = np.asarray(part, dtype=np.int64)
        balance = MELODY_VELOCITY if k == top and len(score.parts) > 1 else \
            (0 if len(score.parts) == 1 else int(rng.integers(PART_BALANCE[0], PART_BALANCE[1] + 1)))
        level = (np.clip(arr[:, 3], DYNAMIC_LEVELS["pp"], DYNAMIC_LEVELS["ff"]).astype(np.float64) if own
                 else dynamics.level(arr[:, 0]))
        jitter = np.clip(rng.normal(0.0, VELOCITY_JITTER, len(arr)), -2.5 * VELOCITY_JITTER, 2.5 * VELOCITY_JITTER)
        vel = np.clip(np.round(level + metric_accents(score, arr[:, 0]) + balance + jitter), *VELOCITY_RANGE)
        out.append([(int(s), int(e), int(p), int(v)) for (s, e, p, _), v in zip(arr, vel.astype(np.int64))])
    return out


def drum_track(score: CutScore, rng: np.random.Generator,
               dynamics: Dynamics | None = None) -> tuple[DrumPattern, list[Note]]:
    """A drum part on the score's bar and beat grid.

    Kick on the downbeat (and mid-bar in four-beat bars), snare on the back beats, and the
    pattern's high voices: each subdivides every beat into equal steps of about its step length in
    seconds (so the grid follows the tempo), accented on the beat. With ``dynamics`` every hit
    moves by ``DRUM_DYNAMICS_GAIN`` times the level's distance from mf, so the kit follows the
    phrase dynamics and keeps its accents.
    """
    names = list(DRUM_PATTERNS)
    pattern = names[rng.integers(len(names))]
    tm = score.tempo_map
    end = score.end_tick
    hits: list[tuple[float, int, int]] = []   # (tick, key, velocity)

    def jitter(v: int) -> int:
        return int(np.clip(v + rng.integers(-8, 9), 1, 127))

    for start, length, beats in score.bars:
        if start >= end:
            break
        beat_len = length / beats
        for b in range(beats):
            t = start + b * beat_len
            if b == 0 or (beats == 4 and b == 2):
                hits.append((t, KICK, jitter(DRUM_VELOCITY["kick"])))
            if (beats in (2, 4) and b % 2 == 1) or (beats == 3 and b > 0) or (beats > 4 and b % 2 == 1):
                hits.append((t, SNARE, jitter(DRUM_VELOCITY["snare"] - (15 if beats == 3 else 0))))
            beat_s = float(tm.seconds(t + beat_len) - tm.seconds(t))
            for key, step_s, accent, off in DRUM_PATTERNS[pattern]:
                steps = max(1, round(beat_s / step_s))
                for k in range(steps):
                    hits.append((t + k * beat_len / steps, key, jitter(accent if k == 0 else off)))
    notes: list[Note] = []
    for tick, key, vel in sorted(hits):
        start = int(round(tick))
        if start < 0 or start >= end:
            continue
        stop = min(end, int(round(float(tm.tick(float(tm.seconds(start)) + DRUM_NOTE_SECONDS)))))
        if float(tm.seconds(stop) - tm.seconds(start)) >= MIN_NOTE_SECONDS:
            if dynamics is not None:
                shift = DRUM_DYNAMICS_GAIN * (float(dynamics.level(start)) - DYNAMIC_LEVELS["mf"])
                vel = int(np.clip(round(vel + shift), 20, 127))
            notes.append((start, stop, key, vel))
    return pattern, sorted(set(notes))


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(instruments: Sequence[Instrument], has_drums: bool, bpm: float,
             pattern: str | None = None, tempo_change: TempoChange | None = None) -> tuple[str, str]:
    """``(style, caption)`` of a piece, e.g. ``("violin, viola and cello with drums",
    "Two violins, a viola and a cello play a lively four-part piece over drums with a shaker.")``.

    The pace word comes from ``bpm`` (quarter notes per minute, the piece's mean): slow below 80,
    moderate below 110, lively above; a drawn ritardando or accelerando is named at the end.
    """
    order = list(dict.fromkeys(ins.name for ins in instruments))
    style = _join(order) + (" with drums" if has_drums else "")
    counts = collections.Counter(ins.name for ins in instruments)
    by_name = {ins.name: ins for ins in instruments}
    phrases = []
    for name in order:
        n = counts[name]
        if n == 1:
            phrases.append(("an " if name[0] in "aeiou" else "a ") + name)
        else:
            phrases.append(f"{_NUMBER_WORDS[n]} {by_name[name].plural}")
    subject = _join(phrases)
    subject = subject[0].upper() + subject[1:]
    verb = "plays" if len(instruments) == 1 else "play"
    if len(order) == 1 and len(instruments) > 1:
        subject, verb = f"{_NUMBER_WORDS[len(instruments)].capitalize()} {by_name[order[0]].plural}", "play"
    if len(order) == 1 and instruments[0].program in KEYBOARDS:   # one keyboard plays every voice
        subject, verb = ("An " if order[0][0] in "aeiou" else "A ") + order[0], "plays"
    pace = "slow" if bpm < 80 else "moderate" if bpm < 110 else "lively"
    n = len(instruments)
    parts = "" if n == 1 else f"{_NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else n}-part "
    caption = f"{subject} {verb} a {pace} {parts}piece"
    if has_drums:
        caption += f" over drums with {pattern or 'a steady beat'}"
    if tempo_change is not None:
        caption += ", gradually slowing down" if tempo_change == "ritardando" else ", gradually speeding up"
    return style, caption + "."


# ----------------------------------------------------------------------------------------------
# MIDI writing
# ----------------------------------------------------------------------------------------------

def _pans(n: int, rng: np.random.Generator) -> list[int]:
    """Pan positions (MIDI CC10) spread across the stereo field in a seeded order."""
    if n == 1:
        return [64]
    spots = np.linspace(24, 104, n).round().astype(int).tolist()
    return [spots[i] for i in rng.permutation(n)]


def write_midi(path: Path, score: CutScore, instruments: Sequence[Instrument], drums: Sequence[Note],
               pans: Sequence[int]) -> None:
    """Write a type-1 MIDI file: conductor track, one track per part (own channel, program, pan),
    an optional drum track on channel 10. Every track ends at ``score.end_tick``."""
    import mido
    mf = mido.MidiFile(type=1, ticks_per_beat=score.ticks_per_beat)

    def track(events: list[tuple[int, int, mido.Message]]) -> mido.MidiTrack:
        tr = mido.MidiTrack()
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            tr.append(msg.copy(time=tick - now))
            now = tick
        tr.append(mido.MetaMessage("end_of_track", time=score.end_tick - now))
        return tr

    conductor = [(0, 0, mido.MetaMessage("track_name", name=score.candidate.stem))]
    conductor += [(t, 1, mido.MetaMessage("set_tempo", tempo=v)) for t, v in score.tempos]
    conductor += [(t, 2, mido.MetaMessage("time_signature", numerator=n, denominator=d))
                  for t, n, d in score.time_signatures]
    conductor += [(t, 3, mido.MetaMessage("key_signature", key=k)) for t, k in score.key_signatures]
    mf.tracks.append(track(conductor))

    def notes_events(notes: Sequence[Note], ch: int) -> list:
        ev = []
        for s, e, p, v in notes:
            ev.append((e, 10, mido.Message("note_off", channel=ch, note=p, velocity=0)))
            ev.append((s, 11, mido.Message("note_on", channel=ch, note=p, velocity=v)))
        return ev

    for i, (notes, ins, pan) in enumerate(zip(score.parts, instruments, pans)):
        ch = PART_CHANNELS[i]
        head = [(0, 0, mido.MetaMessage("track_name", name=f"{ins.name} ({score.part_names[i]})")),
                (0, 1, mido.Message("program_change", channel=ch, program=ins.program)),
                (0, 2, mido.Message("control_change", channel=ch, control=7, value=100)),
                (0, 3, mido.Message("control_change", channel=ch, control=10, value=pan))]
        mf.tracks.append(track(head + notes_events(notes, ch)))
    if drums:
        head = [(0, 0, mido.MetaMessage("track_name", name="drums")),
                (0, 1, mido.Message("program_change", channel=DRUM_CHANNEL, program=0)),
                (0, 2, mido.Message("control_change", channel=DRUM_CHANNEL, control=7, value=100)),
                (0, 3, mido.Message("control_change", channel=DRUM_CHANNEL, control=10, value=64))]
        mf.tracks.append(track(head + notes_events(drums, DRUM_CHANNEL)))
    _atomic_write_bytes(path, _midi_bytes(mf))


def _midi_bytes(mf: Any) -> bytes:
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------------------

def _stft_magnitude(audio: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Hann-window STFT magnitudes of the mono mix: ``[frames, n_fft // 2 + 1]``."""
    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=1) if x.ndim == 2 else x
    x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect" if len(x) > n_fft // 2 else "constant")
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1))


def high_band_db(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, cutoff_hz: float = HIGH_BAND_HZ) -> float:
    """Share of the clip's power above ``cutoff_hz``, in dB (STFT 2048 / 512, Hann, mono mix)."""
    mag = _stft_magnitude(audio)
    power = (mag ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(2048, 1.0 / sample_rate)
    return float(10.0 * np.log10(power[freqs >= cutoff_hz].sum() / max(power.sum(), 1e-30) + 1e-30))


def rolloff_hz(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Clip-level SAGA-SR spectral roll-off (spec section 2) of ``[n_samples, channels]`` audio, in Hz."""
    from ..dsp.rolloff import rolloff_to_hz, spectral_rolloff
    return float(rolloff_to_hz(spectral_rolloff(np.ascontiguousarray(audio.T)), sample_rate))


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------

class CorpusMismatchError(RuntimeError):
    """A corpus built with other parameters (or another directory) is where the new one should go."""


def _tmp_name(path: Path) -> Path:
    """Hidden temporary sibling, unique per process, so concurrent builds never trip over each other."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _remove_stale_tmp(root: Path) -> None:
    """Delete temporary files left by builds that were killed (their process no longer exists)."""
    for tmp in root.glob("*/.*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except (ValueError, PermissionError):
            alive = True
        if not alive:
            tmp.unlink(missing_ok=True)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = _tmp_name(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _atomic_write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf
    tmp = _tmp_name(path)
    sf.write(str(tmp), audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def build_params(*, num_pieces: int, seconds: float, seed: int, renderer: Renderer,
                 soundfont: str | Path | None, drum_fraction: float) -> dict[str, Any]:
    """The parameters that determine a corpus; two builds with equal parameters give equal files.

    The SoundFont is identified by file name and size (not its path), so a moved virtual
    environment still finds its cache.
    """
    if renderer not in ("tinysoundfont", "fluidsynth"):
        raise ValueError(f"renderer must be 'tinysoundfont' or 'fluidsynth', got {renderer!r}")
    if num_pieces < 1:
        raise ValueError(f"num_pieces must be at least 1, got {num_pieces}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if not 0.0 <= drum_fraction <= 1.0:
        raise ValueError(f"drum_fraction must be in [0, 1], got {drum_fraction}")
    sf_path = Path(soundfont) if soundfont is not None else default_soundfont(renderer)
    if not sf_path.is_file():
        hint = (" (Debian: apt-get install fluid-soundfont-gm)" if renderer == "fluidsynth"
                else "; pass --soundfont PATH")
        raise FileNotFoundError(f"SoundFont {sf_path} does not exist{hint}")
    return {"format_version": FORMAT_VERSION, "num_pieces": int(num_pieces), "seconds": float(seconds),
            "seed": int(seed), "renderer": renderer, "sample_rate": SAMPLE_RATE,
            "soundfont": {"name": sf_path.name, "bytes": sf_path.stat().st_size},
            "drum_fraction": float(drum_fraction)}


def assign_splits(n: int, seed: int) -> list[Split]:
    """Split of each selected position: about 80/10/10, at least one valid and one test piece
    whenever n >= 3 (all train below that)."""
    if n < 3:
        return ["train"] * n
    n_eval = max(1, round(0.1 * n))
    labels: list[Split] = ["valid"] * n_eval + ["test"] * n_eval + ["train"] * (n - 2 * n_eval)
    order = np.random.default_rng([seed, 0x5A11]).permutation(n)
    return [labels[i] for i in order]


def assign_drums(splits: Sequence[Split], fraction: float, seed: int) -> list[bool]:
    """Which positions get drums: ``round(fraction x n)`` of them (at least one with drums and one
    without when n >= 2 and 0 < fraction < 1), shared between the splits in proportion to their
    size (largest remainder), chosen at random within each split."""
    n = len(splits)
    total = round(fraction * n)
    if n >= 2 and 0.0 < fraction < 1.0:
        total = min(max(total, 1), n - 1)
    sizes = {s: splits.count(s) for s in SPLITS}
    quota = {s: fraction * sizes[s] for s in SPLITS}
    share = {s: min(sizes[s], int(math.floor(quota[s]))) for s in SPLITS}
    rest = total - sum(share.values())
    for s in sorted(SPLITS, key=lambda s: (-(quota[s] - math.floor(quota[s])), SPLITS.index(s))):
        if rest <= 0:
            break
        if share[s] < sizes[s]:
            share[s] += 1
            rest -= 1
    rng = np.random.default_rng([seed, 0xD2D2])
    drums = [False] * n
    for s in SPLITS:
        idx = [i for i, x in enumerate(splits) if x == s]
        for i in rng.permutation(idx)[: share[s]] if idx else []:
            drums[int(i)] = True
    return drums


def render_piece(score: CutScore, split: Split, has_drums: bool, root: str, params: dict[str, Any],
                 soundfont: str) -> str:
    """Instrument, write and render one piece into ``root/split``; the JSON is written last."""
    stem = score.candidate.stem
    seed = params["seed"]
    folder = Path(root) / split
    instruments = choose_instruments(score.parts, piece_rng(seed, stem, "instruments"))
    pans = _pans(len(instruments), piece_rng(seed, stem, "pan"))
    dynamics = plan_dynamics(score, piece_rng(seed, stem, "dynamics"))
    score = dataclasses.replace(score, parts=apply_dynamics(score, dynamics, piece_rng(seed, stem, "velocity")))
    pattern, drums = drum_track(score, piece_rng(seed, stem, "drums"), dynamics) if has_drums else (None, [])
    mid_path = folder / f"{stem}.mid"
    write_midi(mid_path, score, instruments, drums, pans)
    audio = render_midi(mid_path, renderer=params["renderer"], soundfont=soundfont,
                        sample_rate=params["sample_rate"], max_seconds=params["seconds"] + END_TAIL_SECONDS)
    audio = finish_audio(audio, params["sample_rate"])
    _atomic_write_wav(folder / f"{stem}.wav", audio, params["sample_rate"])
    style, caption = describe(instruments, bool(drums), score.mean_bpm(), pattern, score.tempo_change)
    meta = {"style": style, "caption": caption, "programs": [ins.program for ins in instruments],
            "has_drums": bool(drums), "source": score.candidate.source,
            "seconds": round(len(audio) / params["sample_rate"], 6)}
    _atomic_write_json(folder / f"{stem}.json", meta)
    return stem


def _extract_job(candidate: Candidate, seconds: float, seed: int) -> tuple[CutScore | None, str | None]:
    try:
        return extract_score(candidate, seconds, seed), None
    except Exception as e:   # a work music21 cannot parse or that has nothing to play is skipped
        return None, f"{type(e).__name__}: {e}"


def _done_stems(root: Path) -> dict[str, Split]:
    done = {}
    for split in SPLITS:
        folder = root / split
        if folder.is_dir():
            for meta in folder.glob("*.json"):
                if (folder / f"{meta.stem}.wav").is_file() and (folder / f"{meta.stem}.mid").is_file():
                    done[meta.stem] = split
    return done


def _check_existing(root: Path, params: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Return the manifest of a finished identical corpus; clear a different one if allowed, or one
    with the same parameters written in an older format (``format_version``); else raise."""
    manifest_path, marker = root / MANIFEST, root / BUILD_PARAMS
    existing = None
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        found = existing.get("params")
    elif marker.is_file():
        found = json.loads(marker.read_text())
    elif root.exists() and any(root.iterdir()):
        raise CorpusMismatchError(f"{root} exists and is not a demo corpus (no {MANIFEST} or {BUILD_PARAMS}); "
                                  f"choose another --out")
    else:
        return None
    if found == params:
        return existing
    if _older_format(found, params):
        log.warning("rebuilding the demo corpus in %s: it was written in format %s, this code writes format %s",
                    root, found.get("format_version"), params["format_version"])
        overwrite = True
    if not overwrite:
        raise CorpusMismatchError(
            f"{root} holds a demo corpus built with other parameters:\n  found    {json.dumps(found)}\n"
            f"  requested {json.dumps(params)}\nchoose another --out, or pass --overwrite "
            f"(overwrite=True) to replace it")
    log.warning("replacing the demo corpus in %s (other parameters)", root)
    for split in SPLITS:
        shutil.rmtree(root / split, ignore_errors=True)
    for name in (MANIFEST, BUILD_PARAMS):
        (root / name).unlink(missing_ok=True)
    return None


def _older_format(found: Any, params: dict[str, Any]) -> bool:
    """True if ``found`` are the same build parameters written by an older version of this builder
    (a stale cache, replaced without asking: nobody chose the old format)."""
    if not isinstance(found, dict):
        return False
    version = found.get("format_version")
    same = {k: v for k, v in found.items() if k != "format_version"} == \
        {k: v for k, v in params.items() if k != "format_version"}
    return same and isinstance(version, int) and version < params["format_version"]


def _select(root: Path, order: Iterator[Candidate], n: int, seconds: float, seed: int,
            pool: cf.Executor | None, window: int) -> tuple[list[tuple[Candidate, CutScore | None]], list[dict[str, str]]]:
    """Walk the candidate order and keep the first ``n`` works that parse and have notes.

    Works already written (a resumed build) are taken as they are, without parsing. Parsing runs
    ``window`` works ahead in the pool; results are consumed in order, so the selection does not
    depend on the number of workers.
    """
    done = _done_stems(root)
    chosen: list[tuple[Candidate, CutScore | None]] = []
    skipped: list[dict[str, str]] = []
    pending: collections.deque = collections.deque()
    exhausted = False
    while len(chosen) < n:
        while not exhausted and len(pending) < window:
            cand = next(order, None)
            if cand is None:
                exhausted = True
            elif cand.stem in done:
                pending.append((cand, None))
            elif pool is None:
                pending.append((cand, _extract_job(cand, seconds, seed)))
            else:
                pending.append((cand, pool.submit(_extract_job, cand, seconds, seed)))
        if not pending:
            break
        cand, job = pending.popleft()
        if job is None:
            chosen.append((cand, None))
            continue
        score, error = job.result() if isinstance(job, cf.Future) else job
        if score is None:
            log.info("skipping %s: %s", cand.source, error)
            skipped.append({"source": cand.source, "reason": error or ""})
        else:
            chosen.append((cand, score))
            log.info("selected %d/%d: %s", len(chosen), n, cand.source)
    for _, job in pending:
        if isinstance(job, cf.Future):
            job.cancel()
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} usable multi-part works in music21's corpus; "
                         f"ask for fewer than {n} pieces")
    return chosen, skipped


def build_demo_corpus(out: str | Path | None = None, *, num_pieces: int = DEFAULTS["num_pieces"],
                      seconds: float = DEFAULTS["seconds"], seed: int = DEFAULTS["seed"],
                      renderer: Renderer = DEFAULTS["renderer"], soundfont: str | Path | None = None,
                      drum_fraction: float = DEFAULTS["drum_fraction"], overwrite: bool = False,
                      workers: int | None = None) -> Path:
    """Build (or complete, or reuse) the demo corpus and return its root.

    Args:
        out: root directory; default :func:`default_cache_dir`.
        num_pieces: number of works.
        seconds: maximum length of each piece (the start of the work, at its tempo).
        seed: drives the choice of works, tempi, dynamics, instruments, pans, drums and splits.
        renderer: ``tinysoundfont`` (default) or ``fluidsynth`` (needs the Debian binary).
        soundfont: .sf2 file; default TimGM6mb.sf2 from pretty_midi (tinysoundfont) or
            /usr/share/sounds/sf2/FluidR3_GM.sf2 (fluidsynth).
        drum_fraction: share of pieces that get a drum track.
        overwrite: replace a corpus built with other parameters at ``out``.
        workers: processes for parsing and rendering (1 = in this process; default: one per 8
            pieces, at most the CPU count and 4). The files do not depend on it.

    Raises:
        CorpusMismatchError: ``out`` holds a corpus with other parameters (and not ``overwrite``),
            or a directory that is not a demo corpus.
    """
    t0 = time.time()
    root = Path(out).expanduser() if out is not None else default_cache_dir()
    sf_path = Path(soundfont) if soundfont is not None else default_soundfont(renderer)
    params = build_params(num_pieces=num_pieces, seconds=seconds, seed=seed, renderer=renderer,
                          soundfont=sf_path, drum_fraction=drum_fraction)
    if renderer == "fluidsynth" and shutil.which("fluidsynth") is None:
        raise FileNotFoundError("renderer 'fluidsynth' needs the fluidsynth binary on PATH "
                                "(Debian: apt-get install fluidsynth fluid-soundfont-gm); "
                                "or use --renderer tinysoundfont")
    if _check_existing(root, params, overwrite) is not None and _manifest_complete(root):
        log.info("demo corpus in %s is complete; nothing to do", root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    _atomic_write_json(root / BUILD_PARAMS, params)
    (root / MANIFEST).unlink(missing_ok=True)
    for split in SPLITS:
        (root / split).mkdir(exist_ok=True)
    _remove_stale_tmp(root)

    if workers is None:   # a spawned worker costs seconds to start: one per 8 pieces, at most 4
        workers = max(1, min(4, os.cpu_count() or 1, num_pieces // 8))
    pool = (cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            if workers > 1 else None)
    try:
        order = iter(candidate_order(list_candidates(), seed))
        chosen, skipped = _select(root, order, num_pieces, seconds, seed, pool, window=2 * workers if pool else 1)
        splits = assign_splits(num_pieces, seed)
        drums = assign_drums(splits, drum_fraction, seed)
        done = _done_stems(root)
        jobs = []
        for (cand, score), split, has_drums in zip(chosen, splits, drums):
            if score is None:
                if done.get(cand.stem) != split:
                    raise CorpusMismatchError(f"{root / done[cand.stem] / cand.stem}.json is in the wrong "
                                              f"split for these parameters; rebuild with --overwrite")
                continue
            args = (score, split, has_drums, str(root), params, str(sf_path))
            jobs.append(pool.submit(render_piece, *args) if pool else render_piece(*args))
        for job in jobs:
            stem = job.result() if isinstance(job, cf.Future) else job
            log.info("wrote %s", stem)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    manifest = _manifest(root, params, chosen, splits, drums, skipped, time.time() - t0)
    _atomic_write_json(root / MANIFEST, manifest)
    log.info("demo corpus in %s: %s; %.0f %% of clips with content above %.0f kHz",
             root, manifest["counts"], 100 * manifest["high_band"]["fraction"], HIGH_BAND_HZ / 1000)
    return root


def _manifest_complete(root: Path) -> bool:
    manifest = json.loads((root / MANIFEST).read_text())
    return all((root / split / f"{stem}{ext}").is_file()
               for split, stems in manifest["splits"].items() for stem in stems
               for ext in (".wav", ".mid", ".json"))


def _manifest(root: Path, params: dict[str, Any], chosen: Sequence[tuple[Candidate, Any]],
              splits: Sequence[Split], drums: Sequence[bool], skipped: list[dict[str, str]],
              build_seconds: float) -> dict[str, Any]:
    import soundfile as sf
    import music21
    from ..symbolic.midi import read_midi
    pieces, lists = {}, {s: [] for s in SPLITS}
    for (cand, _), split, has_drums in zip(chosen, splits, drums):
        meta = json.loads((root / split / f"{cand.stem}.json").read_text())
        audio, sr = sf.read(str(root / split / f"{cand.stem}.wav"), dtype="float32", always_2d=True)
        midi = read_midi(root / split / f"{cand.stem}.mid")
        pitched = midi.notes.velocity[~midi.notes.is_drum]
        seg = np.diff(np.append(midi.tempo_times, midi.end_time))
        lists[split].append(cand.stem)
        pieces[cand.stem] = {"split": split, "source": meta["source"], "has_drums": meta["has_drums"],
                             "programs": meta["programs"], "seconds": meta["seconds"],
                             "high_band_db": round(high_band_db(audio, sr), 2),
                             "rolloff_hz": round(rolloff_hz(audio, sr), 1),
                             "has_tempo_info": bool(midi.has_tempo_info),
                             "bpm": {"first": round(float(midi.tempo_bpm[0]), 2),
                                     "last": round(float(midi.tempo_bpm[-1]), 2),
                                     "mean": round(float(np.sum(seg * midi.tempo_bpm) / max(seg.sum(), 1e-9)), 2)},
                             "velocity": {"mean": round(float(pitched.mean()), 2), "std": round(float(pitched.std()), 2),
                                          "min": int(pitched.min()), "max": int(pitched.max())}}
    with_high = [p["high_band_db"] > HIGH_BAND_THRESHOLD_DB for p in pieces.values()]
    return {"params": params,
            "layout": "<split>/<stem>.{wav,mid,json}",
            "splits": lists,
            "counts": {**{s: len(v) for s, v in lists.items()}, "total": len(pieces),
                       "with_drums": sum(p["has_drums"] for p in pieces.values())},
            "high_band": {"cutoff_hz": HIGH_BAND_HZ, "threshold_db": HIGH_BAND_THRESHOLD_DB,
                          "count": int(sum(with_high)), "fraction": float(np.mean(with_high))},
            "with_tempo_info": sum(p["has_tempo_info"] for p in pieces.values()),
            "pieces": pieces,
            "skipped": skipped,
            "versions": {"music21": music21.__version__},
            "total_seconds": round(sum(p["seconds"] for p in pieces.values()), 3),
            "build_seconds": round(build_seconds, 1)}


def ensure_demo_corpus(out: str | Path | None = None, **params: Any) -> Path:
    """Return the root of a complete demo corpus with these parameters, building it if needed.

    Keyword arguments are those of :func:`build_demo_corpus` (``overwrite`` excluded).
    """
    if "overwrite" in params:
        raise TypeError("ensure_demo_corpus never overwrites; call build_demo_corpus(..., overwrite=True)")
    return build_demo_corpus(out, **params)


def load_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a finished corpus (raises FileNotFoundError naming the build command)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build the corpus with "
                                f"`python -m saga_hsmad.data.demo_corpus --out {root}`")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m saga_hsmad.data.demo_corpus",
        description="Build a small paired MIDI + 44.1 kHz stereo audio corpus from music21's bundled "
                    "scores, offline. Reuses a finished corpus with the same parameters and completes "
                    "an interrupted one.")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output directory (default: {default_cache_dir()})")
    parser.add_argument("--num-pieces", type=int, default=DEFAULTS["num_pieces"], help="number of works")
    parser.add_argument("--seconds", type=float, default=DEFAULTS["seconds"],
                        help="maximum seconds per piece (the start of each work)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--renderer", choices=["tinysoundfont", "fluidsynth"], default=DEFAULTS["renderer"])
    parser.add_argument("--soundfont", type=Path, default=None,
                        help="SoundFont (.sf2); default: TimGM6mb.sf2 from pretty_midi (tinysoundfont) "
                             f"or {DEBIAN_SOUNDFONT} (fluidsynth)")
    parser.add_argument("--drum-fraction", type=float, default=DEFAULTS["drum_fraction"],
                        help="share of pieces with a drum track")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a corpus built with other parameters at --out")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per 8 pieces, at most CPUs and 4)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        root = build_demo_corpus(args.out, num_pieces=args.num_pieces, seconds=args.seconds, seed=args.seed,
                                 renderer=args.renderer, soundfont=args.soundfont,
                                 drum_fraction=args.drum_fraction, overwrite=args.overwrite,
                                 workers=args.workers)
    except (CorpusMismatchError, FileNotFoundError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    manifest = load_manifest(root)
    print(f"{root}\n{json.dumps(manifest['counts'])}; "
          f"{manifest['high_band']['fraction']:.0%} of clips have content above 16 kHz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
