"""SAGA-SR inference (``sample.py`` mode ``super_resolution``): eq. 4 guidance in one batched forward, long
files without seams, any rate/length/channel count, bad input handled per file, and condition parity with
the training step. A tiny dit_concat model with random weights (model_configs/saga_sr/tiny.json) stands in
for a trained one; an exact-flow stub backbone (x0 = LR latent) makes the output checkable sample by sample.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

TINY = REPO / "model_configs" / "saga_sr" / "tiny.json"
SR = 44100


# -- helpers ----------------------------------------------------------------------------------------------
def tiny_config() -> dict:
    return json.loads(TINY.read_text())


def build_tiny(seed: int = 0):
    import saga_hsmad

    torch.manual_seed(seed)
    return saga_hsmad.create_model_from_config(tiny_config()).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from saga_hsmad.checkpoints import save_inference_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny_sr.ckpt"
    save_inference_checkpoint(path, build_tiny().state_dict(), tiny_config(), ema=False)
    return path


@pytest.fixture(scope="module")
def tiny_model(tiny_ckpt):
    from saga_hsmad.checkpoints import load_model

    model, config, _ = load_model(tiny_ckpt)
    return model, config


def sample_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("sample_script", REPO / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def run_sr(ckpt, inputs, output, *extra: str) -> int:
    argv = ["--ckpt", str(ckpt), "--output", str(output), "--steps", "2", "--device", "cpu", "--caption", "noise"]
    for path in inputs:
        argv += ["--input", str(path)]
    return sample_main(argv + list(extra))


def noise(seconds: float, sr: int, channels: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    """(channels, n) band-limited-looking test signal: noise plus a tone."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * t)
    return (tone[None] + scale * rng.standard_normal((channels, n))).astype(np.float32)


