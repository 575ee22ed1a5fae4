"""What basic-pitch's extra notes on HS-MAD renders are: re-struck held notes, octaves, or noise.

    python benchmarks/miniature/hsmad_note_errors.py RENDER_DIR [RENDER_DIR ...] [--midi CORPUS/test]

Each RENDER_DIR holds ``<stem>.wav`` for the ``<stem>.mid`` files of ``--midi`` (``sample.py --midi`` output, or
the corpus folder itself for the ground-truth row). Every note basic-pitch transcribes is put in the first class
it fits, against the MIDI (sustain pedal applied, drums dropped, as ``midi_eval`` scores):

* ``onset``: a reference note of the same pitch starts within 50 ms (what note F1 counts);
* ``held``: a reference note of the same pitch is sounding (a held note transcribed again: level flutter);
* ``octave``: a reference note of the same pitch class is sounding;
* ``other``: none of these (noise, or a wrong note).

Prints, per folder, the number of reference and transcribed notes and the share of each class. The pooled
counts are over all pieces.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

CLASSES = ("onset", "held", "octave", "other")


def classify(reference, estimate, tolerance: float = 0.05) -> np.ndarray:
    """Counts (4,) of the estimated notes in ``CLASSES`` (module docstring)."""
    pitch, start, end = (np.asarray(v) for v in (reference.pitch, reference.start, reference.end))
    counts = np.zeros(len(CLASSES), dtype=int)
    for p, s in zip(np.asarray(estimate.pitch), np.asarray(estimate.start)):
        sounding = (start <= s + tolerance) & (end >= s)
        if np.any(sounding & (pitch == p) & (np.abs(start - s) <= tolerance)):
            counts[0] += 1
        elif np.any(sounding & (pitch == p)):
            counts[1] += 1
        elif np.any(sounding & (pitch % 12 == p % 12)):
            counts[2] += 1
        else:
            counts[3] += 1
    return counts


def main() -> None:
    corpus = Path(os.environ.get("SAGA_HSMAD_DEMO_CORPUS", Path.home() / ".cache/saga_hsmad/demo_corpus"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("renders", nargs="+", type=Path)
    p.add_argument("--midi", type=Path, default=corpus / "test")
    args = p.parse_args()

    from saga_hsmad.audio_io import read_audio
    from saga_hsmad.evaluation.midi_eval import reference_notes
    from saga_hsmad.evaluation.transcribe import make_transcriber

    transcriber = make_transcriber("basic_pitch")
    print(f"{'folder':<48} {'ref':>5} {'est':>5}  " + "  ".join(f"{c:>7}" for c in CLASSES))
    for folder in args.renders:
        counts, ref_notes = np.zeros(len(CLASSES), dtype=int), 0
        for midi in sorted(args.midi.glob("*.mid")):
            reference, _ = reference_notes(midi)
            audio, sr = read_audio(folder / f"{midi.stem}.wav")
            counts += classify(reference, transcriber.transcribe(audio, sr))
            ref_notes += len(reference.pitch)
        shares = counts / max(counts.sum(), 1)
        print(f"{str(folder)[-48:]:<48} {ref_notes:>5} {counts.sum():>5}  " + "  ".join(f"{s:>7.3f}" for s in shares))


if __name__ == "__main__":
    main()
