"""HS-MAD's structure conditioner (type "hierarchical_midi"): a MIDI window → the packed structure input.

Implements the input side of HS-MAD spec §1–§3 (seed §2.2.1, "同步渲染模块", and §2.2.3). For each item it
produces ONE tensor for stable-audio-tools' ``input_concat`` route (``structure_packing`` explains why):

    S_sync (384, T_H)   SRM soft (or binary) piano roll at the latent frame rate SR_latent   (symbolic.srm)
    mask   (1, T_H)     1 on frames with real audio, 0 on padding
    labels (21, T_H)    auxiliary labels at the encoder's factors (symbolic.labels), training only

    SR_latent = sample_rate / R_VAE,  R_VAE = the MODEL's pretransform ``downsampling_ratio`` (spec §1),
    T_H = floor(duration × SR_latent), a multiple of R1·R2 (checked here, with the window that would fit).

The encoder (HSE) that reads this lives inside the MRCI U-Net; this conditioner owns no learned weights.

Rendering normally happens in the dataset workers (``data.midi_audio_dataset``), which call the same
``StructureRender.render`` and put ``{"structure": (C, T_H) tensor, "render": StructureRender.as_dict()}``
in the metadata under this conditioner's id. The conditioner checks that record against its own settings
(so a dataset rendered with other sigmas, another mode or another latent rate fails loudly instead of
training on a different representation). Per-item inputs it accepts:

    {"structure": (C, T_H), "render": {...}}   prerendered by a dataset; the record is checked
    (C, T_H) tensor                             prerendered, taken as is (C = 385 or 406)
    ScoreWindow(score, duration, valid_seconds) or {"score": Score, "duration": s[, "valid_seconds": s]}
                                                rendered here (inference: the sampler's MIDI windows)

Labels. With ``with_labels`` (default) the output always has the label block (C = 406): prerendered
items bring their labels; an item without labels gets zeros with zero masks (no auxiliary loss). Score
windows get derived labels only while the module is in training mode; in eval mode (sampling) their
label block is zero with zero masks, so the U-Net computes no auxiliary loss at inference.
``with_labels=false`` strips labels (C = 385).

The labels are ``derive_labels``' own (chroma normalised by ``chroma_norm``: "sum", a distribution, for the
HSE's default KL chroma loss, or "max", peak 1, for its BCE option; beat, downbeat and their masks at T_M;
per-T_L tempo and key with theirs, the key of the whole window: ``key_context=None``), packed by
``structure_packing.pack_structure``; every mask is also False on frames of padding.

Legend: b batch, C packed channels (385 without labels, 406 with), T_H latent frames, T_M = T_H / R1,
T_L = T_M / R2.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing as tp

import torch
from stable_audio_tools.models.conditioners import Conditioner

from ..models.structure_packing import SRM_CHANNELS, pack_structure, structure_channels
from ..registry import CONDITIONERS
from ..symbolic.labels import derive_labels
from ..symbolic.midi import Score, read_midi
from ..symbolic.srm import SRM, latent_frame_rate, num_frames

__all__ = ["StructureRender", "ScoreWindow", "HierarchicalMidiConditioner", "check_config", "check_dataset_config",
           "window_error"]

_RATE_TOL = 1e-9


def window_error(num_latent_frames: int, multiple: int, key: str, frame_rate: float | None = None) -> str | None:
    """The message for a latent window that is not a positive multiple of R1·R2 (None when it is)."""
    if num_latent_frames > 0 and num_latent_frames % multiple == 0:
        return None
    lo = max(num_latent_frames // multiple, 1) * multiple
    hi = lo + multiple if num_latent_frames > lo else lo
    seconds = "" if frame_rate is None else f" ({lo / frame_rate:.4f} s or {hi / frame_rate:.4f} s)"
    return (f"{key}: the window has T_H = {num_latent_frames} latent frames, not a positive multiple of R1·R2 = "
            f"{multiple}; choose a window of {lo} or {hi} latent frames{seconds}")


@dataclasses.dataclass(frozen=True)
class ScoreWindow:
    """A MIDI window to render: ``score`` in window time (``Score.window``), ``duration`` in seconds
    (T_H = floor(duration × SR_latent)); frames at or after ``valid_seconds`` are padding (None: none)."""

    score: Score
    duration: float
    valid_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class StructureRender:
    """How a MIDI window becomes the packed structure tensor; shared by the datasets and the conditioner.

    Fields (config keys of the conditioner and of a dataset's ``structure`` section):
        sample_rate, downsampling_ratio   SR_latent = sample_rate / downsampling_ratio (from the model)
        sigma_on, sigma_off   SRM Gaussian widths in seconds; None = 1 / (2 SR_latent) (spec §2)
        mode                  "soft" (spec §2) or "binary" (ablation: binary piano roll)
        drums                 "keep" drum notes in the roll (under their GM keys) or "drop" them
        factors               (R1, R2) of the encoder and U-Net
        with_labels           pack the auxiliary labels
        chroma_norm           "sum" (a distribution; KL chroma loss) or "max" (peak 1; BCE chroma loss)
        velocity_threshold    SRM: sustain value above which the velocity row is written
        sustain_pedal         MIDI reading: CC64 extends note ends
    """

    sample_rate: int
    downsampling_ratio: int
    sigma_on: float | None = None
    sigma_off: float | None = None
    mode: tp.Literal["soft", "binary"] = "soft"
    drums: tp.Literal["keep", "drop"] = "keep"
    factors: tuple[int, int] = (4, 4)
    with_labels: bool = True
    chroma_norm: tp.Literal["sum", "max"] = "sum"
    velocity_threshold: float = 0.01
    sustain_pedal: bool = True

    def __post_init__(self) -> None:
        factors = tuple(int(r) for r in self.factors)
        if len(factors) != 2 or min(factors) < 1:
            raise ValueError(f"factors must be two positive integers (R1, R2), got {list(self.factors)}")
        object.__setattr__(self, "factors", factors)
        if self.drums not in ("keep", "drop"):
            raise ValueError(f"drums must be 'keep' or 'drop', got {self.drums!r}")
        if self.chroma_norm not in ("sum", "max"):
            raise ValueError(f"chroma_norm must be 'sum' or 'max', got {self.chroma_norm!r}")
        if not (self.sample_rate > 0 and self.downsampling_ratio > 0):
            raise ValueError(f"sample_rate and downsampling_ratio must be > 0, got {self.sample_rate}, "
                             f"{self.downsampling_ratio}")
        self.srm  # validates sigma, mode and velocity_threshold

    @property
    def frame_rate(self) -> float:
        """SR_latent in frames per second."""
        return latent_frame_rate(self.sample_rate, self.downsampling_ratio)

    @property
    def srm(self) -> SRM:
        return SRM(self.frame_rate, self.sigma_on, self.sigma_off, self.mode, self.velocity_threshold,
                   drop_drums=self.drums == "drop")

    @property
    def length_multiple(self) -> int:
        return self.factors[0] * self.factors[1]

    @property
    def channels(self) -> int:
        return structure_channels(SRM_CHANNELS, self.with_labels)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "factors": list(self.factors)}

    def read_midi(self, path: str | os.PathLike) -> Score:
        """Read a MIDI file the way this render expects (sustain pedal setting; drums kept, the SRM drops
        them if asked)."""
        return read_midi(path, sustain=self.sustain_pedal, drums="keep")

    @property
    def margin(self) -> float:
        """Seconds around a window whose notes still reach into it (onset kernel, release tail): 7 sigma."""
        return 0.0 if self.mode == "binary" else 7.0 * max(self.srm.sigmas)

    def window(self, score: Score, t0: float, duration: float) -> Score:
        """The part of ``score`` in ``[t0, t0 + duration)`` in window time, with the notes whose kernels reach
        into it (``margin``), so the window renders like the matching frames of the whole piece (except onsets
        before ``t0``, which a window never shows: spec §2)."""
        return score.window(t0, duration, margin=self.margin)

    def check_window(self, duration: float, key: str = "window duration") -> int:
        """T_H for a window of ``duration`` seconds; ValueError unless it is a positive multiple of R1·R2."""
        frames = num_frames(duration, self.frame_rate)
        message = window_error(frames, self.length_multiple, key, self.frame_rate)
        if message:
            raise ValueError(message)
        return frames

    def render(self, score: Score, duration: float, valid_frames: int | None = None,
               labels: bool = True) -> torch.Tensor:
        """Packed structure (C, T_H) float32 of a window (``score`` in window time).

        Args:
            duration: window length in seconds.
            valid_frames: frames [0, valid_frames) hold real audio; later frames are padding (mask 0, S_sync
                zeroed, labels masked). None = all valid.
            labels: derive the labels (with ``with_labels``); False packs a zero label block with zero masks.
        """
        T_H = self.check_window(duration)
        valid = T_H if valid_frames is None else max(0, min(int(valid_frames), T_H))
        srm = self.srm(score, duration)                                   # (384, T_H)
        mask = torch.zeros(T_H, dtype=torch.bool)
        mask[:valid] = True
        srm[:, valid:] = 0.0
        if not self.with_labels:
            return pack_structure(srm, mask, None)
        if not labels:
            return pack_structure(srm, mask, {})
        return pack_structure(srm, mask, self.labels(score, duration, mask))

    def labels(self, score: Score, duration: float, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``derive_labels`` at this render's factors, with every mask also False on padded frames;
        ``mask`` (T_H,) bool."""
        r1, r2 = self.factors
        labels = derive_labels(score, duration, self.frame_rate, self.factors, chroma_norm=self.chroma_norm)
        valid_m = mask.reshape(-1, r1).any(-1)                            # (T_M,) as the encoder's masks
        valid_l = mask.reshape(-1, r1 * r2).any(-1)                       # (T_L,)
        for name in ("chroma_mask", "beat_mask", "downbeat_mask"):
            labels[name] = labels[name] & valid_m
        for name in ("tempo_mask", "key_mask"):
            labels[name] = labels[name] & valid_l
        return labels

    def differences(self, record: tp.Mapping[str, tp.Any]) -> list[str]:
        """How a dataset's render record differs from this render: every field but ``with_labels`` (the
        conditioner adds or strips the label block); sigmas are compared as resolved seconds, so None and
        the default value it stands for agree."""
        names = {f.name for f in dataclasses.fields(StructureRender)}
        try:
            theirs = StructureRender(**{k: v for k, v in record.items() if k in names})
        except (TypeError, ValueError) as e:
            return [f"the render record {dict(record)} is not valid ({e})"]
        out = []
        for key in sorted(names - {"with_labels", "sigma_on", "sigma_off"}):
            mine, other = getattr(self, key), getattr(theirs, key)
            same = (math.isclose(mine, other, rel_tol=_RATE_TOL) if isinstance(mine, float) and
                    isinstance(other, (int, float)) else mine == other)
            if not same:
                out.append(f"{key} = {_show(other)} in the data, {_show(mine)} in the model")
        for key, mine, other in zip(("sigma_on", "sigma_off"), self.srm.sigmas, theirs.srm.sigmas):
            if not math.isclose(mine, other, rel_tol=_RATE_TOL):
                out.append(f"{key} = {other:.6g} s in the data, {mine:.6g} s in the model")
        return out


def _show(value: tp.Any) -> str:
    return repr(list(value) if isinstance(value, tuple) else value)


RENDER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(StructureRender)
                   if f.name not in ("sample_rate", "downsampling_ratio")}
