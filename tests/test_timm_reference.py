"""Our paper-exact CBAM against timm's CbamModule, side by side (docs/architecture.md lists the
differences: timm's spatial conv carries a BatchNorm, and concatenates (mean, max) where we follow
the seeds' (max, mean) order)."""
import pytest
import torch
from torch import nn

from sarzoo.registry import get_registry


@pytest.mark.parametrize("channels,reduction", [(64, 16), (16, 16), (48, 4), (3, 16)])
def test_our_cbam_equals_timm_with_identity_bn(channels, reduction):
    reg = get_registry()
    ours = reg.get("attention", "cbam").factory(channels, reduction=reduction, kernel_size=7).eval()
    theirs = reg.get("attention", "timm_cbam").factory(channels, reduction=reduction, kernel_size=7).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.3)
        theirs.channel.fc1.weight.copy_(ours.channel.mlp[0].weight)
        theirs.channel.fc2.weight.copy_(ours.channel.mlp[2].weight)
        # timm concatenates (mean, max); ours (max, mean) as in the seeds: swap input channels.
        theirs.spatial.conv.conv.weight.copy_(ours.spatial.conv.weight.flip(1))
        theirs.spatial.conv.bn = nn.Identity()
    x = torch.randn(2, channels, 13, 17)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_timm_spatial_bn_is_the_difference():
    reg = get_registry()
    ours = reg.get("attention", "cbam").factory(8, reduction=4).eval()
    theirs = reg.get("attention", "timm_cbam").factory(8, reduction=4).eval()
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    assert n_theirs - n_ours == 2  # BatchNorm2d(1): weight and bias
