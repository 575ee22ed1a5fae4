"""``prediction: "x0"``: the backbones' networks output the clean latent, the backbones still return the
rectified-flow velocity (models.prediction)."""
from __future__ import annotations

import pytest
import torch

from saga_hsmad.models.prediction import to_velocity


def test_a_perfect_x0_gives_the_exact_velocity():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 16, generator=g), torch.randn(4, 3, 16, generator=g)
    t = torch.tensor([0.9, 0.5, 0.2, 0.06])
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise  # stable-audio-tools' rectified_flow noising
    assert torch.allclose(to_velocity(x0, x_t, t, "x0", 0.05), noise - x0, atol=1e-5)
    assert to_velocity(x0, x_t, t, "velocity", 0.05) is x0
    # below t_min the division is bounded: an error e in x̂0 costs at most e / t_min in v
    small = torch.tensor([0.01])
    v = to_velocity(torch.zeros(1, 1, 2), torch.ones(1, 1, 2), small, "x0", 0.05)
    assert torch.allclose(v, torch.full_like(v, 20.0))


def hooked_output(model: torch.nn.Module, layer: torch.nn.Module) -> list[torch.Tensor]:
    """Record what ``layer`` (the network's last layer) returns."""
    seen: list[torch.Tensor] = []
    layer.register_forward_hook(lambda module, args, out: seen.append(out))
    return seen


def test_mrci_unet_returns_x_minus_its_output_over_t():
    from test_mrci_unet import build, make_inputs, run

    model = build(prediction="x0", x0_t_min=0.1)
    inputs = make_inputs()
    inputs["t"] = torch.tensor([0.5, 0.02])
    seen = hooked_output(model, model.output_proj)
    v = run(model, inputs)
    t = torch.tensor([0.5, 0.1])[:, None, None]  # the second t is raised to x0_t_min
    assert torch.allclose(v, (inputs["x"] - seen[-1]) / t, atol=1e-5)
    plain = build()
    seen = hooked_output(plain, plain.output_proj)
    assert torch.equal(run(plain, inputs), seen[-1])  # default: the network's output is the velocity


def test_dit_concat_returns_x_minus_its_output_over_t():
    from test_dit_concat import inputs, make

    model = make(prediction="x0").eval()
    given = inputs(2)
    given["t"] = torch.tensor([0.7, 0.3])
    seen = hooked_output(model, model.model)
    v = model(**given)
    assert torch.allclose(v, (given["x"] - seen[-1]) / given["t"][:, None, None], atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [({"prediction": "eps"}, "prediction must be one of"),
                                           ({"prediction": "x0", "x0_t_min": 0.0}, "x0_t_min must be in")])
def test_bad_values_name_the_key(kwargs, match):
    from test_dit_concat import make
    from test_mrci_unet import build

    with pytest.raises(ValueError, match=match):
        build(**kwargs)
    with pytest.raises(ValueError, match=match):
        make(**kwargs)
    with pytest.raises(ValueError, match="needs the rectified_flow objective"):
        make(prediction="x0", diffusion_objective="v")


def test_config_check_accepts_and_checks_the_keys():
    import json

    from conftest import REPO

    from saga_hsmad.config_check import validate_model_config

    config = json.loads((REPO / "model_configs/hsmad/tiny.json").read_text())
    config["model"]["diffusion"]["config"]["prediction"] = "x0"
    assert not validate_model_config(config)
    config["model"]["diffusion"]["config"]["prediction"] = "noise"
    assert any("prediction" in p.path for p in validate_model_config(config))