RENDER_KEYS = tuple(RENDER_DEFAULTS)


@CONDITIONERS.register("hierarchical_midi")
class HierarchicalMidiConditioner(Conditioner):
    """MIDI windows → packed structure (b, C, T_H) and its frame mask (b, T_H) (see module docstring).

    Args (JSON keys of the conditioner's ``config``):
        sigma_on, sigma_off, mode, drums, factors, with_labels, chroma_norm, velocity_threshold,
            sustain_pedal: as in ``StructureRender``; a dataset's ``structure`` section must agree.
        sample_rate: audio sample rate; taken from the builder or the pretransform when they provide it
            (needed only to render Score windows and to check dataset records fully).
        output_dim: given by the builder (``cond_dim``); unused: the packed width is fixed by the SRM.
        pretransform: given by the builder; its ``downsampling_ratio`` fixes SR_latent (none: ratio 1).
    """

    def __init__(self, output_dim: int | None = None, pretransform: tp.Any = None, sample_rate: int | None = None,
                 sigma_on: float | None = None, sigma_off: float | None = None,
                 mode: tp.Literal["soft", "binary"] = "soft", drums: tp.Literal["keep", "drop"] = "keep",
                 factors: tp.Sequence[int] = (4, 4), with_labels: bool = True,
                 chroma_norm: tp.Literal["sum", "max"] = "sum", velocity_threshold: float = 0.01,
                 sustain_pedal: bool = True):
        channels = structure_channels(SRM_CHANNELS, with_labels)
        super().__init__(channels, channels)
        ratio = 1 if pretransform is None else getattr(pretransform, "downsampling_ratio", None)
        if not ratio:
            raise ValueError("hierarchical_midi: the model's pretransform has no downsampling_ratio; the latent "
                             "frame rate SR_latent = sample_rate / downsampling_ratio cannot be known")
        self.downsampling_ratio = int(ratio)
        sample_rate = sample_rate or getattr(pretransform, "sample_rate", None)
        self.settings = dict(sigma_on=sigma_on, sigma_off=sigma_off, mode=mode, drums=drums,
                             factors=tuple(int(r) for r in factors), with_labels=with_labels,
                             chroma_norm=chroma_norm, velocity_threshold=velocity_threshold,
                             sustain_pedal=sustain_pedal)
        # validate the settings now, with a stand-in rate if the real one is not known yet
        probe = StructureRender(sample_rate or self.downsampling_ratio, self.downsampling_ratio, **self.settings)
        self.factors = probe.factors
        self.with_labels = with_labels
        self.render_spec: StructureRender | None = None
        if sample_rate:
            self.render_spec = StructureRender(int(sample_rate), self.downsampling_ratio, **self.settings)

    def spec(self) -> StructureRender:
        """The render settings; needs the sample rate (config key ``sample_rate``, or from the builder)."""
        if self.render_spec is None:
            raise ValueError("hierarchical_midi: rendering a Score window needs the audio sample rate; set "
                             "model.conditioning.configs[<midi>].config.sample_rate (or let the builder pass it)")
        return self.render_spec

    def forward(self, inputs: tp.Sequence[tp.Any], device: torch.device | str) -> list[torch.Tensor]:
        """Per-item windows or prerendered tensors → [structure (b, C, T_H) float32, mask (b, T_H) bool]."""
        items = [self._item(x, i) for i, x in enumerate(inputs)]
        lengths = {x.shape[-1] for x in items}
        if len(lengths) != 1:
            raise ValueError(f"hierarchical_midi: items have different frame counts {sorted(lengths)}; every "
                             "window of a batch must have the same duration")
        structure = torch.stack(items).to(device=device, dtype=torch.float32)
        assert structure.shape[1] == self.dim, \
            f"packed structure has {structure.shape[1]} channels, expected {self.dim}"
        return [structure, structure[:, SRM_CHANNELS] > 0.5]

    def _item(self, value: tp.Any, i: int) -> torch.Tensor:
        """One item → (C, T_H) with this conditioner's label layout."""
        if isinstance(value, dict) and "score" in value:
            value = ScoreWindow(value["score"], float(value["duration"]), value.get("valid_seconds"))
        if isinstance(value, ScoreWindow):
            spec = self.spec()
            valid = None if value.valid_seconds is None else math.ceil(value.valid_seconds * spec.frame_rate - 1e-9)
            return spec.render(value.score, value.duration, valid, labels=self.training)
        if isinstance(value, dict) and "structure" in value:
            record = value.get("render")
            if record is not None:
                self._check_record(record, i)
            value = value["structure"]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"hierarchical_midi: item {i} is a {type(value).__name__}; expected a packed structure "
                            "tensor (C, T_H), a dict with 'structure' (and 'render'), or a ScoreWindow / dict "
                            "with 'score' and 'duration'")
        if value.ndim != 2 or value.shape[0] not in (structure_channels(), structure_channels(with_labels=True)):
            raise ValueError(f"hierarchical_midi: item {i} has shape {tuple(value.shape)}; expected (C, T_H) with "
                             f"C = {structure_channels()} (no labels) or {structure_channels(with_labels=True)}")
        if value.shape[-1] % (self.factors[0] * self.factors[1]):
            raise ValueError(window_error(value.shape[-1], self.factors[0] * self.factors[1],
                                          f"hierarchical_midi: item {i}"))
        if value.shape[0] == self.dim:
            return value
        if self.with_labels:                        # no labels in the item: zero block, zero masks
            return torch.cat([value, value.new_zeros(self.dim - value.shape[0], value.shape[1])])
        return value[: self.dim]                    # strip the label block

    def _check_record(self, record: tp.Mapping[str, tp.Any], i: int) -> None:
        if int(record.get("downsampling_ratio", -1)) != self.downsampling_ratio:
            raise ValueError(f"hierarchical_midi: item {i} was rendered for a downsampling ratio of "
                             f"{record.get('downsampling_ratio')}, the model's pretransform has "
                             f"{self.downsampling_ratio}; the dataset must get the model's ratio (loader argument "
                             "downsampling_ratio)")
        spec = self.render_spec or StructureRender(int(record.get("sample_rate", self.downsampling_ratio)),
                                                   self.downsampling_ratio, **self.settings)
        diff = spec.differences(record)
        if diff:
            raise ValueError(f"hierarchical_midi: item {i} was rendered with other settings than the model's "
                             f"conditioner: {'; '.join(diff)}. Make the dataset config's 'structure' section "
                             "agree with model.conditioning.configs[<midi>].config")

    # -- config checks (called by the lead's config_check) ------------------------------------------------
    @staticmethod
    def check_config(config: dict) -> list[tuple[str, str]]:
        return check_config(config)

    @staticmethod
    def check_dataset_config(dataset_config: dict, model_config: dict) -> list[tuple[str, str]]:
        return check_dataset_config(dataset_config, model_config)


