#!/usr/bin/env python
"""Where does a SAGA-SR model leave noise? x0-prediction error by band and noise level, and a sample's bands.

    python benchmarks/miniature/sr_denoise_probe.py --ckpt RUN/export.safetensors [--clip test.wav] [--cutoff 4000]
        [--start 1.0] [--times 0.02 0.1 0.3 0.6 0.9] [--seed 0]

For one window of a reference clip (its LR version by the paper's test protocol as the condition, target
roll-off 0.5, caption "music"): at each t, z_t = (1 - t) z_0 + t ε, the model's one-step estimate
ẑ_0 = z_t - t v̂ is decoded, and the power (dB) below and above the cutoff of z_0, z_t, ẑ_0 and ẑ_0 - z_0
is printed; then the same for an unguided 30-step Euler sample from noise. A model that denoises the high
band drives its ẑ_0 error there far below z_t's; one that cannot (e.g. a DiT narrower than its input, see
``DiTConcat.check_config``) leaves ẑ_0 ≈ z_t in the high band at every t, and its samples keep the noise.
This is the diagnostic behind the miniature write-up (docs/miniature/README.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--clip", default=None, help="reference audio (default: the first demo-corpus test file)")
    p.add_argument("--cutoff", type=float, default=4000.0)
    p.add_argument("--start", type=float, default=1.0, help="window start in seconds")
    p.add_argument("--times", type=float, nargs="+", default=[0.02, 0.1, 0.3, 0.6, 0.9])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import saga_hsmad
    import saga_hsmad.paths
    from saga_hsmad.audio_io import read_audio
    from saga_hsmad.checkpoints import load_model
    from saga_hsmad.dsp.lowpass import test_protocol_lowres
    from saga_hsmad.inference.generate import conditioning_inputs, decode, generate_latents
    from saga_hsmad.inference.schedules import linear_quadratic_schedule
    from saga_hsmad.inference.super_resolution import FixedCaption, SROptions, SuperResolver

    saga_hsmad.install()
    torch.manual_seed(args.seed)
    model, config, _ = load_model(args.ckpt, None, use_ema=True, device=torch.device("cpu"))
    clip = Path(args.clip) if args.clip else sorted(
        (Path(saga_hsmad.paths.demo_corpus_dir()) / "test").glob("*.wav"))[0]
    audio, sr = read_audio(clip)
    n, start = config["sample_size"], int(args.start * sr)
    hr = torch.from_numpy(audio[:, start:start + n]).float()[None]
    if hr.shape[-1] < n:
        raise SystemExit(f"{clip}: shorter than --start + one window ({n} samples)")
    lr = torch.from_numpy(test_protocol_lowres(hr[0].numpy(), sr, args.cutoff)).float()[None]
    resolver = SuperResolver(model, config, SROptions(steps=30, process_full_band=True, lfr=False),
                             FixedCaption("music"), progress=False)
    inputs = conditioning_inputs(model, [resolver.window_metadata(lr[0], n, "music", 0.5)], torch.device("cpu"))
    z0 = model.pretransform.encode(hr)

    def bands(z: torch.Tensor) -> str:
        x = decode(model, z)[0].mean(0).numpy()
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / sr)
        low, high = (10 * np.log10(power[m].sum() + 1e-20) for m in (freqs < args.cutoff, freqs >= args.cutoff))
        return f"{low:6.1f} / {high:6.1f}"

    print(f"{clip.name}, window at {args.start:g} s, cutoff {args.cutoff:g} Hz; power in dB (below / above the cutoff)")
    print(f"{'':12} {'z_0':>15} {'z_t':>15} {'x0-estimate':>15} {'its error':>15}")
    with torch.no_grad():
        for t in args.times:
            eps = torch.randn_like(z0)
            zt = (1 - t) * z0 + t * eps
            estimate = zt - t * model.model(zt, torch.full((1,), t), **inputs)
            print(f"t = {t:<8g} {bands(z0):>15} {bands(zt):>15} {bands(estimate):>15} {bands(estimate - z0):>15}")
        sample = generate_latents(model, inputs, tuple(z0.shape), linear_quadratic_schedule(30),
                                  noise=torch.randn_like(z0))
    print(f"{'sample':12} {'':>15} {'':>15} {bands(sample):>15}   (unguided, 30 Euler steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
