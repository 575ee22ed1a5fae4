"""Validate model and dataset configs before anything is built or loaded, and describe every type.

stable-audio-tools reads configs with ``dict.get`` and ignores what it does not know, so a misspelled key
silently does nothing. ``validate_model_config`` checks every section against the constructor it feeds
(unknown keys, value types from annotations or defaults, missing required keys) and the dimensions that
must agree between parts (pretransform channels, conditioning widths, backbone input widths, routed ids),
and reports each problem with its key path. Nothing is constructed and no weights are read. Sizes that
cannot work are refused here too (``MAX_SAMPLE_SIZE``, the dataset's ``repeat``), and ``check_train_args``
does the same for train.py's flags, with the memory the loader's batches would take.

Given a model config, the command line also checks each dataset config against it: the piano-roll settings
(``validate_pair``) and the files, by building the dataset as training would (``check_dataset_files``: one
``ERROR <file>: <reason>`` line per file the start-up scan of ``data.scan`` finds unusable).

    python -m saga_hsmad.config_check model_configs/saga_sr/tiny.json dataset_configs/saga_sr/demo.json
    python -m saga_hsmad.config_check --describe            # every registered type, keys and defaults
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import typing as tp
from pathlib import Path

from .registry import CONDITIONERS, DATASETS, DIFFUSION_MODELS, PRETRANSFORMS, TRAINING_WRAPPERS


class ConfigError(ValueError):
    """One or more problems in a config; each line names a key path."""


@dataclasses.dataclass
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def load_config(path: str | Path, kind: tp.Literal["model", "dataset"] = "model", validate: bool = True) -> dict:
    """Read a JSON config with errors that name the file (and line), then validate it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} config {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a {kind} config must be a JSON object")
    if validate:
        problems = validate_model_config(config) if kind == "model" else validate_dataset_config(config)
        if problems:
            raise ConfigError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(map(str, problems)))
    return config


# --- constructor signatures ------------------------------------------------------------------------

def _upstream_classes() -> dict[str, dict[str, tp.Any]]:
    from stable_audio_tools.models import conditioners as c
    from stable_audio_tools.models import pretransforms as p
    from stable_audio_tools.models.dit import DiffusionTransformer

    return {
        "conditioner": {"t5": c.T5Conditioner, "clap_text": c.CLAPTextConditioner, "int": c.IntConditioner,
                        "number": c.NumberConditioner, "list": c.ListConditioner, "lut": c.TokenizerLUTConditioner,
                        "pretransform": c.PretransformConditioner, "source_mix": c.SourceMixConditioner},
        "diffusion": {"dit": DiffusionTransformer},
        "pretransform": {"wavelet": p.WaveletPretransform, "patched": p.PatchedPretransform},
    }


# Keys a builder adds itself or consumes before the constructor sees the rest.
CONTEXT_KEYS = {"output_dim", "pretransform", "diffusion_objective", "sample_rate", "model", "model_config",
                "optimizer", "self", "cond_pretransform"}
EXTRA_KEYS = {"pretransform": {"sample_rate", "pretransform_config", "use_model_pretransform",
                               "pretransform_ckpt_path"},
              "source_mix": {"sample_rate", "pretransform_config", "use_model_pretransform", "pretransform_ckpt_path"}}
# DiT passes unknown keys to ContinuousTransformer; these are the ones it reads.
DIT_TRANSFORMER_KEYS = {"use_checkpointing", "dim_heads", "cross_attend", "cond_token_dim", "global_cond_dim",
                        "causal", "rotary_pos_emb", "zero_init_branch_outputs", "conformer", "layer_scale",
                        "attn_kwargs", "ff_kwargs", "norm_kwargs", "use_sinusoidal_emb", "use_abs_pos_emb",
                        "abs_pos_emb_max_length", "num_memory_tokens", "sliding_window", "qk_norm",
                        "differential", "feat_scale", "final_cross_attn_ix"}


