"""``sample.py`` mode ``super_resolution``: SAGA-SR inference on files of any rate, length and format (spec §5).

    python sample.py --ckpt runs/sr/export.safetensors --input song.mp3 --input speech_dir/ --output out/ \
        [--steps 100] [--cfg-acoustic 1.4] [--cfg-text 1.2] [--target-rolloff 0.8] [--caption "..."]

Per input file (wav, flac, mp3, ogg, ... at 4–48 kHz, mono or stereo, any length) → ``OUTPUT/<name>.wav`` at
the model rate (44.1 kHz) with the input's channel count:

1. the input is read in blocks and resampled to 44.1 kHz as a stream (``streaming.ResampledStream``);
2. it is cut into windows of the model's training length (``sample_size``: 262,144 samples = 5.944 s for
   the paper config; ``--window`` overrides it) overlapping by ``--overlap`` seconds (default 0.5 s, at most a
   quarter of the window); a file shorter than a window is zero-padded and its padding mask says so;
3. per window, the metadata a training item carries — ``prompt``, ``lr_audio``, ``rolloff_in`` (f_l,
   measured on this LR window, never asked for), ``rolloff_target`` (f_h, the user's target roll-off),
   ``padding_mask`` — goes through ``generate.conditioning_inputs``, the same call the training step makes;
4. Euler sampling on the linear-quadratic schedule (``schedules.linear_quadratic_schedule``) with the
   three-branch guidance of eq. 4 (``guidance.saga_sr_guidance``; two branches without a caption) in ONE batched
   forward per step;
   noise is drawn per window from (seed, window index), so output does not depend on ``--batch-windows``;
5. decoding, then low-frequency replacement against the LR window (``dsp.lfr``; ``--no-lfr`` turns it off);
6. windows are joined by ``windowing.OverlapAdd``'s crossfade in a one-window buffer that streams finished
   samples to the output file (``streaming.StreamingOverlapAdd``): memory does not grow with file length.

Mono input runs through the stereo model as dual-mono and the output is the channel mean. Input that is
already full-band (``dsp.lfr.is_full_band`` on a few excerpts) is reported and passed through, resampled
but otherwise unchanged (``--process-full-band`` runs the model anyway). A window whose input peak lies
below ``SILENCE_DBFS`` (-90 dBFS) is silence: it is not sampled and passes through as it came in, so
silence in gives silence out. Outputs are written atomically (a temporary file renamed into place), so a
failure or an interrupt never leaves a partial file; existing outputs are kept unless ``--overwrite``.
PCM outputs go through ``audio_io.OutputLimiter`` (a soft limiter above -1 dBFS instead of hard clipping;
a file whose samples would have clipped gets a ``WARNING <output>: <count>`` line). A bad file (unreadable,
truncated or damaged, empty, NaN samples, rate outside 4–48 kHz, more than two channels, no caption for it in
``--caption-store``) or a model output with NaN or Inf samples prints one ``ERROR <file>: <reason>`` line and
writes nothing, the other files are still processed, and the exit status is 1 when any file failed.

Text condition per window, first that applies: ``--caption``; the caption store ``--caption-store`` (JSON/CSV,
or ``sidecar`` for ``<stem>.txt``/``.json`` files next to the inputs; ``data.captions``; time ranges are matched
to the window); Qwen2-Audio on the LR window (``--captioner-dir``,
``cli.caption``); ``""`` if the model has no text conditioner or its config sets
``sampling.allow_empty_captions``; otherwise the null text condition (``NullText``): the state the text dropout
of training teaches (``cond_dropout["text"]`` of ``dit_concat``, 0.1 by default), i.e. the model without a
caption, and ``--cfg-text`` has no effect.

Target roll-off: ``--target-rolloff``, else, per window, the predictor stored as
``model_config["sampling"]["target_rolloff_predictor"]`` (``rolloff_predictor``: from the LR window alone; off
with ``--no-rolloff-predictor``), else ``model_config["sampling"]["target_rolloff"]`` (stored with the model: the
median f_h of its training data), else ``FALLBACK_TARGET_ROLLOFF`` = 0.8 (the value in the paper's Fig. 1) with
a warning.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import typing as tp
from pathlib import Path

import numpy as np
import torch

from ..audio_io import (AUDIO_EXTENSIONS, AudioError, OutputLimiter, audio_info, check_wav_length, list_audio_files,
                        read_audio, resample)
from ..dsp.lfr import LFRChannels, high_band_fraction_db, is_full_band, low_frequency_replacement
from ..dsp.rolloff import rolloff_to_hz, spectral_rolloff
from . import flags
from .generate import NonFiniteOutput, conditioning_inputs, decode, generate_latents, require_finite
from .guidance import Guidance, saga_sr_guidance
from .interrupts import remove_stale_partials
from .modes import diffusion_type
from .rolloff_predictor import RolloffPredictor
from .schedules import linear_quadratic_schedule
from .streaming import (READ_BLOCK, ResampledStream, StreamingOverlapAdd, array_blocks, file_blocks,
                        resampled_length)
from .windowing import Curve, plan_windows

MIN_INPUT_RATE, MAX_INPUT_RATE = 4_000, 48_000
FALLBACK_TARGET_ROLLOFF = 0.8  # the target roll-off fed at inference in the paper's Fig. 1
DEFAULT_OVERLAP_SECONDS = 0.5  # capped at a quarter of the window (tiny models have 0.74 s windows)
FULL_BAND_EXCERPTS = 4  # excerpts of one window each checked by the full-band detector
SILENCE_DBFS = -90.0  # an input window whose peak lies below this is silence and passes through unprocessed
OUTPUT_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
WindowProgress = tp.Callable[[int, int], None]  # (windows done, windows in all), after each batch of windows


# -- captions ---------------------------------------------------------------------------------------------
class CaptionSource(tp.Protocol):
    """Captions for a batch of windows of one input: ``(source path or None, [(start s, end s, lr (c, n))])``."""

    description: str

    def __call__(self, path: Path | None, windows: tp.Sequence[tuple[float, float, torch.Tensor]]) -> list[str]: ...


@dataclasses.dataclass
class FixedCaption:
    text: str
    description: str = "--caption"

    def __call__(self, path, windows):
        return [self.text] * len(windows)


@dataclasses.dataclass
class NullText:
    """No caption: every guidance branch nulls the text condition, as the training's text dropout does, so the
    guided velocity is u(∅,∅) + s_a[u(z_l,∅) − u(∅,∅)] and ``--cfg-text`` has no effect. As in training, ∅ for
    text zeroes the whole cross-attention sequence, the two roll-off tokens with it; the roll-off still reaches
    the model through the global conditioning (``models.dit_concat``)."""

    description: str = ("no caption given: the null text condition in every guidance branch, so --cfg-text has no "
                        "effect (give --caption, --caption-store or --captioner-dir to condition on text)")

    def __call__(self, path, windows):
        return [""] * len(windows)  # the prompt conditioner still needs a string; its output is nulled


class StoreCaption:
    """Per-window captions from a caption store (``data.captions.CaptionStore``); time ranges are matched
    to the window's span in the input."""

    def __init__(self, store_path: str | os.PathLike, root: str | os.PathLike | None = None):
        from ..data.captions import CaptionStore

        self.store = CaptionStore(store_path, root=root)
        self.description = f"caption store {self.store.describe()}"

    def __call__(self, path, windows):
        if path is None:
            raise ValueError("a caption store needs the input's file path; pass --caption instead")
        return [self.store.lookup(path, start, end) for start, end, _ in windows]


