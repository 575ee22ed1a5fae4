"""What each tab of the web page does, as plain functions of files and numbers (no gradio here).

Every handler runs the code ``sample.py`` runs for the same model: ``SuperResolver.super_resolve_file`` for the
super-resolution tab, ``MidiToAudio.render_file`` for the MIDI tab, ``generate_mode.generate_audio`` for the
generate tab, with the settings resolved by the same ``options_from_args`` / ``make_caption_source`` /
``style_for`` and every number checked by the parser of its ``sample.py`` flag (``inference.flags``). Bad
input raises ``AppError`` with the command line's message (``ERROR <file>: <reason>``, ``argument --steps:
must be >= 1, got 0``), with the upload's folder left out of file names.

A model run holds the lock of its device, so two requests never run models on one device at once (the page
also queues them); the outputs of one request go to a folder of their own under the app's work folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import tempfile
import threading
import time
import typing as tp
import uuid
import warnings
from pathlib import Path

import numpy as np

Progress = tp.Callable[[int, int, str], None]  # (done, total, what is counted)
KINDS = ("super_resolution", "midi", "generate")  # sample.py's mode names, in tab order
MIN_EVAL_CUTOFF_HZ, MAX_EVAL_CUTOFF_HZ = 2_000.0, 20_000.0  # the LR rate 2 x cutoff stays within 4-40 kHz

_DEVICE_LOCKS: dict[str, threading.Lock] = {}


class AppError(ValueError):
    """Bad input, with the message the command line prints for it; the page shows it and goes on."""


def device_lock(device: str) -> threading.Lock:
    """One lock per device: a model run holds it, so runs on one device never overlap."""
    return _DEVICE_LOCKS.setdefault(str(device), threading.Lock())


@dataclasses.dataclass
class LoadedModel:
    """A checkpoint loaded for the page; ``kind`` is the ``sample.py`` mode its model selects."""

    path: str
    model: tp.Any
    config: dict
    kind: str
    device: str

    @property
    def label(self) -> str:
        return Path(self.path).name if Path(self.path).name != "export.safetensors" else \
            f"{Path(self.path).parent.name}/{Path(self.path).name}"

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    @property
    def sampling(self) -> dict:
        return self.config.get("sampling", {})


def load_models(paths: tp.Sequence[str], device: str, use_ema: bool = True, trust: bool = False) -> list[LoadedModel]:
    """Load each checkpoint as ``sample.py --ckpt`` does and pick its mode by the same rule (the first mode whose
    ``matches`` is true). Raises ``CheckpointError`` / ``FileNotFoundError`` naming the file."""
    import torch

    import saga_hsmad
    from saga_hsmad.checkpoints import load_model
    from saga_hsmad.inference.modes import available_modes

    saga_hsmad.install()
    modes = available_modes()
    loaded = []
    for path in paths:
        model, config, _ = load_model(path, None, use_ema=use_ema, device=torch.device(device), trust=trust)
        kind = next(m.name for m in modes if m.matches(config))
        loaded.append(LoadedModel(str(path), model, config, kind, str(device)))
    return loaded


class Workspace:
    """The app's work folder: one sub-folder per request; folders older than ``max_age`` seconds are removed
    when a new one is made, and the whole folder by ``close``."""

    def __init__(self, root: str | Path | None = None, max_age: float = 3600.0):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="saga_hsmad_app_"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age

    def new(self, what: str) -> Path:
        now = time.time()
        for old in self.root.glob("request_*"):
            if old.is_dir() and now - old.stat().st_mtime > self.max_age:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.root / f"request_{what}_{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# -- input checks ---------------------------------------------------------------------------------------------
def flag_value(flag: str, parse: tp.Callable[[str], tp.Any], value: tp.Any) -> tp.Any:
    """``value`` checked by the argparse type of ``flag`` (``inference.flags``), with the parser's message."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise AppError(f"argument {flag}: expected a number, got nothing")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number box sends 2.0 for an integer flag
    try:
        return parse(str(value))
    except argparse.ArgumentTypeError as e:
        raise AppError(f"argument {flag}: {e}") from None