def _type_ok(value: tp.Any, annotation: tp.Any, default: tp.Any) -> str | None:
    """None if ``value`` fits the annotation (or the default's type); else what was expected."""
    origin = tp.get_origin(annotation)
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        if default is None or default is inspect.Parameter.empty:
            return None
        annotation, origin = type(default), None
    if origin is tp.Literal:
        return None if value in tp.get_args(annotation) else f"one of {list(tp.get_args(annotation))}"
    if origin in (tp.Union, getattr(__import__("types"), "UnionType", None)):
        args = tp.get_args(annotation)
        if value is None and type(None) in args:
            return None
        failures = [_type_ok(value, a, inspect.Parameter.empty) for a in args if a is not type(None)]
        return None if any(f is None for f in failures) else " or ".join(f for f in failures if f)
    base = origin or annotation
    if base in (float,):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is bool:
        ok = isinstance(value, bool)
    elif base is str:
        ok = isinstance(value, str)
    elif base in (list, tuple, tp.Sequence, tp.List, tp.Tuple):
        ok = isinstance(value, list)
    elif base in (dict, tp.Dict, tp.Mapping):
        ok = isinstance(value, dict)
    else:
        return None
    return None if ok else getattr(base, "__name__", str(base))


def check_kwargs(cls: tp.Any, config: dict, path: str, extra: set[str] = frozenset()) -> list[Problem]:
    """Unknown keys, wrong value types and missing required arguments of ``cls(**config)``."""
    if not isinstance(config, dict):
        return [Problem(path, f"must be a JSON object, got {type(config).__name__}")]
    from .factory import accepted_parameters

    try:
        hints = tp.get_type_hints(cls.__init__) if inspect.isclass(cls) else tp.get_type_hints(cls)
    except Exception:
        hints = {}
    params, takes_any = accepted_parameters(cls)
    problems = []
    allowed = set(params) | set(extra)
    if cls.__name__ == "DiffusionTransformer":
        allowed |= DIT_TRANSFORMER_KEYS
        takes_any = False
    for key, value in config.items():
        if key not in allowed and not takes_any:
            close = [k for k in sorted(allowed - CONTEXT_KEYS) if _similar(k, key)]
            hint = f"; did you mean {close[0]!r}?" if close else f"; accepted: {sorted(allowed - CONTEXT_KEYS)}"
            problems.append(Problem(f"{path}.{key}", f"unknown key for {cls.__name__}{hint}"))
        elif key in params:
            expected = _type_ok(value, hints.get(key, params[key].annotation), params[key].default)
            if expected:
                problems.append(Problem(f"{path}.{key}", f"expected {expected}, got {json.dumps(value)}"))
    for key, p in params.items():
        if p.default is inspect.Parameter.empty and key not in config and key not in CONTEXT_KEYS \
                and key not in extra and key != "dim":
            problems.append(Problem(f"{path}.{key}", f"required by {cls.__name__} but missing"))
    return problems


def _similar(a: str, b: str) -> bool:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() > 0.8


# --- model configs -----------------------------------------------------------------------------------

def pretransform_channels(cfg: dict | None) -> tuple[int | None, int | None]:
    """(audio channels, encoded channels) of a pretransform config, when they follow from it alone."""
    if not cfg:
        return None, None
    c = cfg.get("config", {})
    if cfg.get("type") == "patch":
        channels, patch = c.get("channels", 2), c.get("patch_size", 256)
        return channels, channels * patch
    if cfg.get("type") == "mdct":
        channels, hop = c.get("channels", 2), c.get("hop", 64)
        return channels, channels * hop
    if cfg.get("type") == "autoencoder":
        return c.get("io_channels"), c.get("latent_dim")
    if cfg.get("type") == "patched":
        return c.get("channels"), c.get("channels", 0) * c.get("patch_size", 0) or None
    return None, None


# Bounds of the top-level sizes: far beyond the shipped configs (HS-MAD paper: 1,327,104 samples), far
# below what fails only with an out-of-memory traceback.
MAX_SAMPLE_SIZE = 2**24  # 380 s at 44.1 kHz
MAX_SAMPLE_RATE = 384_000
MAX_AUDIO_CHANNELS = 8


def _size_problems(config: dict) -> list[Problem]:
    """``sample_size``, ``sample_rate`` and ``audio_channels`` must be integers in 1..their bound."""
    problems = []
    for key, bound in (("sample_size", MAX_SAMPLE_SIZE), ("sample_rate", MAX_SAMPLE_RATE),
                       ("audio_channels", MAX_AUDIO_CHANNELS)):
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(Problem(key, f"must be an integer, got {json.dumps(value)}"))
        elif not 1 <= value <= bound:
            problems.append(Problem(key, f"must be positive and at most {bound}, got {value}"))
    return problems


