"""One registry per pluggable kind, filled by decorators in the file that defines each type.

A type registers under the ``type`` string its JSON config uses::

    @CONDITIONERS.register("rolloff")
    class RolloffConditioner(Conditioner): ...

``saga_hsmad.install()`` makes stable-audio-tools' own factories build the registered types;
``saga_hsmad.factory`` builds them without patching anything.
"""
from __future__ import annotations

import importlib
import typing as tp

T = tp.TypeVar("T")

# Modules whose import fills the registries. Registration is their only import-time effect.
_PLUGIN_MODULES = (
    "saga_hsmad.pretransforms",
    "saga_hsmad.conditioners",
    "saga_hsmad.models",
    "saga_hsmad.training",
    "saga_hsmad.data",
)


class UnknownTypeError(KeyError):
    """A config names a ``type`` that no registry (ours or stable-audio-tools') knows."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead
        return str(self.args[0])


class Registry(tp.Generic[T]):
    """A name → builder table for one kind of plug-in (conditioner, backbone, ...)."""

    def __init__(self, kind: str, upstream_types: tp.Iterable[str] = ()):
        self.kind = kind
        self.upstream_types = tuple(upstream_types)  # types stable-audio-tools builds itself
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> tp.Callable[[T], T]:
        def decorator(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} type {name!r} is registered twice: {existing} and {obj}")
            if name in self.upstream_types:
                raise ValueError(f"{self.kind} type {name!r} would shadow stable-audio-tools' own type")
            self._entries[name] = obj
            return obj

        return decorator

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        load_plugins()
        return sorted(self._entries.items())

    def get(self, name: str | None, where: str = "type") -> T:
        """The registered builder for ``name``; an error listing every known type otherwise."""
        load_plugins()
        if name in self._entries:
            return self._entries[name]
        raise UnknownTypeError(
            f"unknown {self.kind} type {name!r} at {where}; known: "
            f"ours {sorted(self._entries)}, stable-audio-tools' {sorted(self.upstream_types)}"
        )

    def is_known(self, name: str | None) -> bool:
        return name in self or name in self.upstream_types

    def check(self, name: str | None, where: str = "type") -> None:
        """Raise the listing error unless ``name`` is ours or stable-audio-tools'."""
        if not self.is_known(name):
            self.get(name, where)


CONDITIONERS: Registry = Registry(
    "conditioner",
    ("t5", "clap_text", "clap_audio", "int", "number", "list", "phoneme", "lut", "pretransform", "source_mix"),
)
DIFFUSION_MODELS: Registry = Registry("diffusion backbone", ("adp_cfg_1d", "adp_1d", "dit"))
PRETRANSFORMS: Registry = Registry(
    "pretransform", ("autoencoder", "wavelet", "pqmf", "dac_pretrained", "audiocraft_pretrained", "patched")
)
TRAINING_WRAPPERS: Registry = Registry("training wrapper")
DATASETS: Registry = Registry("dataset")

_loaded = False


def load_plugins() -> None:
    """Import every plug-in module once, so that their decorators have run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _PLUGIN_MODULES:
        importlib.import_module(module)