def mode_arguments(mode, **values) -> argparse.Namespace:
    """The arguments ``sample.py`` would parse for ``mode`` with no flags given (so every setting the page has no
    control for keeps the command line's default), with ``values`` set."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--steps", default=None)
    parser.add_argument("--seed", default=0)
    mode.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in values.items():
        if not hasattr(args, key):
            raise AttributeError(f"sample.py mode {mode.name} has no setting {key!r}")
        setattr(args, key, value)
    return args


def _uploaded(path: str | None, what: str) -> Path:
    if not path:
        raise AppError(f"no {what}: upload one first")
    return Path(path)


def _file_error(e: Exception, path: Path) -> AppError:
    """``ERROR <file>: <reason>`` as ``sample.py`` prints it, with the file's name instead of the upload path."""
    message = str(e)
    line = message if message.startswith(str(path)) else f"{path}: {message}"
    return AppError(f"ERROR {line.replace(str(path), path.name)}")


# -- super-resolution -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class SRResult:
    input_wav: Path            # the input as the model sees it: resampled to the model rate (evaluate: band-limited)
    output_wav: Path
    spectrogram_png: Path
    input_cutoff_hz: float     # detected cutoff of the input: its roll-off (0.985 rule) in Hz
    output_rolloff_hz: float
    summary: str
    metrics: list[dict] = dataclasses.field(default_factory=list)  # evaluate: one row per system


def _sr_resolver(entry: LoadedModel, caption: str | None, target_rolloff: float | None, cfg_acoustic: float,
                 cfg_text: float, steps: int, seed: int, lfr: bool):
    from saga_hsmad.inference import flags
    from saga_hsmad.inference.super_resolution import MODE, SuperResolver, make_caption_source, options_from_args

    args = mode_arguments(
        MODE, steps=flag_value("--steps", flags.steps, steps), seed=flag_value("--seed", flags.seed, seed),
        cfg_acoustic=flag_value("--cfg-acoustic", flags.guidance, cfg_acoustic),
        cfg_text=flag_value("--cfg-text", flags.guidance, cfg_text),
        target_rolloff=None if target_rolloff is None else flag_value("--target-rolloff", flags.rolloff, target_rolloff),
        no_lfr=not lfr)
    try:
        options, source = options_from_args(args, entry.config)
        captions = make_caption_source(entry.model, entry.config, caption.strip() if caption else None,
                                       device=entry.device)
        return SuperResolver(entry.model, entry.config, options, captions, progress=False), source
    except (ValueError, AssertionError) as e:
        raise AppError(str(e)) from e


def _window_progress(progress: Progress | None) -> tp.Callable[[int, int], None] | None:
    return None if progress is None else (lambda done, total: progress(done, total, "windows"))


def _rolloff_hz(audio: np.ndarray, sr: int) -> float:
    from saga_hsmad.dsp.rolloff import rolloff_to_hz, spectral_rolloff

    return float(rolloff_to_hz(float(spectral_rolloff(audio)), sr))


def super_resolve(entry: LoadedModel, audio_path: str | None, workspace: Workspace, *, caption: str | None = None,
                  target_rolloff: float | None = None, cfg_acoustic: float = 1.4, cfg_text: float = 1.2,
                  steps: int = 100, seed: int = 0, lfr: bool = True, progress: Progress | None = None) -> SRResult:
    """Upsample one uploaded file as ``sample.py --input FILE`` does (full-band input is passed through)."""
    from saga_hsmad.audio_io import AudioError, read_audio, resample, write_audio
    from saga_hsmad.evaluation.sr_plots import plot_spectrograms
    from saga_hsmad.inference.generate import NonFiniteOutput

    path = _uploaded(audio_path, "audio file")
    resolver, source = _sr_resolver(entry, caption, target_rolloff, cfg_acoustic, cfg_text, steps, seed, lfr)
    folder = workspace.new("sr")
    output = folder / f"{path.stem}_sr.wav"
    try:
        with device_lock(entry.device):
            report = resolver.super_resolve_file(path, output, progress=_window_progress(progress))
        audio, rate = read_audio(path)
    except (AudioError, NonFiniteOutput, OSError) as e:
        raise _file_error(e, path) from e
    sr = entry.sample_rate
    heard = resample(audio, rate, sr)
    out, _ = read_audio(output)
    input_wav = folder / f"{path.stem}_input_{sr}.wav"
    write_audio(input_wav, heard, sr, subtype="FLOAT")
    cutoff, out_rolloff = _rolloff_hz(heard, sr), _rolloff_hz(out, sr)
    png = folder / "spectrograms.png"
    plot_spectrograms(png, [(f"input ({sr / 1000:g} kHz)", heard), ("output", out)], sr, cutoff_hz=cutoff,
                      title=f"{path.name}: detected input cutoff {cutoff / 1000:.2f} kHz (dashed)")
    summary = (f"{path.name}: {report.summary()}. Target roll-off {resolver.options.target_rolloff:.3f}"
               f"{'' if source == '--target-rolloff' else f' ({source})'}. "
               f"Measured roll-off: input {cutoff / 1000:.2f} kHz, output {out_rolloff / 1000:.2f} kHz.")
    if report.clipping:
        summary += f" WARNING: {report.clipping}."
    return SRResult(input_wav, output, png, cutoff, out_rolloff, summary)