def validate_model_config(config: dict) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("model_type", "sample_rate", "sample_size", "model"):
        if key not in config:
            problems.append(Problem(key, "missing"))
    if problems:
        return problems
    problems += _size_problems(config)
    if problems:
        return problems
    known_top = {"model_type", "sample_rate", "sample_size", "audio_channels", "model", "training", "sampling"}
    for key in config:
        if key not in known_top:
            problems.append(Problem(key, f"unknown top-level key; known: {sorted(known_top)}"))
    model = config["model"]
    upstream = _upstream_classes()

    # pretransform
    pt = model.get("pretransform")
    audio_ch, enc_ch = pretransform_channels(pt)
    if pt is not None:
        ptype = pt.get("type")
        if not PRETRANSFORMS.is_known(ptype):
            problems.append(Problem("model.pretransform.type", f"unknown type {ptype!r}; known: "
                                    f"{PRETRANSFORMS.names() + list(PRETRANSFORMS.upstream_types)}"))
        elif ptype in PRETRANSFORMS:
            cls = PRETRANSFORMS.get(ptype)
            problems += check_kwargs(cls, pt.get("config", {}), "model.pretransform.config")
            check = getattr(cls, "check_config", None)
            if check is not None:
                problems += [Problem(p, m) for p, m in check(config)]
        elif ptype in upstream["pretransform"]:
            problems += check_kwargs(upstream["pretransform"][ptype], pt.get("config", {}), "model.pretransform.config")
        if audio_ch is not None and config.get("audio_channels", 2) != audio_ch:
            problems.append(Problem("audio_channels", f"{config.get('audio_channels', 2)} but the pretransform "
                                    f"takes {audio_ch}-channel audio"))
        if enc_ch is not None and model.get("io_channels") != enc_ch:
            problems.append(Problem("model.io_channels", f"{model.get('io_channels')} but the pretransform "
                                    f"encodes to {enc_ch} channels"))
        ratio = {"patch": pt.get("config", {}).get("patch_size", 256), "mdct": pt.get("config", {}).get("hop", 64)}.get(
            pt.get("type"), pt.get("config", {}).get("downsampling_ratio"))
        if ratio and config["sample_size"] % ratio:
            problems.append(Problem("sample_size", f"{config['sample_size']} is not a multiple of the "
                                    f"pretransform's downsampling ratio {ratio}"))

    # conditioning
    widths: dict[str, int] = {}
    cond = model.get("conditioning")
    if cond is not None:
        cond_dim = cond.get("cond_dim")
        if not isinstance(cond_dim, int):
            problems.append(Problem("model.conditioning.cond_dim", "missing or not an integer"))
        for key in cond:
            if key not in ("cond_dim", "configs", "default_keys", "pre_encoded_keys"):
                problems.append(Problem(f"model.conditioning.{key}", "unknown key"))
        ids = set()
        for i, item in enumerate(cond.get("configs", [])):
            where = f"model.conditioning.configs[{i}]"
            ctype, cid = item.get("type"), item.get("id")
            if cid is None:
                problems.append(Problem(f"{where}.id", "missing"))
            if cid in ids:
                problems.append(Problem(f"{where}.id", f"duplicate id {cid!r}"))
            ids.add(cid)
            for key in item:
                if key not in ("id", "type", "config"):
                    problems.append(Problem(f"{where}.{key}", "unknown key (expected id, type, config)"))
            ccfg = item.get("config", {})
            if not CONDITIONERS.is_known(ctype):
                problems.append(Problem(f"{where}.type", f"unknown conditioner type {ctype!r}; known: "
                                        f"{CONDITIONERS.names() + list(CONDITIONERS.upstream_types)}"))
                continue
            cls = CONDITIONERS.get(ctype) if ctype in CONDITIONERS else upstream["conditioner"].get(ctype)
            if cls is not None:
                problems += check_kwargs(cls, ccfg, f"{where}.config", EXTRA_KEYS.get(ctype, set()))
                check = getattr(cls, "check_config", None) if ctype in CONDITIONERS else None
                if check is not None:
                    problems += [Problem(p, m) for p, m in check(config)]
            if ctype in ("pretransform",) and ccfg.get("use_model_pretransform"):
                widths[cid] = enc_ch
            else:
                widths[cid] = ccfg.get("output_dim", cond_dim)

    # diffusion
    diff = model.get("diffusion")
    if config["model_type"] in ("diffusion_cond", "diffusion_cond_inpaint"):
        if diff is None:
            problems.append(Problem("model.diffusion", "missing"))
        else:
            problems += _check_diffusion(config, diff, widths, upstream)
    problems += _check_training(config)
    return problems


