"""The notebook API (``sarzoo.inference``): ``sarzoo.load`` gives the model (eval mode) and its
preprocessing in one call; ``reconstruct`` tiles scenes of any size through it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import RECIPES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from sarzoo.cli import main

    out = tmp_path_factory.mktemp("apirun") / "run"
    code = main(["train", str(RECIPES / "tiny.yaml"), "--out", str(out), "--max-steps", "2", "--device", "cpu",
                 "--set", "data.synthetic.n_scenes=4", "--set", "data.synthetic.size=64",
                 "--set", "train.batch_size=2", "--set", "train.preview_samples=0",
                 "--set", "train.histogram_every=0"])
    assert code == 0
    return out / "last.pt"


def test_load_returns_eval_model_and_preprocessing(checkpoint):
    import sarzoo
    from sarzoo.data.preprocess import Preprocessing

    model, prep = sarzoo.load(checkpoint)
    assert not model.training and all(not m.training for m in model.modules())
    assert isinstance(prep, Preprocessing) and prep.domain == "intensity"
    stored = torch.load(checkpoint, weights_only=True)
    assert prep.to_dict() == stored["preprocessing"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, stored["model"][k]), k
    assert model.checkpoint_info["recipe"] == "tiny"

    # forward/inverse round trip on values inside the clip range
    rng = np.random.default_rng(0)
    db = rng.uniform(prep.vmin + 0.1, prep.vmax - 0.1, size=(50, 70))
    raw = np.power(10.0, db / 10.0).astype(np.float32)
    x, mask = prep.forward(raw)
    assert mask.all() and x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(prep.inverse(x), raw, rtol=1e-4)


def test_three_line_reconstruction(checkpoint):
    import sarzoo

    rng = np.random.default_rng(1)
    raw = (0.05 * rng.gamma(4, 0.25, size=(100, 130))).astype(np.float32)
    raw[:5, :5] = 0.0  # no-data in the intensity domain

    # the README's three lines
    model, prep = sarzoo.load(checkpoint)
    x, mask = prep.forward(raw)
    recon = prep.inverse(sarzoo.reconstruct(model, x))

    assert recon.shape == raw.shape and np.isfinite(recon).all() and (recon > 0).all()
    # the shortcut does the same and marks no-data as NaN
    loaded = sarzoo.load(checkpoint)
    r2 = loaded.reconstruct(raw)
    assert np.isnan(r2[:5, :5]).all()
    np.testing.assert_allclose(r2[mask], recon[mask], rtol=1e-5)

    # a patch of the model's own size goes straight through the model
    with torch.no_grad():
        x_hat, z = model(torch.from_numpy(x[:64, :64].copy())[None, None])
    assert x_hat.shape == (1, 1, 64, 64) and z.shape == (1, *model.latent_shape)


def test_load_errors_are_sarzoo_errors(tmp_path):
    import sarzoo
    from sarzoo.errors import SarzooError

    with pytest.raises(SarzooError, match="no such checkpoint"):
        sarzoo.load(tmp_path / "nope.pt")
    model_file = tmp_path / "untrained.pt"
    torch.save({"format": "sarzoo.model/1"}, model_file)
    with pytest.raises(SarzooError, match="key 'recipe': is missing"):
        sarzoo.load(model_file)


def test_load_refuses_damaged_checkpoints_naming_file_and_key(checkpoint, tmp_path):
    """A checkpoint is validated before anything is built from it (issue 9 point 1): one
    ``SarzooError`` naming the file and the key, never a traceback from inside torch."""
    import sarzoo
    from sarzoo.errors import SarzooError

    stored = torch.load(checkpoint, weights_only=True)
    damages = {
        "model": lambda c: c.__setitem__("model", "weights"),
        "recipe": lambda c: c.pop("recipe"),
        "preprocessing": lambda c: c.__setitem__("preprocessing", None),
        "preprocessing.vmin": lambda c: c["preprocessing"].__setitem__("vmin", "low"),
        "best": lambda c: c.__setitem__("best", [1, 2]),
        "step": lambda c: c.__setitem__("step", -1),
        "model.encoder.stem.conv.weight": lambda c: c["model"].__setitem__(
            "encoder.stem.conv.weight", c["model"]["encoder.stem.conv.weight"].to(torch.int64)),
        "model.bogus": lambda c: c["model"].__setitem__("bogus", torch.zeros(1)),
        "provenance.components": lambda c: c["provenance"].__setitem__("components", "all of them"),
    }
    for key, damage in damages.items():
        ck = {**stored, "model": dict(stored["model"]), "preprocessing": dict(stored["preprocessing"]),
              "provenance": dict(stored["provenance"])}
        damage(ck)
        path = tmp_path / f"{key}.pt"
        torch.save(ck, path)
        with pytest.raises(SarzooError) as exc:
            sarzoo.load(path)
        assert str(path) in str(exc.value) and f"key '{key}'" in str(exc.value), str(exc.value)


def test_load_refuses_what_is_not_a_regular_file_without_opening_it(tmp_path):
    import os

    import sarzoo
    from sarzoo.errors import SarzooError

    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with pytest.raises(SarzooError, match="FIFO"):
        sarzoo.load(fifo)
    with pytest.raises(SarzooError, match="device"):
        sarzoo.load("/dev/zero")
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(SarzooError, match="dir.pt: is a directory"):
        sarzoo.load(tmp_path / "dir.pt")


def _tiny_model():
    import sarzoo

    torch.manual_seed(0)
    m = sarzoo.build(RECIPES / "tiny.yaml")
    m.recipe["data"] = {"patch_size": 64}
    return m.eval()


def test_reconstruct_tiles_scenes_of_any_size():
    from sarzoo.inference import reconstruct

    m = _tiny_model()
    rng = np.random.default_rng(0)
    for shape in [(150, 100), (64, 64), (40, 50), (64, 200)]:
        x = rng.random(shape, dtype=np.float32)
        for overlap in (0, 16):
            y = reconstruct(m, x, overlap=overlap, batch_size=3)
            assert y.shape == shape and y.dtype == np.float32
            assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    # tensor in, tensor out
    assert isinstance(reconstruct(m, torch.rand(70, 70)), torch.Tensor)

    # non-overlapping tiling of a 128×128 scene is exactly the four 64 px outputs side by side
    x = rng.random((128, 128), dtype=np.float32)
    y = reconstruct(m, x)
    with torch.no_grad():
        for r in (0, 64):
            for c in (0, 64):
                t = m(torch.from_numpy(x[r:r + 64, c:c + 64].copy())[None, None])[0][0, 0].numpy()
                np.testing.assert_allclose(y[r:r + 64, c:c + 64], t, atol=1e-5)
