"""The SR demo's verdict line compares the model with both systems that learn nothing, on both measures."""
from __future__ import annotations

from saga_hsmad.demo import results_table


def rows(model_lsd: float, model_hf: float) -> list[dict]:
    base = {"cutoff_hz": 4000.0, "clips": 5}
    return [{**base, "system": "lr_input", "lsd": 4.3, "lsd_hf": 4.8},
            {**base, "system": "noise_fill", "lsd": 2.5, "lsd_hf": 2.8},
            {**base, "system": "saga_sr", "lsd": model_lsd, "lsd_hf": model_hf}]


def test_verdict_needs_both_baselines_beaten_on_both_measures():
    assert "LSD and LSD-HF: yes" in results_table(rows(2.4, 2.7))
    assert "LSD and LSD-HF: NO" in results_table(rows(2.4, 2.9))   # behind noise fill on LSD-HF
    assert "LSD and LSD-HF: NO" in results_table(rows(2.6, 2.7))   # behind noise fill on LSD
    table = results_table(rows(2.4, 2.7))
    assert "noise fill (no learning)" in table and "unprocessed LR input" in table and "2.700" in table