ROUTES = ("cross_attention_cond_ids", "global_cond_ids", "input_concat_ids", "prepend_cond_ids")


def _check_diffusion(config: dict, diff: dict, widths: dict, upstream: dict) -> list[Problem]:
    from .factory import DIFFUSION_KEYS

    problems = []
    for key in diff:
        if key not in DIFFUSION_KEYS:
            problems.append(Problem(f"model.diffusion.{key}", f"unknown key; known: {sorted(DIFFUSION_KEYS)}"))
    dtype = diff.get("type")
    dcfg = diff.get("config", {})
    if not DIFFUSION_MODELS.is_known(dtype):
        return problems + [Problem("model.diffusion.type", f"unknown diffusion type {dtype!r}; known: "
                                   f"{DIFFUSION_MODELS.names() + list(DIFFUSION_MODELS.upstream_types)}")]
    cls = DIFFUSION_MODELS.get(dtype) if dtype in DIFFUSION_MODELS else upstream["diffusion"].get(dtype)
    if cls is not None:
        problems += check_kwargs(cls, dcfg, "model.diffusion.config")
    if diff.get("diffusion_objective", "v") not in ("v", "rectified_flow", "rf_denoiser"):
        problems.append(Problem("model.diffusion.diffusion_objective", "must be v, rectified_flow or rf_denoiser"))
    for route in ROUTES:
        for cid in diff.get(route, []):
            if cid not in widths:
                problems.append(Problem(f"model.diffusion.{route}", f"{cid!r} is not an id in model.conditioning.configs"))
    io = config["model"].get("io_channels")
    if "io_channels" in dcfg and dcfg["io_channels"] != io:
        problems.append(Problem("model.diffusion.config.io_channels", f"{dcfg['io_channels']} but model.io_channels is {io}"))

    def total(route):
        vals = [widths.get(c) for c in diff.get(route, [])]
        return None if any(v is None for v in vals) else sum(vals)

    cross = [widths.get(c) for c in diff.get("cross_attention_cond_ids", [])]
    if "cond_token_dim" in dcfg and cross and all(v is not None for v in cross):
        if len(set(cross)) > 1:
            problems.append(Problem("model.diffusion.cross_attention_cond_ids", f"tokens of different widths {cross}"))
        elif cross[0] != dcfg["cond_token_dim"]:
            problems.append(Problem("model.diffusion.config.cond_token_dim",
                                    f"{dcfg['cond_token_dim']} but the cross-attention conditions are {cross[0]} wide"))
    for key, route in (("global_cond_dim", "global_cond_ids"), ("input_concat_dim", "input_concat_ids")):
        want = total(route)
        if key in dcfg and want is not None and diff.get(route) and dcfg[key] != want:
            problems.append(Problem(f"model.diffusion.config.{key}",
                                    f"{dcfg[key]} but {route} {diff[route]} add up to {want}"))
        if diff.get(route) and key in ("global_cond_dim", "input_concat_dim") and cls is not None \
                and key in inspect.signature(cls).parameters and key not in dcfg:
            problems.append(Problem(f"model.diffusion.config.{key}", f"missing although {route} is set"))
    check = getattr(cls, "check_config", None)
    if check is not None:
        problems += [Problem(p, m) for p, m in check(config)]
    return problems


TRAINING_ONLY_KEYS = {"type", "demo"}


