"""HS-MAD's structure input as ONE tensor for stable-audio-tools' ``input_concat`` route.

stable-audio-tools routes a conditioner's output to the backbone as ``input_concat_cond`` (b, C, T) and
drops masks and dictionaries on that route. So the structure conditioner packs S_sync, its frame mask
and (in training) the auxiliary labels into channels at the latent rate T_H:

    channel                         content                               rate
    [0, S)                          S_sync (S = 384 = onset/sustain/velocity × 128 pitches)    T_H
    S                               structure mask: 1.0 on valid frames, 0.0 on padding       T_H
    S + 1 + LABEL_LAYOUT[name]      labels (absent at inference: then C = S + 1)

    LABEL_LAYOUT (offsets inside the label block, LABEL_CHANNELS = 20 channels):
        "chroma"       [0, 12)   T_M rate, each T_M frame repeated R₁ times
        "chroma_mask"  [12, 13)  T_M rate, repeated
        "beat"         [13, 15)  T_M rate, repeated (beat, downbeat)
        "beat_mask"    [15, 16)  T_M rate, repeated
        "tempo"        [16, 17)  one value per item, constant over time
        "tempo_mask"   [17, 18)  per item
        "key"          [18, 19)  per item, class index 0..23 stored as a float
        "key_mask"     [19, 20)  per item

With S = 384: mask channel 384, label block [385, 405), so C = 405 in training and 385 at inference.
A label missing from the dict is packed as zeros with a zero mask (it contributes no loss).
``unpack_structure`` reverses this; local-rate labels are read back at every R₁-th frame.

Legend: b batch, S S_sync channels, T_H latent frames, T_M = T_H / R₁.
"""
from __future__ import annotations

import typing as tp

import torch

SRM_CHANNELS = 384
LABEL_LAYOUT: dict[str, tuple[int, int]] = {
    "chroma": (0, 12),
    "chroma_mask": (12, 13),
    "beat": (13, 15),
    "beat_mask": (15, 16),
    "tempo": (16, 17),
    "tempo_mask": (17, 18),
    "key": (18, 19),
    "key_mask": (19, 20),
}
LABEL_CHANNELS = 20
LOCAL_RATE_LABELS = ("chroma", "chroma_mask", "beat", "beat_mask")
ITEM_LABELS = ("tempo", "tempo_mask", "key", "key_mask")


def structure_channels(srm_channels: int = SRM_CHANNELS, with_labels: bool = False) -> int:
    """Channel count of a packed structure tensor."""
    return srm_channels + 1 + (LABEL_CHANNELS if with_labels else 0)


def label_slice(name: str, srm_channels: int = SRM_CHANNELS) -> slice:
    """Absolute channel range of label ``name`` in a packed tensor."""
    start, stop = LABEL_LAYOUT[name]
    base = srm_channels + 1
    return slice(base + start, base + stop)


