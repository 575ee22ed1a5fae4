"""Offline note transcribers for HS-MAD's structure metrics (spec §8), behind one interface.

A transcriber turns audio into a note table (``symbolic.midi.Notes``: pitch, onset, offset, velocity) and
says what its velocities mean. Two are known; both ship their weights inside their Python package, so
nothing downloads:

* ``"basic_pitch"`` — Spotify's basic-pitch (ICASSP 2022), the ONNX copy of its model that the wheel ships
  (``basic_pitch/saved_models/icassp_2022/nmp.onnx``) run by onnxruntime; TensorFlow is not needed. The audio
  is mixed to mono and resampled to 22,050 Hz (soxr HQ, as ``librosa.load`` does in basic-pitch's own
  ``predict``), then basic-pitch's windowing, model and note decoding are used unchanged (2 s windows, 30
  overlapping frames, onset threshold 0.5, frame threshold 0.3, minimum note 127.7 ms, "melodia trick":
  its ``predict`` defaults). Instrument-agnostic, polyphonic, no drums.
  Velocity: basic-pitch has no velocity model. The "velocity" it writes is 127 × the mean of the note's
  frame activations (a posterior probability, 0..1), i.e. a confidence that grows with loudness only
  loosely (r ≈ 0.44 against true velocities on a piano render in the reference notes). Velocity
  correlations measured with it are a weak, lower-bound signal.
* ``"transkun"`` — Yan & Duan's Transkun (piano, semi-CRF), which predicts MIDI velocities 1..127 learned
  from MAESTRO's Disklavier velocities: the meaningful velocity metric for piano. Used only when the
  ``transkun`` package is importable (it is not installed here); it runs as
  ``python -m transkun.transcribe in.wav out.mid --device D`` with the package's bundled ``2.0.pt`` and its
  MIDI is read back. Requesting it without the package raises ``TranscriberUnavailable`` saying how to get it.

Legend: c channels, n samples, N notes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import subprocess
import sys
import tempfile
import typing as tp
from pathlib import Path

import numpy as np

from ..audio_io import resample
from ..symbolic.midi import Notes, read_midi

TranscriberName = tp.Literal["basic_pitch", "transkun"]


class TranscriberUnavailable(RuntimeError):
    """The requested transcriber cannot run on this installation; the message says what is missing."""


class Transcriber(tp.Protocol):
    name: str
    velocity_scale: str

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Notes:
        """audio (c, n) or (n,) float → notes (drum-free, channel −1)."""
        ...


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(c, n) or (n,) → (n,) float32 channel mean."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=0) if audio.ndim == 2 else audio


@contextlib.contextmanager
def _quiet_basic_pitch():
    """basic-pitch logs a warning for every runtime it does not find (TF, CoreML, TFLite) at import."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class BasicPitchTranscriber:
    """basic-pitch through onnxruntime on the ONNX model shipped in the basic_pitch wheel (module docstring).

    Args: onset_threshold, frame_threshold, minimum_note_ms, melodia_trick — basic-pitch's ``predict``
    options (defaults as there); model_path — another ``.onnx`` of the same network (None: the shipped one).
    """

    name = "basic_pitch"
    velocity_scale = ("basic-pitch has no velocity model: 127 x mean frame activation of the note (a "
                      "confidence in 0..127 that rises with loudness only loosely)")

    def __init__(self, onset_threshold: float = 0.5, frame_threshold: float = 0.3, minimum_note_ms: float = 127.70,
                 melodia_trick: bool = True, model_path: str | None = None):
        if importlib.util.find_spec("basic_pitch") is None:
            raise TranscriberUnavailable("basic_pitch is not installed; install basic-pitch==0.4.0 without its "
                                         "TensorFlow dependency (pip install --no-deps basic-pitch==0.4.0) plus "
                                         "onnxruntime, as install.sh does")
        if importlib.util.find_spec("onnxruntime") is None:
            raise TranscriberUnavailable("basic_pitch needs onnxruntime to run its shipped ONNX model; "
                                         "pip install onnxruntime")
        with _quiet_basic_pitch():
            import basic_pitch
            from basic_pitch import inference

        path = Path(model_path) if model_path else Path(basic_pitch.__file__).parent / "saved_models" / \
            "icassp_2022" / "nmp.onnx"
        if not path.is_file():
            raise TranscriberUnavailable(f"basic_pitch: ONNX model {path} not found; reinstall basic-pitch 0.4.0")
        self.model_path = path
        with _quiet_basic_pitch():
            self.model = inference.Model(str(path))
        if self.model.model_type != inference.Model.MODEL_TYPES.ONNX:
            raise TranscriberUnavailable(f"basic_pitch loaded {path} as {self.model.model_type.name}, not ONNX")
        self.onset_threshold, self.frame_threshold = onset_threshold, frame_threshold
        self.minimum_note_ms, self.melodia_trick = minimum_note_ms, melodia_trick

    def activations(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """basic-pitch's "note", "onset", "contour" posteriorgrams (frames at 22050 / 256 Hz) for the audio,
        computed exactly as ``basic_pitch.inference.run_inference`` does from a file."""
        from basic_pitch import constants as c
        from basic_pitch import inference

        mono = resample(to_mono(audio)[None], sample_rate, c.AUDIO_SAMPLE_RATE)[0]
        overlap_frames = 30
        overlap = overlap_frames * c.FFT_HOP
        hop = c.AUDIO_N_SAMPLES - overlap
        padded = np.concatenate([np.zeros(overlap // 2, dtype=np.float32), mono])
        outputs: dict[str, list] = {"note": [], "onset": [], "contour": []}
        for window, _ in inference.window_audio_file(padded, hop):
            for key, value in self.model.predict(window[None].astype(np.float32)).items():
                outputs[key].append(value)
        return {k: inference.unwrap_output(np.concatenate(v), len(mono), overlap_frames) for k, v in outputs.items()}

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Notes:
        from basic_pitch import constants as c
        from basic_pitch import note_creation

        output = self.activations(audio, sample_rate)
        min_frames = int(np.round(self.minimum_note_ms / 1000 * (c.AUDIO_SAMPLE_RATE / c.FFT_HOP)))
        _, events = note_creation.model_output_to_notes(
            output, onset_thresh=self.onset_threshold, frame_thresh=self.frame_threshold, min_note_len=min_frames,
            melodia_trick=self.melodia_trick, include_pitch_bends=False)
        if not events:
            return Notes.empty()
        start, end, pitch, amplitude = (np.array([e[i] for e in events], dtype=np.float64) for i in range(4))
        velocity = np.clip(127.0 * amplitude, 1e-3, 127.0)
        return Notes.build(pitch.astype(np.int64), start, np.maximum(end, start), velocity)


class TranskunTranscriber:
    """Transkun (piano) through its own command line, when the package is installed (module docstring)."""

    name = "transkun"
    velocity_scale = "MIDI velocity 1..127 predicted by Transkun (trained on MAESTRO Disklavier velocities)"

    def __init__(self, device: str = "cpu"):
        if importlib.util.find_spec("transkun") is None:
            raise TranscriberUnavailable(
                "transkun is not installed, so the 'transkun' transcriber is unavailable. Install it with "
                "`pip install transkun` (its wheel bundles the pretrained 2.0.pt, so it runs offline; it needs a "
                "torch/torchaudio pair), or use --transcriber basic_pitch")
        self.device = device

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Notes:
        import soundfile as sf

        with tempfile.TemporaryDirectory() as tmp:
            wav, mid = Path(tmp) / "audio.wav", Path(tmp) / "notes.mid"
            data = np.asarray(audio, dtype=np.float32)
            sf.write(str(wav), data.T if data.ndim == 2 else data, sample_rate)
            proc = subprocess.run([sys.executable, "-m", "transkun.transcribe", str(wav), str(mid), "--device",
                                   self.device], capture_output=True, text=True)
            if proc.returncode != 0 or not mid.is_file():
                raise RuntimeError(f"transkun failed ({proc.returncode}): {proc.stderr[-2000:]}")
            notes = read_midi(mid, sustain=False, drums="drop").notes
        return Notes.build(notes.pitch, notes.start, notes.end, notes.velocity)


TRANSCRIBERS: dict[str, type] = {"basic_pitch": BasicPitchTranscriber, "transkun": TranskunTranscriber}


def make_transcriber(name: TranscriberName, **kwargs) -> Transcriber:
    """The transcriber called ``name``; ``TranscriberUnavailable`` when it cannot run here."""
    if name not in TRANSCRIBERS:
        raise ValueError(f"unknown transcriber {name!r}; known: {sorted(TRANSCRIBERS)}")
    return TRANSCRIBERS[name](**kwargs)
