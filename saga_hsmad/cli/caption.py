"""Caption a folder of audio with Qwen2-Audio into a caption store (SAGA-SR spec §3).

    python -m saga_hsmad.cli.caption --model-dir /models/Qwen2-Audio-7B --input DIR --output captions.json [--resume]

As in the official SAGA-SR preprocessing: the base model ``Qwen2-Audio-7B`` (not Instruct), the prompt
``<|audio_bos|><|AUDIO|><|audio_eos|>Generate the caption in English:``, audio mixed to mono and resampled to
16 kHz, the generated continuation stripped of leading space. The output is a JSON caption store
``{path relative to --input: caption}`` (``saga_hsmad.data.captions``); with ``--segment-seconds S`` each
file is captioned per S-second segment and stored as time ranges (training windows then get the caption of
the segment they overlap most). Without it, the model hears the first 30 s of each file (Qwen2-Audio's
Whisper front end).

Resumable: with ``--resume`` files already in the store are skipped; the store is rewritten atomically
(temporary file + rename) every ``--save-every`` files, at the end, and when an error or Ctrl-C stops the
run, so an error loses nothing finished, a hard kill at most the files since the last save, and no crash
leaves a corrupt store. The model loads from a local directory
only (``local_files_only=True``); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import typing as tp
from pathlib import Path

import numpy as np

PROMPT = "<|audio_bos|><|AUDIO|><|audio_eos|>Generate the caption in English:"
CAPTION_SAMPLE_RATE = 16_000

Captioner = tp.Callable[[tp.List[np.ndarray]], tp.List[str]]


class Qwen2AudioCaptioner:
    """Batched Qwen2-Audio captioning of 16 kHz mono float arrays; weights from a local directory only."""

    def __init__(self, model_dir: str | os.PathLike, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = 128, prompt: str = PROMPT):
        import torch
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        model_dir = Path(model_dir).expanduser()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"--model-dir {model_dir}: no Qwen2-Audio checkpoint there (config.json missing). Download "
                "Qwen/Qwen2-Audio-7B (the base model) once, e.g. `huggingface-cli download Qwen/Qwen2-Audio-7B "
                "--local-dir DIR`, and pass DIR; this tool never downloads")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        self.processor = AutoProcessor.from_pretrained(str(model_dir), local_files_only=True)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batched generation
        self.model = Qwen2AudioForConditionalGeneration.from_pretrained(
            str(model_dir), local_files_only=True, dtype=torch_dtype).to(device).eval()
        self.device, self.max_new_tokens, self.prompt = device, max_new_tokens, prompt

    def __call__(self, audios: tp.List[np.ndarray]) -> tp.List[str]:
        import torch

        inputs = self.processor(text=[self.prompt] * len(audios), audio=list(audios),
                                sampling_rate=CAPTION_SAMPLE_RATE, return_tensors="pt", padding=True)
        inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [t.strip() for t in texts]


def load_caption_audio(path: Path) -> np.ndarray:
    """(samples,) float32 mono audio at 16 kHz, the captioner's input."""
    from ..audio_io import read_audio, resample

    audio, sr = read_audio(path)
    return resample(audio.mean(axis=0, keepdims=True), sr, CAPTION_SAMPLE_RATE)[0]


def read_store(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: existing caption store is not valid JSON ({e}); move it away or fix it") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a caption store is a JSON object {{path: caption}}")
    return data


