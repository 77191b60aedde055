"""Shared pieces of the codec tests: small codec models trained in-process for a few seconds, synthetic
scenes in the model's [0, 1], and checkpoints of them that ``sarzoo encode``/``decode`` read."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
CODEC = str(ROOT / "tests" / "recipes" / "codec64.yaml")


def preprocessing(model):
    from sarzoo.data.dataset import base_preprocessing

    return base_preprocessing(model.recipe["data"], int(model.input_shape[0]))


def scenes(n: int, size: int, seed: int):
    """``[(raw intensity (H, W), x01 (1, H, W), mask (1, H, W))]`` of synthetic SAR scenes."""
    from sarzoo.data.dataset import base_preprocessing
    from sarzoo.data.synthetic import SyntheticSAR

    prep = base_preprocessing({"domain": "intensity", "nodata": None, "bands": None,
                               "clip": {"mode": "fixed", "vmin": -30.0, "vmax": 10.0, "low": 1.0, "high": 99.0}}, 1)
    gen = SyntheticSAR(n, size, seed=seed)
    out = []
    for i in range(n):
        raw = gen.scene(i)[0].astype(np.float32)
        x, m = prep.forward(raw[None])
        out.append((raw, x, m))
    return out


@functools.lru_cache(maxsize=None)
def trained(bottleneck: str = "hyperprior", steps: int = 100, lmbda: float = 0.001, seed: int = 0):
    """The codec64 recipe with ``bottleneck``, trained ``steps`` steps of 8 patches (eval mode)."""
    import sarzoo
    from sarzoo.train.loss import ReconstructionLoss

    torch.manual_seed(seed)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = sarzoo.build(CODEC, {"bottleneck": bottleneck})
        patches = np.concatenate([tiles(x) for _, x, _ in scenes(24, 128, seed=100 + seed)])
        data = torch.from_numpy(patches)   # 96 patches of 64 px
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        loss_fn = ReconstructionLoss(1.0, 0.0, 11, True, lmbda)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(steps):
            x = data[torch.randint(len(data), (8,), generator=g)]
            x_hat, _, lik = model(x, rd=True)
            loss, _ = loss_fn(x_hat, x, None, lik or None)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(n_threads)
    return model.eval()


def tiles(x: np.ndarray, t: int = 64) -> np.ndarray:
    """(C, H, W) → (N, C, t, t), row-major: the codec's tile grid of an image of whole tiles."""
    c, h, w = x.shape
    return x.reshape(c, h // t, t, w // t, t).transpose(1, 3, 0, 2, 4).reshape(-1, c, t, t).copy()


def save(model, path) -> str:
    """A model checkpoint (weights, recipe, preprocessing) that ``sarzoo.load`` opens."""
    from sarzoo import checkpoint

    checkpoint.write(checkpoint.model_payload(model, model.recipe, preprocessing(model)), path)
    return str(path)
