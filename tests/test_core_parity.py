"""Exact parity with the seeds' architectures (SPEC §1)."""
import pytest
import torch

import sarzoo


def _counts(name):
    return sarzoo.build(name).count_parameters()


def test_variant_b_res_exact():
    m = sarzoo.build("res")
    assert m.count_parameters() == {"total": 23_836_257, "encoder": 11_109_536, "decoder": 12_726_721}
    assert tuple(m.latent_shape) == (16, 16, 16)
    assert tuple(m.input_shape) == (1, 256, 256)
    assert m.compression_ratio == 16.0


def test_variant_c_res_cbam_exact():
    m = sarzoo.build("res_cbam")
    assert m.count_parameters() == {"total": 24_009_025, "encoder": 11_196_400, "decoder": 12_812_625}
    assert tuple(m.latent_shape) == (16, 16, 16)
    cbams = [mod for mod in m.modules() if type(mod).__name__ == "CBAM"]
    assert len(cbams) == 16
    # CBAM follows the block, it is not inside it; decoder upsample 1x1 conv has no BN.
    assert all(type(m.decoder.stage0.up.norm).__name__ == "Identity" for _ in [0])


@pytest.mark.parametrize("name,target", [("baseline", 2.3e6), ("resnet_lite", 5.6e6)])
def test_seed_models_within_5_percent(name, target):
    total = _counts(name)["total"]
    assert abs(total - target) / target < 0.05, total


def test_stem_counts_to_encoder_head_to_decoder():
    m = sarzoo.build("res")
    stem = sum(p.numel() for p in m.encoder.stem.parameters())
    head = sum(p.numel() for p in m.decoder.head.parameters())
    assert stem == 7 * 7 * 64 + 2 * 64  # conv without bias + BN
    assert head == 7 * 7 * 64 + 1       # conv with bias


def test_forward_shapes_and_range_res_cbam():
    m = sarzoo.build("res_cbam").eval()
    with torch.no_grad():
        x_hat, z = m(torch.rand(1, 1, 256, 256))
    assert x_hat.shape == (1, 1, 256, 256) and z.shape == (1, 16, 16, 16)
    assert 0 <= x_hat.min() and x_hat.max() <= 1


def test_preact_block_structure_matches_variant_b():
    m = sarzoo.build("res")
    first = m.encoder.stage0.block0
    # BN -> ReLU -> conv3x3(stride 2) -> BN -> ReLU -> conv3x3, plain strided 1x1 conv shortcut
    assert first.conv1.stride == (2, 2) and first.conv1.kernel_size == (3, 3)
    assert isinstance(first.shortcut, torch.nn.Conv2d) and first.shortcut.bias is None
    assert isinstance(m.encoder.stage0.block1.shortcut, torch.nn.Identity)
    x = torch.randn(2, 64, 16, 16)
    first.eval()
    expected = first.conv2(torch.relu(first.bn2(first.conv1(torch.relu(first.bn1(x)))))) + first.shortcut(x)
    assert torch.allclose(first(x), expected)  # no activation after the add
