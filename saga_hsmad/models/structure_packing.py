"""HS-MAD's structure input as ONE tensor for stable-audio-tools' ``input_concat`` route.

stable-audio-tools routes a conditioner's output to the backbone as ``input_concat_cond`` (b, C, T) and
drops masks and dictionaries on that route. So the structure conditioner packs S_sync, its frame mask
and (in training) the auxiliary labels into channels at the latent rate T_H:

    channel                         content                                                  rate
    [0, S)                          S_sync (S = 384 = onset/sustain/velocity × 128 pitches)   T_H
    S                               structure mask: 1.0 on valid frames, 0.0 on padding      T_H
    S + 1 + LABEL_LAYOUT[name]      labels (absent at inference: then C = S + 1)

    LABEL_LAYOUT (offsets inside the label block; LABEL_CHANNELS = 21), the labels of
    ``saga_hsmad.symbolic.labels.derive_labels``:
        "chroma"         [0, 12)   T_M: each T_M frame repeated R₁ times
        "chroma_mask"    [12, 13)  T_M
        "beat"           [13, 14)  T_M
        "beat_mask"      [14, 15)  T_M
        "downbeat"       [15, 16)  T_M
        "downbeat_mask"  [16, 17)  T_M
        "tempo"          [17, 18)  T_L: each T_L frame repeated R₁·R₂ times (log2(BPM / 120))
        "tempo_mask"     [18, 19)  T_L
        "key"            [19, 20)  T_L (class index 0..23, −100 where masked, stored as a float)
        "key_mask"       [20, 21)  T_L

With S = 384: mask channel 384, label block [385, 406), so C = 406 in training and 385 at inference.
Masks are stored as 0.0 / 1.0. A label missing from the dict is packed as zeros with a zero mask (it
contributes no loss). ``unpack_structure(x, factors=(R₁, R₂))`` reads T_M labels at every R₁-th frame and
T_L labels at every R₁R₂-th frame, giving back derive_labels' grids.

Legend: b batch, S S_sync channels, T_H latent frames, T_M = T_H / R₁, T_L = T_M / R₂.
"""
from __future__ import annotations

import typing as tp

import torch

SRM_CHANNELS = 384
LABEL_LAYOUT: dict[str, tuple[int, int]] = {
    "chroma": (0, 12),
    "chroma_mask": (12, 13),
    "beat": (13, 14),
    "beat_mask": (14, 15),
    "downbeat": (15, 16),
    "downbeat_mask": (16, 17),
    "tempo": (17, 18),
    "tempo_mask": (18, 19),
    "key": (19, 20),
    "key_mask": (20, 21),
}
LABEL_CHANNELS = 21
LABEL_LEVEL = {name: ("global" if name.split("_")[0] in ("tempo", "key") else "local") for name in LABEL_LAYOUT}


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

    Labels as ``derive_labels`` gives them, batched: "chroma" (b, T_M, 12); the others (b, T) on their
    level's frames, T dividing T_H; a per-item (b,) value is held constant over time. Unbatched input
    (S_sync (S, T_H), mask (T_H,), derive_labels' dict as is) gives (C, T_H), for a conditioner that packs
    item by item. ``labels=None`` packs no label block (inference).
    """
    unbatched = srm.ndim == 2
    if unbatched:
        srm = srm[None]
        mask = None if mask is None else torch.as_tensor(mask)[None]
        labels = None if labels is None else {k: torch.as_tensor(v)[None] for k, v in labels.items()}
    if srm.ndim != 3:
        raise ValueError(f"pack_structure: S_sync must be (b, S, T_H) or (S, T_H), got {tuple(srm.shape)}")
    b, _, length = srm.shape
    dtype, device = (srm.dtype if srm.is_floating_point() else torch.float32), srm.device
    mask = torch.ones(b, length, dtype=torch.bool, device=device) if mask is None else torch.as_tensor(mask)
    if mask.shape != (b, length):
        raise ValueError(f"pack_structure: mask {tuple(mask.shape)} does not match S_sync frames {(b, length)}")
    parts = [srm.to(dtype), mask.to(device=device, dtype=dtype)[:, None, :]]
    if labels is not None:
        unknown = sorted(set(labels) - set(LABEL_LAYOUT))
        if unknown:
            raise KeyError(f"pack_structure: unknown label(s) {unknown}; known: {list(LABEL_LAYOUT)}")
        block = torch.zeros(b, LABEL_CHANNELS, length, dtype=dtype, device=device)
        for name, value in labels.items():
            start, stop = LABEL_LAYOUT[name]
            value = torch.as_tensor(value, device=device).to(dtype)
            if value.shape == (b,):  # per item: constant over time
                block[:, start] = value[:, None]
                continue
            if value.ndim == 2:
                value = value[..., None]
            if value.ndim != 3 or value.shape[0] != b or value.shape[2] != stop - start:
                raise ValueError(f"pack_structure: label {name!r} must be (b, T{', 12' if name == 'chroma' else ''}) "
                                 f"or (b,), got {tuple(labels[name].shape)}")
            frames = value.shape[1]
            if frames == 0 or length % frames != 0:
                raise ValueError(f"pack_structure: label {name!r} has {frames} frames; T_H = {length} must be a "
                                 f"multiple of it (T_M = T_H / R1, T_L = T_H / (R1 R2))")
            block[:, start:stop] = value.transpose(1, 2).repeat_interleave(length // frames, dim=-1)
        parts.append(block)
    out = torch.cat(parts, dim=1)
    return out[0] if unbatched else out


def unpack_structure(x: torch.Tensor, srm_channels: int = SRM_CHANNELS, factors: tp.Sequence[int] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None]:
    """(b, C, T_H) → S_sync (b, S, T_H), mask (b, T_H) bool, labels or None (when C = S + 1).

    With ``factors`` (R₁, R₂) the labels come back on their levels' grids: "chroma" (b, T_M, 12), the
    other T_M labels (b, T_M), the T_L labels (b, T_L); without, every label is read at all T_H frames.
    Masks are bool, "key" is long, the rest float.
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
    r1, r2 = (1, 1) if factors is None else (int(factors[0]), int(factors[1]))
    if x.shape[-1] % (r1 * r2) != 0:
        raise ValueError(f"unpack_structure: T_H = {x.shape[-1]} is not a multiple of R1·R2 = {r1 * r2}")
    step = {"local": r1, "global": r1 * r2}
    labels = {}
    for name in LABEL_LAYOUT:
        value = x[:, label_slice(name, srm_channels), ::step[LABEL_LEVEL[name]]].transpose(1, 2)  # (b, T, k)
        if name.endswith("_mask"):
            labels[name] = value[..., 0] > 0.5
        elif name == "key":
            labels[name] = value[..., 0].round().long()
        else:
            labels[name] = value if name == "chroma" else value[..., 0]
    return srm, mask, labels