class CaptionerCaption:
    """Qwen2-Audio captions of each LR window (16 kHz mono), as the paper captions LR audio at inference."""

    def __init__(self, model_dir: str | os.PathLike, sample_rate: int, device: str = "auto"):
        from ..cli.caption import Qwen2AudioCaptioner

        self.captioner = Qwen2AudioCaptioner(model_dir, device=device)
        self.sample_rate = sample_rate  # the rate of the LR windows (the model's)
        self.description = f"Qwen2-Audio ({model_dir}) on the LR input"

    def __call__(self, path, windows):
        from ..cli.caption import CAPTION_SAMPLE_RATE

        audio = [resample(lr.mean(dim=0, keepdim=True).numpy(), self.sample_rate, CAPTION_SAMPLE_RATE)[0]
                 for _, _, lr in windows]
        return self.captioner(audio)


def model_uses_text(model) -> bool:
    return model.conditioner is not None and "prompt" in model.conditioner.conditioners


def make_caption_source(model, model_config: dict, caption: str | None = None, caption_store: str | None = None,
                        captioner_dir: str | None = None, device: str = "auto") -> CaptionSource:
    """The caption source the flags ask for (see the module docstring for the order)."""
    if caption is not None:
        return FixedCaption(caption)
    if caption_store:
        return StoreCaption(caption_store)
    if captioner_dir:
        return CaptionerCaption(captioner_dir, int(model_config["sample_rate"]), device=device)
    if not model_uses_text(model):
        return FixedCaption("", "none (the model has no text conditioner)")
    if model_config.get("sampling", {}).get("allow_empty_captions", False):
        return FixedCaption("", "empty (sampling.allow_empty_captions in the model config)")
    return NullText()


