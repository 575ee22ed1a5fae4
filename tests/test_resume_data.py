"""Issue 12 item 5: data order and random windows are a function of (seed, global step), so a run resumed at
step k sees exactly the batches an uninterrupted run sees from step k + 1 on (``ResumableSampler`` placed by
the ``DataPosition`` callback), whatever the number of loader workers, with fresh windows in every pass."""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import REPO

from saga_hsmad.data.loader import ResumableSampler, create_dataloader_from_config, position_at
from saga_hsmad.training.callbacks import DataPosition

CONTEXT = dict(sample_size=1024, sample_rate=44100)


def identities(metadata: list[dict]) -> tuple:
    """What makes a batch: the file and window offset of each item."""
    return tuple((Path(m["path"]).name, round(float(m["seconds_start"]), 6)) for m in metadata)


def test_position_at_counts_optimizer_steps_per_epoch():
    # 6 batches, no accumulation: step 4 is batch 4 of epoch 0; step 6 starts epoch 1
    assert position_at(4, 6) == (0, 4) and position_at(6, 6) == (1, 0) and position_at(0, 6) == (0, 0)
    # 5 batches, accumulate 2: steps after batches 2, 4 and 5 (Lightning steps at an epoch's last batch)
    assert [position_at(g, 5, 2) for g in range(7)] == [(0, 0), (0, 2), (0, 4), (1, 0), (1, 2), (1, 4), (2, 0)]


def test_sampler_order_is_a_function_of_seed_epoch_and_start(monkeypatch):
    a, b = ResumableSampler(10, seed=3), ResumableSampler(10, seed=3)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    a.place(2)
    epoch2 = list(a)
    assert sorted(epoch2) == list(range(20, 30)), "item j of epoch e is yielded as e * n + j"
    assert [i % 10 for i in epoch2] != [i % 10 for i in b], "each epoch has its own order"
    a.place(2, 7)
    assert list(a) == epoch2[7:]
    assert list(ResumableSampler(10, seed=4)) != list(b)
    assert list(ResumableSampler(4, shuffle=False)) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="outside"):
        a.place(0, 11)

    # two processes split each epoch's order between them, with equal lengths (wrapped like DistributedSampler)
    ranks = []
    for rank in (0, 1):
        monkeypatch.setattr(ResumableSampler, "world", staticmethod(lambda rank=rank: (rank, 2)))
        s = ResumableSampler(9, seed=3)
        s.place(1)
        ranks.append(list(s))
    assert len(ranks[0]) == len(ranks[1]) == 5 and set(ranks[0] + ranks[1]) == set(range(9, 18))


def loader_batches(loader, epochs: int) -> list[tuple]:
    batches = []
    for epoch in range(epochs):
        loader.sampler.place(epoch)
        batches += [identities(metadata) for _, metadata in loader]
    return batches


def test_batches_do_not_depend_on_workers_and_every_pass_draws_new_windows(noise_folder):
    config = {"dataset_type": "audio_folder", "roots": str(noise_folder), "repeat": 2}
    runs = {workers: loader_batches(create_dataloader_from_config(config, batch_size=2, num_workers=workers,
                                                                  seed=1, **CONTEXT), epochs=2)
            for workers in (0, 2)}
    assert runs[0] == runs[2]
    windows = [item for batch in runs[0] for item in batch]
    assert len(windows) == 2 * 2 * 4 and len(set(windows)) == len(windows), "a window was drawn twice"


def describe(metadata: dict) -> tuple:
    """An item's identity plus what its random draws made: the SR low-pass, the MIDI structure tensor."""
    drawn = metadata.get("lowpass")
    if "midi" in metadata:
        drawn = float(metadata["midi"]["structure"].sum())
    return (Path(metadata["path"]).name, round(float(metadata["seconds_start"]), 6), str(drawn))


@pytest.mark.parametrize("kind", ["audio_folder", "super_resolution", "midi_audio_folder"])
def test_every_dataset_type_resumes_mid_epoch_with_the_same_draws(kind, noise_folder, tmp_path):
    """A new loader placed at item k of epoch 1 (a resumed process) yields the items, windows, SR filters and
    MIDI windows the uninterrupted loader yields there; epoch 1 draws other windows than epoch 0."""
    from test_midi_audio_dataset import CONTEXT as MIDI_CONTEXT
    from test_midi_audio_dataset import make_demo_layout

    if kind == "midi_audio_folder":
        config, context = {"roots": str(make_demo_layout(tmp_path / "demo")), "split": "train"}, MIDI_CONTEXT
    else:
        config, context = {"root" if kind == "super_resolution" else "roots": str(noise_folder)}, CONTEXT
    config = {"dataset_type": kind, **config, "repeat": 2}

    def items(epoch: int, start: int = 0) -> list[tuple]:
        loader = create_dataloader_from_config(config, batch_size=1, num_workers=0, **context)
        loader.sampler.place(epoch, start)
        return [describe(md) for _, metadata in loader for md in metadata]

    epoch0, epoch1 = items(0), items(1)
    assert items(1, 3) == epoch1[3:]
    assert not set(epoch0) & set(epoch1), "every pass draws new windows"


