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


def test_repeat_makes_distinct_passes_of_the_same_draws(noise_folder):
    import pytest
    import torch

    from saga_hsmad.config_check import validate_dataset_config
    from saga_hsmad.data.loader import create_dataset_from_config

    config = {"dataset_type": "audio_folder", "roots": str(noise_folder)}
    common = dict(batch_size=2, sample_size=4096, sample_rate=44100, num_workers=0, seed=3)
    plain = create_dataset_from_config(config, sample_size=4096, sample_rate=44100, audio_channels=2, seed=3)
    n = len(plain)
    repeated = create_dataloader_from_config({**config, "repeat": 3}, **common).dataset
    assert len(repeated) == 3 * n
    repeated.epoch = 2
    starts = []
    for j in range(3 * n):
        plain.epoch = 2 * 3 + j // n  # item j of epoch 2 is item j mod n of the wrapped epoch 6 + j // n
        expected_audio, expected = plain[j % n]
        audio, metadata = repeated[j]
        assert torch.equal(audio, expected_audio) and metadata["path"] == expected["path"]
        starts.append((metadata["path"], metadata["seconds_start"]))
    assert len(set(starts)) == 3 * n, "the passes must draw different windows"

    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="repeat"):
            create_dataloader_from_config({**config, "repeat": bad}, **common)
        assert [p.path for p in validate_dataset_config({**config, "repeat": bad})] == ["dataset.repeat"]
    assert validate_dataset_config({**config, "repeat": 4}) == []


def test_persistent_workers_read_what_fresh_workers_read(noise_folder):
    """Workers live across epochs by default (a fresh one per epoch cost seconds each); the dataset config's
    ``loader`` options override the default, and both read the same windows in the same order."""
    config = {"dataset_type": "audio_folder", "roots": str(noise_folder), "repeat": 2}
    common = dict(batch_size=2, sample_size=4096, sample_rate=44100, num_workers=1, seed=5)
    persistent = create_dataloader_from_config(config, **common)
    fresh = create_dataloader_from_config({**config, "loader": {"persistent_workers": False}}, **common)
    assert persistent.persistent_workers and not fresh.persistent_workers
    assert not create_dataloader_from_config(config, **{**common, "num_workers": 0}).persistent_workers

    def read(loader) -> list[tuple[str, float]]:
        seen = []
        for epoch in range(3):
            loader.sampler.place(epoch, 1 if epoch == 1 else 0)  # what DataPosition does at each epoch
            seen += [(md["path"], md["seconds_start"]) for _, batch in loader for md in batch]
        return seen

    seen = read(persistent)
    assert seen == read(fresh)
    assert len(set(seen)) > len(seen) // 2  # the epochs draw different windows
