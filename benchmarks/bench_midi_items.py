"""Benchmark: time per training item of the HS-MAD dataset (audio window + MIDI window + structure render + labels)
with the parsed-MIDI cache off and on.

Candidates (the first is the reference):

* ``cache off``: ``SCORE_CACHE = 0``, every item parses its piece's MIDI file again (the earlier behaviour);
* ``cache on``: the default, each piece parsed once per dataset object (per loader worker).

Both read the same items (indices 0, 1, ... of the dataset config's split, epoch by epoch, as a loader worker
does); the cache is warmed by the untimed first round. One round reads ``--items`` items per candidate,
rounds alternate the order; ratios are candidate / reference per round, median over rounds (< 1: faster).

    .venv/bin/python benchmarks/bench_midi_items.py [--model-config model_configs/hsmad/tiny.json] \
        [--dataset-config dataset_configs/hsmad/demo.json] [--items 76] [--repeats 5] \
        [--out benchmarks/results/midi_items.json]

The demo corpus must exist (``python -m saga_hsmad.demo --task midi`` or any test run builds it).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, finish, interleaved, load_config, print_rows, summarize  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-config", default="model_configs/hsmad/tiny.json")
    parser.add_argument("--dataset-config", default="dataset_configs/hsmad/demo.json")
    parser.add_argument("--items", type=int, default=76, help="items per candidate per round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import saga_hsmad
    from saga_hsmad.data.loader import create_dataset_from_config
    from saga_hsmad.data.midi_audio_dataset import MidiAudioDataset

    saga_hsmad.install()
    model_config, dataset_config = load_config(args.model_config), load_config(args.dataset_config)
    pretransform = saga_hsmad.create_model_from_config(model_config).pretransform
    context = dict(sample_size=model_config["sample_size"], sample_rate=model_config["sample_rate"],
                   audio_channels=model_config["audio_channels"], seed=0,
                   downsampling_ratio=pretransform.downsampling_ratio)
    datasets = {}
    for name, size in (("cache off", 0), ("cache on", MidiAudioDataset.SCORE_CACHE)):
        dataset = create_dataset_from_config(dataset_config, **context)
        while not isinstance(dataset, MidiAudioDataset):     # a "repeat" wrapper holds the real dataset
            dataset = dataset.dataset
        dataset.SCORE_CACHE = size
        datasets[name] = (dataset, itertools.count())

    def read(name: str):
        def run():
            dataset, counter = datasets[name]
            for _ in range(args.items):
                i = next(counter)
                dataset.epoch = i // len(dataset)
                dataset[i % len(dataset)]
        return run

    times = interleaved({name: read(name) for name in datasets}, args.repeats, warmup=1, device="cpu")
    rows = summarize(times, "cache off")
    for row in rows:
        row["ms_per_item_median"] = row["wall_ms_median"] / args.items
    print_rows(f"HS-MAD dataset, {args.items} items per round ({args.dataset_config}):", rows, "cache off")
    print("  ms per item: " + ", ".join(f"{r['name']} {r['ms_per_item_median']:.1f}" for r in rows))
    finish("midi_items", args.out, {"environment": environment("cpu"), "items": args.items, "rows": rows,
                                    "dataset_config": args.dataset_config, "model_config": args.model_config})
    return 0


if __name__ == "__main__":
    sys.exit(main())
