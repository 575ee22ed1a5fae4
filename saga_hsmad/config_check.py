"""Validate model and dataset configs before anything is built or loaded, and describe every type.

stable-audio-tools reads configs with ``dict.get`` and ignores what it does not know, so a misspelled key
silently does nothing. ``validate_model_config`` checks every section against the constructor it feeds
(unknown keys, value types from annotations or defaults, lists item by item, missing required keys), down into
the objects that are constructor arguments themselves (an encoder section, ``cond_dropout``, the keys
``dit_concat`` passes on to stable-audio-tools' DiT, the optimizer and scheduler), accepts stable-audio-tools'
own keys (``training.demo.demo_cond`` ...), checks the dimensions that must agree between parts (pretransform
channels, conditioning widths, backbone input and style widths, routed ids), and reports each problem with
its key path. Nothing is constructed and no weights are read. Sizes that
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
import collections.abc
import dataclasses
import inspect
import json
import os
import sys
import types
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


def load_config(path: str | Path, kind: tp.Literal["model", "dataset", "config"] = "model",
                validate: bool = True) -> dict:
    """Read a JSON config with errors that name the file (and the line and column of a syntax error), then
    validate it as a ``kind`` config ("config": read only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} config {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a {kind} config must be a JSON object")
    if validate and kind != "config":
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
                "optimizer", "self", "cond_pretransform", "params"}
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
    """None if ``value`` fits the annotation (or the default's type); else what was expected. Lists are checked
    item by item (``Sequence[int]``, ``tuple[float, float]``), JSON objects value by value (``dict[str, float]``)."""
    origin = tp.get_origin(annotation)
    if annotation is inspect.Parameter.empty or isinstance(annotation, str) or annotation is tp.Any:
        if default is None or default is inspect.Parameter.empty:
            return None
        annotation, origin = type(default), None
    if origin is tp.Literal:
        return None if value in tp.get_args(annotation) else f"one of {json.dumps(list(tp.get_args(annotation)))}"
    if origin in (tp.Union, types.UnionType):
        args = tp.get_args(annotation)
        if value is None and type(None) in args:
            return None
        failures = [_type_ok(value, a, inspect.Parameter.empty) for a in args if a is not type(None)]
        return None if any(f is None for f in failures) else " or ".join(f for f in failures if f)
    base, args = origin or annotation, tp.get_args(annotation)
    if base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is bool:
        ok = isinstance(value, bool)
    elif base is str:
        ok = isinstance(value, str)
    elif base in (list, tuple, collections.abc.Sequence, tp.Sequence, tp.List, tp.Tuple):
        if not isinstance(value, list):
            return "a list" + (f" of {_annotation_text(args[0])}" if len(args) == 1 or args[-1:] == (...,) else "")
        if base is tuple and args and args[-1] is not ...:
            if len(value) != len(args):
                return f"a list of {len(args)} items ({', '.join(_annotation_text(a) for a in args)})"
            items = list(zip(value, args))
        else:
            items = [(v, args[0]) for v in value] if args else []
        for i, (item, item_type) in enumerate(items):
            if (expected := _type_ok(item, item_type, inspect.Parameter.empty)) is not None:
                return f"a list whose item {i} is {expected}"
        return None
    elif base in (dict, collections.abc.Mapping, tp.Dict, tp.Mapping):
        if not isinstance(value, dict):
            return "a JSON object"
        for key, item in value.items():
            if len(args) == 2 and (expected := _type_ok(item, args[1], inspect.Parameter.empty)) is not None:
                return f"a JSON object whose {key!r} is {expected}"
        return None
    else:
        return None
    return None if ok else getattr(base, "__name__", str(base))


def _annotation_text(annotation: tp.Any) -> str:
    """How an annotation reads in messages and ``--describe``: ``int``, ``list[int]``, ``"prepend" | "adaLN"``."""
    origin, args = tp.get_origin(annotation), tp.get_args(annotation)
    if origin is tp.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (tp.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _annotation_text(a) for a in args)
    if origin is not None:
        name = {collections.abc.Sequence: "list", tuple: "list", list: "list", dict: "dict",
                collections.abc.Mapping: "dict"}.get(origin, getattr(origin, "__name__", str(origin)))
        inner = ", ".join("..." if a is ... else _annotation_text(a) for a in args)
        return f"{name}[{inner}]" if args else name
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _kwargs_targets() -> dict[type, list[tp.Any]]:
    """Classes whose ``**kwargs`` go on to another constructor, and the constructors whose keys are valid there
    (``dit_concat`` passes every key it does not take to stable-audio-tools' ``DiffusionTransformer``)."""
    from stable_audio_tools.models.dit import DiffusionTransformer

    from .models.dit_concat import DiTConcat

    return {DiTConcat: [DiffusionTransformer], DiffusionTransformer: []}