def evaluate(entry: LoadedModel, reference_path: str | None, cutoff_hz: float, workspace: Workspace, *,
             average_power: np.ndarray | None = None, caption: str | None = None, target_rolloff: float | None = None,
             cfg_acoustic: float = 1.4, cfg_text: float = 1.2, steps: int = 100, seed: int = 0, lfr: bool = True,
             progress: Progress | None = None) -> SRResult:
    """Band-limit a full-band reference by the test protocol at ``cutoff_hz`` (``dsp.lowpass.test_protocol_lowres``,
    as ``evaluation.sr_eval`` does), upsample it and measure LSD / LSD-HF of the LR input, the output and, given
    the training data's ``average_power`` (``evaluation.baselines``), the noise-fill baseline."""
    from saga_hsmad.audio_io import AudioError, read_audio, resample, write_audio
    from saga_hsmad.dsp.lfr import is_full_band
    from saga_hsmad.dsp.lowpass import test_protocol_lowres
    from saga_hsmad.evaluation.sr_eval import SYSTEMS, measure
    from saga_hsmad.evaluation.sr_plots import plot_spectrograms
    from saga_hsmad.inference.generate import NonFiniteOutput
    from saga_hsmad.inference.super_resolution import check_signal

    path = _uploaded(reference_path, "reference file")
    number = isinstance(cutoff_hz, (int, float))
    if not (number and math.isfinite(cutoff_hz) and MIN_EVAL_CUTOFF_HZ <= cutoff_hz <= MAX_EVAL_CUTOFF_HZ):
        shown = f"{cutoff_hz:g} Hz" if number else repr(cutoff_hz)
        raise AppError(f"cutoff {shown}: give a number of Hz between {MIN_EVAL_CUTOFF_HZ:g} and {MAX_EVAL_CUTOFF_HZ:g}")
    resolver, source = _sr_resolver(entry, caption, target_rolloff, cfg_acoustic, cfg_text, steps, seed, lfr)
    sr = entry.sample_rate
    try:
        audio, rate = read_audio(path)
        check_signal(audio.shape[0], rate, audio.shape[-1], path)
        if not np.any(audio):
            raise AudioError(f"{path}: the clip is silent (LSD is undefined on silence)")
        reference = resample(audio, rate, sr)
        lowres = np.ascontiguousarray(test_protocol_lowres(reference, sr, float(cutoff_hz)), dtype=np.float32)
        with device_lock(entry.device):
            output, report = resolver.super_resolve_array(lowres, sr, path=path, progress=_window_progress(progress))
    except (AudioError, NonFiniteOutput, OSError) as e:
        raise _file_error(e, path) from e
    systems = [("lr_input", lowres)]
    if average_power is not None:
        from saga_hsmad.evaluation.baselines import noise_fill

        systems.append(("noise_fill", noise_fill(lowres, float(cutoff_hz), average_power, sr, seed=int(seed))))
    systems.append(("saga_sr", output))
    metrics = []
    for name, signal in systems:
        lsd, lsd_hf, rolloff = measure(reference, signal, float(cutoff_hz))
        metrics.append({"system": SYSTEMS[name], "LSD": round(lsd, 3), "LSD-HF": round(lsd_hf, 3),
                        "roll-off (kHz)": round(rolloff * sr / 2 / 1000, 2)})
    folder = workspace.new("eval")
    input_wav, output_wav = folder / f"{path.stem}_lowres_{cutoff_hz:g}Hz.wav", folder / f"{path.stem}_sr.wav"
    write_audio(input_wav, lowres, sr, subtype="FLOAT")
    write_audio(output_wav, output, sr, subtype="FLOAT")
    png = folder / "spectrograms.png"
    panels = [(f"LR input ({cutoff_hz / 1000:g} kHz)", lowres)] + \
        [("noise fill", s) for n, s in systems if n == "noise_fill"] + [("output", output), ("reference", reference)]
    cutoff = _rolloff_hz(lowres, sr)
    plot_spectrograms(png, panels, sr, cutoff_hz=cutoff,
                      title=f"{path.name} at {cutoff_hz:g} Hz: detected input cutoff {cutoff / 1000:.2f} kHz (dashed)")
    notes = [f"{path.name} band-limited at {cutoff_hz:g} Hz by the test protocol (Chebyshev I order 8, zero phase, "
             f"resampled through {2 * cutoff_hz:g} Hz), {report.summary()}. Target roll-off "
             f"{resolver.options.target_rolloff:.3f} ({source})."]
    if average_power is None:
        notes.append("No noise-fill row: start the app with --train-dataset-config to add it.")
    if not is_full_band(reference, sr):
        notes.append("WARNING: the reference has little power above 19 kHz; it is not full-band, so LSD-HF "
                     "measures against a band-limited reference.")
    return SRResult(input_wav, output_wav, png, cutoff, _rolloff_hz(output, sr), " ".join(notes), metrics)


