"""What the two components are, beyond conformance: the paper's kernel sizes, ConvNeXt's shapes."""
import pytest
import torch

import sarzoo
from sarzoo.registry import get_registry
from sarzoo_eca_convnext.convnext import ConvNeXtBlock
from sarzoo_eca_convnext.eca import ECA, adaptive_kernel_size


@pytest.mark.parametrize("channels, k", [(1, 1), (16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (2048, 7)])
def test_eca_adaptive_kernel_size_follows_the_paper(channels, k):
    assert adaptive_kernel_size(channels) == k
    assert ECA(channels).conv.kernel_size == (k,)


def test_eca_has_only_its_1d_kernel_and_keeps_the_shape():
    m = ECA(64)
    assert sum(p.numel() for p in m.parameters()) == 3
    x = torch.rand(2, 64, 9, 7)
    assert m(x).shape == x.shape


def test_convnext_downsamples_with_a_patchify_conv_and_starts_near_identity():
    block = ConvNeXtBlock(8, 16, stride=2).eval()
    x = torch.rand(1, 8, 12, 12)
    assert block(x).shape == (1, 16, 6, 6)
    same = ConvNeXtBlock(16, 16, stride=1).eval()
    y = torch.rand(1, 16, 5, 5)
    assert torch.allclose(same(y), y, atol=1e-4)      # layer scale 1e-6: nearly the identity


def test_registered_with_provenance_and_usable_qualified():
    reg = get_registry()
    eca = reg.get("attention", "sarzoo-eca-convnext:eca")
    assert eca.provenance.distribution == "sarzoo-eca-convnext"
    assert reg.get("block", "convnext").provenance.plugin == "eca_convnext"


def test_contract_rejects_an_even_eca_kernel_before_building():
    with pytest.raises(sarzoo.errors.SarzooError, match="kernel_size must be odd"):
        sarzoo.build({"input": {"size": 32}, "encoder": {
            "stage": {"block": "convnext", "attention": {"type": "eca", "kernel_size": 4}, "depth": 1},
            "stages": [{"out_channels": 8}]}})
