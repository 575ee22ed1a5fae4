"""``MultiConditioner`` with stable-audio-tools 0.0.19's list truncation fixed.

0.0.19 unwraps a metadata value when ``isinstance(v, list) or (isinstance(v, tuple) and len(v) == 1)``
(operator precedence), so *every* Python list, of any length, reaches the conditioner cut to its first
element. Here only one-element lists and tuples are unwrapped, as upstream intends.
"""
from __future__ import annotations

import typing as tp

import torch
from stable_audio_tools.models import conditioners as sat_conditioners


def unwrap_single(value: tp.Any) -> tp.Any:
    """The element of a one-element list or tuple (collate wrappers); anything else unchanged."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


class MultiConditioner(sat_conditioners.MultiConditioner):
    """Applies each conditioner to its metadata key; multi-element lists pass through whole."""

    def forward(self, batch_metadata: tp.Sequence[dict], device: tp.Union[torch.device, str]) -> dict:
        output = {}
        for key, conditioner in self.conditioners.items():
            inputs = [unwrap_single(item[self.metadata_key(key, item)]) for item in batch_metadata]
            if key in self.pre_encoded_keys:
                output[key] = [torch.stack(inputs, dim=0).to(device), None]
            else:
                output[key] = conditioner(inputs, device)
        return output

    def metadata_key(self, key: str, item: dict) -> str:
        """The metadata key that feeds conditioner ``key`` (its own id, else its default key)."""
        if key in item:
            return key
        if key in self.default_keys and self.default_keys[key] in item:
            return self.default_keys[key]
        raise KeyError(f"conditioner {key!r}: no {key!r} (nor a default key) in the batch metadata; "
                       f"metadata keys are {sorted(item)}")
