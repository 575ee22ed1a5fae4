"""``sample.py`` mode ``midi``: MIDI (+ a style text) → audio with an HS-MAD model (spec §6).

    python sample.py --ckpt runs/hsmad/export.safetensors --midi song.mid --midi pieces/ --output out/ \
        [--style "Classical Piano Performance"] [--w-structure 2.0] [--w-style 1.5] [--steps 50] [--temperature 1.0]

Per MIDI file (``.mid``/``.midi``; a directory is searched recursively and its layout kept) →
``OUTPUT/<name>.wav`` at the model's rate (44.1 kHz) with the model's channels:

1. The MIDI is read by the structure conditioner's own settings (``StructureRender.read_midi``: sustain pedal,
   drums) — the reader the training datasets use.
2. Length: the output lasts ``max(end of the MIDI file, last note end + --release)`` seconds, where note ends
   include sustain-pedal extension and the end of the file is its last event (end of track), so trailing
   silence written into the MIDI is kept; ``--release`` (default 0.5 s, at most ``MAX_RELEASE_SECONDS`` = 10 s)
   leaves the last notes room to decay.
3. The latent sequence of that length (n = ceil(samples / R_VAE) frames) is covered by windows of the training
   length (``sample_size``; T_H frames) overlapping by ``--window-overlap`` seconds (default: a quarter
   window), placed by ``windowing.plan_windows``. A piece shorter than one window is one window whose frames
   past the end are padding (structure mask 0), exactly as a short file is in training.
4. Per window, the metadata a training item carries — ``{<midi id>: ScoreWindow(window of the score), <style
   id>: text, "padding_mask": ...}``, cut by ``StructureRender.window`` (the datasets' cutter) — goes through
   ``generate.conditioning_inputs``, the call the training step makes. The structure of every window is
   known before sampling starts.
5. Sampling: Euler steps on a linear t schedule (1 → 0, ``--steps``, default 50; the rectified-flow ODE is
   nearly straight, and the model was trained with logit-normal t, which a uniform grid covers), with
   decoupled guidance (``guidance.decoupled_guidance``):
       v = v(∅_H, ∅_S) + w_H [v(C_H, ∅_S) − v(∅_H, ∅_S)] + w_S [v(∅_H, C_S) − v(∅_H, ∅_S)]
   The piece is sampled in **groups** of ``--group-windows`` consecutive windows (default 8), one group after
   the other, so memory and time per sampler step are those of one group whatever the piece's length.
   Within a group all windows are denoised together as one sequence (MultiDiffusion, Bar-Tal et al. 2023):
   each step evaluates every window on its crop of the group's latent and the window velocities are fused
   with linear crossfade weights over the overlaps (weights sum to 1 at every frame), so neighbouring windows
   cannot drift apart and the latent has no seam. The three branches of ``--batch-windows`` windows
   (default 1) are ONE batched forward (``GuidedVelocity``, built once per batch of a group for all its
   steps: the repeated conditioning, the branch null masks and the symbolic encoder's output per branch,
   which depends on the conditioning only, are computed once, not per step; for the paper model about
   40 MB per window in float32, for one group at a time). The noise of the first group (of the whole
   piece, when it fits one group) is drawn from ``--seed``; a later group reuses the previous group's noise
   on the frames they share and draws its new frames from (seed, group index), so the result does not
   depend on ``--batch-windows``. ``--temperature`` τ scales that noise: the ODE starts from τ·ε instead of ε
   (τ = 1 samples the learned distribution; τ < 1 starts nearer its centre, as flow-based TTS samplers such as
   Glow-TTS and Matcha-TTS do, trading variety for fewer stray components; the scaling is applied after the
   noise is drawn, so groups still share their overlap's noise).
6. Each window's latent crop is decoded and the audio windows are joined with ``windowing.OverlapAdd``'s
   crossfade (``--crossfade``: correlation-corrected equal power, or linear) in a one-window buffer that
   streams finished audio to the output file (``streaming.StreamingOverlapAdd``, as super-resolution does).
   Within a group the crops come from one latent, so the overlapping audio agrees and the fade only hides
   the decoder's edge effects; between groups (sampled separately from the same noise and score on the
   shared frames) the crossfade joins two renditions of the overlap, as between super-resolution windows.

Defaults of ``--style``, ``--w-structure``, ``--w-style``, ``--steps`` and ``--temperature`` come from the model
config's ``sampling`` section when it has them (``style``, ``w_structure``, ``w_style``, ``steps``,
``temperature``), else 2.0 / 1.5 / 50 / 1.0.
w_H = w_S = 1 is the plain composition v(C_H) + v(C_S) − v(∅); larger weights extrapolate further along each
condition (stricter score following for w_H, stronger timbre for w_S); w_H = w_S = 0 is unconditional.
Style text per file, first that applies: ``--style``; a same-stem ``.json`` next to the MIDI with a
``"style"`` key (the midi_audio_folder layout); ``sampling.style`` of the model config; else that file fails.

Errors: a bad file (unreadable MIDI, no style text, empty piece) prints ``ERROR <file>: <reason>``; the other
files are still processed and the exit status is 1. A MIDI file read with repairs (a skipped tempo 0, capped
unclosed notes: ``symbolic.midi``) prints ``WARNING <file>: <what was done>`` and is rendered. Outputs are
written atomically (a model output with NaN or Inf samples is an error and leaves no file); existing
outputs are kept unless ``--overwrite``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import typing as tp
import warnings
from pathlib import Path

import numpy as np
import torch

from ..audio_io import OutputLimiter
from ..conditioners.hierarchical_midi import ScoreWindow, StructureRender
from ..symbolic.midi import MidiError, MidiWarning, Score
from . import flags
from .generate import conditioning_inputs, decode, linear_schedule
from .guidance import Guidance, GuidedVelocity, decoupled_guidance
from .interrupts import remove_stale_partials
from .modes import diffusion_type
from .sampler import sample_euler
from .streaming import StreamingOverlapAdd
from .super_resolution import window_seed
from .windowing import Curve, OverlapAdd, plan_windows

MIDI_EXTENSIONS = (".mid", ".midi")
DEFAULTS = {"w_structure": 2.0, "w_style": 1.5, "steps": 50, "temperature": 1.0}
OUTPUT_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
MAX_RELEASE_SECONDS = 10.0  # --release beyond this is a typo (1e5 s asked for a day of audio)


@dataclasses.dataclass(frozen=True)
class MidiToAudioOptions:
    """Sampling settings (the CLI flags)."""

    steps: int = 50
    w_structure: float = 2.0
    w_style: float = 1.5
    window_overlap: float | None = None  # seconds; None = a quarter of the training window
    crossfade: Curve = "equal_power"
    release: float = 0.5
    batch_windows: int = 1
    group_windows: int = 8  # windows fused on one latent; a longer piece is sampled group by group
    seed: int = 0
    temperature: float = 1.0  # the ODE starts from temperature × the drawn noise (module docstring, point 5)
    cache_conditioning: bool = True  # False recomputes the symbolic encoder every step (same output; for checks)


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one piece lie, in latent frames (all windows are ``window`` frames long)."""

    samples: int            # output length in samples
    frames: int             # latent frames sampled (≥ window; = window for a piece shorter than one)
    window: int             # T_H
    starts: tuple[int, ...]  # window starts in frames, increasing
    ratio: int              # R_VAE
    sample_rate: int
    offset: int = 0         # frames: where this plan's frame 0 lies in the piece (a group of a longer plan)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def groups(self, size: int) -> list["WindowPlan"]:
        """Consecutive runs of ``size`` windows, each a plan in its own frames (``offset`` = its first window's
        start); a plan of at most ``size`` windows is its own only group."""
        if len(self.starts) <= size:
            return [self]
        groups = []
        for i in range(0, len(self.starts), size):
            starts = self.starts[i:i + size]
            first = starts[0]
            frames = starts[-1] + self.window - first
            samples = min(frames * self.ratio, self.samples - first * self.ratio)
            groups.append(WindowPlan(samples, frames, self.window, tuple(s - first for s in starts), self.ratio,
                                     self.sample_rate, self.offset + first))
        return groups

    def fusion_weights(self) -> list[torch.Tensor]:
        """Per window (window,) weights: 1 inside, linear ramps over the overlaps with the previous and next
        window (so two overlapping windows' weights sum to exactly 1), never 0."""
        weights = []
        frames = torch.arange(self.window, dtype=torch.float64) + 0.5
        for i, start in enumerate(self.starts):
            w = torch.ones(self.window, dtype=torch.float64)
            if i > 0:
                ramp = self.starts[i - 1] + self.window - start
                if ramp > 0:
                    w = torch.minimum(w, frames / ramp)
            if i + 1 < len(self.starts):
                ramp = start + self.window - self.starts[i + 1]
                if ramp > 0:
                    w = torch.minimum(w, (self.window - frames) / ramp)
            weights.append(w)
        return weights


