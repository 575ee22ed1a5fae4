"""Checkpoints: the model config travels inside every file, so a checkpoint alone rebuilds its model.

Two kinds are read:
* a Lightning training checkpoint (``train.py``): ``state_dict`` of the training wrapper
  (``diffusion.*``, EMA copies under ``diffusion_ema.ema_model.*`` and ``conditioner_ema.ema_model.*``),
  optimizer state, and ``model_config``;
* an inference checkpoint (``train.py``'s ``export.safetensors``, ``python -m saga_hsmad.cli.export``): the
  model's state dict alone, EMA weights already in place; safetensors with the model config, the EMA flag and
  a sha256 of the tensors in its metadata (a torch ``.ckpt`` with the same three entries is still read).

Safety and integrity, whichever command reads the file:
* the format is recognised from the first bytes, so a WAV or any other file passed as a checkpoint is refused
  without being unpickled;
* torch files are read with ``torch.load(weights_only=True)``: tensors, plain containers and numbers, nothing
  that can run code. Loading a file that needs more (a foreign or legacy pickle) takes ``--trust-checkpoint``;
* a torch checkpoint is a zip whose records carry a CRC-32; every record is checked before loading, so flipped
  bytes or a truncated file are refused with the file's name (and, beside a damaged one, the newest intact
  checkpoint in the same folder). A safetensors file is checked against the sha256 stored when it was written;
* every file is written through ``atomic_write`` (temporary file, fsync, rename), with the permissions the
  umask gives, so a crash or ``kill -9`` leaves the previous file whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
import tempfile
import typing as tp
import warnings
import zipfile
from pathlib import Path

import torch

EMA_PREFIXES = {"diffusion_ema.ema_model.": "model.", "conditioner_ema.ema_model.": "conditioner.conditioners."}

TRUST_ADVICE = "pass --trust-checkpoint only if you trust where the file came from"

# Types beyond torch's weights-only defaults (tensors, OrderedDict, containers, numbers, strings) that our
# checkpoints hold. None: Lightning 2.1 checkpoints of the tiny SAGA-SR and HS-MAD configs (optimizer, LR
# schedule, loops, callbacks, both EMAs, model config) hold nothing else; tests/test_checkpoint_safety.py
# checks that. Add a type here only together with a checkpoint that really holds it.
SAFE_GLOBALS: list = []

Format = tp.Literal["torch", "legacy", "safetensors"]


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be loaded; the message starts with the file's path."""


# -- writing ------------------------------------------------------------------------------------------------------
def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # a directory on a file system that cannot sync one
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: tp.Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file ``.NAME.xxxxxxxx.part`` beside ``path``, fsync it and rename it
    into place, so a crash or ``kill -9`` never leaves a partial or empty file under the final name nor
    destroys the previous one. The file gets the permissions of a newly created file (0666 minus the umask),
    not the 0600 of the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync(path.parent)


def tensor_digest(tensors: tp.Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``tensors`` (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save_inference_checkpoint(path: str | os.PathLike, state_dict: dict, model_config: dict | None,
                              ema: bool, use_safetensors: bool = False) -> None:
    """The model alone: safetensors (config, EMA flag and the tensors' sha256 in the metadata) when ``path``
    ends in ``.safetensors`` or ``use_safetensors``, else a weights-only torch file."""
    if model_config is None:
        raise ValueError("an inference checkpoint needs the model config; build the wrapper with from_config")
    if use_safetensors or str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in state_dict.items()}
        meta = {"model_config": json.dumps(model_config), "ema": json.dumps(ema), "sha256": tensor_digest(tensors)}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, meta))
    else:
        atomic_write(path, lambda tmp: torch.save(
            {"state_dict": state_dict, "model_config": model_config, "ema": ema}, tmp))


# -- checking -----------------------------------------------------------------------------------------------------
def _format(path: Path) -> Format:
    """The file's format from its first bytes; ``CheckpointError`` for anything else."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "legacy"
    raise CheckpointError(f"{path}: not a checkpoint (neither a torch zip checkpoint nor safetensors); "
                          "give the .ckpt or .safetensors file that train.py or saga_hsmad.cli.export wrote")


def _zip_damage(path: Path) -> str | None:
    """Why the torch zip at ``path`` is damaged (a record failing its CRC-32, no zip directory), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return "truncated or damaged: its zip directory is missing, as an interrupted save leaves it"
    except Exception as e:  # a directory pointing past the end, a bad local header ...
        return f"truncated or damaged ({type(e).__name__}: {e})"
    # records are named ARCHIVE/data/N, the archive named after the file torch.save wrote (the temporary one)
    return f"damaged: record {bad.split('/', 1)[-1]} fails its CRC-32 check" if bad else None


