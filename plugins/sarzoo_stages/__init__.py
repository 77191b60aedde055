"""First-party stage composition: how blocks, attention and upsampling make up one stage.

A stage component returns a list of ``Step`` s rather than modules, so the builder checks every
step against its component's contract before anything is allocated.
"""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option, StageSpec, Step


def standard(stage: StageSpec, attention_every: str = "block") -> list[Step]:
    """Encoder: ``depth`` blocks, the first one strided. Decoder: upsample (when ``scale`` > 1 or
    an upsample is named) then ``depth`` blocks. Attention follows each block, or only the last
    one of the stage with ``attention_every: stage``."""
    steps: list[Step] = []
    channels = stage.in_channels
    stride = stage.stride
    if stage.role == "decoder" and stage.upsample is not None and (stage.scale > 1 or stage.depth == 0):
        steps.append(Step("up", "upsample", stage.upsample,
                          {"in_channels": channels, "out_channels": stage.out_channels,
                           "scale": stage.scale}))
        channels = stage.out_channels
    for i in range(stage.depth):
        steps.append(Step(f"block{i}", "block", stage.block,
                          {"in_channels": channels, "out_channels": stage.out_channels,
                           "stride": stride if i == 0 else 1}))
        channels = stage.out_channels
        if stage.attention is not None and (attention_every == "block" or i == stage.depth - 1):
            steps.append(Step(f"attn{i}", "attention", stage.attention, {"channels": channels}))
    return steps


def _check(args: dict) -> str | None:
    stage: StageSpec = args["stage"]
    if stage.role == "encoder" and stage.depth == 0 and (stage.stride != 1 or stage.in_channels != stage.out_channels):
        return "an encoder stage needs depth >= 1 to change channels or resolution"
    if stage.depth > 0 and stage.block is None:
        return "depth > 0 needs a block"
    if stage.role == "decoder" and stage.scale > 1 and stage.upsample is None:
        return f"scale {stage.scale} needs an upsample component"
    if (stage.role == "decoder" and stage.depth == 0 and stage.upsample is None
            and stage.in_channels != stage.out_channels):
        return "a decoder stage with depth 0 needs an upsample to change channels"
    return None


@hookimpl
def sarzoo_components():
    return [
        Component("stage", "standard", standard,
                  "Encoder: depth blocks, first strided; decoder: upsample then depth blocks; attention after blocks",
                  options={"attention_every": Option(str, "block", "attention after every block or once per stage",
                                                     choices=("block", "stage"))},
                  check=_check),
    ]