def check_release(release: float) -> float:
    """``release`` if it is a number of seconds in [0, MAX_RELEASE_SECONDS], else ValueError."""
    if not (math.isfinite(release) and 0.0 <= release <= MAX_RELEASE_SECONDS):
        raise ValueError(f"--release {release} s must be a number of seconds between 0 and {MAX_RELEASE_SECONDS:g} s "
                         "(the time the last notes get to decay)")
    return float(release)


def piece_seconds(score: Score, release: float) -> float:
    """Output length: max(end of the MIDI file, last note end + release) (module docstring, point 2)."""
    check_release(release)
    last_note = float(score.notes.end.max()) if len(score.notes) else 0.0
    return max(float(score.end_time), last_note + release if len(score.notes) else 0.0)


def _ids(model_config: dict) -> tuple[str, str | None]:
    """(structure conditioner id, style conditioner id or None) from the model config's routing."""
    model = model_config["model"]
    items = model.get("conditioning", {}).get("configs", [])
    diffusion = model["diffusion"]
    structure = [c["id"] for c in items if c["type"] == "hierarchical_midi" and
                 c["id"] in diffusion.get("input_concat_ids", [])]
    if len(structure) != 1:
        raise ValueError("midi mode: the model needs exactly one hierarchical_midi conditioner routed through "
                         f"input_concat_ids, found {structure}")
    style = [i for i in diffusion.get("global_cond_ids", []) if i != structure[0]]
    if len(style) > 1:
        raise ValueError(f"midi mode: more than one style condition routed through global_cond_ids: {style}")
    return structure[0], (style[0] if style else None)


