"""The autoencoder container every recipe builds into."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from sarzoo.builder import Plan, StagePlan


def _stage_module(stage: StagePlan) -> nn.Module:
    if stage.name in ("stem", "head"):
        return stage.layers[0].build()
    return nn.Sequential(OrderedDict((l.name, l.build()) for l in stage.layers))


def init_weights(model: nn.Module, init: dict[str, Any]) -> None:
    """Kaiming normal on every conv as in the baseline seed; BN to weight 1, bias 0."""
    if init["scheme"] != "kaiming_normal":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=init["negative_slope"], mode=init["mode"],
                                    nonlinearity=init["nonlinearity"])
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SarAutoencoder(nn.Module):
    """``forward(x) -> (x_hat, z)``, plus ``encode``/``decode``. Carries its resolved recipe and the
    provenance of every component, so a saved model says exactly what it is and where it came from."""

    def __init__(self, plan: Plan):
        super().__init__()
        self.recipe = plan.recipe
        self.input_shape = plan.input_shape
        self.latent_shape = plan.latent_shape
        self.encoder = nn.Sequential(OrderedDict((s.name, _stage_module(s)) for s in plan.encoder))
        self.decoder = nn.Sequential(OrderedDict((s.name, _stage_module(s)) for s in plan.decoder))
        self.components = sorted({(l.component.kind, l.component.name, l.component.provenance.distribution,
                                   l.component.provenance.version) for l in plan.layers()})
        init_weights(self, plan.recipe["init"])

    @property
    def compression_ratio(self) -> float:
        return math.prod(self.input_shape) / math.prod(self.latent_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z

    def count_parameters(self) -> dict[str, int]:
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        return {"total": enc + dec, "encoder": enc, "decoder": dec}

    def provenance(self) -> list[dict[str, str]]:
        return [{"kind": k, "name": n, "distribution": d, "version": v} for k, n, d, v in self.components]
