"""Descript Audio Codec (DAC) from a local weights file, as continuous pre-quantisation latents (type "dac_local").

HS-MAD's paper latent space (spec §1, seed §3.2.1): DAC at 44.1 kHz, continuous latents. stable-audio-tools'
"dac_pretrained" calls ``dac.utils.download`` at construction, and nothing may download here; this type reads
a ``.pth`` the user has put on disk (``model_path``) and never touches the network.

What the latents are. DAC's encoder maps mono audio to z (b, D, L / hop); its residual vector quantiser then
approximates z by a sum of codebook vectors z_q, and the decoder reads z_q. ``encode`` returns z itself (the
encoder output BEFORE the quantiser: ``DAC.encode`` would quantise). ``decode`` feeds z straight to the decoder
by default (``quantize_on_decode: false``: the quantiser-free path; the decoder was trained on z_q, which the
commitment loss keeps close to z, so a continuous z decodes cleanly), or first snaps it to the nearest codes of
all codebooks (``quantize_on_decode: true``, as "dac_pretrained" does).

For the 44.1 kHz release (``weights.pth`` of tag 0.0.1, 8 kbps, or ``weights_44khz_16kbps.pth``): encoder rates
2·4·8·8 = hop 512 (86.13 latent frames/s), latent_dim D = 64 · 2⁴ = 1024 (the seed's C = 1024; its R_VAE = 320
belongs to the 24 kHz model). Both are read from the file and checked against ``downsampling_ratio`` and
``latent_dim`` in the config, which exist so that configs can be validated without loading weights.

Channels. DAC is a mono codec. With ``channels`` c > 1 every channel is encoded separately by folding the
channels into the codec's batch axis, and the per-channel latents are stacked on the latent channel axis:

    audio (b, c, L) → (b·c, 1, L) → encoder → (b·c, D, n) → latents (b, c·D, n),   n = L / hop

so a stereo model sees (b, 2·1024, n) and denoises both channels jointly; decoding unfolds the same way.
The paper config is mono (c = 1; stereo sources are downmixed by the dataset).

Weights. The codec is frozen and kept OUT of the module tree (not in ``state_dict``, not optimised, not
copied by EMA), like the frozen text encoders: checkpoints do not carry 300 MB of codec weights, which are
reloaded from ``model_path``. ``.to()`` / ``.half()`` reach it through ``_apply``. It stays in eval mode
(the quantiser behaves differently in training mode).

Legend: b batch, c audio channels, L samples, D codec latent width, n latent frames.
"""
from __future__ import annotations

from pathlib import Path

import torch
from einops import rearrange
from stable_audio_tools.models.pretransforms import Pretransform
from torch import nn

from ..paths import resolve_path
from ..registry import PRETRANSFORMS

WHERE = "model.pretransform.config"


