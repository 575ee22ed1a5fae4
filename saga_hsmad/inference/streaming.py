"""Constant-memory streaming for windowed inference over long audio (SAGA-SR super-resolution).

Two halves, so that peak memory is one window plus one read block, whatever the file length:

* ``ResampledStream`` reads an input in blocks (a file or an in-memory array), resamples it to the model
  rate with soxr's streaming resampler (bit-identical to resampling the whole signal at once) and serves
  the windows ``[start, end)`` in increasing order, dropping what no later window needs;
* ``StreamingOverlapAdd`` is ``windowing.OverlapAdd`` (same crossfade, same correlation correction) on a
  buffer one window long: when a window arrives, every sample before its start is final and is handed to
  a ``sink`` (an open output file, or a preallocated array) instead of being kept.

Shape legend: c channels, n samples.
"""
from __future__ import annotations

import os
import typing as tp

import numpy as np
import torch

from ..audio_io import read_audio
from .windowing import Curve, OverlapAdd

Sink = tp.Callable[[torch.Tensor], None]
READ_BLOCK = 1 << 17


def file_blocks(path: str | os.PathLike, block: int = READ_BLOCK) -> tp.Iterator[np.ndarray]:
    """(c, ≤ block) float32 blocks of an audio file in order (``audio_io.read_audio``: soundfile, then
    pedalboard for formats soundfile cannot read). A block with NaN/inf, a decode error or fewer frames than
    the header promises (a truncated file) raises ``AudioError``."""
    start = 0
    while True:
        data, _ = read_audio(path, frames=block, start=start)
        if data.shape[-1] == 0:
            return
        yield data
        start += data.shape[-1]
        if data.shape[-1] < block:
            return


def array_blocks(audio: np.ndarray, block: int = READ_BLOCK) -> tp.Iterator[np.ndarray]:
    """(c, ≤ block) views of an in-memory (c, n) array."""
    for start in range(0, audio.shape[-1], block):
        yield audio[:, start:start + block]


def resampled_length(frames: int, sr_in: int, sr_out: int) -> int:
    """Samples after resampling ``frames`` samples from ``sr_in`` to ``sr_out`` (soxr's rounding)."""
    return frames if sr_in == sr_out else int(round(frames * sr_out / sr_in))


class ResampledStream:
    """Windows of a block stream resampled from ``sr_in`` to ``sr_out``; requests must not go backwards.

    Args:
        blocks: iterator of (c, n) float32 arrays at ``sr_in``.
        total: the signal length at ``sr_out`` (``resampled_length`` of the input frames); windows are
            cut or zero-padded to it (``file_blocks`` refuses a file that holds fewer frames than its header).
    """

    def __init__(self, blocks: tp.Iterable[np.ndarray], sr_in: int, sr_out: int, channels: int, total: int):
        import soxr

        self.blocks = iter(blocks)
        self.channels, self.total = channels, total
        self.resampler = (soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality="HQ")
                          if sr_in != sr_out else None)
        self.buffer = np.zeros((channels, 0), dtype=np.float32)
        self.base = 0  # absolute position (at sr_out) of buffer[:, 0]
        self.exhausted = False

    def _pull(self) -> None:
        block = next(self.blocks, None)
        if block is None:
            self.exhausted = True
            if self.resampler is None:
                return
            out = self.resampler.resample_chunk(np.zeros((0, self.channels), dtype=np.float32), last=True).T
        else:
            if block.shape[0] != self.channels:
                raise ValueError(f"block has {block.shape[0]} channels, the stream {self.channels}")
            block = np.ascontiguousarray(block, dtype=np.float32)
            out = block if self.resampler is None else self.resampler.resample_chunk(block.T).T
        if out.shape[-1]:
            self.buffer = np.concatenate([self.buffer, out], axis=-1)

    def window(self, start: int, end: int) -> np.ndarray:
        """(c, end − start) float32: samples [start, end) at ``sr_out``, zeros beyond ``total``."""
        if start < self.base:
            raise ValueError(f"window at {start} comes after one at {self.base}; windows must not go backwards")
        drop = start - self.base
        self.buffer = self.buffer[:, drop:]
        self.base = start
        need = min(end, self.total) - start
        while self.buffer.shape[-1] < need and not self.exhausted:
            self._pull()
        out = np.zeros((self.channels, end - start), dtype=np.float32)
        have = max(0, min(need, self.buffer.shape[-1]))
        out[:, :have] = self.buffer[:, :have]
        return out


class StreamingOverlapAdd(OverlapAdd):
    """``OverlapAdd`` into a buffer of ``capacity`` samples that hands finished audio to ``sink``.

    Windows arrive in increasing start order (as ``OverlapAdd`` requires); when one arrives at ``start``,
    samples before ``start`` can no longer change and are passed to ``sink`` as (c, n) tensors, in order.
    ``finish()`` flushes the rest; in total exactly ``total`` samples reach the sink.
    """

    def __init__(self, channels: int, total: int, capacity: int, sink: Sink, curve: Curve = "equal_power",
                 dtype: torch.dtype = torch.float32):
        super().__init__(torch.zeros(channels, capacity, dtype=dtype), curve)
        self.total, self.sink, self.base = total, sink, 0

    def _flush(self, upto: int) -> None:
        n = min(upto, self.base + self.written_until) - self.base
        if n <= 0:
            return
        self.sink(self.out[:, :n].clone())
        capacity = self.out.shape[-1]
        self.out[:, :capacity - n] = self.out[:, n:].clone()
        self.out[:, capacity - n:] = 0
        self.written_until -= n
        self.base += n

    def add(self, start: int, chunk: torch.Tensor) -> None:
        """Write chunk (c, n) at absolute position ``start`` (see ``OverlapAdd.add``)."""
        if start < self.base:
            raise ValueError(f"window at {start} arrives after samples up to {self.base} were final")
        chunk = chunk[..., : max(0, self.total - start)]
        self._flush(start)
        if start - self.base + chunk.shape[-1] > self.out.shape[-1]:
            raise ValueError(f"window of {chunk.shape[-1]} samples does not fit the {self.out.shape[-1]}-sample "
                             "buffer; make the capacity at least one window")
        super().add(start - self.base, chunk)

    def finish(self) -> None:
        """Flush everything written; raises if the windows left part of [0, total) uncovered."""
        self._flush(self.total)
        if self.base != self.total:
            raise ValueError(f"windows covered {self.base} of {self.total} samples")
