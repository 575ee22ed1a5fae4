"""Builders for every config section, aware of the registries, that patch nothing.

These are the functions ``saga_hsmad.install()`` puts in place of stable-audio-tools' factories.
Called directly they need no patching: ``saga_hsmad.create_model_from_config(cfg)``.
stable-audio-tools' own pretransform and conditioner types go to its original builders, its own
backbones are built from its classes here; so the stock types keep working, gain our fixes
(conditioner lists, unknown-type messages), and mix with ours whether or not ``install()`` has run.
"""
from __future__ import annotations

import inspect
import math
import typing as tp

from .registry import CONDITIONERS, DIFFUSION_MODELS, PRETRANSFORMS, TRAINING_WRAPPERS, UnknownTypeError

Config = tp.Dict[str, tp.Any]

DIFFUSION_KEYS = {
    "type", "config", "diffusion_objective", "cross_attention_cond_ids", "global_cond_ids",
    "input_concat_ids", "prepend_cond_ids", "distribution_shift_options",
}
MODEL_TYPES = ("autoencoder", "diffusion_uncond", "diffusion_cond", "diffusion_cond_inpaint",
               "diffusion_autoencoder", "lm")


def _originals():
    from . import patching
    return patching.originals()


def accepted_parameters(cls: tp.Callable) -> tuple[dict[str, inspect.Parameter], bool]:
    """(keyword parameters of ``cls``, whether it takes arbitrary keywords). A class whose ``__init__``
    forwards ``**kwargs`` to its parent is followed up the MRO, so its parents' arguments count too."""
    params: dict[str, inspect.Parameter] = {}
    chain = [c for c in getattr(cls, "__mro__", (cls,)) if "__init__" in vars(c)] if inspect.isclass(cls) else [cls]
    for owner in chain or [cls]:
        target = owner.__init__ if inspect.isclass(owner) else owner
        signature = inspect.signature(target)
        for k, p in signature.parameters.items():
            if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                params.setdefault(k, p)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            return params, False
        if owner.__module__.startswith("torch.") or owner is object:
            break
    return params, True


def construct(cls: tp.Callable, config: Config, where: str, **context: tp.Any):
    """``cls(**config)``, adding the ``context`` arguments ``cls`` accepts; a key that is not
    a constructor argument is an error naming ``where`` (upstream would ignore a typo)."""
    if not isinstance(config, dict):
        raise TypeError(f"{where} must be a JSON object, got {type(config).__name__}")
    params, takes_any = accepted_parameters(cls)
    if not takes_any:
        unknown = sorted(set(config) - set(params))
        if unknown:
            raise TypeError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; accepted: {sorted(params)}")
    kwargs = {k: v for k, v in context.items() if (k in params) and k not in config}
    try:
        return cls(**kwargs, **config)
    except TypeError as e:
        raise TypeError(f"{where}: cannot build {cls.__name__}: {e}") from e


def create_pretransform_from_config(pretransform_config: Config, sample_rate: int):
    """Build a registered pretransform, or hand stable-audio-tools' types to its own builder."""
    ptype = pretransform_config.get("type")
    if ptype not in PRETRANSFORMS:
        PRETRANSFORMS.check(ptype, "model.pretransform.type")
        return _originals()["create_pretransform_from_config"](pretransform_config, sample_rate)
    unknown = set(pretransform_config) - {"type", "config", "enable_grad"}
    if unknown:
        raise TypeError(f"model.pretransform: unknown key(s) {sorted(unknown)}")
    cls = PRETRANSFORMS.get(ptype, "model.pretransform.type")
    pretransform = construct(cls, pretransform_config.get("config", {}), "model.pretransform.config",
                             sample_rate=sample_rate)
    pretransform.enable_grad = bool(pretransform_config.get("enable_grad", False))
    pretransform.eval().requires_grad_(pretransform.enable_grad)
    return pretransform


def create_multi_conditioner_from_conditioning_config(config: Config, pretransform=None, sample_rate: int | None = None):
    """A ``MultiConditioner`` holding stable-audio-tools' conditioners and ours, by ``type``.

    Our conditioners receive ``pretransform`` and ``sample_rate`` (the model's) if they accept them."""
    from .conditioners.multi import MultiConditioner

    if "cond_dim" not in config:
        raise KeyError("model.conditioning.cond_dim is missing")
    unknown = set(config) - {"cond_dim", "configs", "default_keys", "pre_encoded_keys"}
    if unknown:
        raise TypeError(f"model.conditioning: unknown key(s) {sorted(unknown)}")
    items = config.get("configs", [])
    ours, upstream = [], []
    for i, item in enumerate(items):
        where = f"model.conditioning.configs[{i}]"
        for key in ("id", "type"):
            if key not in item:
                raise KeyError(f"{where}.{key} is missing")
        CONDITIONERS.check(item["type"], f"{where}.type")
        (ours if item["type"] in CONDITIONERS else upstream).append((where, item))

    conditioners = {}
    if upstream:
        stock = _originals()["create_multi_conditioner_from_conditioning_config"](
            {**config, "configs": [item for _, item in upstream]}, pretransform=pretransform)
        conditioners.update(stock.conditioners.items())
    for where, item in ours:
        cls = CONDITIONERS.get(item["type"], f"{where}.type")
        cfg = {"output_dim": config["cond_dim"], **item.get("config", {})}
        context = {"pretransform": pretransform}
        if sample_rate is not None:
            context["sample_rate"] = sample_rate
        conditioners[item["id"]] = construct(cls, cfg, f"{where}.config", **context)
    ordered = {item["id"]: conditioners[item["id"]] for item in items}
    return MultiConditioner(ordered, default_keys=config.get("default_keys", {}),
                            pre_encoded_keys=config.get("pre_encoded_keys", []))