def _ratio_from_config(pretransform: dict | None) -> int | None:
    if pretransform is None:
        return 1
    cfg = pretransform.get("config", {})
    if pretransform.get("type") == "patch":
        return int(cfg.get("patch_size", 256))
    for key in ("downsampling_ratio", "patch_size"):
        if key in cfg:
            return int(cfg[key])
    return None


def _conditioner_items(config: dict) -> list[tuple[int, dict]]:
    items = config.get("model", {}).get("conditioning", {}) or {}
    return [(i, c) for i, c in enumerate(items.get("configs", [])) if c.get("type") == "hierarchical_midi"]


def check_config(config: dict) -> list[tuple[str, str]]:
    """Problems (key path, message) between the hierarchical_midi conditioner(s) and the rest of a model config.

    Checks: the conditioner's ``factors`` equal ``model.diffusion.config.factors`` (and ``encoder.factors``);
    its id is routed through ``input_concat_ids`` and alone there; the encoder reads 384 channels; and
    ``sample_size`` gives a latent window that is a multiple of R1·R2.
    """
    import inspect

    problems: list[tuple[str, str]] = []
    model = config.get("model", {})
    diffusion = model.get("diffusion", {}) or {}
    dcfg = diffusion.get("config", {}) or {}
    unet_factors = dcfg.get("factors")
    if unet_factors is None:
        from ..registry import DIFFUSION_MODELS

        dtype = diffusion.get("type")
        if dtype in DIFFUSION_MODELS:
            default = inspect.signature(DIFFUSION_MODELS.get(dtype)).parameters.get("factors")
            unet_factors = None if default is None else default.default
    own_default = inspect.signature(HierarchicalMidiConditioner).parameters["factors"].default
    ratio = _ratio_from_config(model.get("pretransform"))
    for i, item in _conditioner_items(config):
        where = f"model.conditioning.configs[{i}].config"
        ccfg = item.get("config", {}) or {}
        factors = [int(r) for r in ccfg.get("factors", own_default)]
        if unet_factors is not None and factors != [int(r) for r in unet_factors]:
            problems.append((f"{where}.factors", f"{factors} differ from the U-Net's model.diffusion.config.factors "
                             f"{[int(r) for r in unet_factors]}; the labels and the structure grid must use the "
                             "encoder's factors: set both to the same (R1, R2)"))
        enc = dcfg.get("encoder", {}) or {}
        if "factors" in enc and [int(r) for r in enc["factors"]] != factors:
            problems.append((f"{where}.factors", f"{factors} differ from model.diffusion.config.encoder.factors "
                             f"{list(enc['factors'])}; set them equal"))
        if "in_channels" in enc and int(enc["in_channels"]) != SRM_CHANNELS:
            problems.append(("model.diffusion.config.encoder.in_channels",
                             f"{enc['in_channels']} but the SRM renders {SRM_CHANNELS} channels (3 × 128)"))
        routes = diffusion.get("input_concat_ids", [])
        if item.get("id") not in routes:
            problems.append(("model.diffusion.input_concat_ids", f"{item.get('id')!r} (hierarchical_midi) is not "
                             "routed; the structure reaches the U-Net through input_concat_ids"))
        elif len(routes) > 1:
            problems.append(("model.diffusion.input_concat_ids", f"{routes}: the packed structure must be the only "
                             "input_concat condition (the U-Net unpacks it by channel count)"))
        size = config.get("sample_size")
        if ratio and isinstance(size, int):
            if size % ratio:
                problems.append(("sample_size", f"{size} is not a multiple of the pretransform's downsampling "
                                 f"ratio {ratio}"))
            else:
                message = window_error(size // ratio, factors[0] * factors[1], "sample_size")
                if message:
                    lo = max(size // ratio // (factors[0] * factors[1]), 1) * factors[0] * factors[1] * ratio
                    problems.append(("sample_size", f"{message}, i.e. sample_size {lo} or "
                                     f"{lo + factors[0] * factors[1] * ratio}"))
    return problems


def check_dataset_config(dataset_config: dict, model_config: dict) -> list[tuple[str, str]]:
    """Problems between a dataset config's ``structure`` section and the model's hierarchical_midi conditioner
    (the same check the conditioner makes on every item, before anything is loaded)."""
    problems = []
    structure = dataset_config.get("structure", {}) or {}
    items = _conditioner_items(model_config)
    want_id = dataset_config.get("structure_id", "midi")
    if items and want_id not in [c.get("id") for _, c in items]:
        problems.append(("structure_id", f"{want_id!r} but the model's hierarchical_midi conditioner id is "
                         f"{items[0][1].get('id')!r}"))
    for i, item in items:
        if item.get("id") != want_id:
            continue
        ccfg = item.get("config", {}) or {}
        for key in RENDER_KEYS:
            if key == "with_labels":
                continue
            mine, theirs = ccfg.get(key, RENDER_DEFAULTS[key]), structure.get(key, RENDER_DEFAULTS[key])
            if key == "factors":
                mine, theirs = [int(r) for r in mine], [int(r) for r in theirs]
            if mine != theirs:
                problems.append((f"structure.{key}", f"{theirs!r} but model.conditioning.configs[{i}].config.{key} "
                                 f"is {mine!r}"))
    return problems