# -- MIDI -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class MidiResult:
    output_wav: Path
    plot_png: Path   # piano roll over the output's spectrogram
    summary: str


def _read_midi(renderer, path: Path) -> tuple[tp.Any, list[str]]:
    """(score, ``WARNING`` lines of repairs) read by the renderer's reader, as ``sample.py --midi`` reads it."""
    from saga_hsmad.symbolic.midi import MidiError, MidiWarning

    try:
        with warnings.catch_warnings(record=True) as repairs:
            warnings.simplefilter("always", MidiWarning)
            score = renderer.read(path)
    except (MidiError, ValueError, OSError) as e:
        raise _file_error(e, path) from e
    return score, [f"WARNING {str(r.message).replace(str(path), path.name)}" for r in repairs
                   if issubclass(r.category, MidiWarning)]


def _midi_renderer(entry: LoadedModel, w_structure=None, w_style=None, steps=None, seed=0):
    from saga_hsmad.inference import flags
    from saga_hsmad.inference.midi_to_audio import MODE, MidiToAudio, options_from_args

    args = mode_arguments(
        MODE, steps=None if steps is None else flag_value("--steps", flags.steps, steps),
        w_structure=None if w_structure is None else flag_value("--w-structure", flags.guidance, w_structure),
        w_style=None if w_style is None else flag_value("--w-style", flags.guidance, w_style),
        seed=flag_value("--seed", flags.seed, seed))
    try:
        return MidiToAudio(entry.model, entry.config, options_from_args(args, entry.config))
    except ValueError as e:
        raise AppError(str(e)) from e


def preview_midi(entry: LoadedModel, midi_path: str | None, workspace: Workspace) -> tuple[Path, str]:
    """(piano-roll PNG, a line about the piece and any repairs) of an uploaded MIDI file."""
    from .plots import plot_piano_roll

    path = _uploaded(midi_path, "MIDI file")
    renderer = _midi_renderer(entry)
    score, repairs = _read_midi(renderer, path)
    png = workspace.new("roll") / "piano_roll.png"
    plot_piano_roll(png, score.notes, float(score.end_time), title=path.name)
    line = f"{path.name}: {len(score.notes)} notes, {score.end_time:.2f} s."
    return png, " ".join([line, *repairs])