class MidiToAudio:
    """An HS-MAD model wrapped for long-form MIDI-to-audio generation (module docstring)."""

    def __init__(self, model, model_config: dict, options: MidiToAudioOptions = MidiToAudioOptions()):
        self.model, self.config, self.options = model, model_config, options
        self.structure_id, self.style_id = _ids(model_config)
        conditioner = model.conditioner.conditioners[self.structure_id]
        self.spec: StructureRender = conditioner.spec()
        self.sample_rate = int(model_config["sample_rate"])
        self.ratio = int(model.pretransform.downsampling_ratio) if model.pretransform is not None else 1
        sample_size = int(model_config["sample_size"])
        if sample_size % self.ratio:
            raise ValueError(f"sample_size {sample_size} is not a multiple of the pretransform ratio {self.ratio}")
        self.window = sample_size // self.ratio
        # latent frames before a window that its decode needs to be exact: 1 for a lapped transform (mdct: each
        # block also receives the tail of the frame before it; a crop decoded alone wraps its last frame's tail
        # round onto its first block), 0 for frame-local decoders (patch)
        self.context = int(getattr(model.pretransform, "decode_context_frames", 0))
        self.window_seconds = self.window * self.ratio / self.sample_rate
        self.spec.check_window(self.window_seconds, "sample_size")
        overlap = options.window_overlap
        if overlap is not None and not math.isfinite(overlap):
            raise ValueError(f"--window-overlap {overlap} s must be a finite number of seconds")
        overlap_frames = self.window // 4 if overlap is None else int(round(overlap * self.sample_rate / self.ratio))
        if not 0 <= overlap_frames < self.window:
            raise ValueError(f"--window-overlap {overlap} s must be >= 0 and shorter than the training window "
                             f"({self.window_seconds:.3f} s)")
        self.overlap = overlap_frames
        if options.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {options.steps}")
        if options.batch_windows < 1:
            raise ValueError(f"--batch-windows must be >= 1, got {options.batch_windows}")
        if options.group_windows < 1:
            raise ValueError(f"--group-windows must be >= 1, got {options.group_windows}")
        for flag, value in (("--w-structure", options.w_structure), ("--w-style", options.w_style)):
            if not math.isfinite(value):
                raise ValueError(f"{flag} {value} must be a finite guidance weight")
        if not (math.isfinite(options.temperature) and options.temperature > 0):
            raise ValueError(f"--temperature {options.temperature} must be a finite number > 0 (1 = the drawn noise)")
        check_release(options.release)
        self.guidance: Guidance = decoupled_guidance(options.w_structure, options.w_style)

    # -- planning -----------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> Score:
        """The MIDI file, read as the training datasets read it."""
        return self.spec.read_midi(path)

    def plan(self, score: Score) -> WindowPlan:
        seconds = piece_seconds(score, self.options.release)
        if not seconds > 0:
            raise ValueError("the MIDI has no notes and no length; nothing to render")
        samples = int(math.ceil(seconds * self.sample_rate - 1e-9))
        frames = max(self.window, math.ceil(samples / self.ratio))
        starts = tuple(plan_windows(frames, self.window, self.overlap))
        return WindowPlan(samples, frames, self.window, starts, self.ratio, self.sample_rate)

    def window_metadata(self, score: Score, plan: WindowPlan, style: str | None) -> list[dict]:
        """Per window the metadata dict a training item carries (same keys as the datasets yield)."""
        duration = self.window_seconds
        metadata = []
        for start in plan.starts:
            t0 = (plan.offset + start) * self.ratio / self.sample_rate
            remaining = plan.seconds - start * self.ratio / self.sample_rate
            valid = None if remaining >= duration else remaining
            real = min(self.window * self.ratio, plan.samples - start * self.ratio)
            padding = torch.zeros(self.window * self.ratio, dtype=torch.bool)
            padding[:real] = True
            item = {self.structure_id: ScoreWindow(self.spec.window(score, t0, duration), duration, valid),
                    "padding_mask": padding}
            if self.style_id is not None:
                if style is None:
                    raise ValueError("no style text: give --style, a same-stem .json with a 'style' key, or "
                                     "sampling.style in the model config")
                item[self.style_id] = style
            metadata.append(item)
        return metadata

    # -- sampling -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_latents(self, metadata: tp.Sequence[dict], plan: WindowPlan,
                         callback: tp.Callable[[int, torch.Tensor], None] | None = None,
                         noise: torch.Tensor | None = None) -> torch.Tensor:
        """The fused latent (1, c, plan.frames) of the plan's windows (module docstring, point 5), from ``noise``
        (1, c, plan.frames), by default drawn from the seed."""
        model = self.model
        backbone = model.model
        param = next(backbone.parameters())
        device, dtype = param.device, param.dtype
        inputs = conditioning_inputs(model, metadata, device)
        inputs = {k: (v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                      if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
        conditions = tuple(getattr(backbone, "condition_names", ()))
        weights = [w.to(device=device, dtype=dtype) for w in plan.fusion_weights()]
        total = torch.zeros(plan.frames, device=device, dtype=dtype)
        for start, w in zip(plan.starts, weights):
            total[start:start + plan.window] += w
        chunks = [list(range(i, min(i + self.options.batch_windows, len(plan.starts))))
                  for i in range(0, len(plan.starts), self.options.batch_windows)]

        def take(value: tp.Any, index: list[int]) -> tp.Any:
            return value[index] if isinstance(value, torch.Tensor) else value

        # per window group, for this run only: the guided velocity with its conditioning work done once
        guided = [GuidedVelocity(backbone, {k: take(v, index) for k, v in inputs.items()}, self.guidance, conditions,
                                 len(index), device, cache_conditioning=self.options.cache_conditioning)
                  for index in chunks]

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            fused = torch.zeros_like(x)
            for index, chunk_velocity in zip(chunks, guided):
                crops = torch.cat([x[..., plan.starts[i]:plan.starts[i] + plan.window] for i in index])
                v = chunk_velocity(crops, t[:1].expand(len(index)))
                for j, i in enumerate(index):
                    fused[..., plan.starts[i]:plan.starts[i] + plan.window] += v[j:j + 1] * weights[i]
            return fused / total

        if noise is None:
            noise = self.group_noise(plan, 0, None)
        assert noise.shape == (1, int(model.io_channels), plan.frames), \
            f"noise {tuple(noise.shape)} for a plan of {plan.frames} frames"
        start = noise.to(device=device, dtype=dtype) * self.options.temperature
        return sample_euler(velocity, start, linear_schedule(self.options.steps),
                            callback=callback)

    def group_noise(self, group: WindowPlan, index: int,
                    previous: tuple[WindowPlan, torch.Tensor] | None) -> torch.Tensor:
        """(1, c, group.frames) initial noise of group ``index`` (module docstring, point 5): the first from the
        seed; a later one keeps ``previous`` = (previous group, its noise) on the frames both cover."""
        channels = int(self.model.io_channels)
        if previous is None:
            return torch.randn((1, channels, group.frames), generator=torch.Generator().manual_seed(self.options.seed))
        before, before_noise = previous
        shared = max(0, before.offset + before.frames - group.offset)
        fresh = torch.randn((1, channels, group.frames - shared),
                            generator=torch.Generator().manual_seed(window_seed(self.options.seed, index)))
        return torch.cat([before_noise[..., before.frames - shared:].cpu(), fresh], dim=-1)

    def decode_window(self, latents: torch.Tensor, start: int, before: torch.Tensor | None = None) -> torch.Tensor:
        """(channels, window·R) float32 audio of the window at frame ``start`` of ``latents`` (1, c, frames), decoded
        with ``self.context`` frames before it: from ``latents``, then from ``before`` (1, c, k) (the frames that
        precede ``latents``: the previous group's), else zeros (silence before the piece: mdct is linear)."""
        k = self.context
        crop = latents[..., max(0, start - k):start + self.window]
        missing = k - min(k, start)
        if missing:
            prefix = before[..., before.shape[-1] - missing:] if before is not None and before.shape[-1] >= missing \
                else torch.zeros_like(latents[..., :missing])
            crop = torch.cat([prefix.to(crop), crop], dim=-1)
        return decode(self.model, crop).float().cpu()[0][:, k * self.ratio:]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, plan: WindowPlan) -> np.ndarray:
        """Audio (channels, plan.samples) float32: each window's crop decoded (one at a time: a codec decoder
        at 44.1 kHz is memory-hungry; with ``decode_window``'s context), joined by ``OverlapAdd``."""
        out = None
        mixer = None
        for start in plan.starts:
            clip = self.decode_window(latents, start)  # (channels, W·R)
            if out is None:
                out = torch.zeros(clip.shape[0], plan.frames * plan.ratio)
                mixer = OverlapAdd(out, self.options.crossfade)
            mixer.add(start * plan.ratio, clip)
        return out[:, :plan.samples].numpy()

    @torch.no_grad()
    def stream(self, score: Score, style: str | None, sink: tp.Callable[[torch.Tensor], None],
               progress: tp.Callable[[int], None] | None = None) -> WindowPlan:
        """Render ``score`` group by group (module docstring, points 5 and 6); the audio reaches ``sink`` in order
        as (channels, n) float32 tensors, ``plan.samples`` in all. Memory: one group, one window of audio."""
        plan = self.plan(score)
        callback = None if progress is None else (lambda i, x: progress(i))
        mixer, previous, before = None, None, None
        for index, group in enumerate(plan.groups(self.options.group_windows)):
            noise = self.group_noise(group, index, previous)
            latents = self.generate_latents(self.window_metadata(score, group, style), group, callback, noise)
            if previous is not None:  # the previous group's frames before this group: decode context of its 1st window
                before = previous_latents[..., :group.offset - previous[0].offset]
            for start in group.starts:
                clip = self.decode_window(latents, start, before)  # (channels, W·R)
                if mixer is None:
                    mixer = StreamingOverlapAdd(clip.shape[0], plan.samples, plan.window * plan.ratio, sink,
                                                self.options.crossfade)
                mixer.add((group.offset + start) * plan.ratio, clip)
            previous, previous_latents = (group, noise), latents
        mixer.finish()
        return plan

    def render(self, score: Score, style: str | None, progress: tp.Callable[[int], None] | None = None
               ) -> tuple[np.ndarray, WindowPlan]:
        """(audio (channels, samples), plan) for a score, in memory (``render_file`` streams to disk)."""
        chunks: list[np.ndarray] = []
        plan = self.stream(score, style, lambda chunk: chunks.append(chunk.numpy()), progress)
        return np.concatenate(chunks, axis=-1), plan

    def render_file(self, score: Score, style: str | None, path: str | Path, subtype: str = "PCM_24",
                    progress: tp.Callable[[int], None] | None = None) -> tuple[WindowPlan, str | None]:
        """Render ``score`` into the WAV ``path`` atomically, streaming (memory does not grow with the piece).
        Returns (plan, ``audio_io.OutputLimiter.report()``: None unless samples would have clipped; a PCM subtype
        soft-limits them). A NaN or Inf sample raises ValueError and leaves no file."""
        import soundfile as sf

        from ..checkpoints import atomic_write

        limiter = OutputLimiter(subtype)
        plans: list[WindowPlan] = []

        def write(tmp: str) -> None:
            with sf.SoundFile(tmp, "w", samplerate=self.sample_rate, channels=int(self.config.get("audio_channels", 2)),
                              subtype=subtype, format="WAV") as f:
                def sink(chunk: torch.Tensor) -> None:
                    data = chunk.numpy().T
                    if not np.isfinite(data).all():
                        raise ValueError("the model produced NaN or Inf samples; nothing was written (check the "
                                         "checkpoint and the guidance weights)")
                    f.write(limiter(data))

                plans.append(self.stream(score, style, sink, progress))

        atomic_write(path, write)
        return plans[0], limiter.report()


# -- command line -----------------------------------------------------------------------------------------
def add_argument_once(group, *flags: str, **kwargs) -> None:
    """Add an option unless another mode already defined it on the shared parser (same meaning assumed)."""
    existing = getattr(group, "_option_string_actions", {})
    if not any(flag in existing for flag in flags):
        group.add_argument(*flags, **kwargs)


def collect_midi(specs: tp.Sequence[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """``--midi`` values → ([(MIDI file, output path relative to --output)], [(value, error)]). A directory is
    searched recursively and its layout kept; two inputs that would share an output name: the later fails."""
    jobs: list[tuple[Path, Path]] = []
    errors: list[tuple[str, str]] = []
    taken: dict[Path, Path] = {}
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in MIDI_EXTENSIONS and f.is_file())
            if not files:
                errors.append((spec, f"no MIDI files ({', '.join(MIDI_EXTENSIONS)}) under this directory"))
            pairs = [(f, f.relative_to(p).with_suffix(".wav")) for f in files]
        elif p.is_file():
            if p.suffix.lower() not in MIDI_EXTENSIONS:
                errors.append((spec, f"not a MIDI file (expected {', '.join(MIDI_EXTENSIONS)})"))
                continue
            pairs = [(p, Path(p.stem + ".wav"))]
        else:
            errors.append((spec, "no such file or directory"))
            continue
        for path, rel in pairs:
            if rel in taken and taken[rel].resolve() != path.resolve():
                errors.append((str(path), f"output name {rel} is already taken by {taken[rel]}"))
                continue
            if rel not in taken:
                taken[rel] = path
                jobs.append((path, rel))
    return jobs, errors


def style_for(path: Path, given: str | None, model_config: dict) -> str | None:
    """``--style`` > same-stem ``.json`` "style" > the config's ``sampling.style`` > None."""
    if given is not None:
        return given
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            value = json.loads(sidecar.read_text()).get("style")
        except (json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"{sidecar} is not a JSON object ({e})") from e
        if value is not None:
            return str(value)
    return model_config.get("sampling", {}).get("style")


def options_from_args(args, model_config: dict) -> MidiToAudioOptions:
    sampling = model_config.get("sampling", {})

    def pick(name: str, value):
        return value if value is not None else sampling.get(name, DEFAULTS[name])

    return MidiToAudioOptions(
        steps=int(pick("steps", args.steps)), w_structure=float(pick("w_structure", args.w_structure)),
        w_style=float(pick("w_style", args.w_style)), window_overlap=args.window_overlap,
        crossfade=args.crossfade, release=args.release, batch_windows=args.batch_windows,
        group_windows=getattr(args, "group_windows", MidiToAudioOptions.group_windows), seed=args.seed,
        temperature=float(pick("temperature", getattr(args, "temperature", None))))


class MidiToAudioMode:
    name = "midi"

    def matches(self, model_config: dict) -> bool:
        return diffusion_type(model_config) == "mrci_unet"

    def add_arguments(self, group) -> None:
        add_argument_once(group, "--midi", action="append", default=[], metavar="FILE_OR_DIR",
                          help="MIDI file (.mid/.midi) or directory (recursive); repeatable")
        add_argument_once(group, "--style", default=None,
                          help="style text for every file (default: same-stem .json 'style', else the model "
                               "config's sampling.style)")
        add_argument_once(group, "--w-structure", type=flags.guidance, default=None,
                          help="w_H, decoupled guidance on the MIDI structure (default: sampling.w_structure "
                               "of the model config, else 2.0)")
        add_argument_once(group, "--w-style", type=flags.guidance, default=None,
                          help="w_S, decoupled guidance on the style (default: sampling.w_style, else 1.5)")
        add_argument_once(group, "--temperature", type=flags.temperature, default=None,
                          help="scale of the initial noise, > 0: 1 samples the learned distribution, below 1 "
                               "starts nearer its centre (default: sampling.temperature, else 1.0)")
        add_argument_once(group, "--window-overlap", type=flags.overlap_seconds, default=None,
                          help="overlap of neighbouring windows in seconds (default: a quarter of the window)")
        add_argument_once(group, "--crossfade", choices=["equal_power", "linear"], default="equal_power",
                          help="crossfade curve in window overlaps")
        add_argument_once(group, "--release", type=float, default=0.5,
                          help="seconds after the last note end that the output keeps (default 0.5)")
        add_argument_once(group, "--batch-windows", type=int, default=1,
                          help="windows per forward (x3 guidance branches; default 1, memory-safe for 30 s "
                               "windows)")
        add_argument_once(group, "--group-windows", type=int, default=MidiToAudioOptions.group_windows,
                          help="windows sampled together on one latent (default 8); a longer piece is sampled "
                               "group by group, so memory and time per step do not grow with its length")
        add_argument_once(group, "--subtype", choices=OUTPUT_SUBTYPES, default="PCM_24",
                          help="output WAV sample format (PCM_24)")

    def run(self, args, model, model_config: dict, info: dict) -> int:
        from tqdm import tqdm

        specs = args.midi if isinstance(args.midi, list) else [args.midi] if args.midi else []
        if not specs:
            print("ERROR: give at least one --midi (file or directory)", file=sys.stderr)
            return 2
        try:
            renderer = MidiToAudio(model, model_config, options_from_args(args, model_config))
        except ValueError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 2
        o = renderer.options
        print(f"midi: {o.steps} Euler steps (linear t), w_H {o.w_structure}, w_S {o.w_style}, temperature "
              f"{o.temperature:g}, window "
              f"{renderer.window} latent frames ({renderer.window_seconds:.3f} s), overlap {renderer.overlap} frames "
              f"({renderer.overlap * renderer.ratio / renderer.sample_rate:.3f} s), {o.crossfade} crossfade, "
              f"release {o.release} s, seed {o.seed}"
              + ("" if renderer.style_id else "; this model has no style condition"))
        jobs, errors = collect_midi(specs)
        for spec, message in errors:
            print(f"ERROR {spec}: {message}", file=sys.stderr)
        out_root = Path(args.output)
        remove_stale_partials(out_root / rel for _, rel in jobs)
        failed = len(errors)
        for path, rel in jobs:
            target = out_root / rel
            if target.exists() and not args.overwrite:
                print(f"{target} exists; not overwritten (use --overwrite)")
                continue
            try:
                with warnings.catch_warnings(record=True) as repairs:
                    warnings.simplefilter("always", MidiWarning)
                    score = renderer.read(path)
                for repair in repairs:
                    print(f"WARNING {repair.message}", file=sys.stderr)
                style = style_for(path, args.style, model_config)
                groups = len(renderer.plan(score).groups(o.group_windows))
                with tqdm(total=o.steps * groups, desc=path.name, unit="step", leave=False) as bar:
                    plan, clipping = renderer.render_file(score, style, target, getattr(args, "subtype", "PCM_24"),
                                                         progress=lambda i: bar.update(1))
            except (MidiError, ValueError, OSError) as e:
                message = str(e)
                print(f"ERROR {message if message.startswith(str(path)) else f'{path}: {message}'}", file=sys.stderr)
                failed += 1
                continue
            print(f"wrote {target} ({plan.seconds:.2f} s, {len(plan.starts)} window(s) in {groups} group(s))")
            if clipping:
                print(f"WARNING {target}: {clipping}", file=sys.stderr)
        return 1 if failed else 0


MODE = MidiToAudioMode()
