"""Audio file I/O without torchaudio (which needs torchcodec from 2.9 on): soundfile for reading and
writing, pedalboard for compressed formats soundfile cannot read, soxr-quality resampling via librosa.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a", ".opus")


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def read_audio(path: str | os.PathLike, frames: int = -1, start: int = 0) -> tuple[np.ndarray, int]:
    """(float32 array (channels, samples), sample rate) of ``frames`` samples from ``start`` (-1: to the end)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        import soundfile as sf

        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            f.seek(min(start, f.frames))
            data = f.read(frames, dtype="float32", always_2d=True).T
    except Exception as sf_error:  # mp3/m4a on old libsndfile, or a foreign format
        try:
            from pedalboard.io import AudioFile

            with AudioFile(str(path)) as f:
                sr = int(f.samplerate)
                f.seek(min(start, f.frames))
                data = f.read(f.frames - f.tell() if frames < 0 else frames).astype(np.float32)
        except Exception as pb_error:
            raise AudioError(f"{path}: cannot read audio ({sf_error}; {pb_error})") from pb_error
    if data.size and not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return np.ascontiguousarray(data), int(sr)


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


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> None:
    """Write (channels, samples) audio atomically (a temporary file renamed into place)."""
    import soundfile as sf

    from .checkpoints import atomic_write

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    fmt = Path(path).suffix.lstrip(".").upper() or "WAV"
    atomic_write(path, lambda tmp: sf.write(tmp, np.clip(audio.T, -1.0, 1.0) if subtype.startswith("PCM") else audio.T,
                                            sr, subtype=subtype, format=fmt))


def list_audio_files(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