def write_store(path: Path, store: dict) -> None:
    """Rewrite the whole store atomically: a crash mid-write leaves the previous version intact."""
    from ..checkpoints import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(store, f, ensure_ascii=False, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def _units(files: tp.Sequence[Path], root: Path, segment_seconds: float | None,
           load: tp.Callable[[Path], np.ndarray]) -> tp.Iterator[tuple[str, float | None, np.ndarray, int]]:
    """(key, segment start or None, 16 kHz mono audio, number of segments of the file) per captioning unit."""
    for path in files:
        key = path.relative_to(root).as_posix()
        audio = load(path)
        if not segment_seconds:
            yield key, None, audio, 1
            continue
        hop = int(round(segment_seconds * CAPTION_SAMPLE_RATE))
        starts = list(range(0, max(len(audio), 1), hop))
        for s in starts:
            yield key, s / CAPTION_SAMPLE_RATE, audio[s:s + hop], len(starts)


def caption_folder(captioner: Captioner, root: str | os.PathLike, output: str | os.PathLike, resume: bool = False,
                   batch_size: int = 8, save_every: int = 32, segment_seconds: float | None = None,
                   load: tp.Callable[[Path], np.ndarray] = load_caption_audio,
                   files: tp.Sequence[Path] | None = None, log: tp.Callable[[str], None] = print) -> dict:
    """Caption every audio file under ``root`` into the JSON store ``output`` and return the store.

    Keys are paths relative to ``root``. Files already in the store are skipped with ``resume``; without it an
    existing store is an error (nothing is overwritten by accident). The store is written atomically every
    ``save_every`` completed files and at the end.
    """
    from ..audio_io import list_audio_files

    root, output = Path(root).expanduser(), Path(output).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--input {root} is not a folder")
    if output.exists() and not resume:
        raise FileExistsError(f"{output} exists; pass --resume to continue it (captioned files are skipped)")
    store = read_store(output) if resume else {}
    files = sorted(files) if files is not None else list_audio_files(root)
    todo = [p for p in files if p.relative_to(root).as_posix() not in store]
    log(f"caption: {len(files)} audio files under {root}, {len(files) - len(todo)} already captioned, "
        f"{len(todo)} to do")
    pending: dict[str, list] = {}  # key -> collected (start, caption) of a file not finished yet
    finished_since_save = 0
    batch: list[tuple[str, float | None, np.ndarray, int]] = []

    def flush() -> None:
        nonlocal finished_since_save
        captions = captioner([a for _, _, a, _ in batch])
        if len(captions) != len(batch):
            raise RuntimeError(f"captioner returned {len(captions)} captions for {len(batch)} inputs")
        for (key, start, _, n_segments), caption in zip(batch, captions):
            pending.setdefault(key, []).append((start, caption))
            if len(pending[key]) == n_segments:
                parts = pending.pop(key)
                if start is None:
                    store[key] = parts[0][1]
                else:
                    store[key] = [{"start": s, "end": s + segment_seconds, "caption": c} for s, c in parts]
                finished_since_save += 1
        batch.clear()
        if finished_since_save >= save_every:
            write_store(output, store)
            finished_since_save = 0

    try:
        for unit in _units(todo, root, segment_seconds, load):
            batch.append(unit)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    except BaseException:
        # An error or Ctrl-C: keep every finished file (the failing batch is redone on --resume).
        write_store(output, store)
        log(f"caption: interrupted; {len(store)} captions saved to {output}, rerun with --resume")
        raise
    write_store(output, store)
    log(f"caption: wrote {len(store)} captions to {output}")
    return store


def parse_args(argv: tp.Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m saga_hsmad.cli.caption", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True, help="local Qwen2-Audio-7B directory (base model)")
    p.add_argument("--input", required=True, help="folder of audio files (searched recursively)")
    p.add_argument("--output", required=True, help="caption store to write (JSON)")
    p.add_argument("--resume", action="store_true", help="continue an existing store, skipping captioned files")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--save-every", type=int, default=32, help="rewrite the store after this many files")
    p.add_argument("--segment-seconds", type=float, default=None,
                   help="caption each file per segment of this length (time ranges in the store)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU), float16, bfloat16, float32")
    return p.parse_args(argv)


def main(argv: tp.Sequence[str] | None = None) -> int:
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    args = parse_args(argv)
    captioner = Qwen2AudioCaptioner(args.model_dir, device=args.device, dtype=args.dtype,
                                    max_new_tokens=args.max_new_tokens)
    caption_folder(captioner, args.input, args.output, resume=args.resume, batch_size=args.batch_size,
                   save_every=args.save_every, segment_seconds=args.segment_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
