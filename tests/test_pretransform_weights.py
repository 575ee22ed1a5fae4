"""train.py --pretransform-ckpt-path: a VAE's weights from a whole-model checkpoint or an unwrapped file."""
from __future__ import annotations

import pytest
import torch
from test_sao_init import concat_config

import saga_hsmad
from saga_hsmad.training.pretrained import load_pretransform


@pytest.mark.parametrize("layout", ["whole_model", "pretransform", "unwrapped_autoencoder"])
def test_pretransform_weights_load_from_each_layout(tmp_path, layout):
    torch.manual_seed(0)
    source = saga_hsmad.create_model_from_config(concat_config(1))
    torch.manual_seed(1)
    target = saga_hsmad.create_model_from_config(concat_config(1))
    key = next(iter(target.pretransform.state_dict()))
    assert not torch.equal(source.pretransform.state_dict()[key], target.pretransform.state_dict()[key])
    state = {"whole_model": source.state_dict(), "pretransform": source.pretransform.state_dict(),
             "unwrapped_autoencoder": source.pretransform.model.state_dict()}[layout]
    torch.save({"state_dict": state}, tmp_path / "vae.ckpt")
    report = load_pretransform(target, str(tmp_path / "vae.ckpt"))
    assert len(report.loaded) == len(target.pretransform.state_dict())
    for k, v in source.pretransform.state_dict().items():
        assert torch.equal(v, target.pretransform.state_dict()[k])


def test_wrong_file_is_a_clear_error(tmp_path):
    target = saga_hsmad.create_model_from_config(concat_config(1))
    torch.save({"state_dict": {"something.else": torch.zeros(3)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="does not hold this pretransform's weights"):
        load_pretransform(target, str(tmp_path / "other.ckpt"))
