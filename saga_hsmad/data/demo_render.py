"""Rendering MIDI files to audio for the demo corpus, offline and sample-accurate.

Two renderers play the same events: tinysoundfont (in-process; default, with the ``TimGM6mb.sf2``
that ships inside the pretty_midi wheel) and the Debian ``fluidsynth`` binary (optional). The events
come from the MIDI file through its whole tempo map (``set_tempo`` changes included), so the audio
follows the file's timing to the sample; velocities go to the synthesizer unchanged (TinySoundFont
scales a voice's amplitude by velocity / 127, so loudness follows the file's dynamics). Notes under
10 ms are dropped before rendering (FluidSynth hangs on zero-length notes).

Used by :mod:`saga_hsmad.data.demo_corpus`, which re-exports the public names.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

log = logging.getLogger(__name__)

Renderer = Literal["tinysoundfont", "fluidsynth"]

SAMPLE_RATE = 44100
MIN_NOTE_SECONDS = 0.010                 # shorter notes are dropped (FluidSynth hangs on zero-length notes)
FADE_OUT_SECONDS = 0.010                 # fade at the very end, so a cut sustain does not end in a click
PEAK_DBFS = -1.0
DRUM_CHANNEL = 9                         # General MIDI channel 10
DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def default_soundfont(renderer: Renderer = "tinysoundfont") -> Path:
    """The SoundFont a renderer uses when none is given.

    tinysoundfont: ``TimGM6mb.sf2`` inside the installed pretty_midi package (6 MB, General MIDI).
    fluidsynth: Debian's ``FluidR3_GM.sf2`` (package ``fluid-soundfont-gm``).
    """
    if renderer == "fluidsynth":
        return DEBIAN_SOUNDFONT
    import pretty_midi
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed pretty_midi package; pass "
                                f"--soundfont PATH (any General MIDI .sf2 file)")
    return path


@dataclasses.dataclass(frozen=True)
class _Event:
    time: float      # seconds
    order: int       # file order, to keep simultaneous events stable
    msg: Any


def midi_events(path: str | Path) -> tuple[list[_Event], float]:
    """Channel events of a MIDI file in seconds, with notes under 10 ms removed, and the file length.

    Both renderers play these events, which guards FluidSynth against its hang on zero-length notes
    and keeps the renderers in agreement.
    """
    import mido
    mf = mido.MidiFile(str(path))
    events, now = [], 0.0
    for i, msg in enumerate(mf):       # merged tracks, delta times in seconds through the tempo map
        now += msg.time
        if not msg.is_meta and msg.type != "sysex":
            events.append(_Event(now, i, msg))
    length = now
    # Pair notes FIFO per (channel, key) and drop pairs shorter than MIN_NOTE_SECONDS.
    open_: dict[tuple[int, int], collections.deque] = collections.defaultdict(collections.deque)
    drop: set[int] = set()
    for k, ev in enumerate(events):
        m = ev.msg
        if m.type == "note_on" and m.velocity > 0:
            open_[m.channel, m.note].append(k)
        elif m.type in ("note_on", "note_off") and open_[m.channel, m.note]:
            on = open_[m.channel, m.note].popleft()
            if ev.time - events[on].time < MIN_NOTE_SECONDS:
                drop.update((on, k))
    return [ev for k, ev in enumerate(events) if k not in drop], length


def render_midi(path: str | Path, *, renderer: Renderer = "tinysoundfont", soundfont: str | Path | None = None,
                sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Render a MIDI file to stereo audio of exactly the file's length.

    Args:
        path: MIDI file. Notes shorter than 10 ms are dropped before rendering.
        renderer: ``tinysoundfont`` (in-process, no audio device) or ``fluidsynth`` (the Debian
            binary, run as a subprocess with a time limit).
        soundfont: .sf2 file; default :func:`default_soundfont` of the renderer.
        sample_rate: output rate in Hz.
        max_seconds: bound on the output length (the file's own length otherwise).

    Returns:
        float32 array ``[n_samples, 2]``, n_samples = round(length x sample_rate), not normalised.
    """
    soundfont = Path(soundfont) if soundfont is not None else default_soundfont(renderer)
    if not soundfont.is_file():
        hint = (" (Debian: apt-get install fluid-soundfont-gm)" if renderer == "fluidsynth"
                else "; pass --soundfont PATH")
        raise FileNotFoundError(f"SoundFont {soundfont} does not exist{hint}")
    events, length = midi_events(path)
    if max_seconds is not None:
        length = min(length, max_seconds)
    n = int(round(length * sample_rate))
    if renderer == "tinysoundfont":
        return _render_tinysoundfont(events, n, soundfont, sample_rate)
    if renderer == "fluidsynth":
        return _render_fluidsynth(events, n, soundfont, sample_rate)
    raise ValueError(f"renderer must be 'tinysoundfont' or 'fluidsynth', got {renderer!r}")


