"""Numeric flags of ``sample.py`` (and the evaluation CLIs that share its sampling flags), checked by the parser.

Every number a user types is parsed by ``bounded``: it must be finite and inside the range the flag allows,
or the parser refuses it with the flag's name before any model is loaded, in one line
(``ERROR: argument --steps: must be >= 1, got 0``). The upper bounds refuse only values that are typos or
would exhaust memory (``--seconds 1e9`` asked for 31 years of audio in one tensor); each is far beyond any
setting the models are used with, and named here so the README can list them.
"""
from __future__ import annotations

import argparse
import math
import sys
import typing as tp

MAX_STEPS = 10_000            # sampler steps; the paper uses 100 (SAGA-SR) and 50 (HS-MAD)
MAX_REFERENCE_STEPS = 100_000  # SAGA-SR linear-quadratic schedule reference (1000)
MAX_GUIDANCE = 100.0          # guidance scales and weights; the papers use 1.2 to 2
MAX_SECONDS = 3_600.0         # generate: one hour in one tensor
MAX_NUM = 64                  # generate: samples in one batch
MAX_BATCH_WINDOWS = 64        # windows per forward
MAX_WINDOW = 1 << 21          # SAGA-SR window in samples at 44.1 kHz (47.6 s; the paper's is 2**18)
MAX_OVERLAP_SECONDS = 60.0    # window overlaps (also shorter than the window, checked with the model)
MAX_SEED = 2 ** 32 - 1        # window noise seeds are derived from 32 bits of the seed
MAX_TEMPERATURE = 10.0        # initial-noise scale; 1 samples the learned distribution


def bounded(kind: type[int] | type[float], low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> tp.Callable[[str], int | float]:
    """An argparse ``type``: ``kind(text)``, finite, within [low, high] (an open end excludes its bound)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, got {text}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {high:g}, got {text}")
        return value

    return parse


steps = bounded(int, 1, MAX_STEPS)
reference_steps = bounded(int, 1, MAX_REFERENCE_STEPS)
guidance = bounded(float, 0.0, MAX_GUIDANCE)
seed = bounded(int, 0, MAX_SEED)
seconds = bounded(float, 0.0, MAX_SECONDS, low_open=True)
num = bounded(int, 1, MAX_NUM)
batch_windows = bounded(int, 1, MAX_BATCH_WINDOWS)
window = bounded(int, 1, MAX_WINDOW)
overlap_seconds = bounded(float, 0.0, MAX_OVERLAP_SECONDS)
rolloff = bounded(float, 0.0, 1.0, high_open=True)
temperature = bounded(float, 0.0, MAX_TEMPERATURE, low_open=True)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``ERROR: <message>``, instead of the full usage (which
    for ``sample.py`` lists every mode's flags); exit status 2 as argparse's. Flags must be spelled out
    (``allow_abbrev`` False: ``--cfg`` is not taken for ``--cfg-text``, and adding a flag never changes what an
    abbreviation meant)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> tp.NoReturn:
        print(f"ERROR: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def given_options(argv: tp.Sequence[str]) -> list[str]:
    """The ``--flags`` a command line spells out (``--flag value`` or ``--flag=value``), up to a ``--``; with
    abbreviations off, each is the exact option string of one argument."""
    found = []
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            found.append(token.split("=", 1)[0])
    return found
