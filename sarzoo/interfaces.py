"""The component interfaces every plugin implements.

A component is a factory plus a *contract*: the contract says, without allocating anything,
how the component maps an input shape ``(C, H, W)`` to an output shape and which input sizes it
accepts. The planner (``sarzoo.plan``) walks a recipe through the contracts first, so a bad recipe fails with a
clear message before a single weight exists, and the conformance checks compare each
component's real output with what its contract promised.

Kinds and the arguments the model builder passes to their factories:

- ``block``: ``factory(in_channels, out_channels, stride, **options)``; output
  ``(out_channels, ceil(H / stride), ceil(W / stride))``.
- ``attention``: ``factory(channels, **options)``; output shape = input shape.
- ``upsample``: ``factory(in_channels, out_channels, scale, **options)``; output
  ``(out_channels, H * scale, W * scale)``.
- ``bottleneck``: ``factory(channels, **options)``; sits between encoder and decoder, output shape =
  input shape. Its module returns ``(z_hat, likelihoods)`` and codes latents to bytes
  (``compress``/``decompress``); the protocol is ``BOTTLENECK_PROTOCOL`` below and docs/codec.md.
- ``stage``: composition, not a layer. ``factory(stage, **options)`` receives a resolved
  ``StageSpec`` and returns the ordered list of ``Step`` s the stage is made of; the planner
  checks and the model builder instantiates the steps, so stage plugins never bypass the contracts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

KINDS: tuple[str, ...] = ("block", "attention", "upsample", "stage", "bottleneck")
#: The arguments ``sarzoo.model`` passes to each layer kind's factory, besides the options.
KIND_ARGS: dict[str, tuple[str, ...]] = {"block": ("in_channels", "out_channels", "stride"),
                                         "attention": ("channels",),
                                         "upsample": ("in_channels", "out_channels", "scale"),
                                         "bottleneck": ("channels",)}
#: The kinds a stage is made of (a stage's ``Step`` s); the bottleneck is the model's, not a stage's.
STEP_KINDS: tuple[str, ...] = ("block", "attention", "upsample")

#: What a ``bottleneck`` module provides, besides being an ``nn.Module`` (checked by the conformance
#: kit, ``sarzoo.testing``): ``forward(z) -> (z_hat, likelihoods)`` with ``z_hat`` shaped like ``z``
#: and ``likelihoods`` a tuple of tensors in (0, 1] whose ``-log2`` summed is the bits of the batch
#: (a fixed-precision bottleneck gives ``2**-bits`` per element); ``compress(z, mask=None) -> bytes``
#: (eval mode, one stream for the whole batch: coders end streams on word boundaries, so per-item
#: streams would waste bits) and ``decompress(data, shape, mask=None) -> z_hat`` (``shape`` = the
#: batch's ``(B, C, h, w)``), which must equal the eval-mode ``forward``'s ``z_hat``; ``mask`` (bool,
#: broadcastable to ``shape``) names the elements to code, the others cost nothing and decode as 0
#: (the codec's latent positions that see only no-data); and the
#: attribute ``entropy_coded`` (False: raw float bytes whose size does not depend on the content).
BOTTLENECK_PROTOCOL: tuple[str, ...] = ("compress", "decompress", "entropy_coded")

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Option:
    """One keyword option a component accepts in a recipe, with its type and allowed values."""

    type: type | tuple[type, ...]
    default: Any
    doc: str = ""
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False

    def parse(self, value: Any) -> Any:
        """``value`` as the option's type (``2e-1`` → 0.2), or ``sarzoo.config.values.Invalid``."""
        from sarzoo.config.values import check

        return check(value, self.type, choices=self.choices, min=self.min, max=self.max,
                     nullable=self.nullable)

    def check(self, value: Any) -> str | None:
        """Returns why ``value`` is not acceptable, or None when it is (recipes use ``parse``)."""
        from sarzoo.config.values import Invalid

        try:
            self.parse(value)
        except Invalid as exc:
            return str(exc)
        return None


def default_output_shape(kind: str, in_shape: Shape, args: dict[str, Any]) -> Shape:
    """The shape rule of each kind; a component may declare its own instead."""
    c, h, w = in_shape
    if kind == "block":
        s = args["stride"]
        return (args["out_channels"], math.ceil(h / s), math.ceil(w / s))
    if kind in ("attention", "bottleneck"):
        return in_shape
    if kind == "upsample":
        k = args["scale"]
        return (args["out_channels"], h * k, w * k)
    raise ValueError(f"kind {kind!r} has no shape rule")


def default_input_multiple(kind: str, args: dict[str, Any]) -> int:
    """The input size must be a multiple of this for the component to be exactly invertible."""
    return int(args["stride"]) if kind == "block" else 1


@dataclass
class Provenance:
    """Where a component came from: shown by ``sarzoo list`` and stored with every model."""

    plugin: str = "?"
    module: str = "?"
    distribution: str = "?"
    version: str = "?"

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "module": self.module,
                "distribution": self.distribution, "version": self.version}


@dataclass
class Component:
    """A registered component: what a plugin's ``sarzoo_components`` hook returns a list of.

    ``output_shape(in_shape, args)``, ``input_multiple(args)`` and ``check(args)`` form the
    contract. ``args`` holds the kind's arguments (e.g. in_channels/out_channels/stride) plus
    the resolved options. ``check`` returns a reason string when an argument combination the
    types allow is still impossible (e.g. an identity shortcut that changes channels).
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    options: dict[str, Option] = field(default_factory=dict)
    output_shape: Callable[[Shape, dict[str, Any]], Shape] | None = None
    input_multiple: Callable[[dict[str, Any]], int] | None = None
    check: Callable[[dict[str, Any]], str | None] | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"component {self.name!r}: unknown kind {self.kind!r}; kinds are {KINDS}")

    @property
    def qualified_name(self) -> str:
        return f"{self.provenance.distribution}:{self.name}"

    def shape_after(self, in_shape: Shape, args: dict[str, Any]) -> Shape:
        if self.output_shape is not None:
            return tuple(int(v) for v in self.output_shape(in_shape, args))  # type: ignore[return-value]
        return default_output_shape(self.kind, in_shape, args)

    def multiple(self, args: dict[str, Any]) -> int:
        if self.input_multiple is not None:
            return int(self.input_multiple(args))
        return default_input_multiple(self.kind, args)

    def defaults(self) -> dict[str, Any]:
        return {k: o.default for k, o in self.options.items()}


@dataclass
class Ref:
    """A component chosen in a recipe: its name and its options (already validated)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageSpec:
    """One encoder or decoder stage as the recipe resolved it; input to a ``stage`` component."""

    role: str                 # "encoder" or "decoder"
    in_channels: int
    out_channels: int
    depth: int
    stride: int               # encoder: spatial reduction of the stage
    scale: int                # decoder: spatial enlargement of the stage
    block: Ref | None
    attention: Ref | None
    upsample: Ref | None


@dataclass
class Step:
    """One layer of a stage: a component of a kind with the kind's arguments."""

    name: str                 # child module name inside the stage, e.g. "block0"
    kind: str
    ref: Ref
    args: dict[str, Any]      # kind arguments: in_channels/out_channels/stride, channels, scale
