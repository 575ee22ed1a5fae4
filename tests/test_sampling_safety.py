"""sample.py under careless or hostile use (issue 12, items 4, 6, 7, 8, 9, 12 on the sampling side): numeric
flags refused with their name, NaN/Inf model output refused with no file, outputs that would clip soft-limited
and reported, silence in gives silence out, truncated audio reported as an error, output permissions that
follow the umask, and Ctrl-C / SIGTERM / SIGKILL that leave one line and no partial file behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from test_sr_inference import SR, noise, sample_main, tiny_ckpt, write  # noqa: F401 (tiny_ckpt is a fixture)

from saga_hsmad.audio_io import AudioError, OutputLimiter, check_wav_length, read_audio, soft_limit


@pytest.fixture(scope="module")
def generate_ckpt(tmp_path_factory):
    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    config = json.loads((REPO / "model_configs" / "generate" / "tiny.json").read_text())
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_generate.ckpt"
    save_inference_checkpoint(path, saga_hsmad.create_model_from_config(config).state_dict(), config, ema=False)
    return path


def run_sr(ckpt, inputs, output, *extra: str) -> int:
    argv = ["--ckpt", str(ckpt), "--output", str(output), "--steps", "2", "--device", "cpu", "--caption", "x",
            "--window", "32768"]
    for path in inputs:
        argv += ["--input", str(path)]
    return sample_main(argv + list(extra))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("ERROR")]


def files_in(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- item 6 and 12: numeric flags ---------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--steps", "0", "must be >= 1"),  # ran 100 steps without a word
    ("--steps", "1e6", "expected an integer"),
    ("--steps", "1000000", "must be <= 10000"),
    ("--seed", "-1", "must be >= 0"),
    ("--cfg-acoustic", "nan", "finite"),  # wrote a constant -1.0 file, exit 0
    ("--cfg-text", "inf", "finite"),
    ("--cfg-text", "-1", "must be >= 0"),
    ("--cfg-scale", "nan", "finite"),
    ("--target-rolloff", "1", "must be < 1"),
    ("--reference-steps", "0", "must be >= 1"),
    ("--overlap", "nan", "finite"),  # "cannot convert float NaN to integer"
    ("--window", "0", "must be >= 1"),
    ("--batch-windows", "1000000", "must be <= 64"),
    ("--num", "1000000", "must be <= 64"),  # out-of-memory traceback after 80 s
    ("--seconds", "1e9", "must be <= 3600"),  # out-of-memory traceback
    ("--seconds", "0", "must be > 0"),
    ("--w-structure", "nan", "finite"),  # wrote a constant -1.0 file, exit 0
    ("--w-style", "-2", "must be >= 0"),
    ("--window-overlap", "inf", "finite"),
    ("--temperature", "0", "must be > 0"),
    ("--temperature", "nan", "finite"),
])
def test_numeric_flags_are_refused_by_name_in_one_line(flag, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused by the parser, before any checkpoint is read
        sample_main(["--ckpt", str(tmp_path / "never_read.ckpt"), "--output", str(tmp_path / "out"), flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ERROR: argument {flag}") and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_cond_numbers_must_be_finite(generate_ckpt, tmp_path, capsys):
    rc = sample_main(["--ckpt", str(generate_ckpt), "--output", str(tmp_path / "out"), "--device", "cpu",
                      "--cond", "seconds_total=NaN", "--prompt", "x", "--seconds", "0.5", "--steps", "1"])
    assert rc == 2
    assert error_lines(capsys.readouterr().err) == ["ERROR: --cond seconds_total=NaN: a number must be finite"]
    assert files_in(tmp_path / "out") == []


def test_generate_refuses_audio_that_cannot_fit_in_ram(generate_ckpt, tmp_path, capsys, monkeypatch):
    import saga_hsmad.config_check

    monkeypatch.setattr(saga_hsmad.config_check, "available_memory", lambda: 2**20)  # 1 MiB free
    rc = sample_main(["--ckpt", str(generate_ckpt), "--output", str(tmp_path / "out"), "--device", "cpu",
                      "--prompt", "x", "--cond", "seconds_total=4", "--seconds", "4", "--num", "2", "--steps", "1"])
    assert rc == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "--num 2 x --seconds 4: the audio alone needs 5.4 MiB" in line and "the 1 MiB of RAM available" in line


# -- item 6: non-finite model output -----------------------------------------------------------------------
def nan_decode(model, latents):
    ratio = model.pretransform.downsampling_ratio if model.pretransform is not None else 1
    return torch.full((latents.shape[0], 2, latents.shape[-1] * ratio), float("nan"))


def test_nan_model_output_is_an_error_and_leaves_no_file_sr(tiny_ckpt, tmp_path, capsys, monkeypatch):
    import saga_hsmad.inference.super_resolution as sr_mode

    monkeypatch.setattr(sr_mode, "decode", nan_decode)
    write(tmp_path / "in" / "a.wav", noise(0.5, 16000, 2), 16000)
    assert run_sr(tiny_ckpt, [tmp_path / "in"], tmp_path / "out") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"ERROR {tmp_path / 'in' / 'a.wav'}: the model produced 65536 NaN or infinite samples in "
                           "window(s) 0; nothing was written"), line
    assert files_in(tmp_path / "out") == []


def test_nan_model_output_is_an_error_and_leaves_no_file_generate(generate_ckpt, tmp_path, capsys, monkeypatch):
    import saga_hsmad.inference.generate_mode as generate_mode

    monkeypatch.setattr(generate_mode, "decode", nan_decode)
    rc = sample_main(["--ckpt", str(generate_ckpt), "--output", str(tmp_path / "out"), "--device", "cpu",
                      "--prompt", "x", "--cond", "seconds_total=1", "--seconds", "0.5", "--steps", "1"])
    assert rc == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "NaN or infinite samples" in line
    assert files_in(tmp_path / "out") == []


# -- item 7: clipping and silence -----------------------------------------------------------------------
def test_soft_limit_leaves_quiet_samples_and_stays_below_full_scale():
    knee = 10 ** (-1 / 20)
    x = np.linspace(-3.0, 3.0, 60001, dtype=np.float32)
    y = soft_limit(x)
    quiet = np.abs(x) <= knee
    np.testing.assert_array_equal(y[quiet], x[quiet])
    assert np.all(np.abs(y) <= 1.0) and np.all(np.abs(y[np.abs(x) < 1.5]) < 1.0)  # +3.5 dBFS still below 1
    assert np.all(np.diff(y) >= 0)  # monotonic: louder in, louder (or equal) out
    eps = 1e-4  # slope 1 on both sides of the knee: no kink
    assert abs(float(soft_limit(np.float32([knee + eps]))[0]) - (knee + eps)) < 1e-6


def test_outputs_that_would_clip_are_soft_limited_and_reported(tiny_ckpt, tmp_path, capsys):
    rng = np.random.default_rng(0)
    loud = rng.uniform(-1.5, 1.5, (2, SR)).astype(np.float32)  # white: full band, passed through unchanged
    write(tmp_path / "in" / "loud.wav", loud, SR)  # FLOAT input holds it
    over = int(np.count_nonzero(np.abs(loud) > 1.0))
    assert run_sr(tiny_ckpt, [tmp_path / "in"], tmp_path / "pcm") == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("WARNING")]
    assert line.startswith(f"WARNING {tmp_path / 'pcm' / 'loud.wav'}: {over} samples") and "soft-limited" in line
    out, _ = sf.read(tmp_path / "pcm" / "loud.wav", always_2d=True, dtype="float32")
    quiet = np.abs(loud.T) <= 0.89
    np.testing.assert_allclose(out[quiet], loud.T[quiet], atol=2 ** -22)  # PCM_24 rounding only
    assert np.abs(out).max() <= 1.0 and np.count_nonzero(np.abs(out) >= 1.0) < over / 100  # not cut flat
    assert run_sr(tiny_ckpt, [tmp_path / "in"], tmp_path / "float", "--subtype", "FLOAT") == 0
    assert f"{over} samples" in capsys.readouterr().err
    np.testing.assert_array_equal(sf.read(tmp_path / "float" / "loud.wav", always_2d=True, dtype="float32")[0].T, loud)


def test_output_limiter_counts_across_blocks():
    limiter = OutputLimiter("PCM_24")
    blocks = [np.float32([[0.5, 1.2], [-1.1, 0.2]]), np.float32([[2.0, 0.0]])]
    written = [limiter(b) for b in blocks]
    assert limiter.over == 3 and limiter.total == 6 and limiter.peak == 2.0
    assert all(np.abs(w).max() <= 1.0 for w in written) and written[0][0, 0] == 0.5
    assert OutputLimiter("FLOAT")(blocks[1])[0, 0] == 2.0 and OutputLimiter("PCM_16").report() is None


def test_silence_in_gives_silence_out(tiny_ckpt, tmp_path, capsys):
    from saga_hsmad.inference.windowing import plan_windows

    tone = noise(1.0, SR, 2)
    gap = np.zeros((2, 3 * 32768), np.float32)
    write(tmp_path / "in" / "gap.wav", np.concatenate([tone, gap, tone], axis=1), SR)
    write(tmp_path / "in" / "silent.wav", np.zeros((2, SR), np.float32), SR, subtype="PCM_16")
    assert run_sr(tiny_ckpt, [tmp_path / "in"], tmp_path / "out", "--overlap", "0.1", "--process-full-band") == 0
    silent, _ = sf.read(tmp_path / "out" / "silent.wav", always_2d=True)
    assert silent.shape == (SR, 2) and not silent.any()  # was noise at -15 dBFS
    out = capsys.readouterr().out
    assert "silent.wav: 1.00 s of silence (below -90 dBFS): passed through as silence" in out
    gapped, _ = sf.read(tmp_path / "out" / "gap.wav", always_2d=True)
    starts = plan_windows(gapped.shape[0], 32768, 4410)
    inside = [s for s in starts if s >= SR and s + 32768 <= SR + gap.shape[1]]
    assert inside
    for s in inside:  # a window wholly inside the gap is silence, also where it overlaps silent neighbours
        sampled = [t for t in starts if t not in inside and t < s + 32768 and s < t + 32768]
        lo = max([s] + [t + 32768 for t in sampled if t < s])
        hi = min([s + 32768] + [t for t in sampled if t > s])
        assert hi - lo > 20000 and not gapped[lo:hi].any(), (s, lo, hi)
    assert np.abs(gapped[:SR // 2]).max() > 0.1  # the music around it is still processed
    assert "gap.wav: 4.23 s, 7 window(s), 2 silent one(s) passed through" in out


# -- item 8: permissions ---------------------------------------------------------------------------------
def test_output_wavs_follow_the_umask(tiny_ckpt, generate_ckpt, tmp_path):
    write(tmp_path / "in" / "a.wav", np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4000)).astype(np.float32), SR)
    old = os.umask(0o027)
    try:
        assert run_sr(tiny_ckpt, [tmp_path / "in"], tmp_path / "sr") == 0
        assert sample_main(["--ckpt", str(generate_ckpt), "--output", str(tmp_path / "gen"), "--device", "cpu",
                            "--prompt", "x", "--cond", "seconds_total=1", "--seconds", "0.5", "--steps", "1"]) == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "sr" / "a.wav", tmp_path / "gen" / "sample_0.wav"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~0o027, (path, oct(path.stat().st_mode))  # was 0o600


# -- item 9: truncated audio -----------------------------------------------------------------------------
def truncated_files(folder):
    """A FLAC cut in half and a WAV whose header says 3 s over 8 samples, beside a good file."""
    x = noise(3.0, 16000, 1)
    write(folder / "whole.flac", x, 16000)
    data = (folder / "whole.flac").read_bytes()
    (folder / "half.flac").write_bytes(data[:len(data) // 2])
    write(folder / "whole.wav", x, 16000, subtype="PCM_16")
    (folder / "short.wav").write_bytes((folder / "whole.wav").read_bytes()[:44 + 16])
    return folder


def test_truncated_audio_is_an_error_not_zeros(tmp_path):
    folder = truncated_files(tmp_path)
    with pytest.raises(AudioError, match="half.flac: cannot decode audio"):
        read_audio(folder / "half.flac")  # was: 3 s, the second half zeros (pedalboard's decode)
    with pytest.raises(AudioError, match=r"short.wav: truncated: the WAV header declares 48000 frames .* holds 8"):
        check_wav_length(folder / "short.wav")
    check_wav_length(folder / "whole.wav")
    streamed = bytearray((folder / "whole.wav").read_bytes())
    streamed[40:44] = b"\xff\xff\xff\xff"  # data size of a WAV written to a pipe: unknown, not truncated
    (folder / "streamed.wav").write_bytes(bytes(streamed))
    check_wav_length(folder / "streamed.wav")
    (folder / "chunk_after.wav").write_bytes((folder / "whole.wav").read_bytes() + b"LIST\x04\x00\x00\x00INFO")
    check_wav_length(folder / "chunk_after.wav")
    assert read_audio(folder / "whole.flac")[0].shape == (1, 48000)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 support")
def test_an_mp3_cut_short_is_an_error_not_a_short_read(tmp_path):
    sf.write(tmp_path / "whole.mp3", noise(3.0, 44100, 1).T, 44100, format="MP3", subtype="MPEG_LAYER_III")
    data = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "half.mp3").write_bytes(data[:len(data) // 2])
    assert read_audio(tmp_path / "whole.mp3")[0].shape == (1, 3 * 44100)
    with pytest.raises(AudioError, match=r"half.mp3: truncated: the header promises 132300 frames \(3.000 s\)"):
        read_audio(tmp_path / "half.mp3")  # libsndfile decodes the first half without an error


def test_truncated_inputs_fail_per_file_and_the_batch_finishes(tiny_ckpt, tmp_path, capsys):
    folder = truncated_files(tmp_path / "in")
    assert run_sr(tiny_ckpt, [folder], tmp_path / "out") == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 2, errors
    assert any(f"{folder / 'half.flac'}: cannot decode audio" in e for e in errors)  # was 10.67 s of output
    assert any(f"{folder / 'short.wav'}: truncated" in e for e in errors)  # was a 0.5 ms output, exit 0
    assert files_in(tmp_path / "out") == ["whole.wav", "whole_wav.wav"]  # the flac came first


# -- item 4: interrupts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_prints_one_line_and_leaves_no_partial_file(tiny_ckpt, tmp_path, sig, status):
    write(tmp_path / "in" / "long.wav", noise(60.0, 16000, 2), 16000)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "sample.py"), "--ckpt", str(tiny_ckpt), "--output", str(out), "--device", "cpu",
         "--caption", "x", "--steps", "50", "--input", str(tmp_path / "in" / "long.wav")],
        cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    try:
        deadline = time.time() + 240
        while not (out.is_dir() and any(p.suffix == ".part" for p in out.iterdir())):  # mid-file
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err  # Ctrl-C printed ~117 lines of traceback; SIGTERM left a .part file
    assert err.strip().splitlines() == [
        f"interrupted ({sig.name}): the output being written was removed, finished outputs are kept; run the same "
        "command again to do the rest (existing outputs are skipped)"]
    assert list(out.iterdir()) == []


def test_stale_temporaries_of_a_killed_run_are_removed_on_the_next(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.wav.k1ll3d00.part"  # what atomic_write leaves when SIGKILL ends a run mid-file
    stale.write_bytes(b"RIFF")
    unrelated = [out / ".other.wav.x.part", out / "notes.part"]  # not an output of this run: kept
    for path in unrelated:
        path.write_bytes(b"")
    write(tmp_path / "in" / "a.wav", noise(0.3, 16000, 1), 16000)
    assert run_sr(tiny_ckpt, [tmp_path / "in"], out) == 0
    assert not stale.exists() and all(p.exists() for p in unrelated)
    assert f"removed 1 stale temporary file(s) of an interrupted run from {out}" in capsys.readouterr().out
    assert (out / "a.wav").is_file()


def test_midi_outputs_that_would_clip_are_soft_limited_and_reported(tmp_path, capsys, monkeypatch):
    import saga_hsmad
    import saga_hsmad.inference.midi_to_audio as midi_mode
    from saga_hsmad.checkpoints import save_inference_checkpoint
    from test_hsmad_training import piece_notes, write_midi

    config = json.loads((REPO / "model_configs" / "hsmad" / "tiny.json").read_text())
    save_inference_checkpoint(tmp_path / "tiny.ckpt", saga_hsmad.create_model_from_config(config).state_dict(),
                              config, ema=False)
    write_midi(tmp_path / "piece.mid", piece_notes(0, 0.5))

    def loud_decode(model, latents):  # a model that overshoots: every sample at +1.6 dBFS
        return torch.full((latents.shape[0], config["audio_channels"],
                           latents.shape[-1] * model.pretransform.downsampling_ratio), 1.2)

    monkeypatch.setattr(midi_mode, "decode", loud_decode)
    assert sample_main(["--ckpt", str(tmp_path / "tiny.ckpt"), "--output", str(tmp_path / "out"), "--midi",
                        str(tmp_path / "piece.mid"), "--steps", "1", "--device", "cpu", "--style", "piano"]) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("WARNING")]
    assert line.startswith(f"WARNING {tmp_path / 'out' / 'piece.wav'}: ") and "soft-limited above -1 dBFS" in line
    out, _ = sf.read(tmp_path / "out" / "piece.wav", always_2d=True)
    np.testing.assert_allclose(out, soft_limit(np.float32(1.2)), atol=2 ** -23)  # 0.9993: not cut flat at 1
