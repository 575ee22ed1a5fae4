"""The loader passes its options through (a comment once swallowed pin_memory and drop_last)."""
from __future__ import annotations

from saga_hsmad.data.loader import create_dataloader_from_config


def test_drop_last_and_collation(noise_folder):
    config = {"dataset_type": "audio_folder", "roots": str(noise_folder)}
    common = dict(batch_size=3, sample_size=4096, sample_rate=44100, num_workers=0, seed=0)
    assert len(create_dataloader_from_config(config, **common)) == 1  # 4 files, batch 3: last batch dropped
    loader = create_dataloader_from_config(config, drop_last=False, **common)
    assert len(loader) == 2
    audio, metadata = next(iter(loader))
    assert audio.shape == (3, 2, 4096) and isinstance(metadata[0]["padding_mask"], list)