def _check_training(config: dict) -> list[Problem]:
    training = config.get("training")
    if training is None or config["model_type"] not in ("diffusion_cond", "diffusion_cond_inpaint"):
        return []
    wtype = training.get("type", "diffusion_cond")
    if wtype not in TRAINING_WRAPPERS:
        return [Problem("training.type", f"unknown training wrapper {wtype!r}; known: {TRAINING_WRAPPERS.names()}")]
    from .training.diffusion_cond import KEY_ALIASES

    cls = TRAINING_WRAPPERS.get(wtype)
    kwargs = {KEY_ALIASES.get(k, k): v for k, v in training.items() if k not in TRAINING_ONLY_KEYS}
    problems = [Problem(p.path.replace("training.lr", "training.learning_rate"), p.message)
                for p in check_kwargs(cls, kwargs, "training")]
    opt = training.get("optimizer_configs", {}).get("diffusion", {})
    if opt:
        import torch

        otype = opt.get("optimizer", {}).get("type")
        if otype is not None and not hasattr(torch.optim, otype):
            problems.append(Problem("training.optimizer_configs.diffusion.optimizer.type", f"{otype!r} is not in torch.optim"))
        sched = opt.get("scheduler")
        if sched is not None:
            from .training.schedulers import SCHEDULERS

            stype = sched.get("type")
            cls = SCHEDULERS.get(stype) or getattr(torch.optim.lr_scheduler, str(stype), None)
            where = "training.optimizer_configs.diffusion.scheduler"
            if cls is None:
                problems.append(Problem(f"{where}.type", f"{stype!r} is not a scheduler; ours: {sorted(SCHEDULERS)}"))
            else:
                problems += check_kwargs(cls, sched.get("config", {}), f"{where}.config")
    if "demo" in training:
        from .training.callbacks import DemoCallback

        problems += check_kwargs(DemoCallback, training["demo"], "training.demo", {"out_dir", "sample_rate"})
    return problems


def validate_dataset_config(config: dict) -> list[Problem]:
    dtype = config.get("dataset_type")
    if dtype is None:
        return [Problem("dataset_type", "missing")]
    if dtype not in DATASETS:
        return [Problem("dataset_type", f"unknown dataset type {dtype!r}; known: {DATASETS.names()}")]
    from .data.loader import NON_CONSTRUCTOR_KEYS, repeat_problem

    kwargs = {k: v for k, v in config.items() if k not in NON_CONSTRUCTOR_KEYS}
    problems = check_kwargs(DATASETS.get(dtype), kwargs, "dataset")
    if (problem := repeat_problem(config)) is not None:
        problems.append(Problem("dataset.repeat", problem))
    loader_context = ("sample_size", "sample_rate", "audio_channels", "seed", "downsampling_ratio")
    return [p for p in problems if p.path.split(".")[-1] not in loader_context]


def check_dataset_files(model_config: dict, dataset_config: dict, where: str = "dataset config") -> list[Problem]:
    """The files of the dataset that training could not use, one Problem each (its path, the reason),
    found by building the dataset as train.py does (the model's sample_size, sample_rate, audio_channels
    and pretransform ratio) with ``on_bad_file`` "error"; a dataset that does not build is one Problem."""
    from .data.loader import create_dataset_from_config
    from .data.scan import UnreadableFilesError
    from .factory import create_pretransform_from_config

    try:
        pretransform, ratio = model_config["model"].get("pretransform"), 1
        if pretransform:  # built, as train.py does, since only the pretransform knows its ratio for every type
            ratio = create_pretransform_from_config(pretransform, model_config["sample_rate"]).downsampling_ratio
        create_dataset_from_config({**dataset_config, "on_bad_file": "error"}, where,
                                   sample_size=model_config["sample_size"], sample_rate=model_config["sample_rate"],
                                   audio_channels=model_config.get("audio_channels", 2), seed=0,
                                   downsampling_ratio=ratio)
    except UnreadableFilesError as e:
        return [Problem(str(path), reason) for path, reason in e.bad.items()]
    except Exception as e:  # the dataset itself cannot be built (missing folder, caption, bad settings ...)
        return [Problem(where, f"cannot be built: {e}")]
    return []


MAX_BATCH_SIZE = 4096