def render_midi(entry: LoadedModel, midi_path: str | None, workspace: Workspace, *, style: str | None = None,
                w_structure: float | None = None, w_style: float | None = None, steps: int | None = None,
                seed: int = 0, start: float | None = None, end: float | None = None,
                progress: Progress | None = None) -> MidiResult:
    """Render an uploaded MIDI file (or the part between ``start`` and ``end`` seconds) as ``sample.py --midi``
    does; ``None`` settings take the model config's ``sampling`` defaults, as the command line's."""
    from saga_hsmad.audio_io import read_audio
    from saga_hsmad.evaluation.midi_plots import roll_over_spectrogram
    from saga_hsmad.inference.midi_to_audio import piece_seconds, style_for

    path = _uploaded(midi_path, "MIDI file")
    renderer = _midi_renderer(entry, w_structure, w_style, steps, seed)
    score, repairs = _read_midi(renderer, path)
    if not len(score.notes) and not score.end_time > 0:
        raise AppError(f"ERROR {path.name}: the MIDI has no notes and no length; nothing to render")
    length = piece_seconds(score, renderer.options.release)
    t0 = 0.0 if start is None else float(start)
    t1 = length if end is None else float(end)
    if not (math.isfinite(t0) and math.isfinite(t1) and 0.0 <= t0 < t1):
        raise AppError(f"time range {t0:g}-{t1:g} s: the start must be >= 0 and before the end")
    if t0 >= length:
        raise AppError(f"time range {t0:g}-{t1:g} s: the piece lasts {length:.2f} s")
    if (t0, t1) != (0.0, length):
        score = renderer.spec.window(score, t0, min(t1, length) - t0)
    try:
        text = style_for(path, style.strip() if style and style.strip() else None, entry.config)
    except ValueError as e:
        raise _file_error(e, path) from e
    o = renderer.options
    total = o.steps * len(renderer.plan(score).groups(o.group_windows))
    done = [0]

    def step(_: int) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total, "steps")

    folder = workspace.new("midi")
    output = folder / f"{path.stem}.wav"
    try:
        with device_lock(entry.device):
            plan, clipping = renderer.render_file(score, text, output, progress=step)
    except (ValueError, OSError) as e:
        raise _file_error(e, path) from e
    audio, sr = read_audio(output)
    png = folder / "roll_over_spectrogram.png"
    roll_over_spectrogram(png, audio, sr, score.notes, title=f"{path.name}: output spectrogram with the MIDI notes")
    summary = (f"{path.name} {t0:g}-{t0 + plan.seconds:g} s: {plan.seconds:.2f} s, {len(plan.starts)} window(s), "
               f"{o.steps} steps, w_H {o.w_structure}, w_S {o.w_style}, style {text!r}, seed {o.seed}.")
    if clipping:
        summary += f" WARNING: {clipping}."
    return MidiResult(output, png, " ".join([summary, *repairs]))


# -- generate -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class GenerateResult:
    output_wav: Path
    spectrogram_png: Path
    summary: str


def generate(entry: LoadedModel, workspace: Workspace, *, prompt: str | None = None, seconds: float | None = None,
             steps: int = 50, seed: int = 0, cfg_scale: float = 1.0, progress: Progress | None = None) -> GenerateResult:
    """One sample as ``sample.py --prompt P --seconds S`` does; a model with a ``seconds_total`` condition gets
    ``seconds`` there too (the command line's ``--cond seconds_total=S``)."""
    from saga_hsmad.audio_io import OutputLimiter, write_audio
    from saga_hsmad.evaluation.sr_plots import plot_spectrograms
    from saga_hsmad.inference import flags
    from saga_hsmad.inference.generate_mode import generate_audio

    secs = None if seconds is None else flag_value("--seconds", flags.seconds, seconds)
    steps = flag_value("--steps", flags.steps, steps)
    seed = flag_value("--seed", flags.seed, seed)
    cfg_scale = flag_value("--cfg-scale", flags.guidance, cfg_scale)
    conditioner = entry.model.conditioner
    cond = {}
    if secs is not None and conditioner is not None and "seconds_total" in conditioner.conditioners:
        cond["seconds_total"] = float(secs)
    try:
        with device_lock(entry.device):
            audio = generate_audio(entry.model, entry.config, num=1, seconds=secs, prompt=prompt or "", cond=cond,
                                   steps=steps, seed=seed, cfg_scale=cfg_scale,
                                   progress=None if progress is None else (lambda d, t: progress(d, t, "steps")))
    except ValueError as e:  # memory check, NaN output
        raise AppError(f"ERROR: {e}") from e
    folder = workspace.new("generate")
    output = folder / "sample_0.wav"
    limiter = OutputLimiter("PCM_16")
    write_audio(output, audio[0], entry.sample_rate, limiter=limiter)
    png = folder / "spectrogram.png"
    plot_spectrograms(png, [("output", audio[0])], entry.sample_rate, title=f"prompt {prompt!r}")
    summary = (f"{audio.shape[-1] / entry.sample_rate:.2f} s at {entry.sample_rate} Hz, {steps} steps, "
               f"cfg {cfg_scale}, seed {seed}.")
    if limiter.report():
        summary += f" WARNING: {limiter.report()}."
    return GenerateResult(output, png, summary)