def pack_structure(srm: torch.Tensor, mask: torch.Tensor | None = None,
                   labels: tp.Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """S_sync (b, S, T_H), mask (b, T_H) bool (None = all valid) and labels → (b, C, T_H) float.

    Unbatched input (S_sync (S, T_H), mask (T_H,), labels without the batch axis) gives (C, T_H), for a
    conditioner that packs item by item. Labels: "chroma" (b, T_M, 12), "beat" (b, T_M, 2) and their masks
    (b, T_M) with T_H a multiple of T_M; "tempo", "key" and their masks (b,). ``labels=None`` packs no
    label block (inference).
    """
    unbatched = srm.ndim == 2
    if unbatched:
        srm = srm[None]
        mask = None if mask is None else torch.as_tensor(mask)[None]
        labels = None if labels is None else {k: torch.as_tensor(v)[None] for k, v in labels.items()}
    if srm.ndim != 3:
        raise ValueError(f"pack_structure: S_sync must be (b, S, T_H) or (S, T_H), got {tuple(srm.shape)}")
    b, s, length = srm.shape
    dtype, device = (srm.dtype if srm.is_floating_point() else torch.float32), srm.device
    if mask is None:
        mask = torch.ones(b, length, dtype=torch.bool, device=device)
    mask = torch.as_tensor(mask, device=device)
    if mask.shape != (b, length):
        raise ValueError(f"pack_structure: mask {tuple(mask.shape)} does not match S_sync frames {(b, length)}")
    parts = [srm.to(dtype), mask.to(dtype)[:, None, :]]
    if labels is not None:
        unknown = sorted(set(labels) - set(LABEL_LAYOUT))
        if unknown:
            raise KeyError(f"pack_structure: unknown label(s) {unknown}; known: {sorted(LABEL_LAYOUT)}")
        block = torch.zeros(b, LABEL_CHANNELS, length, dtype=dtype, device=device)
        for name, (start, stop) in LABEL_LAYOUT.items():
            if name not in labels:
                continue
            value = torch.as_tensor(labels[name], device=device).to(dtype)
            width = stop - start
            if name in LOCAL_RATE_LABELS:
                if value.ndim == 2 and width == 1:
                    value = value[..., None]
                if value.ndim != 3 or value.shape[0] != b or value.shape[2] != width:
                    raise ValueError(f"pack_structure: label {name!r} must be (b, T_M{', k' if width > 1 else ''}), "
                                     f"got {tuple(labels[name].shape)}")
                frames = value.shape[1]
                if frames == 0 or length % frames != 0:
                    raise ValueError(f"pack_structure: label {name!r} has {frames} frames; T_H = {length} must be a "
                                     f"multiple of it (T_M = T_H / R1)")
                block[:, start:stop] = value.transpose(1, 2).repeat_interleave(length // frames, dim=-1)
            else:
                if value.reshape(-1).shape[0] != b:
                    raise ValueError(f"pack_structure: label {name!r} must have one value per item ({b},), "
                                     f"got {tuple(labels[name].shape)}")
                block[:, start] = value.reshape(b, 1)
        parts.append(block)
    out = torch.cat(parts, dim=1)
    return out[0] if unbatched else out


def unpack_structure(x: torch.Tensor, srm_channels: int = SRM_CHANNELS, local_factor: int = 1
                     ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None]:
    """(b, C, T_H) → S_sync (b, S, T_H), mask (b, T_H) bool, labels or None (C = S + 1).

    Local-rate labels are read at every ``local_factor``-th frame (pass R₁ to get them at T_M:
    "chroma" (b, T_M, 12), "beat" (b, T_M, 2), masks (b, T_M) bool); "tempo" (b,) float, "key" (b,) long,
    their masks (b,) bool.
    """
    if x.ndim != 3:
        raise ValueError(f"unpack_structure: expected (b, C, T_H), got {tuple(x.shape)}")
    channels = x.shape[1]
    if channels not in (structure_channels(srm_channels), structure_channels(srm_channels, True)):
        raise ValueError(
            f"structure input has {channels} channels; expected {structure_channels(srm_channels)} (S_sync "
            f"{srm_channels} + mask) or {structure_channels(srm_channels, True)} (+ {LABEL_CHANNELS} label "
            f"channels). Check that input_concat_ids names only the structure conditioner and that "
            f"encoder.in_channels matches the SRM")
    srm = x[:, :srm_channels]
    mask = x[:, srm_channels] > 0.5
    if channels == structure_channels(srm_channels):
        return srm, mask, None
    if x.shape[-1] % local_factor != 0:
        raise ValueError(f"unpack_structure: T_H = {x.shape[-1]} is not a multiple of local_factor = {local_factor}")
    labels = {}
    for name in LABEL_LAYOUT:
        value = x[:, label_slice(name, srm_channels)]
        if name in LOCAL_RATE_LABELS:
            value = value[..., ::local_factor].transpose(1, 2)  # (b, T_M, k)
            labels[name] = value[..., 0] > 0.5 if name.endswith("_mask") else value
        else:
            value = value[:, 0, 0]
            if name.endswith("_mask"):
                labels[name] = value > 0.5
            elif name == "key":
                labels[name] = value.round().long()
            else:
                labels[name] = value
    return srm, mask, labels
