"""train.py and sample.py as a user runs them: two steps on the demo corpus, a checkpoint, a resume that
continues the step count, and audio generated from the checkpoint."""
from __future__ import annotations

import soundfile as sf
import torch
from conftest import REPO, run_script

from saga_hsmad.checkpoints import read_checkpoint


def test_train_resume_and_sample(demo_corpus, tmp_path):
    env = {"SAGA_HSMAD_DEMO_CORPUS": str(demo_corpus)}
    common = ["--model-config", str(REPO / "model_configs/generate/tiny.json"),
              "--dataset-config", str(REPO / "dataset_configs/demo_audio.json"),
              "--save-dir", str(tmp_path), "--name", "run", "--batch-size", "2", "--num-workers", "0",
              "--accelerator", "cpu", "--checkpoint-every", "1"]
    run_script("train.py", *common, "--max-steps", "2", env=env)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["model_config"]["model"]["diffusion"]["type"] == "dit"
    assert any(k.startswith("diffusion_ema.") for k in ckpt["state_dict"])
    state, config, kind, ema = read_checkpoint(tmp_path / "run" / "export.safetensors", with_ema_flag=True)
    assert ema and kind == "inference" and config == ckpt["model_config"]
    assert not any(k.startswith("diffusion.") for k in state)  # the model alone: no wrapper, no optimizer state

    run_script("train.py", *common, "--max-steps", "4", "--ckpt-path", str(last), env=env)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4
    assert (tmp_path / "run" / "checkpoints" / "step=3.ckpt").is_file()

    out = tmp_path / "samples"
    proc = run_script("sample.py", "--ckpt", str(tmp_path / "run" / "export.safetensors"), "--output", str(out),
                      "--prompt", "a piano", "--cond", "seconds_total=4", "--seconds", "1", "--steps", "3",
                      "--num", "2", "--device", "cpu")
    assert "EMA weights" in proc.stdout
    for i in range(2):
        audio, sr = sf.read(out / f"sample_{i}.wav")
        assert sr == 44100 and audio.shape[1] == 2 and audio.shape[0] >= 44100 - 256
    # the same seed reproduces; existing outputs are kept without --overwrite
    first = sf.read(out / "sample_0.wav")[0]
    proc = run_script("sample.py", "--ckpt", str(last), "--output", str(out), "--prompt", "a piano",
                      "--cond", "seconds_total=4", "--seconds", "1", "--steps", "3", "--num", "1", "--device", "cpu")
    assert "not overwritten" in proc.stdout
    assert (sf.read(out / "sample_0.wav")[0] == first).all()


def test_saga_sr_tiny_trains_from_train_py_and_upsamples(demo_corpus, tmp_path):
    """Issue 3: the tiny SAGA-SR config trains on CPU from train.py on the demo corpus; the exported
    checkpoint (roll-off embedders included) upsamples a low-rate file with sample.py."""
    import numpy as np

    from saga_hsmad.audio_io import read_audio, resample, write_audio

    env = {"SAGA_HSMAD_DEMO_CORPUS": str(demo_corpus)}
    run_script("train.py", "--model-config", str(REPO / "model_configs/saga_sr/tiny.json"),
               "--dataset-config", str(REPO / "dataset_configs/saga_sr/demo.json"), "--save-dir", str(tmp_path),
               "--name", "sr", "--batch-size", "2", "--num-workers", "0", "--accelerator", "cpu",
               "--max-steps", "2", "--checkpoint-every", "2", env=env)
    exported, _, _ = read_checkpoint(tmp_path / "sr" / "export.safetensors")
    assert any("rolloff_in" in k for k in exported)  # conditioner weights travel with the model
    clip = sorted((demo_corpus / "test").glob("*.wav"))[0]
    audio, sr = read_audio(clip)
    write_audio(tmp_path / "in" / "clip.wav", resample(audio[:, : sr], sr, 16000), 16000)
    run_script("sample.py", "--ckpt", str(tmp_path / "sr" / "export.safetensors"), "--input", str(tmp_path / "in"),
               "--output", str(tmp_path / "out"), "--steps", "2", "--device", "cpu", "--caption", "music")
    out, out_sr = read_audio(tmp_path / "out" / "clip.wav")
    assert out_sr == 44100 and out.shape[0] == 2 and abs(out.shape[1] - 44100) <= 3
    assert np.isfinite(out).all()
