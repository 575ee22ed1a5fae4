"""Several DDP processes draw different diffusion noise; one process keeps the seed train.py set."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from saga_hsmad.training.callbacks import RankSeed, make_callbacks


def draws_after_setup(seed: int, rank: int, world_size: int) -> torch.Tensor:
    torch.manual_seed(seed)  # what seed_everything gives every process alike
    RankSeed(seed).setup(SimpleNamespace(global_rank=rank, world_size=world_size), None, "fit")
    return torch.randn(8)


def test_ranks_draw_different_noise_and_each_rank_is_reproducible():
    rank0, rank1 = draws_after_setup(7, 0, 2), draws_after_setup(7, 1, 2)
    assert not torch.allclose(rank0, rank1)
    assert torch.equal(rank1, draws_after_setup(7, 1, 2))
    assert not torch.equal(rank1, draws_after_setup(8, 1, 2))  # the run's seed still matters


def test_a_single_process_keeps_its_random_stream():
    torch.manual_seed(7)
    expected = torch.randn(8)
    assert torch.equal(draws_after_setup(7, 0, 1), expected)


def test_train_callbacks_reseed_with_the_run_seed(tmp_path):
    seeds = [c.seed for c in make_callbacks({}, tmp_path, 100, seed=123) if isinstance(c, RankSeed)]
    assert seeds == [123]