def create_diffusion_cond_from_config(config: Config):
    """Build a conditioned diffusion model whose backbone may be one of our registered types."""
    from stable_audio_tools.models.diffusion import ConditionedDiffusionModelWrapper

    model_cfg = config.get("model")
    if model_cfg is None:
        raise KeyError("'model' section is missing")
    diffusion = model_cfg.get("diffusion")
    if diffusion is None:
        raise KeyError("model.diffusion is missing")
    dtype = diffusion.get("type")
    DIFFUSION_MODELS.check(dtype, "model.diffusion.type")
    unknown = set(diffusion) - DIFFUSION_KEYS
    if unknown:
        raise TypeError(f"model.diffusion: unknown key(s) {sorted(unknown)}; accepted: {sorted(DIFFUSION_KEYS)}")
    for key in ("io_channels",):
        if key not in model_cfg:
            raise KeyError(f"model.{key} is missing")
    if "sample_rate" not in config:
        raise KeyError("sample_rate is missing")
    objective = diffusion.get("diffusion_objective", "v")
    backbone = _build_backbone(dtype, diffusion.get("config", {}), objective)

    pretransform = None
    min_input_length = 1
    if model_cfg.get("pretransform") is not None:
        pretransform = create_pretransform_from_config(model_cfg["pretransform"], config["sample_rate"])
        min_input_length = pretransform.downsampling_ratio
    conditioner = None
    if model_cfg.get("conditioning") is not None:
        conditioner = create_multi_conditioner_from_conditioning_config(model_cfg["conditioning"], pretransform,
                                                                        sample_rate=config["sample_rate"])
    min_input_length *= int(getattr(backbone, "length_multiple", 1))

    ids = {name: diffusion.get(key, []) for name, key in (
        ("cross_attn_cond_ids", "cross_attention_cond_ids"), ("global_cond_ids", "global_cond_ids"),
        ("input_concat_ids", "input_concat_ids"), ("prepend_cond_ids", "prepend_cond_ids"))}
    if conditioner is not None:
        for name, id_list in ids.items():
            missing = [i for i in id_list if i not in conditioner.conditioners]
            if missing:
                raise KeyError(f"model.diffusion.{name.replace('cross_attn', 'cross_attention')}: "
                               f"{missing} are not ids in model.conditioning.configs")
    return ConditionedDiffusionModelWrapper(
        backbone, conditioner, io_channels=model_cfg["io_channels"], sample_rate=config["sample_rate"],
        min_input_length=min_input_length, diffusion_objective=objective,
        distribution_shift_options=diffusion.get("distribution_shift_options"), pretransform=pretransform,
        **ids)


def _build_backbone(dtype: str, config: Config, objective: str):
    """A registered backbone, or one of stable-audio-tools' own (built here with the same classes its
    factory uses, so that the rest of the model — pretransform, conditioners — comes from our builders
    whether or not ``install()`` has run)."""
    if dtype in DIFFUSION_MODELS:
        cls = DIFFUSION_MODELS.get(dtype, "model.diffusion.type")
        return construct(cls, config, "model.diffusion.config", diffusion_objective=objective)
    from stable_audio_tools.models import diffusion as sat_diffusion

    if dtype == "dit":
        backbone = sat_diffusion.DiTWrapper(diffusion_objective=objective, **config)
        backbone.length_multiple = backbone.model.patch_size
    else:  # adp_cfg_1d, adp_1d
        cls = sat_diffusion.UNetCFG1DWrapper if dtype == "adp_cfg_1d" else sat_diffusion.UNet1DCondWrapper
        backbone = cls(**config)
        backbone.length_multiple = int(math.prod(config["factors"]))
    return backbone


def create_model_from_config(model_config: Config):
    """Build any model stable-audio-tools builds, with our registered types available."""
    mtype = model_config.get("model_type")
    if mtype not in MODEL_TYPES:
        raise UnknownTypeError(f"unknown model_type {mtype!r}; known: {list(MODEL_TYPES)}")
    if mtype in ("diffusion_cond", "diffusion_cond_inpaint"):
        return create_diffusion_cond_from_config(model_config)
    return _originals()["create_model_from_config"](model_config)


def create_training_wrapper_from_config(model_config: Config, model):
    """The Lightning module that trains ``model``: a registered wrapper chosen by ``training.type``
    (default ``diffusion_cond``, stable-audio-tools' wrapper with our fixes), or upstream's builder
    for model types we do not wrap."""
    if trained_by_our_wrapper(model_config):
        wtype = model_config.get("training", {}).get("type", "diffusion_cond")
        cls = TRAINING_WRAPPERS.get(wtype, "training.type")
        return cls.from_config(model_config, model)
    return _originals()["create_training_wrapper_from_config"](model_config, model)


def trained_by_our_wrapper(model_config: Config) -> bool:
    """Whether ``create_training_wrapper_from_config`` gives this model one of our registered wrappers
    (conditional diffusion without upstream's ARC post-training) rather than upstream's."""
    return (model_config.get("model_type") in ("diffusion_cond", "diffusion_cond_inpaint")
            and "arc" not in model_config.get("training", {}))