# -- settings ---------------------------------------------------------------------------------------------
def resolve_target_rolloff(model_config: dict, requested: float | None) -> tuple[float, str]:
    """(normalised target roll-off f_h, where it came from)."""
    if requested is not None:
        value, source = float(requested), "--target-rolloff"
    else:
        stored = model_config.get("sampling", {}).get("target_rolloff")
        if stored is not None:
            value = float(stored)
            source = "model config sampling.target_rolloff" + (
                f" ({model_config['sampling']['target_rolloff_source']})"
                if model_config["sampling"].get("target_rolloff_source") else "")
        else:
            value = FALLBACK_TARGET_ROLLOFF
            source = "fallback"
            print(f"WARNING: the model config stores no sampling.target_rolloff; using {value} (the paper's Fig. 1 "
                  "value). Set it to the median f_h of the training data (python -m saga_hsmad.cli.target_rolloff) "
                  "or pass --target-rolloff", file=sys.stderr)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"target roll-off {value} ({source}) must lie in [0, 1) (roll-off bin / 1025)")
    return value, source


@dataclasses.dataclass
class SROptions:
    """Sampling settings of SAGA-SR inference (defaults: the paper's, spec §5)."""

    steps: int = 100
    reference_steps: int = 1000
    cfg_acoustic: float = 1.4
    cfg_text: float = 1.2
    target_rolloff: float = FALLBACK_TARGET_ROLLOFF
    lfr: bool = True
    lfr_channels: LFRChannels = "each"  # per channel as the official code; "mix": one cutoff per window
    window: int | None = None  # samples at the model rate; None = the model's sample_size
    overlap_seconds: float | None = None  # None: DEFAULT_OVERLAP_SECONDS, at most a quarter of the window
    crossfade: Curve = "equal_power"
    batch_windows: int = 1
    seed: int = 0
    process_full_band: bool = False
    rolloff_predictor: RolloffPredictor | None = None  # per-window target when none is given explicitly


