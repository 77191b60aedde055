"""The recipe in recipes/ builds, and trains: the reconstruction loss falls in a few steps."""
from pathlib import Path

import torch

import sarzoo

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "convnext_eca.yaml"


def test_recipe_builds_with_the_plugin_components():
    model = sarzoo.build(str(RECIPE))
    x_hat, z = model(torch.rand(2, 1, 64, 64))
    assert x_hat.shape == (2, 1, 64, 64) and z.shape == (2, 4, 8, 8)
    used = {(p["kind"], p["name"], p["distribution"]) for p in model.provenance()}
    assert ("block", "convnext", "sarzoo-eca-convnext") in used
    assert ("attention", "eca", "sarzoo-eca-convnext") in used


def test_recipe_trains():
    torch.manual_seed(0)
    model = sarzoo.build(str(RECIPE), {"input.size": [32, 32]})   # small, for a quick CPU test
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    # dark, smooth, speckled images in [0, 1]: something an autoencoder can learn quickly
    base = torch.nn.functional.interpolate(torch.rand(4, 1, 4, 4), size=32, mode="bilinear")
    x = (0.3 * base * torch.distributions.Exponential(1.0).sample(base.shape)).clamp(0, 1)
    losses = []
    for _ in range(12):
        x_hat, _ = model(x)
        loss = torch.nn.functional.mse_loss(x_hat, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0], losses
