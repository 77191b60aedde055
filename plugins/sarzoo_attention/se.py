"""Squeeze-and-excitation (Hu et al. 2018): global average pool → bottleneck MLP → sigmoid gate.

``forward`` runs the fused ``SEFunction`` (see ``_fused``: its backward allocates one full-size
tensor where autograd's allocates four, and it pools with ``sum``: ``mean`` of bfloat16 is slow on
CPU); ``reference`` is the plain formulation it is tested against, and what runs under
``torch.compile``.
"""
from __future__ import annotations

from torch import nn

from sarzoo_attention._fused import autocast_dtype, fused_available, se_fused


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        if not fused_available():
            return self.reference(x)
        params = (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        return se_fused(x, *params, autocast_dtype(x.device.type))

    def reference(self, x):
        """The plain formulation, differentiated by autograd: what ``forward`` must equal."""
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
