"""Synthetic scenes: deterministic, SAR-like statistics, fast."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sarzoo.data.synthetic import SyntheticSAR, speckle
from sarzoo.errors import SarzooError


def test_deterministic_and_independent_of_count():
    a = SyntheticSAR(4, 64, 4, seed=11)
    b = SyntheticSAR(9, 64, 4, seed=11)
    for i in range(4):
        sa, ca = a.scene(i)
        sb, cb = b.scene(i)
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(ca, cb)
    assert not np.array_equal(a.scene(0)[1], a.scene(1)[1])
    assert not np.array_equal(a.scene(0)[1], SyntheticSAR(1, 64, 4, seed=12).scene(0)[1])


@pytest.mark.parametrize("looks", [1, 4, 10])
def test_speckle_is_unit_mean_gamma(looks):
    ds = SyntheticSAR(8, 64, looks, seed=0)
    ratio = np.concatenate([(s / c).ravel() for s, c in (ds.scene(i) for i in range(8))])
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)
    assert ratio.var() == pytest.approx(1.0 / looks, rel=0.06)
    g = speckle(np.random.default_rng(0), (128, 128), looks)
    assert g.dtype == np.float32 and g.min() > 0


def test_scene_content():
    speckled, clean = SyntheticSAR(1, 128, 4, seed=5).scene(0)
    assert speckled.shape == clean.shape == (128, 128)
    assert speckled.dtype == clean.dtype == np.float32
    assert (clean > 0).all()
    db = 10 * np.log10(clean)
    assert db.max() > 4.0  # bright point targets
    assert np.unique(np.round(db, 3)).size > 5  # several regions / texture
    # Homogeneous regions exist: many pixels share exactly the same clean value.
    _, counts = np.unique(clean, return_counts=True)
    assert counts.max() > 500
    # Sharp edges: some horizontal neighbour steps are large.
    assert np.abs(np.diff(db, axis=1)).max() > 3.0


def test_torch_item_and_dataloader():
    ds = SyntheticSAR(6, 32, 4, seed=1)
    item = ds[2]
    assert item["speckled"].shape == (1, 32, 32) and item["speckled"].dtype == torch.float32
    assert item["scene"] == ds.scene_id(2)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["clean"].shape == (3, 1, 32, 32)
    with pytest.raises(IndexError):
        ds.scene(6)

def test_bad_arguments():
    with pytest.raises(SarzooError):
        SyntheticSAR(0, 64)
    with pytest.raises(SarzooError):
        SyntheticSAR(1, 4)
    with pytest.raises(SarzooError):
        SyntheticSAR(1, 64, looks=0)
    assert SyntheticSAR(1, (32, 48)).scene(0)[0].shape == (32, 48)