def window_seed(seed: int, index: int) -> int:
    """Seed of window ``index``'s noise: a function of (seed, index) only."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


@dataclasses.dataclass
class Report:
    """What happened to one input."""

    windows: int = 0
    seconds: float = 0.0
    full_band: bool = False
    high_band_db: float | None = None  # power above 19 kHz relative to the total (full-band check)
    rolloff_in: list[float] = dataclasses.field(default_factory=list)
    rolloff_target: list[float] = dataclasses.field(default_factory=list)  # the target f_h each window was given
    silent_windows: int = 0  # windows below SILENCE_DBFS, passed through
    clipping: str | None = None  # OutputLimiter.report() of the written file
    elapsed: float = 0.0

    def summary(self) -> str:
        if self.full_band:
            return (f"already full-band ({self.high_band_db:.1f} dB of its power above 19 kHz): passed "
                    "through, resampled only")
        if self.silent_windows == self.windows:
            return f"{self.seconds:.2f} s of silence (below {SILENCE_DBFS:g} dBFS): passed through as silence"
        f_l = float(np.mean(self.rolloff_in))
        silent = f", {self.silent_windows} silent one(s) passed through" if self.silent_windows else ""
        target = ""
        if self.rolloff_target:
            target = f", target f_h {float(np.mean(self.rolloff_target)):.3f}" + (
                " (mean over windows)" if len(self.rolloff_target) > 1 else "")
        return (f"{self.seconds:.2f} s, {self.windows} window(s){silent}, input roll-off f_l {f_l:.3f} "
                f"(~{rolloff_to_hz(f_l) / 1000:.1f} kHz){target}, {self.elapsed:.1f} s")


class SuperResolver:
    """SAGA-SR inference over whole signals: windows → conditioning → guided Euler → decode → LFR → crossfade.

    Args:
        model: a SAGA-SR ``ConditionedDiffusionModelWrapper`` (backbone type ``dit_concat``) in eval mode.
        model_config: its config (``sample_rate``, ``sample_size``, ``audio_channels``).
        options: ``SROptions``.
        captions: a ``CaptionSource`` (``make_caption_source``).
    """

    def __init__(self, model, model_config: dict, options: SROptions, captions: CaptionSource,
                 progress: bool | None = None):
        self.model, self.options, self.captions = model, options, captions
        self.progress = progress  # tqdm bars: None = only on a terminal
        self.sample_rate = int(model_config["sample_rate"])
        self.model_channels = int(model_config.get("audio_channels", 2))
        if self.model_channels not in (1, 2):
            raise ValueError(f"audio_channels {self.model_channels}: super-resolution supports mono or stereo models")
        ratio = model.pretransform.downsampling_ratio if model.pretransform is not None else 1
        multiple = math.lcm(int(model.min_input_length or 1),
                            int(ratio * getattr(model.model, "length_multiple", 1)))
        self.window = int(options.window or model_config["sample_size"])
        if self.window <= 0 or self.window % multiple:
            raise ValueError(f"window {self.window} samples must be a positive multiple of {multiple} "
                             "(pretransform ratio x backbone length multiple)")
        self.latent_frames = self.window // ratio
        if options.overlap_seconds is None:
            self.overlap = min(int(round(DEFAULT_OVERLAP_SECONDS * self.sample_rate)), self.window // 4)
        else:
            self.overlap = int(round(options.overlap_seconds * self.sample_rate))
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"--overlap {options.overlap_seconds} s must be >= 0 and shorter than the window "
                             f"({self.window / self.sample_rate:.3f} s)")
        if options.crossfade not in ("equal_power", "linear"):
            raise ValueError(f"crossfade {options.crossfade!r}: use 'equal_power' or 'linear'")
        if options.batch_windows < 1:
            raise ValueError("--batch-windows must be >= 1")
        if not 0.0 <= options.target_rolloff < 1.0:
            raise ValueError(f"target roll-off {options.target_rolloff} must lie in [0, 1)")
        self.timesteps = linear_quadratic_schedule(options.steps, options.reference_steps)
        self.guidance: Guidance = saga_sr_guidance(options.cfg_acoustic, options.cfg_text,
                                                   text=not isinstance(captions, NullText))
        self.device = next(model.parameters()).device

    # -- one batch of windows --------------------------------------------------------------------------
    def window_metadata(self, lr: torch.Tensor, valid: int, caption: str, target_rolloff: float) -> dict:
        """The metadata dict of one window: the conditioning keys (and padding mask) a training item of the SR
        dataset has, with the same types and shapes (``data.sr_dataset``; it adds bookkeeping keys like path).

        lr (model channels, window) at the model rate; ``valid`` real samples, the rest zero padding.
        """
        mask = torch.zeros(self.window, dtype=torch.bool)
        mask[:valid] = True
        return {"prompt": caption, "lr_audio": lr, "rolloff_in": float(spectral_rolloff(lr)),
                "rolloff_target": float(target_rolloff), "padding_mask": mask}

    def model_channels_of(self, lr: torch.Tensor) -> torch.Tensor:
        """(b, c, n) at the input's channel count → the model's (mono input becomes dual-mono)."""
        if lr.shape[1] == self.model_channels:
            return lr
        if lr.shape[1] == 1:
            return lr.expand(-1, self.model_channels, -1).contiguous()
        raise ValueError(f"{lr.shape[1]}-channel input for a {self.model_channels}-channel model")

    @torch.no_grad()
    def run_windows(self, lr: torch.Tensor, valid: tp.Sequence[int], indices: tp.Sequence[int],
                    captions: tp.Sequence[str],
                    target_rolloff: float | None = None) -> tuple[torch.Tensor, list[float]]:
        """Super-resolve a batch of LR windows.

        Args:
            lr: (b, c, window) float32 LR windows at the model rate, c = 1 or 2 (the input's channels).
            valid: real samples per window (the rest is padding); indices: window numbers (noise seeds).
        Returns:
            ((b, c, window) float32 on the CPU, the measured input roll-offs f_l).
        """
        b, c, n = lr.shape
        assert n == self.window, f"LR windows must be {self.window} samples, got {n}"
        targets = [self.target_for(lr[i, :, :valid[i]], target_rolloff) for i in range(b)]
        lr_model = self.model_channels_of(lr)
        metadata = [self.window_metadata(lr_model[i], valid[i], captions[i], targets[i]) for i in range(b)]
        inputs = conditioning_inputs(self.model, metadata, self.device)
        noise = torch.stack([
            torch.randn((self.model.io_channels, self.latent_frames),
                        generator=torch.Generator().manual_seed(window_seed(self.options.seed, i)))
            for i in indices])
        latents = generate_latents(self.model, inputs, tuple(noise.shape), self.timesteps, guidance=self.guidance,
                                   noise=noise)
        audio = require_finite(decode(self.model, latents)[..., :n].float().cpu(),
                               f"window(s) {', '.join(str(i) for i in indices)}")
        assert audio.shape == (b, self.model_channels, n), f"decoded audio {tuple(audio.shape)}"
        if c != self.model_channels:
            audio = audio.mean(dim=1, keepdim=True)
        if self.options.lfr:
            audio = low_frequency_replacement(audio, lr, channels=self.options.lfr_channels)
        return audio, [md["rolloff_in"] for md in metadata], targets

    def target_for(self, lr: torch.Tensor, target_rolloff: float | None) -> float:
        """The target roll-off of one LR window (c, valid samples): ``target_rolloff`` when given, else the
        predictor's answer for this window when there is one, else ``options.target_rolloff``."""
        if target_rolloff is not None:
            return float(target_rolloff)
        if self.options.rolloff_predictor is not None:
            return self.options.rolloff_predictor(lr, self.sample_rate)
        return self.options.target_rolloff

    # -- whole signals ---------------------------------------------------------------------------------
    def process_stream(self, blocks: tp.Iterable[np.ndarray], sr_in: int, channels: int, frames: int,
                       sink: tp.Callable[[torch.Tensor], None], path: Path | None = None,
                       target_rolloff: float | None = None, label: str = "",
                       progress: WindowProgress | None = None) -> Report:
        """Super-resolve a block stream (c, n) at ``sr_in`` of ``frames`` samples; the output at the model
        rate, ``resampled_length(frames)`` samples, goes to ``sink`` in order, (c, m) tensors. ``progress(done,
        total)`` is called with the number of windows finished after each batch of windows."""
        from tqdm import tqdm

        start_time = time.time()
        total = resampled_length(frames, sr_in, self.sample_rate)
        stream = ResampledStream(blocks, sr_in, self.sample_rate, channels, total)
        ola = StreamingOverlapAdd(channels, total, self.window, sink, self.options.crossfade)
        starts = plan_windows(total, self.window, self.overlap)
        report = Report(windows=len(starts), seconds=frames / sr_in)
        bar = tqdm(total=len(starts), desc=label or "windows", unit="win", leave=False,
                   disable=None if self.progress is None else not self.progress)
        size = self.options.batch_windows
        for first in range(0, len(starts), size):
            batch = list(range(first, min(first + size, len(starts))))
            lr_np = np.stack([stream.window(starts[i], starts[i] + self.window) for i in batch])
            lr = torch.from_numpy(lr_np)
            valid = [min(self.window, total - starts[i]) for i in batch]
            out = lr.clone()  # silent windows pass through as they came in
            active = [j for j in range(len(batch)) if float(lr[j].abs().max()) >= 10 ** (SILENCE_DBFS / 20)]
            report.silent_windows += len(batch) - len(active)
            if active:
                spans = [(starts[batch[j]] / self.sample_rate, (starts[batch[j]] + valid[j]) / self.sample_rate,
                          lr[j, :, :valid[j]]) for j in active]
                captions = self.captions(path, spans)
                sampled, rolloffs, targets = self.run_windows(lr[active], [valid[j] for j in active],
                                                              [batch[j] for j in active], captions, target_rolloff)
                out[active] = sampled
                report.rolloff_in += rolloffs
                report.rolloff_target += targets
            for j, i in enumerate(batch):
                ola.add(starts[i], out[j])
            bar.update(len(batch))
            if progress is not None:
                progress(batch[-1] + 1, len(starts))
        bar.close()
        ola.finish()
        report.elapsed = time.time() - start_time
        return report

    def super_resolve_array(self, audio: np.ndarray, sr: int, path: Path | None = None,
                            target_rolloff: float | None = None,
                            progress: WindowProgress | None = None) -> tuple[np.ndarray, Report]:
        """In-memory API: (c, n) float32 at ``sr`` → ((c, m) float32 at the model rate, report). No
        full-band passthrough (the caller decides)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        check_signal(audio.shape[0], sr, audio.shape[-1], path or "array")
        total = resampled_length(audio.shape[-1], sr, self.sample_rate)
        out = np.zeros((audio.shape[0], total), dtype=np.float32)
        position = [0]

        def sink(chunk: torch.Tensor) -> None:
            out[:, position[0]:position[0] + chunk.shape[-1]] = chunk.numpy()
            position[0] += chunk.shape[-1]

        report = self.process_stream(array_blocks(audio), sr, audio.shape[0], audio.shape[-1], sink, path,
                                     target_rolloff, progress=progress)
        return out, report

    def super_resolve_file(self, path: str | os.PathLike, out_path: str | os.PathLike,
                           subtype: str = "PCM_24", progress: WindowProgress | None = None) -> Report:
        """Read ``path``, write the super-resolved (or, if full-band, resampled) audio to ``out_path``
        atomically. Raises ``AudioError`` (or a caption/config error) naming the file; nothing is written then.
        ``progress`` as in ``process_stream`` (not called for full-band input, which is passed through)."""
        import soundfile as sf

        from ..checkpoints import atomic_write

        path, out_path = Path(path), Path(out_path)
        sr, channels, frames = audio_info(path)
        check_wav_length(path)
        check_signal(channels, sr, frames, path)
        full_band, high_band = False, None
        if not self.options.process_full_band:
            full_band, high_band = detect_full_band(path, sr, frames, self.window)
        fmt = out_path.suffix.lstrip(".").upper() or "WAV"
        report: list[Report] = []
        limiter = OutputLimiter(subtype)

        def write(tmp: str) -> None:
            with sf.SoundFile(tmp, "w", samplerate=self.sample_rate, channels=channels, subtype=subtype,
                              format=fmt) as f:
                def sink(chunk: torch.Tensor) -> None:
                    f.write(limiter(chunk.numpy().T))

                if full_band:
                    report.append(self.pass_through(path, sr, channels, frames, sink, high_band))
                else:
                    report.append(self.process_stream(file_blocks(path), sr, channels, frames, sink, path,
                                                      label=path.name, progress=progress))

        atomic_write(out_path, write)
        report[0].clipping = limiter.report()
        return report[0]

    def pass_through(self, path: Path, sr: int, channels: int, frames: int,
                     sink: tp.Callable[[torch.Tensor], None], high_band_db: float | None) -> Report:
        """Full-band input: the resampled input itself, streamed to ``sink``."""
        total = resampled_length(frames, sr, self.sample_rate)
        stream = ResampledStream(file_blocks(path), sr, self.sample_rate, channels, total)
        for start in range(0, total, READ_BLOCK):
            sink(torch.from_numpy(stream.window(start, min(total, start + READ_BLOCK))))
        return Report(seconds=frames / sr, full_band=True, high_band_db=high_band_db)


# -- input checks -----------------------------------------------------------------------------------------
def check_signal(channels: int, sr: int, frames: int, path: tp.Any) -> None:
    """Raise ``AudioError`` naming ``path`` for input this mode cannot take."""
    if frames <= 0:
        raise AudioError(f"{path}: has no samples (zero-length audio)")
    if not MIN_INPUT_RATE <= sr <= MAX_INPUT_RATE:
        raise AudioError(f"{path}: sample rate {sr} Hz is outside the supported {MIN_INPUT_RATE}–{MAX_INPUT_RATE} Hz")
    if channels not in (1, 2):
        raise AudioError(f"{path}: has {channels} channels; only mono and stereo are supported "
                         "(downmix or split the file first)")


def detect_full_band(path: Path, sr: int, frames: int, window: int,
                     excerpts: int = FULL_BAND_EXCERPTS) -> tuple[bool, float | None]:
    """(full-band?, median high-band power fraction in dB) from up to ``excerpts`` evenly spaced excerpts of
    one window each, so memory stays one window. Full-band when most non-silent excerpts are
    (``dsp.lfr.is_full_band``: enough power above 19 kHz; never below 38 kHz input rate)."""
    length = min(frames, int(math.ceil(window * sr / 44_100)))
    offsets = sorted({int(o) for o in np.linspace(0, max(0, frames - length), excerpts)})
    votes, fractions = [], []
    for offset in offsets:
        audio, _ = read_audio(path, frames=length, start=offset)
        if not np.any(audio):
            continue
        votes.append(bool(is_full_band(audio, sr)))
        fractions.append(float(high_band_fraction_db(audio, sr)))
    if not votes:
        return False, None
    return sum(votes) * 2 > len(votes), float(np.median(fractions))


# -- inputs and outputs -----------------------------------------------------------------------------------
def collect_inputs(specs: tp.Sequence[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Inputs → ([(audio file, output path relative to --output)], [(input, error)]).

    A spec is a file, a directory (searched recursively; the output keeps the relative layout) or a
    ``.txt`` list of paths (one per line, ``#`` comments, relative to the list's folder). Outputs are
    ``.wav``; two inputs that would share an output name get their extension appended (``a_mp3.wav``).
    """
    jobs: list[tuple[Path, Path]] = []
    errors: list[tuple[str, str]] = []

    def add_file(path: Path, rel: Path) -> None:
        jobs.append((path, rel.with_suffix(".wav")))

    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            files = list_audio_files(p)
            if not files:
                errors.append((spec, f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under this directory"))
            for f in files:
                add_file(f, f.relative_to(p))
        elif p.suffix.lower() == ".txt" and p.is_file():
            for line_no, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                entry = Path(line).expanduser()
                entry = entry if entry.is_absolute() else p.parent / entry
                if entry.is_file():
                    add_file(entry, Path(entry.name))
                else:
                    errors.append((f"{entry} ({p}:{line_no})", "no such file"))
        elif p.is_file():
            add_file(p, Path(p.name))
        else:
            errors.append((spec, "no such file or directory"))
    seen: dict[Path, Path] = {}
    sources: set[Path] = set()
    unique = []
    for path, rel in jobs:
        if path.resolve() in sources:
            continue  # the same file named twice: processed once, under its first name
        sources.add(path.resolve())
        if rel in seen:
            rel = rel.with_name(f"{path.stem}_{path.suffix.lstrip('.')}.wav")
            if rel in seen:
                errors.append((str(path), f"output name {rel} is already taken by {seen[rel]}"))
                continue
        seen[rel] = path
        unique.append((path, rel))
    return unique, errors


def add_argument_once(group, *flags: str, **kwargs) -> None:
    """Add an option unless another mode already defined it on the shared parser (same meaning assumed)."""
    existing = getattr(group, "_option_string_actions", {})
    if any(flag in existing for flag in flags):
        return
    group.add_argument(*flags, **kwargs)


def add_guidance_arguments(group) -> None:
    """The sampling flags shared by ``sample.py`` and ``python -m saga_hsmad.evaluation.sr_eval``."""
    add_argument_once(group, "--cfg-acoustic", type=flags.guidance, default=1.4,
                      help="s_a, guidance on the LR latent (paper eq. 4; default 1.4)")
    add_argument_once(group, "--cfg-text", type=flags.guidance, default=1.2,
                      help="s_t, guidance on the caption (paper eq. 4; default 1.2; no effect without a caption)")
    add_argument_once(group, "--reference-steps", type=flags.reference_steps, default=1000,
                      help="reference length of the linear half of the linear-quadratic schedule (1000)")
    add_argument_once(group, "--target-rolloff", type=flags.rolloff, default=None,
                      help="normalised target roll-off f_h in [0, 1) (default: the value stored with the model)")
    add_argument_once(group, "--caption", default=None,
                      help="caption used for every window (none of --caption, --caption-store, --captioner-dir: "
                           "the null text condition)")
    add_argument_once(group, "--caption-store", default=None,
                      help="caption store looked up per file and window: a JSON/CSV file (python -m "
                           "saga_hsmad.cli.caption) or 'sidecar' (<stem>.txt / <stem>.json next to each input)")
    add_argument_once(group, "--captioner-dir", default=None,
                      help="local Qwen2-Audio-7B directory: caption each LR window (slow)")
    add_argument_once(group, "--no-lfr", action="store_true", help="skip low-frequency replacement")
    add_argument_once(group, "--lfr-channels", choices=["each", "mix"], default="each",
                      help="low-frequency replacement per channel (each, the official code) or with one cutoff "
                           "and energy ratio from the channel mix (mix)")
    add_argument_once(group, "--overlap", type=flags.overlap_seconds, default=None,
                      help="window overlap in seconds (default 0.5, at most a quarter of the window)")
    add_argument_once(group, "--crossfade", choices=["equal_power", "linear"], default="equal_power",
                      help="crossfade curve in window overlaps")
    add_argument_once(group, "--batch-windows", type=flags.batch_windows, default=1,
                      help="windows sampled together (x3 guidance branches per forward)")
    add_argument_once(group, "--window", type=flags.window, default=None,
                      help="window length in samples at 44.1 kHz (default: the model's sample_size, "
                           "262144 = 5.944 s for the paper config)")
    add_argument_once(group, "--no-rolloff-predictor", action="store_true",
                      help="use the one stored target roll-off even when the model config stores a per-window "
                           "predictor (sampling.target_rolloff_predictor)")


def resolve_rolloff_predictor(model_config: dict, requested: float | None,
                              disabled: bool = False) -> RolloffPredictor | None:
    """The stored per-window predictor of the target roll-off, unless a target is given or it is disabled."""
    stored = model_config.get("sampling", {}).get("target_rolloff_predictor")
    if requested is not None or disabled or stored is None:
        return None
    return RolloffPredictor.from_config(stored, "model config sampling.target_rolloff_predictor")


def describe_target(options: SROptions, source: str) -> str:
    """How the target roll-off is chosen, for the run's first line and reports."""
    predictor = options.rolloff_predictor
    if predictor is None:
        return f"{options.target_rolloff:.3f} ({source})"
    return (f"predicted per window from the LR input (sampling.target_rolloff_predictor: {predictor.k}-nearest "
            f"neighbours among {len(predictor.targets)} training windows; {predictor.source})")


def options_from_args(args, model_config: dict) -> tuple[SROptions, str]:
    target, source = resolve_target_rolloff(model_config, getattr(args, "target_rolloff", None))
    predictor = resolve_rolloff_predictor(model_config, getattr(args, "target_rolloff", None),
                                          getattr(args, "no_rolloff_predictor", False))
    options = SROptions(rolloff_predictor=predictor, steps=args.steps or 100, reference_steps=args.reference_steps,
                        cfg_acoustic=args.cfg_acoustic, cfg_text=args.cfg_text, target_rolloff=target,
                        lfr=not args.no_lfr, lfr_channels=args.lfr_channels, window=args.window,
                        overlap_seconds=args.overlap,
                        crossfade=args.crossfade, batch_windows=args.batch_windows, seed=args.seed,
                        process_full_band=getattr(args, "process_full_band", False))
    return options, source


class SuperResolutionMode:
    name = "super_resolution"

    def matches(self, model_config: dict) -> bool:
        return diffusion_type(model_config) == "dit_concat"

    def add_arguments(self, group) -> None:
        add_argument_once(group, "--input", action="append", default=[], metavar="FILE_OR_DIR_OR_LIST",
                          help="audio file, directory (recursive) or .txt list of paths; repeatable")
        add_guidance_arguments(group)
        add_argument_once(group, "--process-full-band", action="store_true",
                          help="run the model on input that is already full-band (default: pass it through)")
        add_argument_once(group, "--subtype", choices=OUTPUT_SUBTYPES, default="PCM_24",
                          help="output WAV sample format (PCM_24)")

    def run(self, args, model, model_config: dict, info: dict) -> int:
        from tqdm import tqdm

        specs = args.input if isinstance(args.input, list) else [args.input] if args.input else []
        if not specs:
            print("ERROR: give at least one --input (file, directory or .txt list)", file=sys.stderr)
            return 2
        try:
            options, source = options_from_args(args, model_config)
            captions = make_caption_source(model, model_config, args.caption, args.caption_store,
                                           args.captioner_dir, device=str(next(model.parameters()).device))
            resolver = SuperResolver(model, model_config, options, captions)
        except (ValueError, AssertionError, OSError) as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 2
        print(f"super-resolution: {options.steps} Euler steps (linear-quadratic, reference {options.reference_steps}), "
              f"s_a {options.cfg_acoustic}, s_t {'unused' if isinstance(captions, NullText) else options.cfg_text}, "
              f"target roll-off {describe_target(options, source)}, "
              f"captions: {captions.description}, LFR {'on' if options.lfr else 'off'}, window "
              f"{resolver.window} samples ({resolver.window / resolver.sample_rate:.3f} s), overlap "
              f"{resolver.overlap} samples, {options.crossfade} crossfade, seed {options.seed}")
        jobs, errors = collect_inputs(specs)
        for spec, message in errors:
            print(f"ERROR {spec}: {message}", file=sys.stderr)
        out_root = Path(args.output)
        remove_stale_partials(out_root / rel for _, rel in jobs)
        written = skipped = 0
        failed = len(errors)
        for path, rel in tqdm(jobs, desc="files", unit="file", disable=None):
            out_path = out_root / rel
            if out_path.exists() and not args.overwrite:
                print(f"{out_path} exists; skipped (use --overwrite to replace it)")
                skipped += 1
                continue
            try:
                report = resolver.super_resolve_file(path, out_path, subtype=args.subtype)
            except KeyboardInterrupt:
                raise
            except AudioError as e:
                print(f"ERROR {e}", file=sys.stderr)
                failed += 1
                continue
            except NonFiniteOutput as e:
                print(f"ERROR {path}: {e}", file=sys.stderr)
                failed += 1
                continue
            except Exception as e:  # one bad file must not stop the others
                print(f"ERROR {path}: {type(e).__name__}: {e}", file=sys.stderr)
                failed += 1
                continue
            written += 1
            print(f"{path} -> {out_path}: {report.summary()}")
            if report.clipping:
                print(f"WARNING {out_path}: {report.clipping}", file=sys.stderr)
        print(f"super-resolution: {written} written, {skipped} skipped (exist), {failed} failed")
        return 1 if failed else 0


MODE = SuperResolutionMode()
