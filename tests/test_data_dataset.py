"""Datasets built from a ``data:`` config: synthetic and files, split, clip, masks, errors."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sarzoo.config import SECTIONS, defaults, resolve_section
from sarzoo.data.dataset import build_datasets, clip_range_from_regions
from sarzoo.data.patches import split_scenes
from sarzoo.errors import RecipeError, SarzooError

ROOT = Path(__file__).resolve().parent.parent
SMALL_SYN = {"synthetic": {"n_scenes": 6, "size": 64, "looks": 4}, "patch_size": 32, "stride": 32}


def _write_tif(path, data, nodata=None):
    import rasterio

    prof = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
                tiled=True, blockxsize=16, blockysize=16)
    if nodata is not None:
        prof["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(data, 1)


def test_synthetic_defaults_items():
    split = build_datasets(SMALL_SYN)
    train, val, prep, cfg = split
    assert len(train) == 5 * 4 and len(val) == 1 * 4
    assert not set(train.scene_ids) & set(val.scene_ids)
    item = train[0]
    assert set(item) == {"x", "mask", "clean", "scene"}
    assert item["x"].shape == item["mask"].shape == item["clean"].shape == (1, 32, 32)
    assert item["x"].dtype == torch.float32 and item["mask"].dtype == torch.bool
    assert item["clean"].dtype == torch.float32 and isinstance(item["scene"], str)
    for ds in (train, val):
        xs = torch.stack([ds[i]["x"] for i in range(len(ds))])
        assert float(xs.min()) >= 0.0 and float(xs.max()) <= 1.0
        assert 0.2 < float(xs.mean()) < 0.8  # the percentile clip gives a sensible spread
    assert prep.domain == "intensity" and cfg["domain"] == "intensity"
    # The clip range comes from the training scenes only.
    tr_regions, _ = split_scenes([p.region.scene for p in train.patches[::4]] +
                                 [p.region.scene for p in val.patches[::4]], 0.2, seed=0)
    vmin, vmax = clip_range_from_regions(tr_regions, "intensity", 1.0, 99.0)
    assert (prep.vmin, prep.vmax) == pytest.approx((vmin, vmax))


def test_deterministic_and_augment_train_only():
    a = build_datasets({**SMALL_SYN, "augment": False})
    b = build_datasets({**SMALL_SYN, "augment": False})
    assert a.train.scene_ids == b.train.scene_ids
    assert torch.equal(a.train[3]["x"], b.train[3]["x"])
    aug = build_datasets({**SMALL_SYN, "augment": True})
    assert aug.train.augment and not aug.val.augment
    torch.manual_seed(0)
    variants = {tuple(aug.train[0]["x"].flatten()[:50].tolist()) for _ in range(30)}
    assert len(variants) > 1
    assert torch.equal(aug.val[0]["x"], aug.val[0]["x"])
    it = aug.train[1]
    # x, mask and clean are transformed together: the clean image stays aligned with x.
    assert torch.corrcoef(torch.stack([it["x"].flatten(), it["clean"].flatten()]))[0, 1] > 0.5


def test_seed_changes_split():
    ids = {tuple(build_datasets({**SMALL_SYN, "seed": s}).val.scene_ids) for s in range(4)}
    assert len(ids) > 1


def test_fixed_clip():
    split = build_datasets({**SMALL_SYN, "clip": {"mode": "fixed", "vmin": -30, "vmax": 5}})
    assert (split.preprocessing.vmin, split.preprocessing.vmax) == (-30.0, 5.0)


@pytest.mark.parametrize("domain", ["intensity", "amplitude", "db"])
def test_geotiff_scenes_with_nodata(tmp_path, domain):
    rng = np.random.default_rng(0)
    for k in range(3):
        inten = (rng.gamma(4, 0.25, (80, 96)) * 10 ** rng.uniform(-2, -0.5)).astype(np.float32)
        raw = {"intensity": inten, "amplitude": np.sqrt(inten), "db": 10 * np.log10(inten)}[domain]
        raw = raw.astype(np.float32)
        raw[:, :40] = -9999.0  # a no-data border like a GRD swath edge
        raw[60, 70] = np.nan
        _write_tif(tmp_path / f"scene{k}.tif", raw, nodata=-9999.0)
    cfg = {"paths": [str(tmp_path / "*.tif")], "domain": domain, "patch_size": 32, "stride": 16,
           "val_fraction": 0.34, "augment": False}
    train, val, prep, _ = build_datasets(cfg)
    assert len(train.scene_ids) == 2 and len(val.scene_ids) == 1
    # 4 × 5 patches per scene; min_valid 0.5 drops the 2 columns of patches that are mostly border.
    assert len(train) == 2 * 4 * 3 and len(val) == 4 * 3
    for ds in (train, val):
        for i in range(len(ds)):
            it = ds[i]
            assert it["mask"].float().mean() >= 0.5
            assert (it["x"][~it["mask"]] == 0).all()
            assert "clean" not in it
    assert any(not train[i]["mask"].all() for i in range(len(train)))  # partly valid patches kept
    assert -40.0 < prep.vmin < prep.vmax < 5.0
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=2, drop_last=True)
    batch = next(iter(loader))
    assert batch["x"].shape == (4, 1, 32, 32) and len(batch["scene"]) == 4


def test_domains_give_same_preprocessing(tmp_path):
    rng = np.random.default_rng(3)
    inten = [(rng.gamma(4, 0.25, (48, 48)) * 0.05).astype(np.float32) for _ in range(2)]
    preps = {}
    for domain in ("intensity", "amplitude", "db"):
        d = tmp_path / domain
        d.mkdir()
        for k, a in enumerate(inten):
            raw = {"intensity": a, "amplitude": np.sqrt(a), "db": 10 * np.log10(a)}[domain]
            np.save(d / f"s{k}.npy", raw.astype(np.float32))
        preps[domain] = build_datasets({"paths": str(d), "domain": domain, "patch_size": 16, "augment": False})
    for domain in ("amplitude", "db"):
        assert preps[domain].preprocessing.vmin == pytest.approx(preps["intensity"].preprocessing.vmin, abs=0.02)
        torch.testing.assert_close(preps[domain].train[2]["x"], preps["intensity"].train[2]["x"], atol=2e-3, rtol=0)


def test_npy_stack_single_file(tmp_path):
    stack = (np.random.default_rng(1).random((10, 32, 32)) * 0.9 + 0.05).astype(np.float32)
    np.save(tmp_path / "patches.npy", stack)
    train, val, prep, _ = build_datasets({"paths": str(tmp_path / "patches.npy"), "patch_size": 32,
                                          "clip": {"mode": "fixed", "vmin": -15, "vmax": 0}})
    assert len(train) == 8 and len(val) == 2
    assert val.scene_ids[-1].endswith("[9]")


def test_single_scene_spatial_split(tmp_path):
    np.save(tmp_path / "one.npy", (np.random.default_rng(2).random((128, 64)) + 0.1).astype(np.float32))
    train, val, _, _ = build_datasets({"paths": str(tmp_path / "one.npy"), "patch_size": 32, "stride": 32,
                                       "val_fraction": 0.25})
    assert len(train) == 3 * 2 and len(val) == 1 * 2
    assert {p.row for p in val.patches} == {96}


def test_all_nodata_is_a_clear_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((32, 32), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((32, 32), np.float32))
    with pytest.raises(SarzooError, match="no valid pixel|valid pixels"):
        build_datasets({"paths": str(tmp_path), "patch_size": 16})


def test_corrupt_input_fails_before_building(tmp_path):
    np.save(tmp_path / "good.npy", np.ones((32, 32), np.float32))
    (tmp_path / "bad.tif").write_bytes(b"garbage")
    with pytest.raises(SarzooError, match="bad.tif"):
        build_datasets({"paths": str(tmp_path)})


@pytest.mark.parametrize("cfg,key", [
    ({"patchsize": 3}, "data.patchsize"),
    ({"domain": "sigma0"}, "data.domain"),
    ({"patch_size": 0}, "data.patch_size"),
    ({"patch_size": True}, "data.patch_size"),
    ({"stride": -1}, "data.stride"),
    ({"clip": {"mode": "minmax"}}, "data.clip.mode"),
    ({"clip": {"low": 99, "high": 1}}, "data.clip.low"),
    ({"clip": {"vmin": 0, "vmax": -25}}, "data.clip.vmin"),
    ({"clip": {"lo": 1}}, "data.clip.lo"),
    ({"clip": 5}, "data.clip"),
    ({"nodata": "none"}, "data.nodata"),
    ({"val_fraction": 1.0}, "data.val_fraction"),
    ({"augment": "yes"}, "data.augment"),
    ({"synthetic": {"n_scenes": 0}}, "data.synthetic.n_scenes"),
    ({"synthetic": {"looks": -1}}, "data.synthetic.looks"),
    ({"paths": []}, "data.paths"),
    ({"min_valid": 2}, "data.min_valid"),
    ({"seed": 1.5}, "data.seed"),
])
def test_config_errors_name_the_key(cfg, key):
    with pytest.raises(RecipeError) as exc:
        resolve_section("data", cfg)
    assert exc.value.key == key and key in str(exc.value)
    with pytest.raises(RecipeError) as exc:  # the same rule inside a recipe, with the same key
        import sarzoo

        sarzoo.load_recipe("tiny", {f"data.{k}": v for k, v in cfg.items()})
    assert exc.value.key.startswith(key.rsplit(".", 1)[0])


def test_config_resolution():
    c = resolve_section("data", {"paths": "x.tif", "stride": None, "clip": {"high": 98}})
    # without a recipe, patches take the default input.size (256); inside one, its input.size
    assert c["paths"] == ["x.tif"] and c["stride"] == c["patch_size"] == 256
    assert c["clip"] == {**defaults("data")["clip"], "high": 98.0}
    assert resolve_section("data", c) == c  # resolving a resolved section changes nothing
    default = resolve_section("data", None)
    assert set(default) == set(defaults("data")) and default["paths"] is None
    assert default["synthetic"]["size"] == 2 * default["patch_size"]
    d = defaults("data")
    d["clip"]["mode"] = "fixed"
    assert defaults("data")["clip"]["mode"] == "percentile"  # defaults are not shared mutable state


def test_every_key_documented():
    fields = SECTIONS["data"].children
    keys = set()
    for k, f in fields.items():
        keys.add(k)
        keys.update(f"{k}.{sub}" for sub in f.children)
    assert all(f.doc and "\n" not in f.doc for f in fields.values())
    doc = (ROOT / "docs" / "data.md").read_text()
    for k in keys:
        assert f"| `{k}` |" in doc, k


def test_package_import_is_light():
    code = ("import sys, sarzoo.data, sarzoo.config as c; c.defaults('data'); "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