def _render_tinysoundfont(events: Sequence[_Event], n: int, soundfont: Path, sample_rate: int) -> np.ndarray:
    """Sample-accurate offline rendering: events are applied at round(t x sr), audio in between is
    synthesised straight into a numpy buffer (tinysoundfont's own sequencer rounds event times
    to whole render blocks, so it is not used)."""
    import tinysoundfont
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(soundfont))
    for ch in range(16):
        try:
            synth.program_select(ch, sfid, 128 if ch == DRUM_CHANNEL else 0, 0, is_drums=ch == DRUM_CHANNEL)
        except RuntimeError:
            log.warning("%s has no %s preset 0 for channel %d", soundfont.name,
                        "drum kit (bank 128)" if ch == DRUM_CHANNEL else "bank 0", ch + 1)
    out = np.zeros((n, 2), dtype=np.float32)
    raw = memoryview(out).cast("B")
    frame = 2 * 4
    pos = 0

    def render_to(stop: int) -> None:
        nonlocal pos
        if stop > pos:
            synth.generate_simple(stop - pos, buffer=raw[pos * frame: stop * frame])
            pos = stop

    for ev in sorted(events, key=lambda e: (e.time, e.order)):
        at = min(n, int(round(ev.time * sample_rate)))
        if at >= n:
            break
        render_to(at)
        m = ev.msg
        if m.type == "note_on" and m.velocity > 0:
            synth.noteon(m.channel, m.note, m.velocity)
        elif m.type in ("note_on", "note_off"):
            synth.noteoff(m.channel, m.note)
        elif m.type == "program_change":
            try:
                synth.program_change(m.channel, m.program, is_drums=m.channel == DRUM_CHANNEL)
            except RuntimeError:     # preset missing from this SoundFont: keep the previous one
                log.warning("program %d missing from %s; channel %d keeps its preset",
                            m.program, soundfont.name, m.channel)
        elif m.type == "control_change":
            synth.control_change(m.channel, m.control, m.value)
        elif m.type == "pitchwheel":
            synth.pitchbend(m.channel, m.pitch + 8192)
    render_to(n)
    return out


def _render_fluidsynth(events: Sequence[_Event], n: int, soundfont: Path, sample_rate: int) -> np.ndarray:
    """Render with the ``fluidsynth`` binary (fast render to file), then trim or pad to ``n`` samples.

    The events are rewritten to a clean MIDI file whose tick is one sample (120 BPM, 22,050 ticks
    per beat at 44.1 kHz), so notes under 10 ms stay dropped; the subprocess has a time limit.
    """
    import mido
    import soundfile as sf
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise FileNotFoundError("renderer 'fluidsynth' needs the fluidsynth binary on PATH "
                                "(Debian: apt-get install fluidsynth fluid-soundfont-gm); "
                                "or use --renderer tinysoundfont")
    with tempfile.TemporaryDirectory(prefix="saga_hsmad_fs_") as tmp:
        mid_path, wav_path = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        tpq = sample_rate // 2            # at 120 BPM one tick is one sample
        mf = mido.MidiFile(type=0, ticks_per_beat=tpq)
        tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
        now = 0
        for ev in sorted(events, key=lambda e: (e.time, e.order)):
            tick = min(n, int(round(ev.time * sample_rate)))
            tr.append(ev.msg.copy(time=tick - now))
            now = tick
        tr.append(mido.MetaMessage("end_of_track", time=max(0, n - now)))
        mf.tracks.append(tr)
        mf.save(str(mid_path))
        cmd = [binary, "-ni", "-q", "-r", str(sample_rate), "-T", "wav", "-O", "float",
               "-F", str(wav_path), str(soundfont), str(mid_path)]
        timeout = 60.0 + 10.0 * n / sample_rate
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"fluidsynth did not finish within {timeout:.0f} s: {' '.join(cmd)}") from e
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"fluidsynth failed ({e.returncode}): {e.stderr.decode(errors='replace')[-500:]}") from e
        audio, sr = sf.read(str(wav_path), dtype="float32", always_2d=True, frames=n)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    out = np.zeros((n, 2), dtype=np.float32)
    out[: len(audio)] = audio[:n, :2]
    return out


def finish_audio(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Fade out the last 10 ms and scale the peak to ``peak_dbfs``.

    Raises:
        ValueError: the audio is silent.
    """
    audio = np.array(audio, dtype=np.float32, copy=True)
    fade = min(len(audio), int(round(FADE_OUT_SECONDS * sample_rate)))
    if fade > 0:
        audio[-fade:] *= (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32)))[:, None]
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 1e-6:
        raise ValueError("rendered audio is silent")
    return audio * np.float32(10.0 ** (peak_dbfs / 20.0) / peak)
