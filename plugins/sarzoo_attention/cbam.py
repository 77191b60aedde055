"""CBAM (Woo et al. 2018) exactly as in the paper.

Channel attention first (shared bias-free MLP on max- and avg-pooled descriptors, summed, sigmoid),
then spatial attention (channel-max and channel-mean → 7×7 conv, no bias, no BN → sigmoid).
timm's CbamModule differs: its spatial conv carries a BatchNorm (see docs/architecture.md).

``CBAM.forward`` runs the fused ``CBAMFunction`` (see ``_fused``: one full-size tensor kept for
backward instead of two, and a fraction of autograd's full-size passes), or without autograd the
same forward minus the argmax bookkeeping; ``CBAM.reference`` and the two submodules' ``forward``
are the plain formulation it is tested against, and what runs under ``torch.compile``. The submodules
stay for the parameter names (``channel.mlp.0.weight``, ``channel.mlp.2.weight``,
``spatial.conv.weight``), so checkpoints and parameter counts do not depend on which path runs.
"""
from __future__ import annotations

import torch
from torch import nn

from sarzoo_attention._fused import autocast_dtype, cbam_forward, cbam_fused, fused_available, needs_grad


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=False),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x):
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        desc = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(desc))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x):
        if not fused_available():
            return self.reference(x)
        weights = (self.channel.mlp[0].weight, self.channel.mlp[2].weight, self.spatial.conv.weight)
        amp = autocast_dtype(x.device.type)
        if needs_grad(x, *weights):
            return cbam_fused(x, *weights, amp)
        return cbam_forward(x, *weights, amp, for_backward=False)[0]

    def reference(self, x):
        """The plain formulation, differentiated by autograd: what ``forward`` must equal."""
        return self.spatial(self.channel(x))
