"""Duration-weighted, domain-balanced training draws of the super_resolution dataset (issue 13, item 4): files
are drawn by their length in 5 s-hop segments within their domain's share, as a function of (seed, pass,
position), so resuming reproduces the data; "file" keeps one window per file per pass."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from saga_hsmad.data.loader import WeightedDraws, create_dataloader_from_config
from saga_hsmad.data.sr_dataset import SuperResolutionDataset, segment_count

REPO = Path(__file__).resolve().parents[1]
RATE = 2000  # file rate: only the durations matter here, and small files keep the test fast
CONTEXT = dict(sample_size=1024, sample_rate=44100, audio_channels=2, seed=3)
LAYOUT = {"music/long.wav": 60.0, "music/short.wav": 6.0, "speech/a.wav": 6.0, "speech/b.wav": 6.0,
          "speech/c.wav": 6.0, "general/x.wav": 11.0}
DOMAINS = {"music": "music", "speech": ["speech"], "general": ["general"]}


def write_layout(root: Path, layout: dict[str, float] = LAYOUT) -> Path:
    rng = np.random.default_rng(0)
    for rel, seconds in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.2 * rng.standard_normal(int(seconds * RATE)).astype(np.float32), RATE, subtype="FLOAT")
        path.with_suffix(".txt").write_text("a test sound")
    return root


def frequencies(draws: WeightedDraws, n: int, epochs: int = 1) -> dict[str, float]:
    counts = Counter()
    for epoch in range(epochs):
        draws.epoch = epoch
        counts.update(draws.item(j) for j in range(n))
    files = draws.dataset.files
    return {draws.dataset.relpath(files[i]): c / (n * epochs) for i, c in counts.items()}


def test_segment_count_follows_the_5_s_grid():
    # starts 0, 5, 10, ... that leave at least 1.5 s; at least one segment
    assert segment_count(np.array([1.0, 5.944, 6.4, 6.5, 11.5, 60.0])).tolist() == [1, 1, 1, 2, 3, 12]
    assert segment_count(60.0, hop=10.0, min_seconds=0.0).tolist() == 7


def test_draws_follow_duration_within_domain_shares(tmp_path):
    config = {"dataset_type": "super_resolution", "root": str(write_layout(tmp_path)), "domains": DOMAINS,
              "domain_weights": {"music": 1, "speech": 1, "general": 1}}
    loader = create_dataloader_from_config(config, batch_size=1, **CONTEXT)
    draws = loader.dataset.dataset
    assert isinstance(draws, WeightedDraws)
    assert len(draws) == 12 + 1 + 3 * 1 + 2  # the corpus in segments: one pass
    expected = {"music/long.wav": 12 / 13 / 3, "music/short.wav": 1 / 13 / 3, "speech/a.wav": 1 / 9,
                "speech/b.wav": 1 / 9, "speech/c.wav": 1 / 9, "general/x.wav": 1 / 3}
    assert draws.dataset.draw_probabilities() == pytest.approx([expected[draws.dataset.relpath(f)]
                                                                for f in draws.dataset.files])
    seen = frequencies(draws, 4000, epochs=3)
    for rel, p in expected.items():
        assert seen.get(rel, 0.0) == pytest.approx(p, abs=0.02), rel
    # other weights move the shares: speech 2 : music 1 : general 1
    weights = {"music": 1, "speech": 2, "general": 1}
    ds = SuperResolutionDataset(root=str(tmp_path), domains=DOMAINS, domain_weights=weights, sample_size=1024)
    p = dict(zip(map(ds.relpath, ds.files), ds.draw_probabilities()))
    assert p["speech/a.wav"] * 3 == pytest.approx(0.5) and p["general/x.wav"] == pytest.approx(0.25)
    # without domains: one domain, by duration alone
    ds = SuperResolutionDataset(root=str(tmp_path), sample_size=1024)
    p = dict(zip(map(ds.relpath, ds.files), ds.draw_probabilities()))
    assert p["music/long.wav"] == pytest.approx(12 / 18)


def test_draws_are_a_function_of_seed_pass_and_position(tmp_path):
    config = {"dataset_type": "super_resolution", "root": str(write_layout(tmp_path)), "domains": DOMAINS}

    def items(epoch: int, start: int = 0) -> list[tuple]:
        loader = create_dataloader_from_config(config, batch_size=1, **CONTEXT)
        loader.sampler.place(epoch, start)
        return [(Path(md["path"]).name, round(md["seconds_start"], 6), md["lowpass"]["cutoff_hz"])
                for _, metadata in loader for md in metadata]

    epoch1 = items(1)
    assert len(epoch1) == 18 and items(1, 5) == epoch1[5:]  # a resumed loader reads the same draws
    long_draws = [item for item in epoch1 if item[0] == "long.wav"]
    assert len(long_draws) >= 3 and len(set(long_draws)) == len(long_draws)  # every draw has its own window
    assert items(0) != epoch1


def test_file_sampling_and_validation_read_every_file_once_per_pass(tmp_path):
    write_layout(tmp_path)
    for config, shuffle in (({"sampling": "file"}, True), ({}, False)):
        loader = create_dataloader_from_config({"dataset_type": "super_resolution", "root": str(tmp_path), **config},
                                               batch_size=1, shuffle=shuffle, **CONTEXT)
        names = sorted(Path(md["path"]).name for _, metadata in loader for md in metadata)
        assert names == sorted(Path(rel).name for rel in LAYOUT)


def test_domain_errors_name_the_problem(tmp_path):
    write_layout(tmp_path)
    make = lambda **kw: SuperResolutionDataset(root=str(tmp_path), sample_size=1024, **kw)  # noqa: E731
    with pytest.raises(ValueError, match=r"x\.wav.*in none of the domains"):
        make(domains={"music": "music", "speech": "speech"})
    with pytest.raises(ValueError, match=r"no files in domain\(s\) \['effects'\]"):
        make(domains={**DOMAINS, "effects": "sfx"})
    with pytest.raises(ValueError, match="domain_weights needs 'domains'"):
        make(domain_weights={"all": 1})
    with pytest.raises(ValueError, match="differ from the domains"):
        make(domains=DOMAINS, domain_weights={"music": 1, "speech": 1})
    with pytest.raises(ValueError, match="positive numbers"):
        make(domains=DOMAINS, domain_weights={"music": 1, "speech": 0, "general": 1})


def test_shipped_paper_config_balances_the_official_domains_1_1_1(tmp_path, monkeypatch):
    from saga_hsmad.config_check import load_config

    layout = {"train/MUSDB18-HQ/song.wav": 30.0, "train/MedleyDB-V1/a.wav": 6.0, "train/MoisesDB/b.wav": 6.0,
              "train/MedleyDB-V2/c.wav": 6.0, "train/OpenSLR/s.wav": 6.0, "train/Freesound48k/f.wav": 6.0}
    write_layout(tmp_path, layout)
    (tmp_path / "captions.json").write_text(json.dumps({rel: "a test sound" for rel in layout}))
    monkeypatch.setenv("SAGA_SR_DATA_DIR", str(tmp_path))
    config = load_config(REPO / "dataset_configs/saga_sr/paper.json", "dataset")
    loader = create_dataloader_from_config(config, batch_size=1, **CONTEXT)
    ds = loader.dataset.dataset.dataset
    share = Counter()
    for domain, p in zip(ds.domain_of, ds.draw_probabilities()):
        share[domain] += p
    assert dict(share) == pytest.approx({"music": 1 / 3, "speech": 1 / 3, "general": 1 / 3})
    assert (ds.lowres_options["cutoff_step_hz"], ds.lowres_options["below_range"]) == (1, "range")