def write(path, audio: np.ndarray, sr: int, subtype: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if subtype is None:
        subtype = "FLOAT" if path.suffix == ".wav" else "PCM_16"
    sf.write(path, audio.T, sr, subtype=subtype)
    return path


class IdentityFlow(torch.nn.Module):
    """A backbone whose flow ends exactly at the LR latent: v(x, t) = (x − z_l) / t, the rectified-flow
    velocity of the straight path from z_l to the noise. Euler integration is then exact, x_0 = z_l, and with
    the invertible patch pretransform the decoded output equals the LR input; every branch agrees, so the
    guidance weights (which sum to 1) change nothing."""

    condition_names = ("lr_latent", "text")
    length_multiple = 1

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # device/dtype probe for generate_latents

    def forward(self, x, t, input_concat_cond=None, **kwargs):
        return (x - input_concat_cond) / t[:, None, None]


def resolver(model, config, **options):
    from saga_hsmad.inference.super_resolution import FixedCaption, SROptions, SuperResolver

    defaults = dict(steps=2, target_rolloff=0.5)
    defaults.update(options)
    return SuperResolver(model, config, SROptions(**defaults), FixedCaption("noise"), progress=False)


# -- guidance ---------------------------------------------------------------------------------------------
class BranchStub(torch.nn.Module):
    """Returns a known velocity per guidance branch (read from the null masks) plus 10 × the item's id
    (carried in x), and records the batch size of every call."""

    condition_names = ("lr_latent", "text")
    A, B, C = 1.0, 3.0, 7.0  # u(∅, ∅), u(z_l, ∅), u(z_l, c)

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.calls: list[int] = []

    def forward(self, x, t, null_conditions=None, **kwargs):
        self.calls.append(x.shape[0])
        lr, text = null_conditions["lr_latent"], null_conditions["text"]
        base = torch.full((x.shape[0],), float("nan"))
        base[lr & text] = self.A
        base[~lr & text] = self.B
        base[~lr & ~text] = self.C
        return base[:, None, None] + 10.0 * x


class StubWrapper:
    def __init__(self, backbone):
        self.model = backbone


@pytest.mark.parametrize("s_a,s_t", [(1.4, 1.2), (2.0, 0.5)])
def test_guidance_is_eq4_in_one_batched_forward(s_a, s_t):
    from saga_hsmad.inference.generate import generate_latents
    from saga_hsmad.inference.guidance import saga_sr_guidance

    stub = StubWrapper(BranchStub())
    b, steps = 2, 3
    ids = torch.arange(b, dtype=torch.float32)[:, None, None].expand(b, 4, 5)
    # one step t = 1 -> 0: x_0 = x_1 - v, with v computed by hand from eq. 4
    out = generate_latents(stub, {}, (b, 4, 5), torch.tensor([1.0, 0.0]), guidance=saga_sr_guidance(s_a, s_t),
                           noise=ids.clone())
    A, B, C = BranchStub.A, BranchStub.B, BranchStub.C
    eq4 = A + s_a * (B - A) + s_t * (C - B)
    for i in range(b):
        expected_v = eq4 + 10.0 * i  # the item term is the same in every branch, weights sum to 1
        assert torch.allclose(out[i], torch.full((4, 5), i - expected_v), atol=1e-5), (i, out[i, 0, 0].item())
    assert stub.model.calls == [3 * b]
    stub.model.calls.clear()
    generate_latents(stub, {}, (b, 4, 5), torch.linspace(1.0, 0.0, steps + 1), guidance=saga_sr_guidance(s_a, s_t),
                     noise=ids.clone())
    assert stub.model.calls == [3 * b] * steps


def test_guidance_without_a_caption_is_two_branches_and_ignores_s_t():
    """No caption: text is null in every branch, so eq. 4 loses u(z_l, c): u = u(∅,∅) + s_a[u(z_l,∅) − u(∅,∅)]."""
    from saga_hsmad.inference.generate import generate_latents
    from saga_hsmad.inference.guidance import saga_sr_guidance

    guidance = saga_sr_guidance(1.4, 1.2, text=False)
    assert guidance.branches == (frozenset({"lr_latent", "text"}), frozenset({"text"}))
    assert guidance == saga_sr_guidance(1.4, 0.0, text=False)  # s_t has no effect
    stub = StubWrapper(BranchStub())
    out = generate_latents(stub, {}, (1, 4, 5), torch.tensor([1.0, 0.0]), guidance=guidance, noise=torch.zeros(1, 4, 5))
    A, B = BranchStub.A, BranchStub.B
    assert torch.allclose(out, torch.full((1, 4, 5), -(A + 1.4 * (B - A))), atol=1e-5)
    assert stub.model.calls == [2]


def test_sr_sampling_runs_one_forward_of_3b_per_step(tiny_model, monkeypatch):
    model, config = tiny_model
    backbone = model.model
    seen = []
    original = backbone.forward

    def counting(x, t, **kwargs):
        seen.append((x.shape[0], {k: v.tolist() for k, v in kwargs["null_conditions"].items()}))
        return original(x, t, **kwargs)

    monkeypatch.setattr(backbone, "forward", counting)
    r = resolver(model, config, steps=3, batch_windows=2, window=32768, overlap_seconds=0.1)
    r.super_resolve_array(noise(1.2, 16000, 2), 16000)  # 53k samples at 44.1 kHz: 2 windows of 32768
    assert [n for n, _ in seen] == [6, 6, 6]
    masks = seen[0][1]
    assert masks["lr_latent"] == [True, True, False, False, False, False]  # branch order (∅,∅), (z_l,∅), (z_l,c)
    assert masks["text"] == [True, True, True, True, False, False]


# -- streaming pieces -------------------------------------------------------------------------------------
def test_streaming_overlap_add_equals_in_memory_overlap_add():
    from saga_hsmad.inference.streaming import StreamingOverlapAdd
    from saga_hsmad.inference.windowing import OverlapAdd, plan_windows

    total, window, overlap = 50_001, 4096, 700
    starts = plan_windows(total, window, overlap)
    gen = torch.Generator().manual_seed(0)
    chunks = [torch.randn(2, window, generator=gen) for _ in starts]
    for curve in ("equal_power", "linear"):
        reference = torch.zeros(2, total)
        ola = OverlapAdd(reference, curve)
        parts = []
        streaming = StreamingOverlapAdd(2, total, window, parts.append, curve)
        for s, c in zip(starts, chunks):
            ola.add(s, c)
            streaming.add(s, c)
        streaming.finish()
        assert torch.equal(torch.cat(parts, dim=-1), reference)


def test_resampled_stream_equals_one_shot_resampling():
    import soxr

    from saga_hsmad.inference.streaming import ResampledStream, array_blocks, resampled_length

    x = np.random.default_rng(1).standard_normal((2, 48_001)).astype(np.float32)
    expected = soxr.resample(x.T, 16000, SR, quality="HQ").T
    total = resampled_length(x.shape[1], 16000, SR)
    assert total == expected.shape[1]
    stream = ResampledStream(array_blocks(x, 5000), 16000, SR, 2, total)
    for start in range(0, total, 20_000):
        got = stream.window(start, start + 30_000)
        valid = min(30_000, total - start)
        np.testing.assert_array_equal(got[:, :valid], expected[:, start:start + valid])
        assert not got[:, valid:].any()


# -- long files, rates, lengths, channels -----------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 2])
def test_identity_flow_reconstructs_the_input_across_window_joins(channels):
    """With an exact flow to the LR latent, the output must equal the resampled input everywhere, including
    every crossfade: any misplaced window, gain error at a join or resampling seam shows up here."""
    import soxr

    model = build_tiny()
    model.model = IdentityFlow()
    x = noise(6.0, 16000, channels, seed=channels)
    r = resolver(model, tiny_config(), window=32768, overlap_seconds=0.1)
    out, report = r.super_resolve_array(x, 16000)
    expected = soxr.resample(x.T, 16000, SR, quality="HQ").T
    assert out.shape == expected.shape == (channels, round(6.0 * SR))
    assert report.windows > 8
    err = np.abs(out - expected).max()
    assert err < 1e-4 * np.abs(expected).max(), err


def jump_statistics(audio: np.ndarray, starts: list[int], overlap: int, block: int = 2048):
    """Sample-to-sample jumps (max over channels) in the window overlaps vs everywhere else."""
    jumps = np.abs(np.diff(audio, axis=0)).max(axis=1)
    near = np.zeros(jumps.shape[0], dtype=bool)
    for s in starts[1:]:
        near[max(0, s - block):s + overlap + block] = True
    n_blocks = jumps.shape[0] // block
    rms = np.sqrt((jumps[:n_blocks * block].reshape(n_blocks, block) ** 2).mean(axis=1))
    block_near = near[:n_blocks * block].reshape(n_blocks, block).any(axis=1)
    return jumps[near].max(), jumps[~near].max(), np.median(rms[block_near]), np.median(rms[~block_near])


def test_20s_stereo_through_the_tiny_model_has_no_seams(tiny_ckpt, tmp_path):
    from saga_hsmad.inference.windowing import plan_windows

    x = noise(20.0, SR, 2)
    write(tmp_path / "in" / "long.wav", x, SR)
    assert run_sr(tiny_ckpt, [tmp_path / "in" / "long.wav"], tmp_path / "out", "--window", "262144",
                  "--overlap", "0.5") == 0
    out, sr = sf.read(tmp_path / "out" / "long.wav", always_2d=True)
    assert sr == SR and out.shape == (20 * SR, 2)
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    starts = plan_windows(20 * SR, 262144, 22050)
    assert len(starts) == 4
    max_join, max_inside, rms_join, rms_inside = jump_statistics(out, starts, 22050)
    assert max_join <= max_inside, (max_join, max_inside)
    assert 0.75 < rms_join / rms_inside < 1.33, (rms_join, rms_inside)  # a sum without fades gives 1.41


def test_odd_and_short_lengths_mono_and_16k(tiny_ckpt, tmp_path):
    cases = {  # name: (sr, channels, frames)
        "odd_22k_stereo.wav": (22050, 2, 1001),
        "tiny_16k_mono.flac": (16000, 1, 777),
        "mono_16k.wav": (16000, 1, 20_011),
        "odd_44k_stereo.wav": (SR, 2, 40_001),
    }
    for name, (sr, ch, n) in cases.items():
        write(tmp_path / "in" / name, noise(n / sr, sr, ch)[:, :n], sr, subtype="PCM_16")
    assert run_sr(tiny_ckpt, [tmp_path / "in"], tmp_path / "out", "--window", "32768", "--overlap", "0.1") == 0
    for name, (sr, ch, n) in cases.items():
        out, out_sr = sf.read(tmp_path / "out" / (name.rsplit(".", 1)[0] + ".wav"), always_2d=True)
        assert out_sr == SR
        assert out.shape == (round(n * SR / sr), ch), (name, out.shape)
        assert np.isfinite(out).all()


def test_seed_reproduces_and_window_batching_does_not_change_the_output(tiny_model):
    model, config = tiny_model
    x = noise(0.9, 22050, 2)  # 2 windows
    settings = dict(window=32768, overlap_seconds=0.1, steps=1)
    a, _ = resolver(model, config, seed=3, **settings).super_resolve_array(x, 22050)
    b, _ = resolver(model, config, seed=3, **settings).super_resolve_array(x, 22050)
    c, _ = resolver(model, config, seed=3, batch_windows=3, **settings).super_resolve_array(x, 22050)
    d, _ = resolver(model, config, seed=4, **settings).super_resolve_array(x, 22050)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-4 * np.abs(a).max())
    assert np.abs(a - d).max() > 1e-2 * np.abs(a).max()


