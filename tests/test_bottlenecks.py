"""The ``bottleneck`` component kind: first-party bottlenecks, the recipe key, the model, the rate.

The seeds' models keep their exact parameter counts (``none`` is the default and has no parameters);
every first-party bottleneck passes the conformance kit; the rate the loss adds is bits per *valid*
pixel; ``sarzoo build`` reports the latent in bits, not only in numbers.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

import sarzoo
from sarzoo.errors import SarzooError
from sarzoo.registry import get_registry
from sarzoo.testing import check_component, format_report
from tests._codec_common import CODEC
from tests.conftest import run_cli

BOTTLENECKS = ("none", "fp16", "quantize", "factorized", "hyperprior")


@pytest.mark.parametrize("name", BOTTLENECKS)
def test_first_party_bottlenecks_conform(name):
    report = check_component(get_registry().get("bottleneck", name), n_cases=6)
    assert report.ok, format_report(report)
    assert {r.check for c in report.cases for r in c.results} >= {"coding", "likelihoods", "eval_determinism"}


def test_seed_counts_unchanged_and_none_is_the_default():
    m = sarzoo.build("res_cbam")
    assert m.count_parameters() == {"total": 24_009_025, "encoder": 11_196_400, "decoder": 12_812_625}
    assert m.recipe["bottleneck"] == {"type": "none"} and not m.entropy_coded
    assert sarzoo.build("res").count_parameters()["total"] == 23_836_257


def test_a_bottleneck_adds_its_parameters_and_keeps_the_shapes():
    base = sarzoo.build(CODEC, {"bottleneck": "none"})
    coded = sarzoo.build(CODEC)
    counts = coded.count_parameters()
    assert counts["bottleneck"] > 0 and counts["total"] == counts["encoder"] + counts["decoder"] + counts["bottleneck"]
    assert (counts["encoder"], counts["decoder"]) == (base.count_parameters()["encoder"],
                                                     base.count_parameters()["decoder"])
    # the same seed gives the same encoder and decoder whatever the bottleneck
    torch.manual_seed(3)
    a = sarzoo.build(CODEC, {"bottleneck": "none"})
    torch.manual_seed(3)
    b = sarzoo.build(CODEC)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items() if not k.startswith("bottleneck"))
    x = torch.rand(2, 1, 64, 64)
    x_hat, z_hat, liks = coded.eval()(x, rd=True)
    assert x_hat.shape == x.shape and z_hat.shape == (2, *coded.latent_shape) and len(liks) == 2
    assert torch.equal(z_hat, torch.round(coded.encode(x)))     # eval mode: rounding
    assert torch.equal(coded(x)[0], x_hat)                        # forward(x) -> (x_hat, z_hat) as before


def test_recipe_errors_name_the_key():
    with pytest.raises(SarzooError, match="bottleneck.hyper_channel.*hyper_channels"):
        sarzoo.load_recipe(CODEC, ["bottleneck.hyper_channel=4"])
    with pytest.raises(SarzooError, match="bottleneck.type.*unknown bottleneck 'zip'"):
        sarzoo.load_recipe("tiny", ["bottleneck=zip"])
    with pytest.raises(SarzooError, match="train.rate.lmbda"):
        sarzoo.load_recipe("tiny", ["train.rate.lmbda=-1"])


def test_rate_is_bits_per_valid_pixel_and_weighted_by_lmbda():
    from sarzoo.train.loss import ReconstructionLoss

    model = sarzoo.build(CODEC).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        x_hat, _, liks = model(x, rd=True)
    bits = float(sum(-torch.log2(t).sum() for t in liks))
    mask = torch.ones_like(x, dtype=torch.bool)
    half = mask.clone()
    half[..., :32] = False
    plain, p0 = ReconstructionLoss(1.0, 0.0, 11, True, 0.0)(x_hat, x, mask, liks)
    rd, p1 = ReconstructionLoss(1.0, 0.0, 11, True, 0.5)(x_hat, x, mask, liks)
    assert math.isclose(float(p0["bpp"]), bits / (2 * 64 * 64), rel_tol=1e-5)
    assert math.isclose(float(rd - plain), 0.5 * float(p1["bpp"]), rel_tol=1e-5)
    _, p2 = ReconstructionLoss(1.0, 0.0, 11, True, 0.5)(x_hat, x, half, liks)
    assert math.isclose(float(p2["bpp"]), 2 * float(p0["bpp"]), rel_tol=1e-5)   # the same bits, half the pixels


def test_fixed_precision_rates_are_their_storage_bits():
    from sarzoo.codec import latent_size

    for name, bpp in (("none", 2.0), ("fp16", 1.0)):
        m = sarzoo.build("res_cbam", {"bottleneck": name}) if name == "none" else \
            sarzoo.build("tiny", {"bottleneck": name, "input.size": [256, 256]})
        size = latent_size(m.plan)
        if name == "none":   # 16×16×16 float32 numbers for 256² pixels: 2 bits per pixel, "16×" in numbers
            assert size["bits_per_pixel"] == bpp and size["numbers_ratio"] == 16 and size["storage"] == "float32"
        else:
            assert size["bits_per_pixel"] == 16 * 4 * 32 * 32 / 256**2 and size["storage"] == "float16"
        liks = m.eval()(torch.rand(1, 1, 256, 256), rd=True)[2]
        assert float(sum(-torch.log2(t).sum() for t in liks)) == size["bits_per_pixel"] * 256**2


def test_build_reports_bits_not_only_numbers():
    r = run_cli("build", "res_cbam", "--json")
    d = json.loads(r.stdout)
    assert d["latent"]["bits_per_pixel"] == 2.0 and d["latent"]["storage"] == "float32"
    assert d["params"]["total"] == 24_009_025
    text = run_cli("build", "tiny_codec").stdout
    assert "entropy-coded" in text and "bottleneck      hyperprior" in text
    assert "2 bits/pixel as float32" in run_cli("build", "res_cbam").stdout


def test_training_logs_bpp(tmp_path):
    from tests._train_common import log_records, run_sarzoo, train_args

    r = run_sarzoo(train_args(tmp_path / "run", "--max-steps", 3, sets=["train.log_every_steps=1"], recipe=CODEC))
    assert r.returncode == 0, r.stdout + r.stderr
    steps = [e for e in log_records(tmp_path / "run") if e["event"] == "step"]
    assert steps and all(e["bpp"] > 0 for e in steps)
    assert "bpp" in r.stderr + r.stdout and "entropy-coded" in r.stderr + r.stdout