# JSON objects inside a config section that are themselves a constructor's keyword arguments.
def _nested_constructors() -> dict[tuple[type, str], tp.Any]:
    from .models.hse import HierarchicalSymbolEncoder
    from .models.mrci_unet import MRCIUNet

    return {(MRCIUNet, "encoder"): HierarchicalSymbolEncoder}


def _parameters(cls: tp.Any) -> tuple[dict[str, inspect.Parameter], dict[str, tp.Any], bool]:
    """(keyword parameters, their type hints, whether any key is accepted) of ``cls``, with the keys its
    ``**kwargs`` forward to (``_kwargs_targets``)."""
    from .factory import accepted_parameters

    params, takes_any = accepted_parameters(cls)
    hints = _hints(cls)
    forwards = _kwargs_targets().get(cls) if inspect.isclass(cls) else None
    if forwards is not None:  # its own arguments (not its parents', which it fills itself) and the targets'
        own = inspect.signature(cls.__init__).parameters.values()
        params = {p.name: p for p in own if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        takes_any = False
        for target in forwards:
            target_params, _ = accepted_parameters(target)
            target_hints = _hints(target)
            for key, p in target_params.items():
                if key not in params:
                    params[key] = p
                    if key in target_hints:
                        hints[key] = target_hints[key]
        if any(c.__name__ == "DiffusionTransformer" for c in [cls, *forwards]):
            for key in DIT_TRANSFORMER_KEYS - set(params):
                params[key] = inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None)
    return params, hints, takes_any


def _hints(cls: tp.Any) -> dict[str, tp.Any]:
    """Resolved annotations of ``cls``'s constructor and of the parents' it forwards ``**kwargs`` to (an
    annotation that does not resolve is left out, so the check falls back to the default's type)."""
    functions = [c.__init__ for c in getattr(cls, "__mro__", ()) if "__init__" in vars(c)] if inspect.isclass(cls) \
        else [cls]
    hints: dict[str, tp.Any] = {}
    for function in reversed(functions):  # the class's own annotations win
        try:
            hints.update(tp.get_type_hints(function))
        except Exception:  # one bad annotation: resolve the others one by one
            namespace = getattr(function, "__globals__", {})
            for key, text in getattr(function, "__annotations__", {}).items():
                try:
                    hints[key] = eval(text, namespace) if isinstance(text, str) else text
                except Exception:
                    continue
    return hints


def check_kwargs(cls: tp.Any, config: dict, path: str, extra: set[str] = frozenset()) -> list[Problem]:
    """Unknown keys, wrong value types and missing required arguments of ``cls(**config)``, down into the JSON
    objects that are constructor arguments themselves (``_nested_constructors``) and the per-condition
    ``cond_dropout`` of a backbone with ``condition_names``."""
    if not isinstance(config, dict):
        return [Problem(path, f"must be a JSON object, got {type(config).__name__}")]
    params, hints, takes_any = _parameters(cls)
    problems = []
    allowed = set(params) | set(extra)
    nested = _nested_constructors()
    for key, value in config.items():
        if key not in allowed and not takes_any:
            close = [k for k in sorted(allowed - CONTEXT_KEYS) if _similar(k, key)]
            hint = f"; did you mean {close[0]!r}?" if close else f"; accepted: {sorted(allowed - CONTEXT_KEYS)}"
            problems.append(Problem(f"{path}.{key}", f"unknown key for {cls.__name__}{hint}"))
        elif key in params:
            expected = _type_ok(value, hints.get(key, params[key].annotation), params[key].default)
            if expected:
                problems.append(Problem(f"{path}.{key}", f"expected {expected}, got {json.dumps(value)}"))
            elif (cls, key) in nested and isinstance(value, dict):
                problems += check_kwargs(nested[(cls, key)], value, f"{path}.{key}")
            elif key == "cond_dropout" and isinstance(value, dict) and hasattr(cls, "condition_names"):
                problems += _cond_dropout_problems(cls, value, f"{path}.{key}")
    for key, p in params.items():
        if p.default is inspect.Parameter.empty and key not in config and key not in CONTEXT_KEYS \
                and key not in extra and key != "dim":
            problems.append(Problem(f"{path}.{key}", f"required by {cls.__name__} but missing"))
    return problems