class _Frozen:
    """Keeps the codec out of the module tree (no state dict, no optimizer, not deep-copied by EMA)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo):
        return self


def load_dac(path: str | Path):
    """A ``dac.DAC`` from a local weights file (``dac.DAC.load`` with strict key matching), in eval mode and
    frozen. Raises ``FileNotFoundError`` / ``ValueError`` naming the file; never downloads."""
    import dac

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dac_local: {path} does not exist")
    try:
        codec = dac.DAC.load(str(path), strict=True)
    except Exception as e:  # a foreign file, or weights that do not fit the architecture in its metadata
        raise ValueError(f"dac_local: {path} is not a loadable DAC weights file ({type(e).__name__}: {e}); it "
                         "must be a DAC .pth as released by descript-audio-codec (state_dict + metadata) or a "
                         "torch.package saved by DAC.save") from e
    if not isinstance(codec, dac.model.DAC):
        raise ValueError(f"dac_local: {path} holds a {type(codec).__name__}, not a dac.DAC")
    return codec.eval().requires_grad_(False)


@PRETRANSFORMS.register("dac_local")
class DACLocalPretransform(Pretransform):
    """audio (b, c, L) ⇄ continuous DAC latents (b, c·D, L / hop), weights from a local file.

    Args (JSON keys of ``model.pretransform.config``):
        model_path: the DAC ``.pth`` (``~`` and ``$VARS`` expanded; an unset variable is an error that names it).
        channels: audio channels c (folded into the codec batch; see the module docstring).
        downsampling_ratio: the codec hop the config expects (512 for 44.1 kHz DAC); checked against the file.
        latent_dim: the codec latent width D the config expects (1024 for 44.1 kHz DAC); checked.
        scale: latents are divided by it on encode and multiplied on decode (set it to the latent standard
            deviation of your data so the diffusion sees roughly unit variance).
        quantize_on_decode: decode through the quantiser (all codebooks) instead of feeding z directly.
        sample_rate: the model's sample rate (given by the builder); must equal the codec's.
    """

    def __init__(self, model_path: str, channels: int = 1, downsampling_ratio: int = 512, latent_dim: int = 1024,
                 scale: float = 1.0, quantize_on_decode: bool = False, sample_rate: int | None = None):
        super().__init__(enable_grad=False, io_channels=channels, is_discrete=False)
        if channels < 1:
            raise ValueError(f"{WHERE}.channels must be >= 1, got {channels}")
        if not scale > 0:
            raise ValueError(f"{WHERE}.scale must be > 0, got {scale}")
        try:
            path = resolve_path(model_path, f"{WHERE}.model_path")
        except KeyError as e:
            raise FileNotFoundError(f"dac_local: {e.args[0]}; set it to the local DAC weights file") from e
        if not path.is_file():
            raise FileNotFoundError(
                f"dac_local: {WHERE}.model_path = {model_path!r} ({path}) does not exist. Put the 44.1 kHz DAC "
                "weights on disk once (e.g. weights.pth of descript-audio-codec release 0.0.1) and point "
                "model_path at the file; nothing is downloaded at run time")
        codec = load_dac(path)
        hop, width = int(codec.hop_length), int(codec.latent_dim)
        if hop != downsampling_ratio:
            raise ValueError(f"dac_local: {path} has hop {hop} (encoder rates {list(codec.encoder_rates)}), but "
                             f"{WHERE}.downsampling_ratio is {downsampling_ratio}; set it to {hop} (and sample_size to "
                             f"a multiple of {hop} x R1 x R2)")
        if width != latent_dim:
            raise ValueError(f"dac_local: {path} has latent_dim {width}, but {WHERE}.latent_dim is {latent_dim}; set "
                             f"it to {width} and model.io_channels to channels x {width} = {channels * width}")
        if sample_rate is not None and int(codec.sample_rate) != int(sample_rate):
            raise ValueError(f"dac_local: {path} is a {codec.sample_rate} Hz codec but the model's sample_rate is "
                             f"{sample_rate}; use matching weights or change sample_rate")
        self._codec = _Frozen(codec)
        self.model_path = str(path)
        self.channels = channels
        self.latent_dim = width
        self.downsampling_ratio = hop
        self.encoded_channels = channels * width
        self.sample_rate = int(codec.sample_rate)
        self.scale = float(scale)
        self.quantize_on_decode = quantize_on_decode
        # stable-audio-tools 0.0.19's generate_diffusion_cond reads the decode dtype from
        # next(pretransform.parameters()); the codec is outside the tree, so one empty frozen parameter carries it.
        self.dtype_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    @property
    def codec(self) -> nn.Module:
        """The frozen ``dac.DAC`` (outside the module tree)."""
        return self._codec.module

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.codec._apply(fn)  # device and dtype moves reach the codec too
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # always: the quantiser draws random codebook counts in training mode
        return self

    def _codec_dtype(self) -> torch.dtype:
        return next(self.codec.parameters()).dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """audio (b, c, L) → latents (b, c·D, L / hop), the encoder output before quantisation, divided by
        ``scale``. L must be a multiple of the hop."""
        assert x.ndim == 3 and x.shape[1] == self.channels, \
            f"dac_local: expected audio (b, {self.channels}, L), got {tuple(x.shape)}"
        assert x.shape[-1] % self.downsampling_ratio == 0, \
            f"dac_local: audio length {x.shape[-1]} is not a multiple of the hop {self.downsampling_ratio}"
        folded = rearrange(x, "b c l -> (b c) 1 l").to(self._codec_dtype())
        z = self.codec.encoder(folded)                                              # (b·c, D, n)
        assert z.shape[-1] == x.shape[-1] // self.downsampling_ratio, \
            f"dac_local: encoder gave {z.shape[-1]} frames for {x.shape[-1]} samples (hop {self.downsampling_ratio})"
        z = rearrange(z, "(b c) d n -> b (c d) n", c=self.channels)
        return z / self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latents (b, c·D, n) → audio (b, c, n·hop): multiplied by ``scale``, optionally quantised, decoded."""
        assert z.ndim == 3 and z.shape[1] == self.encoded_channels, \
            f"dac_local: expected latents (b, {self.encoded_channels}, n), got {tuple(z.shape)}"
        folded = rearrange(z * self.scale, "b (c d) n -> (b c) d n", c=self.channels).to(self._codec_dtype())
        if self.quantize_on_decode:
            folded = self.codec.quantizer(folded, n_quantizers=self.codec.n_codebooks)[0]
        audio = self.codec.decoder(folded)                                          # (b·c, 1, n·hop)
        return rearrange(audio, "(b c) 1 l -> b c l", c=self.channels)

    # -- config check (nothing is loaded) --------------------------------------------------------
    @staticmethod
    def check_config(config: dict) -> list[tuple[str, str]]:
        """Problems (key path, message) between a "dac_local" pretransform section and the model config:
        ``model.io_channels`` = channels × latent_dim, ``audio_channels`` = channels, ``sample_size`` a multiple
        of the hop."""
        model = config.get("model", {})
        pt = model.get("pretransform") or {}
        if pt.get("type") != "dac_local":
            return []
        cfg = pt.get("config", {}) or {}
        channels, width = int(cfg.get("channels", 1)), int(cfg.get("latent_dim", 1024))
        hop = int(cfg.get("downsampling_ratio", 512))
        problems = []
        if model.get("io_channels") != channels * width:
            problems.append(("model.io_channels", f"{model.get('io_channels')} but the dac_local pretransform encodes "
                             f"{channels} channel(s) x latent_dim {width} = {channels * width}"))
        if config.get("audio_channels", 2) != channels:
            problems.append(("audio_channels", f"{config.get('audio_channels', 2)} but {WHERE}.channels is {channels}"))
        size = config.get("sample_size")
        if isinstance(size, int) and size % hop:
            problems.append(("sample_size", f"{size} is not a multiple of the DAC hop {hop}"))
        return problems


def save_tiny_dac(path: str | Path, seed: int = 0, encoder_dim: int = 4, decoder_dim: int = 16,
                  sample_rate: int = 44100) -> Path:
    """Write a small randomly initialised 44.1 kHz-layout DAC (hop 512, latent_dim 16·encoder_dim) to ``path``,
    in the released file format; for tests and offline demos of the dac_local path (it sounds like noise)."""
    import dac

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = dac.DAC(encoder_dim=encoder_dim, encoder_rates=[2, 4, 8, 8], decoder_dim=decoder_dim,
                        decoder_rates=[8, 8, 4, 2], n_codebooks=2, codebook_size=16, codebook_dim=4,
                        sample_rate=sample_rate)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec.save(str(path), package=False)
    return path


__all__ = ["DACLocalPretransform", "load_dac", "save_tiny_dac"]
