"""Where a SAGA-SR evaluation's LSD-HF comes from: level bias vs. the rest, against oracle fills.

    python benchmarks/miniature/sr_lsd_breakdown.py EVAL_DIR [TEST_FOLDER]

EVAL_DIR is an ``sr_eval --save-audio --clip-seconds 5`` report folder; TEST_FOLDER holds its references
(default: the demo corpus' test split). Per cutoff and clip it prints, for each saved system (lr, noise_fill,
sr): LSD-HF; ``_meanbias``, the mean of log10 P_ref - log10 P_est above the cutoff (negative: too loud);
``_debiased``, LSD-HF after removing each bin's mean bias over time. Oracle rows fill the band from the
reference itself and bound what a level-only model could reach: ``oracle_env_*`` with the reference's per-frame
power in 16-bin bands (noise / smooth), ``oracle_clipmean_noise`` with its clip-mean spectrum.
"""
import sys, glob, numpy as np, torch
from pathlib import Path
from saga_hsmad.audio_io import read_audio
from saga_hsmad.evaluation.lsd import log_power, first_bin_above, stft
from saga_hsmad.evaluation.sr_eval import load_clip
ev = Path(sys.argv[1])
corpus = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.home() / ".cache/saga_hsmad/demo_corpus/test"
rng = np.random.default_rng(0)
def L(x): return log_power(torch.from_numpy(np.asarray(x, np.float64)))  # (C,F,N)
def lsd_of(Lr, Le, k0): d = (Lr - Le)[:, k0:]; return float(d.pow(2).mean(1).sqrt().mean())
res = {}
for cutoff in (4000, 8000):
    for wav in sorted(corpus.glob("*.wav")):
        hr = load_clip(wav, 5.0)
        k0 = first_bin_above(cutoff, 44100)
        Lr = L(hr)
        row = {}
        for sysname in ("lr", "noise_fill", "sr"):
            f = ev / "audio" / f"{wav.stem}_{cutoff}Hz_{sysname}.wav"
            if not f.exists(): continue
            est, _ = read_audio(f); est = est[..., :hr.shape[-1]]
            Le = L(est)
            row[sysname] = lsd_of(Lr, Le, k0)
            d = (Lr - Le)[:, k0:]
            bias_f = d.mean(-1, keepdim=True)  # per bin mean over frames
            row[sysname + "_debiased"] = float((d - bias_f).pow(2).mean(1).sqrt().mean())
            row[sysname + "_meanbias"] = float(d.mean())
        # oracle: smooth ref envelope (band of 16 bins x per frame), Rayleigh fine structure
        P = 10 ** Lr
        C, F, N = P.shape
        Pb = P.clone()
        for s in range(0, F, 16):
            Pb[:, s:s+16] = P[:, s:s+16].mean(1, keepdim=True)
        ray = torch.from_numpy(rng.exponential(size=P.shape))
        row["oracle_env_noise"] = lsd_of(Lr, torch.log10((Pb * ray).clamp_min(1e-10)), k0)
        row["oracle_env_smooth"] = lsd_of(Lr, torch.log10(Pb.clamp_min(1e-10)), k0)
        # oracle: clip-mean spectrum of ref (no temporal envelope), noise
        Pm = P.mean(-1, keepdim=True).expand_as(P)
        row["oracle_clipmean_noise"] = lsd_of(Lr, torch.log10((Pm * ray).clamp_min(1e-10)), k0)
        # ref stats: fraction of HF bins at floor-ish (< 1e-9)
        row["ref_floor_frac"] = float((P[:, k0:] < 1e-9).float().mean())
        res[(cutoff, wav.stem)] = row
keys = sorted({k for r in res.values() for k in r})
for cutoff in (4000, 8000):
    print(f"== cutoff {cutoff}")
    for k in keys:
        vals = [r[k] for (c, _), r in res.items() if c == cutoff and k in r]
        print(f"{k:24s} mean {np.mean(vals):7.3f}  " + " ".join(f"{v:6.2f}" for v in vals))
