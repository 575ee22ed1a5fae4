"""The local T5 conditioner: offline stand-in, local directories, frozen encoder outside the state dict."""
from __future__ import annotations

import pytest
import torch

from saga_hsmad.conditioners.t5_local import LocalT5Conditioner, tiny_t5


def test_tiny_stand_in_is_deterministic_and_masks_padding():
    a = LocalT5Conditioner(32, "tiny-random", max_length=16)
    b = LocalT5Conditioner(32, "tiny-random", max_length=16)
    b.proj_out.load_state_dict(a.proj_out.state_dict())
    ea, ma = a(["a violin", "drums and bass"], "cpu")
    eb, _ = b(["a violin", "drums and bass"], "cpu")
    assert ea.shape == (2, 16, 32) and ma.dtype == torch.bool
    assert torch.equal(ea, eb)
    assert (ea[~ma] == 0).all() and ma.sum(1).tolist() == [len("a violin") + 1, len("drums and bass") + 1]
    other, _ = a(["a cello", "drums and bass"], "cpu")
    assert not torch.equal(other[0], ea[0]) and torch.equal(other[1], ea[1])


def test_encoder_is_frozen_and_not_in_state_dict():
    c = LocalT5Conditioner(32, "tiny-random")
    assert set(c.state_dict()) == {"proj_out.weight", "proj_out.bias"}
    assert all(not p.requires_grad for p in c.encoder.module.parameters())
    e, _ = c(["x"], "cpu")
    e.sum().backward()
    assert c.proj_out.weight.grad is not None


def test_loads_from_a_local_directory(tmp_path):
    tokenizer, model = tiny_t5(seed=3)
    tokenizer.save_pretrained(tmp_path / "t5")
    model.save_pretrained(tmp_path / "t5")
    c = LocalT5Conditioner(64, str(tmp_path / "t5"), max_length=8)
    ref = model.eval()(**tokenizer(["hello"], padding="max_length", max_length=8, return_tensors="pt")).last_hidden_state
    e, m = c(["hello"], "cpu")
    assert torch.allclose(e, ref * m[..., None], atol=1e-6)


def test_missing_directory_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LocalT5Conditioner(64, "/no/such/t5-base")


def test_pooled_output_is_one_token():
    c = LocalT5Conditioner(16, "tiny-random", pooled=True)
    e, m = c(["piano", "a string quartet"], "cpu")
    assert e.shape == (2, 1, 16) and m.all()