def newest_intact_checkpoint(folder: str | os.PathLike, exclude: str | os.PathLike | None = None) -> Path | None:
    """The most recently written ``*.ckpt`` in ``folder`` (other than ``exclude``) that passes its checks."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    exclude = Path(exclude).resolve() if exclude else None
    candidates = [p for p in folder.glob("*.ckpt") if p.is_file() and p.resolve() != exclude]
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            if _format(path) == "torch" and _zip_damage(path) is None:
                return path
        except (CheckpointError, OSError):
            continue
    return None


def verify_checkpoint(path: str | os.PathLike) -> Format:
    """The file's format, after checking that it is a checkpoint and (torch zip) that every record passes its
    CRC-32. An empty, truncated or damaged file raises ``CheckpointError`` naming it and the newest intact
    checkpoint beside it. Safetensors are checked against their sha256 when read (``read_checkpoint``)."""
    path = Path(path)
    fmt = None
    if path.is_file() and path.stat().st_size == 0:
        damage = "empty (0 bytes), as an interrupted save leaves a file"
    else:
        fmt = _format(path)
        damage = _zip_damage(path) if fmt == "torch" else None
    if damage:
        intact = newest_intact_checkpoint(path.parent, exclude=path)
        raise CheckpointError(f"{path}: {damage}" + (f"; the newest intact checkpoint beside it is {intact}"
                                                     if intact else ""))
    return fmt


def _unpickling_needs(error: Exception) -> str:
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return found.group(1) if found else "Python objects beyond tensors and plain containers"


def load_torch_checkpoint(path: str | os.PathLike, trust: bool = False, map_location: tp.Any = "cpu") -> tp.Any:
    """A verified torch checkpoint, unpickled weights-only; full unpickling only with ``trust``."""
    path = Path(path)
    fmt = verify_checkpoint(path)
    if fmt == "safetensors":
        raise CheckpointError(f"{path}: a safetensors file (an exported model) holds no training state; "
                              "give a Lightning .ckpt from RUN/checkpoints")
    if fmt == "legacy":
        warnings.warn(f"{path}: a legacy (non-zip) torch file carries no checksum; its integrity is not checked")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust:
            raise CheckpointError(f"{path}: loading it needs full unpickling, which can run code (it refers to "
                                  f"{_unpickling_needs(e)}); {TRUST_ADVICE}") from None
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return torch.load(path, map_location=map_location, weights_only=False)


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file, checked against its stored sha256."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as safetensors ({e})") from None
    if "sha256" not in meta:
        warnings.warn(f"{path}: no sha256 in its metadata (not written by saga-hsmad); its integrity is not checked")
    elif tensor_digest(tensors) != meta["sha256"]:
        raise CheckpointError(f"{path}: damaged: its tensors do not match the sha256 stored when it was written")
    return tensors, meta


# -- reading ------------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike, with_ema_flag: bool = False, trust: bool = False):
    """(state_dict, model_config or None, kind) where kind is "training" or "inference"; with
    ``with_ema_flag`` also whether an exported file records EMA weights (read in the same pass).
    ``trust`` allows full unpickling of a torch file that needs it. Raises ``CheckpointError``."""
    path = Path(path)
    if verify_checkpoint(path) == "safetensors":
        tensors, meta = _read_safetensors(path)
        config = json.loads(meta["model_config"]) if "model_config" in meta else None
        result = (tensors, config, "inference")
        return (*result, json.loads(meta.get("ema", "false"))) if with_ema_flag else result
    ckpt = load_torch_checkpoint(path, trust)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: has no 'state_dict'; is it a saga-hsmad or stable-audio-tools checkpoint?")
    state = ckpt["state_dict"]
    kind = "training" if any(k.startswith("diffusion.") for k in state) else "inference"
    result = (state, ckpt.get("model_config"), kind)
    return (*result, bool(ckpt.get("ema", False))) if with_ema_flag else result


def model_state_dict(state: dict, kind: str, use_ema: bool = True) -> tuple[dict, bool]:
    """The model's own state dict from a checkpoint's, with EMA weights in place when asked and present."""
    if kind == "inference":
        return state, False
    model_state = {k[len("diffusion."):]: v for k, v in state.items() if k.startswith("diffusion.")}
    used_ema = False
    if use_ema:
        for prefix, target in EMA_PREFIXES.items():
            for k, v in state.items():
                if k.startswith(prefix):
                    model_state[target + k[len(prefix):]] = v
                    used_ema = True
    return model_state, used_ema


def load_model(path: str | os.PathLike, model_config: dict | None = None, use_ema: bool = True,
               device: str | torch.device = "cpu", trust: bool = False):
    """(model in eval mode, model_config, info) from any checkpoint this project writes.

    ``model_config`` overrides the embedded one (needed only for checkpoints without it); ``trust`` allows
    full unpickling (``--trust-checkpoint``).
    """
    from .factory import create_model_from_config

    state, embedded, kind, exported_ema = read_checkpoint(path, with_ema_flag=True, trust=trust)
    config = model_config or embedded
    if config is None:
        raise CheckpointError(
            f"{path}: carries no model config, so the model cannot be built (stable-audio-tools' unwrap_model.py "
            "writes weights only); pass --model-config with the JSON model config it was trained with, or export "
            "the training checkpoint with python -m saga_hsmad.cli.export, which keeps the config in the file")
    model = create_model_from_config(config)
    model_state, used_ema = model_state_dict(state, kind, use_ema)
    missing, unexpected = model.load_state_dict(model_state, strict=False)
    # Frozen pretransform weights may legitimately be absent (loaded from their own path).
    missing = [k for k in missing if not k.startswith("pretransform.")]
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not fit its model config: missing {missing[:8]}, "
                              f"unexpected {unexpected[:8]}")
    info = {"kind": kind, "ema": used_ema if kind == "training" else exported_ema}
    if not use_ema and kind != "training" and exported_ema:
        print(f"WARNING {path}: an export holds one set of weights, here the EMA ones, so --no-ema has no effect; "
              "use the training checkpoint (RUN/checkpoints/*.ckpt) for the online weights", file=sys.stderr)
    return model.to(device).eval().requires_grad_(False), config, info