def available_memory() -> int | None:
    """Bytes of RAM available now (psutil, else sysconf), or None when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024


def check_train_args(model_config: dict, batch_size: int, accum_batches: int = 1, num_workers: int = 0) -> None:
    """Refuse train.py flags that cannot work, naming the flag: ``--batch-size`` in 1..``MAX_BATCH_SIZE``,
    ``--accum-batches`` >= 1, ``--num-workers`` >= 0, and batches of audio that the loader would hold in
    more memory than is available: each is batch × audio_channels × sample_size float32 samples, and up to
    2 per loader worker (PyTorch's default prefetch) plus the one in training are held at once. That is a
    floor (the model, its activations and SAGA-SR's LR copy of each batch come on top)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size {batch_size}: must be positive and at most {MAX_BATCH_SIZE}; use "
                          "--accum-batches for larger effective batches")
    if accum_batches < 1:
        raise ConfigError(f"--accum-batches {accum_batches}: must be at least 1")
    if num_workers < 0:
        raise ConfigError(f"--num-workers {num_workers}: must be at least 0 (0 loads in the training process)")
    available = available_memory()
    if available is None:
        return
    channels, size = model_config.get("audio_channels", 2), model_config["sample_size"]
    per_batch = batch_size * channels * size * 4
    held = 2 * num_workers + 1
    if per_batch * held > available:
        unit = "channel" if channels == 1 else "channels"
        raise ConfigError(
            f"--batch-size {batch_size}: one batch of audio is {batch_size} × {channels} {unit} × {size} "
            f"samples × 4 bytes = {_bytes(per_batch)}, and the loader holds up to {held} batches (2 per worker with "
            f"--num-workers {num_workers}, plus the one in training) = {_bytes(per_batch * held)}, more than the "
            f"{_bytes(available)} of RAM available; lower --batch-size (or --num-workers, or the model's "
            "sample_size)")


def validate_pair(model_config: dict, dataset_config: dict) -> list[Problem]:
    """Problems between a dataset config and the model it trains (e.g. piano-roll settings that differ
    from the model's MIDI conditioner), from each conditioner type's ``check_dataset_config``."""
    problems = []
    seen = set()
    for item in model_config.get("model", {}).get("conditioning", {}).get("configs", []):
        ctype = item.get("type")
        if ctype in CONDITIONERS and ctype not in seen:
            seen.add(ctype)
            check = getattr(CONDITIONERS.get(ctype), "check_dataset_config", None)
            if check is not None:
                problems += [Problem(f"dataset.{p}", m) for p, m in check(dataset_config, model_config)]
    return problems


# --- describe ---------------------------------------------------------------------------------------------

def describe() -> str:
    """Every registered type with its config keys, types and defaults, read from the constructors."""
    lines = []
    for registry in (CONDITIONERS, DIFFUSION_MODELS, PRETRANSFORMS, TRAINING_WRAPPERS, DATASETS):
        lines.append(f"## {registry.kind} types")
        for name, cls in registry.items():
            doc = (inspect.getdoc(cls) or "").split("\n")[0]
            lines.append(f"\n{name}  ({cls.__module__}.{cls.__name__})  {doc}")
            try:
                hints = tp.get_type_hints(cls.__init__)
            except Exception:
                hints = {}
            from .factory import accepted_parameters

            for key, p in accepted_parameters(cls)[0].items():
                if key in CONTEXT_KEYS:
                    continue
                ann = hints.get(key, p.annotation)
                ann = "" if ann is inspect.Parameter.empty else f": {getattr(ann, '__name__', None) or str(ann).replace('typing.', '')}"
                default = "  (required)" if p.default is inspect.Parameter.empty else f" = {json.dumps(p.default, default=str)}"
                lines.append(f"    {key}{ann}{default}")
        lines.append("")
    if stream_upstream := PRETRANSFORMS.upstream_types:
        lines.append("stable-audio-tools' own types are accepted too: see its docs; "
                     f"e.g. pretransforms {list(stream_upstream)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Validate configs or describe the registered types.")
    parser.add_argument("configs", nargs="*", help="model or dataset JSON files (kind detected from the keys)")
    parser.add_argument("--describe", action="store_true", help="list every registered type's keys and defaults")
    args = parser.parse_args(argv)
    if args.describe:
        print(describe())
    status = 0
    models, datasets = [], []
    for path in args.configs:
        try:
            raw = json.loads(Path(path).read_text())
            kind = "dataset" if "dataset_type" in raw else "model"
            config = load_config(path, kind)
        except (ConfigError, FileNotFoundError, json.JSONDecodeError) as e:
            print(f"{e}", file=sys.stderr)
            status = 1
            continue
        if kind == "model":
            models.append((path, config))
            print(f"{path}: ok (model config)")
        else:
            datasets.append((path, config))
    for path, config in datasets:
        problems = []
        for model_path, model_config in models:
            pair = validate_pair(model_config, config)
            problems += [f"{path} does not fit {model_path}: {p}" for p in pair]
            if not pair:
                problems += [f"ERROR {p}" for p in check_dataset_files(model_config, config, path)]
        for line in dict.fromkeys(problems):  # one line per file, whichever model found it
            print(line, file=sys.stderr)
        if problems:
            status = 1
        else:
            scanned = "its files scanned" if models else "files not scanned: give a model config too"
            print(f"{path}: ok (dataset config; {scanned})")
    if not args.configs and not args.describe:
        parser.print_help()
    return status


if __name__ == "__main__":
    sys.exit(main())