class Recorder(pl.LightningModule):
    """One weight pulled towards each batch's mean window start (so the final weight depends on which batches
    form each optimizer step); records (epoch, batch_idx, global_step, batch identities)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple] = []

    def training_step(self, batch, batch_idx):
        audio, metadata = batch
        trainer = self.trainer
        self.seen.append((trainer.current_epoch, batch_idx, trainer.global_step, identities(metadata)))
        target = torch.tensor([float(md["seconds_start"]) for md in metadata]).mean()
        return (self.w - target).square()

    def configure_optimizers(self):
        return torch.optim.SGD([self.w], lr=0.1)


def fit(folder: Path, run_dir: Path, accumulate: int, workers: int, max_steps: int, max_epochs: int = -1,
        ckpt_path: Path | None = None) -> Recorder:
    """Trains like train.py (step checkpoints, a DataPosition callback) on 4 files x repeat 3, batch 2:
    6 batches per epoch."""
    loader = create_dataloader_from_config({"dataset_type": "audio_folder", "roots": str(folder), "repeat": 3},
                                           batch_size=2, num_workers=workers, seed=5, **CONTEXT)
    module = Recorder()
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=str(run_dir), every_n_train_steps=1, save_last=True,
                                               save_top_k=-1, filename="step={step}", auto_insert_metric_name=False)
    trainer = pl.Trainer(accelerator="cpu", max_steps=max_steps, max_epochs=max_epochs,
                         accumulate_grad_batches=accumulate, callbacks=[checkpoints, DataPosition(loader)],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, use_distributed_sampler=False)
    trainer.fit(module, loader, ckpt_path=str(ckpt_path) if ckpt_path else None)
    return module


@pytest.mark.parametrize("accumulate, stop, workers", [
    (1, 4, 0),  # mid-epoch
    (1, 6, 0),  # at the epoch boundary
    (2, 2, 0),  # mid-epoch, accumulating
    (2, 3, 2),  # epoch boundary, accumulating, loader workers
    (4, 1, 0),  # 6 batches in groups of 4 and 2
    (1, 7, 2),  # inside the second epoch, loader workers
])
def test_resumed_run_sees_the_batches_of_an_uninterrupted_one(noise_folder, tmp_path, accumulate, stop, workers):
    total = 9
    full = fit(noise_folder, tmp_path / "full", accumulate, workers, total)
    first = fit(noise_folder, tmp_path / "cut", accumulate, workers, stop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit(noise_folder, tmp_path / "cut", accumulate, workers, total,
                      ckpt_path=tmp_path / "cut" / "last.ckpt")
    assert not [w for w in caught if "ended before the epoch ended" in str(w.message)], \
        "Lightning warns that a mid-epoch resume is unreliable, but this one is exact"
    assert first.seen[-1][2] == stop - 1 and resumed.seen[0][2] == stop
    # same items and windows, in the same epochs, batch slots and optimizer steps (accumulation groups)
    assert first.seen + resumed.seen == full.seen
    assert float(resumed.w) == pytest.approx(float(full.w), abs=1e-6)


def test_training_batches_do_not_depend_on_workers(noise_folder, tmp_path):
    """Two epochs under Lightning with 0 and 2 loader workers (the old loader diverged from the second epoch)."""
    assert fit(noise_folder, tmp_path / "w0", 1, 0, 10).seen == fit(noise_folder, tmp_path / "w2", 1, 2, 10).seen


def test_resume_without_max_steps_finishes_the_epochs_uninterrupted(noise_folder, tmp_path):
    """train.py without --max-steps trains by epochs; a resume then is not iteration-based in Lightning."""
    full = fit(noise_folder, tmp_path / "full", 1, 0, -1, max_epochs=2)
    first = fit(noise_folder, tmp_path / "cut", 1, 0, 3)
    resumed = fit(noise_folder, tmp_path / "cut", 1, 0, -1, max_epochs=2, ckpt_path=tmp_path / "cut" / "last.ckpt")
    assert len(full.seen) == 12 and first.seen + resumed.seen == full.seen


def test_train_py_resume_continues_the_data_of_the_uninterrupted_run(noise_folder, tmp_path, monkeypatch):
    """train.py itself, tiny text-to-audio model: 6 steps in one go against 3 steps and a resume to 6
    (4 files x repeat 2 at batch 2: the resume point is mid-epoch, and the run crosses an epoch)."""
    import saga_hsmad

    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    dataset_config = tmp_path / "data.json"
    dataset_config.write_text(json.dumps({"dataset_type": "audio_folder", "roots": str(noise_folder), "repeat": 2}))

    seen: list[tuple] = []
    create = saga_hsmad.create_training_wrapper_from_config

    def recording_wrapper(*args, **kwargs):
        wrapper = create(*args, **kwargs)
        step = wrapper.training_step

        def training_step(batch, batch_idx):
            seen.append(identities(batch[1]))
            return step(batch, batch_idx)

        wrapper.training_step = training_step
        return wrapper

    monkeypatch.setattr(saga_hsmad, "create_training_wrapper_from_config", recording_wrapper)
    common = ["--model-config", str(REPO / "model_configs/generate/tiny.json"), "--dataset-config",
              str(dataset_config), "--save-dir", str(tmp_path), "--batch-size", "2", "--num-workers", "0",
              "--accelerator", "cpu", "--checkpoint-every", "1", "--no-export"]
    train.main([*common, "--name", "full", "--max-steps", "6"])
    full, seen[:] = list(seen), []
    train.main([*common, "--name", "cut", "--max-steps", "3"])
    train.main([*common, "--name", "cut", "--max-steps", "6", "--ckpt-path",
                str(tmp_path / "cut" / "checkpoints" / "last.ckpt")])
    assert len(full) == 6 and len(set(full)) == 6
    assert seen == full, "the resumed run must continue with steps 4-6 of the uninterrupted run, not replay 1-3"
