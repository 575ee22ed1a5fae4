"""Stopping ``sample.py`` part-way: no traceback, no partial file, nothing stale left for the next run.

* Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` and SIGTERM (``kill``, a job scheduler's time limit) raises
  ``Terminated``, a ``KeyboardInterrupt``, at the same point: the output being written is a temporary file of
  ``checkpoints.atomic_write``, which removes it on any exception, and files already finished stay.
  ``interrupted`` prints one line and gives the shell's exit status for the signal (130, 143).
* SIGKILL (or a power cut) cannot be caught and leaves the temporary file, ``.NAME.xxxxxxxx.part`` beside
  the output ``NAME``; ``remove_stale_partials`` deletes those of the outputs a new run is about to write,
  before it writes them. Only outputs of this run are looked at, so another run writing other files into
  the same folder is not disturbed (two runs writing the SAME output at once were never safe).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import typing as tp
from pathlib import Path

EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` so that the same cleanup runs."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> tp.Iterator[None]:
    """Inside the block SIGTERM raises ``Terminated``; the previous handler is restored after. Signal handlers
    belong to the main thread, so elsewhere (a caller's worker thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(error: KeyboardInterrupt) -> int:
    """Print the one line a user sees after SIGINT or SIGTERM; return the exit status (130 or 143)."""
    name, status = ("SIGTERM", EXIT_SIGTERM) if isinstance(error, Terminated) else ("SIGINT", EXIT_SIGINT)
    print(f"interrupted ({name}): the output being written was removed, finished outputs are kept; run the "
          "same command again to do the rest (existing outputs are skipped)", file=sys.stderr)
    return status


def stale_partials(target: str | os.PathLike) -> list[Path]:
    """Temporary files ``checkpoints.atomic_write`` would have left for ``target`` (``.NAME.*.part``)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.glob(f".{target.name}.*.part") if p.is_file())


def remove_stale_partials(targets: tp.Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the stale temporary files of ``targets`` (a killed run's) and say so in one line."""
    removed = []
    for target in targets:
        for path in stale_partials(target):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        where = removed[0].parent if len({p.parent for p in removed}) == 1 else "the output folders"
        print(f"removed {len(removed)} stale temporary file(s) of an interrupted run from {where}")
    return removed
