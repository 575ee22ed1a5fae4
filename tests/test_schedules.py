"""Linear-quadratic t-schedule (spec §5) against hand-computed values."""
from __future__ import annotations

import pytest
import torch

from saga_hsmad.inference.schedules import linear_quadratic_schedule, linear_schedule


def test_hundred_steps_hand_computed():
    t = linear_quadratic_schedule(100)
    assert t.shape == (101,) and t.dtype == torch.float64
    # first half: 1, 0.999, ..., 0.950 (steps of 1/1000)
    for i in range(51):
        assert t[i].item() == pytest.approx(1.0 - i / 1000, abs=1e-15)
    # second half: 0.95 (1 - (j/50)^2), j = 1..50
    assert t[51].item() == pytest.approx(0.95 * (1 - 1 / 2500), abs=1e-15)  # 0.94962
    assert t[52].item() == pytest.approx(0.94848, abs=1e-12)
    assert t[53].item() == pytest.approx(0.94658, abs=1e-12)
    assert t[98].item() == pytest.approx(0.95 * (1 - 0.96 ** 2), abs=1e-12)  # 0.07448
    assert t[99].item() == pytest.approx(0.037620, abs=1e-12)
    assert t[100].item() == 0.0
    assert bool((t[1:] < t[:-1]).all())


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 50, 101, 250])
def test_any_step_count_is_strictly_decreasing_from_one_to_zero(steps):
    t = linear_quadratic_schedule(steps)
    assert t.shape == (steps + 1,)
    assert t[0].item() == 1.0 and t[-1].item() == 0.0
    assert bool((t[1:] < t[:-1]).all())


def test_odd_steps_give_the_extra_step_to_the_quadratic_half():
    t = linear_quadratic_schedule(7)  # 3 linear steps, 4 quadratic
    expected = [1.0, 0.999, 0.998, 0.997] + [0.997 * (1 - (j / 4) ** 2) for j in range(1, 5)]
    assert torch.allclose(t, torch.tensor(expected, dtype=torch.float64), atol=1e-15)


def test_reference_length_and_linear_schedule():
    t = linear_quadratic_schedule(10, reference_steps=250)
    assert t[5].item() == pytest.approx(1 - 5 / 250)
    with pytest.raises(AssertionError):
        linear_quadratic_schedule(2000, reference_steps=1000)
    lin = linear_schedule(4)
    assert lin.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert linear_quadratic_schedule(10, dtype=torch.float32).dtype == torch.float32
