"""Audio file I/O without torchaudio (which needs torchcodec from 2.9 on): soundfile for reading and
writing, pedalboard for compressed formats soundfile cannot read, soxr-quality resampling via librosa.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a", ".opus")


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def read_audio(path: str | os.PathLike, frames: int = -1, start: int = 0) -> tuple[np.ndarray, int]:
    """(float32 array (channels, samples), sample rate) of ``frames`` samples from ``start`` (-1: to the end).

    Raises ``AudioError`` naming the file when it cannot be opened, when a file libsndfile opens fails to
    decode (a FLAC cut short loses sync; it is not handed to pedalboard, which decodes such a file as
    silence), when fewer frames decode than its header promises for the span asked for (a truncated file),
    and for NaN or infinite samples."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except Exception as sf_error:  # mp3/m4a on old libsndfile, or a foreign format
        data, sr = _read_pedalboard(path, frames, start, sf_error)
    else:
        with f:
            sr, header_frames, fmt = f.samplerate, f.frames, f.format
            try:
                f.seek(min(start, header_frames))
                data = f.read(frames, dtype="float32", always_2d=True).T
            except Exception as e:
                raise AudioError(f"{path}: cannot decode audio (reading from frame {start} of {header_frames}: {e}); "
                                 "the file is truncated or damaged: re-export or re-download it") from e
        expected = max(0, header_frames - start) if frames < 0 else max(0, min(frames, header_frames - start))
        shortfall = expected - data.shape[-1]
        # an MP3 without a Xing header has an estimated length; allow it 1 %
        if shortfall > (0.01 * header_frames if fmt == "MP3" else 0):
            raise AudioError(f"{path}: truncated: the header promises {header_frames} frames "
                             f"({header_frames / sr:.3f} s) but only {start + data.shape[-1]} could be read; "
                             "re-export or re-download it")
    if data.size and not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return np.ascontiguousarray(data), int(sr)


def _read_pedalboard(path: Path, frames: int, start: int, sf_error: Exception) -> tuple[np.ndarray, int]:
    try:
        from pedalboard.io import AudioFile

        with AudioFile(str(path)) as f:
            f.seek(min(start, f.frames))
            data = f.read(f.frames - f.tell() if frames < 0 else frames).astype(np.float32)
            return data, int(f.samplerate)
    except Exception as pb_error:
        raise AudioError(f"{path}: cannot read audio ({sf_error}; {pb_error})") from pb_error


def check_wav_length(path: str | os.PathLike) -> None:
    """Raise ``AudioError`` if a RIFF/WAVE file holds less data than its header declares.

    libsndfile silently sizes such a file from the bytes present (a header of 3 s over 8 samples reads as
    8 samples), so a truncated WAV cannot be told from a short one by ``audio_info``. The streaming sizes
    0 and 0xFFFFFFFF (a WAV written to a pipe) declare nothing and pass; other formats are not checked here
    (``read_audio`` finds their truncation)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return
        size = os.fstat(f.fileno()).st_size
        position, block_align = 12, 0
        while position + 8 <= size:
            f.seek(position)
            chunk, length = struct.unpack("<4sI", f.read(8))
            if chunk == b"fmt " and length >= 14:
                block_align = struct.unpack("<H", f.read(14)[12:14])[0]
            if chunk == b"data":
                present = size - position - 8
                if length in (0, 0xFFFFFFFF) or length <= present:
                    return
                unit = " frames" if block_align else " bytes"
                declared, held = (length // block_align, present // block_align) if block_align else (length, present)
                raise AudioError(f"{path}: truncated: the WAV header declares {declared}{unit} of audio, the file "
                                 f"holds {held}; re-export or re-download it")
            position += 8 + length + (length & 1)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(sample rate, channels, frames) without reading the samples."""
    path = Path(path)
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return int(info.samplerate), int(info.channels), int(info.frames)
    except Exception:
        try:
            from pedalboard.io import AudioFile

            with AudioFile(str(path)) as f:
                return int(f.samplerate), int(f.num_channels), int(f.frames)
        except Exception as e:
            raise AudioError(f"{path}: cannot read audio header ({e})") from e


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of (channels, samples) float32 audio (soxr, high quality)."""
    if sr_in == sr_out:
        return audio
    import soxr

    return np.ascontiguousarray(soxr.resample(audio.T, sr_in, sr_out, quality="HQ").T.astype(np.float32))


LIMITER_KNEE_DB = -1.0  # the soft limiter of sampled outputs leaves everything below this level unchanged


def soft_limit(audio: np.ndarray, knee: float = 10 ** (LIMITER_KNEE_DB / 20)) -> np.ndarray:
    """Soft limiter (a memoryless soft clipper): |x| <= knee passes unchanged; above the knee
    y = sign(x) (k + (1 - k) tanh((|x| - k) / (1 - k))), continuous with slope 1 at the knee, increasing,
    and never beyond full scale."""
    audio = np.asarray(audio, dtype=np.float32)
    magnitude = np.abs(audio)
    over = magnitude > knee
    if not over.any():
        return audio
    out = audio.copy()
    excess = (magnitude[over].astype(np.float64) - knee) / (1.0 - knee)
    out[over] = np.sign(audio[over]) * (knee + (1.0 - knee) * np.tanh(excess))
    return out


class OutputLimiter:
    """The clipping policy of sampled outputs, applied block by block as a file is written.

    A PCM output cannot hold samples beyond full scale, so it goes through ``soft_limit`` (knee at
    ``LIMITER_KNEE_DB``): quieter samples are written unchanged, louder ones are compressed smoothly instead
    of being cut flat. A FLOAT output holds any value and is written unchanged. Either way the samples that
    would have clipped (|x| > 1) are counted, and ``report()`` says so in one line."""

    def __init__(self, subtype: str):
        self.limit = subtype.startswith("PCM")
        self.over = self.total = 0
        self.peak = 0.0

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        magnitude = np.abs(audio)
        self.over += int(np.count_nonzero(magnitude > 1.0))
        self.total += magnitude.size
        self.peak = max(self.peak, float(magnitude.max(initial=0.0)))
        return soft_limit(audio) if self.limit else audio

    def report(self) -> str | None:
        """None when no sample would have clipped; else what happened, e.g. ``4477 samples (2.5 %) would
        have clipped (peak +1.9 dBFS); soft-limited above -1 dBFS``."""
        if not self.over:
            return None
        action = (f"soft-limited above {LIMITER_KNEE_DB:g} dBFS" if self.limit
                  else "kept as they are (FLOAT output)")
        return (f"{self.over} samples ({100 * self.over / self.total:.2g} %) would have clipped (peak "
                f"{20 * np.log10(self.peak):+.1f} dBFS); {action}")


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "PCM_16",
                limiter: OutputLimiter | None = None) -> None:
    """Write (channels, samples) audio atomically (a temporary file renamed into place). PCM samples beyond
    full scale are clipped, unless a ``limiter`` (the clipping policy of sampled outputs) shapes them first."""
    import soundfile as sf

    from .checkpoints import atomic_write

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if limiter is not None:
        audio = limiter(audio)
    fmt = Path(path).suffix.lstrip(".").upper() or "WAV"
    atomic_write(path, lambda tmp: sf.write(tmp, np.clip(audio.T, -1.0, 1.0) if subtype.startswith("PCM") else audio.T,
                                            sr, subtype=subtype, format=fmt))


def list_audio_files(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