def _cond_dropout_problems(cls: type, value: dict, path: str) -> list[Problem]:
    """``cond_dropout`` names only the backbone's conditions, each with a probability in [0, 1]."""
    names = list(cls.condition_names)
    problems = []
    for name, p in value.items():
        if name not in names:
            close = [n for n in names if _similar(n, name)]
            hint = f"did you mean {close[0]!r}?" if close else f"{cls.__name__}'s conditions are {names}"
            problems.append(Problem(f"{path}.{name}", f"unknown condition; {hint}"))
        elif isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            problems.append(Problem(f"{path}.{name}", f"must be a probability in [0, 1], got {json.dumps(p)}"))
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
    if cfg.get("type") == "log_stft":
        channels, n_fft = c.get("channels", 1), c.get("n_fft", 512)
        return channels, channels * (n_fft // 2 + 1)
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
        ratio = {"patch": pt.get("config", {}).get("patch_size", 256), "mdct": pt.get("config", {}).get("hop", 64),
                 "log_stft": pt.get("config", {}).get("hop", 128)}.get(
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
    # the width each route's conditions add up to, under the name the backbone gives it (mrci_unet: style_dim)
    for key, route in (("global_cond_dim", "global_cond_ids"), ("style_dim", "global_cond_ids"),
                       ("input_concat_dim", "input_concat_ids")):
        want = total(route)
        if key in dcfg and want is not None and diff.get(route) and dcfg[key] != want:
            problems.append(Problem(f"model.diffusion.config.{key}",
                                    f"{dcfg[key]} but {route} {diff[route]} add up to {want}"))
        if diff.get(route) and cls is not None \
                and key in inspect.signature(cls).parameters and key not in dcfg:
            problems.append(Problem(f"model.diffusion.config.{key}", f"missing although {route} is set"))
    check = getattr(cls, "check_config", None)
    if check is not None:
        problems += [Problem(p, m) for p, m in check(config)]
    return problems


TRAINING_ONLY_KEYS = {"type", "demo"}
# The keys of training.demo that stable-audio-tools' own demo callback reads (create_demo_callback_from_config),
# so its configs (stable_audio_1_0.json, 2_0.json) and its train.py work with ours.
SAT_DEMO_KEYS = {"demo_every", "demo_steps", "num_demos", "demo_cfg_scales", "demo_cond", "demo_cond_from_batch",
                 "display_audio_cond", "cond_display_configs"}
OPTIMIZER_SECTIONS = {"diffusion_cond": ("diffusion",)}  # the optimizer_configs keys each wrapper reads


def _check_training(config: dict) -> list[Problem]:
    training = config.get("training")
    if training is None or config["model_type"] not in ("diffusion_cond", "diffusion_cond_inpaint"):
        return []
    if not isinstance(training, dict):
        return [Problem("training", f"must be a JSON object, got {json.dumps(training)}")]
    wtype = training.get("type", "diffusion_cond")
    if wtype not in TRAINING_WRAPPERS:
        return [Problem("training.type", f"unknown training wrapper {wtype!r}; known: {TRAINING_WRAPPERS.names()}")]
    from .training.diffusion_cond import KEY_ALIASES

    cls = TRAINING_WRAPPERS.get(wtype)
    kwargs = {KEY_ALIASES.get(k, k): v for k, v in training.items() if k not in TRAINING_ONLY_KEYS}
    problems = [Problem(p.path.replace("training.lr", "training.learning_rate"), p.message)
                for p in check_kwargs(cls, kwargs, "training")]
    opt = training.get("optimizer_configs")
    if isinstance(opt, dict):
        problems += _check_optimizer_configs(opt)
    if "demo" in training:
        problems += _check_demo(training["demo"])
    return problems


def _check_optimizer_configs(opt: dict) -> list[Problem]:
    """``training.optimizer_configs``: ``{"diffusion": {"optimizer": {"type", "config"}, "scheduler": {"type",
    "config"}}}``, each ``config`` checked against the ``torch.optim`` class or scheduler it builds (these are
    built inside Lightning's ``fit``, where a bad key would fail without its path)."""
    import torch

    from .training.schedulers import SCHEDULERS

    base = "training.optimizer_configs"
    problems = []
    sections = OPTIMIZER_SECTIONS["diffusion_cond"]
    for name, section in opt.items():
        where = f"{base}.{name}"
        if name not in sections:
            problems.append(Problem(where, f"unknown optimizer section; the diffusion wrapper reads {list(sections)}"))
            continue
        if not isinstance(section, dict):
            problems.append(Problem(where, f"must be a JSON object, got {json.dumps(section)}"))
            continue
        for key in section:
            if key not in ("optimizer", "scheduler"):
                close = [k for k in ("optimizer", "scheduler") if _similar(k, key)]
                hint = f"did you mean {close[0]!r}?" if close else "expected optimizer and scheduler"
                problems.append(Problem(f"{where}.{key}", f"unknown key; {hint}"))
        if "optimizer" not in section:
            problems.append(Problem(f"{where}.optimizer", "missing"))
        for key, lookup in (("optimizer", lambda t: getattr(torch.optim, str(t), None)),
                            ("scheduler", lambda t: SCHEDULERS.get(t) or getattr(torch.optim.lr_scheduler, str(t), None))):
            part = section.get(key)
            if part is None:
                continue
            if not isinstance(part, dict):
                problems.append(Problem(f"{where}.{key}", f"must be a JSON object, got {json.dumps(part)}"))
                continue
            for k in part:
                if k not in ("type", "config"):
                    problems.append(Problem(f"{where}.{key}.{k}", "unknown key; expected type and config"))
            ptype = part.get("type")
            target = lookup(ptype) if ptype is not None else None
            if ptype is None:
                problems.append(Problem(f"{where}.{key}.type", "missing"))
            elif key == "optimizer" and ptype == "FusedAdam":  # deepspeed's, built by stable-audio-tools
                continue
            elif not isinstance(target, type):
                known = ("any class in torch.optim" if key == "optimizer" else
                         f"ours {sorted(SCHEDULERS)} or any class in torch.optim.lr_scheduler")
                problems.append(Problem(f"{where}.{key}.type", f"{ptype!r} is not an {key}; {known}"))
            elif key == "optimizer" and "config" not in part:
                problems.append(Problem(f"{where}.optimizer.config", "missing (stable-audio-tools reads it)"))
            else:
                problems += check_kwargs(target, part.get("config", {}), f"{where}.{key}.config")
    return problems


def _check_demo(demo: tp.Any) -> list[Problem]:
    """``training.demo``: our ``DemoCallback``'s keys and those stable-audio-tools' own demo callback reads."""
    from .training.callbacks import DemoCallback

    if not isinstance(demo, dict):
        return [Problem("training.demo", f"must be a JSON object, got {json.dumps(demo)}")]
    problems = check_kwargs(DemoCallback, demo, "training.demo", {"out_dir", "sample_rate"} | SAT_DEMO_KEYS)
    cond = demo.get("demo_cond")
    if cond is not None and not (isinstance(cond, list) and all(isinstance(c, dict) for c in cond)):
        problems.append(Problem("training.demo.demo_cond", f"must be a list of JSON objects (one metadata dict per "
                                f"demo, keys = conditioner ids), got {json.dumps(cond)[:80]}"))
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
    problems = [p for p in problems if p.path.split(".")[-1] not in loader_context or "required" not in p.message]
    if not problems:  # the types are right: now the values
        problems += [Problem(f"dataset.{p.path}", p.message) for p in _size_problems(config)]
        problems += _dataset_value_problems(config)
    return problems


def _dataset_value_problems(config: dict) -> list[Problem]:
    """Values a dataset type cannot use, whatever the type (a key is checked where the type has it): the low-pass
    ``cutoff_range`` two frequencies 0 < low <= high, ``filter_orders`` positive, ``cutoff_step_hz`` > 0 and
    ``max_cutoff_ratio`` in (0, 1]."""
    problems = []
    if isinstance(cutoff := config.get("cutoff_range"), list):
        if len(cutoff) != 2 or not 0 < cutoff[0] <= cutoff[1]:
            problems.append(Problem("dataset.cutoff_range", f"must be [low, high] in Hz with 0 < low <= high, got "
                                    f"{json.dumps(cutoff)}"))
    if isinstance(orders := config.get("filter_orders"), list) and any(o < 1 for o in orders):
        problems.append(Problem("dataset.filter_orders", f"must be positive, got {json.dumps(orders)}"))
    if (step := config.get("cutoff_step_hz")) is not None and step <= 0:
        problems.append(Problem("dataset.cutoff_step_hz", f"must be > 0, got {step}"))
    if (ratio := config.get("max_cutoff_ratio")) is not None and not 0 < ratio <= 1:
        problems.append(Problem("dataset.max_cutoff_ratio", f"must be in (0, 1] or null, got {ratio}"))
    return problems


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

def _describe_class(name: str, cls: tp.Any, lines: list[str], skip: set[str] = frozenset(),
                    names: dict[str, str] | None = None) -> None:
    """``name  (module.Class)  first docstring line`` and one line per key: ``key: type = default`` (``names``:
    argument → the config key that feeds it, where they differ)."""
    doc = (inspect.getdoc(cls) or "").split("\n")[0]
    lines.append(f"\n{name}  ({cls.__module__}.{cls.__name__})  {doc}")
    params, hints, takes_any = _parameters(cls)
    for key, p in params.items():
        if key in CONTEXT_KEYS or key in skip:
            continue
        ann = hints.get(key, p.annotation)
        ann = "" if ann is inspect.Parameter.empty else f": {_annotation_text(ann)}"
        default = "  (required)" if p.default is inspect.Parameter.empty else f" = {json.dumps(p.default, default=str)}"
        lines.append(f"    {(names or {}).get(key, key)}{ann}{default}")
    if takes_any:
        lines.append("    ... (further keys are passed on unchecked)")


def describe() -> str:
    """Every registered type with its config keys, types (``Literal`` values spelled out) and defaults, read from
    the constructors; then stable-audio-tools' own types that ``config_check`` knows, the LR schedulers and the
    ``training.demo`` keys."""
    import torch

    from .training.callbacks import DemoCallback
    from .training.schedulers import SCHEDULERS

    from .training.diffusion_cond import KEY_ALIASES

    config_keys = {arg: key for key, arg in KEY_ALIASES.items()}  # training.learning_rate feeds lr
    lines = []
    for registry in (CONDITIONERS, DIFFUSION_MODELS, PRETRANSFORMS, TRAINING_WRAPPERS, DATASETS):
        lines.append(f"## {registry.kind} types")
        for name, cls in registry.items():
            _describe_class(name, cls, lines, names=config_keys if registry is TRAINING_WRAPPERS else None)
        lines.append("")
    upstream = _upstream_classes()
    registries = {"conditioner": CONDITIONERS, "diffusion": DIFFUSION_MODELS, "pretransform": PRETRANSFORMS}
    for kind, classes in upstream.items():
        lines.append(f"## stable-audio-tools' own {kind} types")
        for name, cls in classes.items():
            _describe_class(name, cls, lines)
        unchecked = sorted(set(registries[kind].upstream_types) - set(classes))
        if unchecked:
            lines.append(f"\nalso built by stable-audio-tools, keys not checked here: {', '.join(unchecked)}")
        lines.append("")
    lines.append("## schedulers (training.optimizer_configs.diffusion.scheduler.type)")
    for name, cls in SCHEDULERS.items():
        _describe_class(name, cls, lines)
    torch_schedulers = sorted(n for n, c in vars(torch.optim.lr_scheduler).items()
                              if isinstance(c, type) and issubclass(c, torch.optim.lr_scheduler.LRScheduler)
                              and c is not torch.optim.lr_scheduler.LRScheduler and n not in SCHEDULERS)
    lines.append(f"\nand torch.optim.lr_scheduler's: {', '.join(torch_schedulers)}")
    lines.append("\n## optimizers (training.optimizer_configs.diffusion.optimizer.type): any class in torch.optim, "
                 "e.g. AdamW; its config holds the constructor's keys (lr, betas, weight_decay ...)")
    lines.append("\n## training.demo")
    _describe_class("demo", DemoCallback, lines, skip={"out_dir", "sample_rate"})
    extra = sorted(SAT_DEMO_KEYS - set(_parameters(DemoCallback)[0]))
    if extra:
        lines.append(f"    also accepted (read by stable-audio-tools' own demo callback): {', '.join(extra)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from .quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
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
            raw = load_config(path, "config", validate=False)  # a syntax error names the file, line and column
            kind = "dataset" if "dataset_type" in raw else "model"
            config = load_config(path, kind)
        except (ConfigError, FileNotFoundError) as e:
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