def test_full_band_input_passes_through_resampled_only(tiny_ckpt, tmp_path, capsys):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, SR)).astype(np.float32)  # white: full band
    write(tmp_path / "in" / "wide.wav", x, SR)
    assert run_sr(tiny_ckpt, [tmp_path / "in" / "wide.wav"], tmp_path / "out", "--subtype", "FLOAT") == 0
    assert "already full-band" in capsys.readouterr().out
    out, sr = sf.read(tmp_path / "out" / "wide.wav", always_2d=True, dtype="float32")
    np.testing.assert_array_equal(out.T, x)


# -- bad input --------------------------------------------------------------------------------------------
def test_bad_inputs_fail_per_file_without_partial_outputs(tiny_ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    write(src / "good.wav", noise(0.5, 16000, 2), 16000)
    (src / "unreadable.wav").write_bytes(b"RIFF\x00\x00garbage, not audio at all" * 10)
    write(src / "empty.wav", np.zeros((2, 0), np.float32), 16000)
    late_nan = noise(150_000 / SR, SR, 2)[:, :150_000]
    late_nan[:, 140_000] = np.nan  # in the second read block: output has been streamed before it is found
    write(src / "sub" / "late_nan.wav", late_nan, SR)
    write(src / "rate_96k.wav", noise(0.2, 96000, 1), 96000)
    write(src / "rate_2k.wav", noise(0.5, 2000, 1), 2000)
    write(src / "three_channels.wav", noise(0.2, 16000, 3), 16000)
    out = tmp_path / "out"
    rc = run_sr(tiny_ckpt, [src, tmp_path / "missing.wav"], out, "--window", "65536")
    err = capsys.readouterr().err
    assert rc == 1
    for bad, reason in [("unreadable.wav", "cannot read"), ("empty.wav", "zero-length"), ("late_nan.wav", "NaN"),
                        ("rate_96k.wav", "96000 Hz is outside"), ("rate_2k.wav", "2000 Hz is outside"),
                        ("three_channels.wav", "3 channels"), ("missing.wav", "no such file")]:
        lines = [line for line in err.splitlines() if line.startswith("ERROR") and bad in line]
        assert len(lines) == 1 and reason in lines[0], (bad, lines, err[-2000:])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["good.wav"], written  # no partial (or temporary) file of any failed input
    assert sf.info(out / "good.wav").frames == round(0.5 * SR)


def test_existing_outputs_are_kept_without_overwrite(tiny_ckpt, tmp_path, capsys):
    write(tmp_path / "in" / "a.wav", noise(0.3, 16000, 1), 16000)
    out = tmp_path / "out"
    placeholder = np.zeros((1, 100), np.float32)
    write(out / "a.wav", placeholder, SR)
    assert run_sr(tiny_ckpt, [tmp_path / "in" / "a.wav"], out, "--window", "32768") == 0
    assert "skipped" in capsys.readouterr().out
    assert sf.info(out / "a.wav").frames == 100
    assert run_sr(tiny_ckpt, [tmp_path / "in" / "a.wav"], out, "--window", "32768", "--overwrite") == 0
    assert sf.info(out / "a.wav").frames == round(0.3 * SR)


def test_no_caption_samples_with_the_null_text_condition_and_says_so(tmp_path, capsys):
    """Without a caption sample.py runs (it used to stop), prints that no caption was given and that s_t is unused,
    and gives what a caption with s_t = 0 gives (the same two branches); with s_t = 1.2 the caption matters. The
    weights are perturbed: at init the zero-initialised branches of the tiny model do not listen to the text."""
    from saga_hsmad.checkpoints import save_inference_checkpoint

    model = build_tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = tmp_path / "perturbed.safetensors"
    save_inference_checkpoint(ckpt, model.state_dict(), tiny_config(), ema=False)
    write(tmp_path / "in" / "a.wav", noise(0.3, 16000, 1), 16000)

    def run(name, *extra):
        assert sample_main(["--ckpt", str(ckpt), "--input", str(tmp_path / "in"), "--output", str(tmp_path / name),
                            "--steps", "2", "--device", "cpu", *extra]) == 0
        return sf.read(tmp_path / name / "a.wav")[0]

    none = run("none")
    out = capsys.readouterr().out
    assert "s_t unused" in out and "captions: no caption given: the null text condition" in out, out
    np.testing.assert_allclose(none, run("zero", "--caption", "a busy street", "--cfg-text", "0"), atol=1e-6)
    assert "s_t 0.0" in capsys.readouterr().out
    assert np.abs(none - run("text", "--caption", "a busy street")).max() > 1e-4


@pytest.mark.parametrize("path", sorted((REPO / "model_configs" / "saga_sr").glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_sr_config_samples_without_a_caption(path):
    """The README's SAGA-SR example once stopped on every shipped config for want of --caption. The paper-size
    configs need pretrained weights to be built, so their caption source is checked on a stand-in model with
    their conditioners; the tiny ones also upsample a clip."""
    from types import SimpleNamespace

    import saga_hsmad
    from saga_hsmad.inference.super_resolution import FixedCaption, NullText, SROptions, SuperResolver
    from saga_hsmad.inference.super_resolution import make_caption_source

    config = json.loads(path.read_text())
    ids = {c["id"] for c in config["model"]["conditioning"]["configs"]}
    stand_in = SimpleNamespace(conditioner=SimpleNamespace(conditioners=ids))
    source = make_caption_source(stand_in, config)
    assert isinstance(source, NullText) if "prompt" in ids else source == FixedCaption("", source.description)
    if path.stem.startswith("tiny"):
        torch.manual_seed(0)
        model = saga_hsmad.create_model_from_config(config).eval().requires_grad_(False)
        r = SuperResolver(model, config, SROptions(steps=1, target_rolloff=0.5), make_caption_source(model, config),
                          progress=False)
        out, _ = r.super_resolve_array(noise(0.3, 16000, 2), 16000)
        assert np.isfinite(out).all() and out.shape == (2, round(0.3 * SR))


def test_null_text_branches_null_the_text_in_the_model(tiny_model, monkeypatch):
    """The resolver without a caption runs 2·b items per step, the text null in both branches."""
    from saga_hsmad.inference.super_resolution import NullText, SROptions, SuperResolver

    model, config = tiny_model
    seen = []
    original = model.model.forward

    def recording(x, t, **kwargs):
        seen.append({k: v.tolist() for k, v in kwargs["null_conditions"].items()})
        return original(x, t, **kwargs)

    monkeypatch.setattr(model.model, "forward", recording)
    r = SuperResolver(model, config, SROptions(steps=1, target_rolloff=0.5), NullText(), progress=False)
    r.super_resolve_array(noise(0.3, 16000, 2), 16000)
    assert seen == [{"lr_latent": [True, False], "text": [True, True]}]


def test_caption_store_and_list_inputs(tiny_ckpt, tmp_path):
    from saga_hsmad.inference.super_resolution import collect_inputs

    write(tmp_path / "in" / "x" / "a.wav", noise(0.3, 16000, 1), 16000)
    write(tmp_path / "in" / "y" / "a.flac", noise(0.3, 16000, 1), 16000)
    write(tmp_path / "other" / "a.wav", noise(0.3, 16000, 1), 16000)
    listing = tmp_path / "list.txt"
    listing.write_text("# inputs\nin/x/a.wav\n\nother/a.wav\nnope.wav\n")
    jobs, errors = collect_inputs([str(tmp_path / "in"), str(listing)])
    rel = {p.relative_to(tmp_path).as_posix(): r.as_posix() for p, r in jobs}
    assert rel == {"in/x/a.wav": "x/a.wav", "in/y/a.flac": "y/a.wav", "other/a.wav": "a.wav"}
    assert len(errors) == 1 and "nope.wav" in errors[0][0]
    store = tmp_path / "captions.json"
    store.write_text(json.dumps({"x/a.wav": "a quiet tone"}))
    args = ["--ckpt", str(tiny_ckpt), "--output", str(tmp_path / "out"), "--input", str(tmp_path / "in" / "x"),
            "--steps", "1", "--device", "cpu", "--window", "32768", "--caption-store", str(store)]
    assert sample_main(args) == 0
    args_y = args[:3] + [str(tmp_path / "out_y"), "--input", str(tmp_path / "in" / "y")] + args[6:]
    assert sample_main(args_y) == 1  # no caption for y/a.flac


def test_captioner_hears_each_lr_window_at_16k_mono(tiny_model, monkeypatch):
    from saga_hsmad.cli import caption as caption_cli
    from saga_hsmad.inference.super_resolution import make_caption_source

    heard = []

    class FakeQwen:
        def __init__(self, model_dir, device="auto", **kwargs):
            self.model_dir = model_dir

        def __call__(self, audios):
            heard.extend(audios)
            return [f"window of {len(a)} samples" for a in audios]

    monkeypatch.setattr(caption_cli, "Qwen2AudioCaptioner", FakeQwen)
    model, config = tiny_model
    source = make_caption_source(model, config, captioner_dir="/models/qwen2-audio")
    lr = torch.from_numpy(noise(1.0, SR, 2))
    captions = source(None, [(0.0, 1.0, lr), (1.0, 1.5, lr[:, : SR // 2])])
    assert captions == ["window of 16000 samples", "window of 8000 samples"]
    assert all(a.ndim == 1 for a in heard)
    import soxr
    expected = soxr.resample(lr.numpy().mean(axis=0), SR, 16000, quality="HQ")
    np.testing.assert_allclose(heard[0], expected, atol=1e-5)


def test_defaults_are_the_papers(tiny_model):
    from saga_hsmad.inference.schedules import linear_quadratic_schedule
    from saga_hsmad.inference.super_resolution import FixedCaption, SROptions, SuperResolver

    model, config = tiny_model
    paper = SuperResolver(model, config, SROptions(window=262144), FixedCaption(""))
    assert paper.overlap == 22050 and paper.window == 262144  # 5.944 s windows, 0.5 s overlap
    assert torch.equal(paper.timesteps, linear_quadratic_schedule(100, 1000))
    assert paper.guidance.weights == pytest.approx((1 - 1.4, 1.4 - 1.2, 1.2)) and paper.options.lfr
    tiny = SuperResolver(model, config, SROptions(), FixedCaption(""))
    assert tiny.window == config["sample_size"] and tiny.overlap == config["sample_size"] // 4


def test_target_rolloff_default_comes_from_the_model(capsys):
    from saga_hsmad.inference.super_resolution import FALLBACK_TARGET_ROLLOFF, resolve_target_rolloff

    config = tiny_config()
    assert resolve_target_rolloff(config, None)[0] == config["sampling"]["target_rolloff"]
    assert resolve_target_rolloff(config, 0.7)[0] == 0.7
    config["sampling"]["target_rolloff"] = None
    value, source = resolve_target_rolloff(config, None)
    assert value == FALLBACK_TARGET_ROLLOFF and source == "fallback"
    assert "WARNING" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must lie in"):
        resolve_target_rolloff(config, 1.5)


# -- condition parity ----------------------------------------------------------------------------------------
def record_backbone_inputs(backbone, store: list):
    original = backbone.forward

    def recording(x, t, **kwargs):
        entry = {"x": x, "t": t, **{k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}}
        store.append({k: (tuple(v.shape[1:]), v.dtype) for k, v in entry.items()})
        return original(x, t, **kwargs)

    return recording


def test_sampling_feeds_the_backbone_what_a_training_step_feeds(tmp_path, monkeypatch):
    import saga_hsmad
    from saga_hsmad.data import sr_dataset  # noqa: F401  (registers "super_resolution")
    from saga_hsmad.data.loader import create_dataloader_from_config

    config = tiny_config()
    model = build_tiny()
    folder = tmp_path / "data"
    for i in range(2):
        write(folder / f"clip{i}.wav", noise(1.0, SR, 2, seed=i), SR)
        (folder / f"clip{i}.json").write_text(json.dumps({"caption": f"clip {i}"}))
    loader = create_dataloader_from_config({"dataset_type": "super_resolution", "root": str(folder)}, batch_size=2,
                                           sample_size=config["sample_size"], sample_rate=SR, num_workers=0)
    audio, metadata = next(iter(loader))

    r = resolver(model, config)  # default window = the model's sample_size, as in training
    lr = torch.from_numpy(noise(config["sample_size"] / SR, SR, 2))
    sampling_md = r.window_metadata(lr, config["sample_size"], "a caption", 0.5)
    assert set(sampling_md) == {"prompt", "lr_audio", "rolloff_in", "rolloff_target", "padding_mask"}
    assert set(sampling_md) <= set(metadata[0])
    for key, value in sampling_md.items():
        train_value = metadata[0][key]
        train_value = train_value[0] if key == "padding_mask" else train_value  # the loader's 0.0.19 wrapping
        assert type(value) is type(train_value), key
        if isinstance(value, torch.Tensor):
            assert value.shape == train_value.shape and value.dtype == train_value.dtype, key

    seen_training, seen_sampling = [], []
    wrapper = saga_hsmad.create_training_wrapper_from_config(config, model)
    # just enough of a Trainer for training_step's logging (no Trainer run)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    wrapper._trainer = type("Trainer", (), {"optimizers": [optimizer]})()
    monkeypatch.setattr(wrapper, "log_dict", lambda *args, **kwargs: None)
    monkeypatch.setattr(wrapper, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(model.model, "forward", record_backbone_inputs(model.model, seen_training))
    with torch.no_grad():
        wrapper.training_step((audio, metadata), 0)
    monkeypatch.setattr(model.model, "forward", record_backbone_inputs(model.model, seen_sampling))
    model.eval()
    r.super_resolve_array(noise(0.5, SR, 2), SR)
    train_keys = {k: v for k, v in seen_training[0].items() if k not in ("padding_mask", "mask")}
    sample_keys = {k: v for k, v in seen_sampling[0].items() if k not in ("null_conditions",)}
    conditioning = {"cross_attn_cond", "cross_attn_mask", "global_cond", "input_concat_cond"}
    assert conditioning <= set(train_keys)
    compared = conditioning | {"x", "t"}
    assert {k: train_keys[k] for k in compared} == {k: sample_keys[k] for k in compared}
