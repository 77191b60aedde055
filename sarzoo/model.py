"""The autoencoder every recipe builds into, and building it from a plan: modules, initial
weights, and a forward pass that proves the real shapes are the planned ones."""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Mapping

import torch
from torch import nn

from sarzoo.budget import check_memory, estimate_memory, memory_budget
from sarzoo.errors import PluginError, SarzooError, describe
from sarzoo.plan import (
    Layer,
    Plan,
    StagePlan,
    plan_recipe,
    plugin_fault,
)


def _build_layer(layer: Layer) -> nn.Module:
    """The layer's module; a factory that returns anything but an initialised ``nn.Module``
    (None, a number, a function) is reported as its plugin's bug with the recipe key."""
    module = layer.build()
    if not isinstance(module, nn.Module) or getattr(module, "_modules", None) is None:
        try:
            text = repr(module) if not isinstance(module, nn.Module) else "an nn.Module whose __init__ " \
                "did not call super().__init__()"
        except Exception:  # a hostile __repr__
            text = "?"
        text = text if len(text) <= 60 else text[:57] + "..."
        raise PluginError(f"key '{layer.recipe_key}': " + plugin_fault(
            layer.component, f"its factory returned {type(module).__name__} {text} at {layer.name}, "
            "not a torch.nn.Module", None))
    return module


def _stage_module(stage: StagePlan) -> nn.Module:
    if stage.name in ("stem", "head"):
        return _build_layer(stage.layers[0])
    return nn.Sequential(OrderedDict((layer.name, _build_layer(layer)) for layer in stage.layers))


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
        self.plan = plan
        self.recipe = plan.recipe
        self.input_shape = plan.input_shape
        self.latent_shape = plan.latent_shape
        self.encoder = nn.Sequential(OrderedDict((s.name, _stage_module(s)) for s in plan.encoder))
        self.decoder = nn.Sequential(OrderedDict((s.name, _stage_module(s)) for s in plan.decoder))
        init_weights(self.encoder, plan.recipe["init"])
        init_weights(self.decoder, plan.recipe["init"])
        # built last and left with its plugin's own initialisation: encoder and decoder start from the
        # same weights whatever the bottleneck (a codec recipe and its base recipe, same seed)
        self.bottleneck = _build_layer(plan.bottleneck) if plan.bottleneck is not None else None
        self.components = sorted({(c.kind, c.name, c.provenance.distribution,
                                   c.provenance.version) for c in (layer.component for layer in plan.layers())})

    @property
    def compression_ratio(self) -> float:
        """Input numbers per latent number (not bits: see ``latent_bits``)."""
        return self.plan.compression_ratio

    @property
    def entropy_coded(self) -> bool:
        """Whether the latent is entropy-coded (its size then depends on the content)."""
        return bool(getattr(self.bottleneck, "entropy_coded", False))

    def latent_bits(self) -> dict[str, Any]:
        """The latent's size as numbers and, for a fixed-precision bottleneck, as bits per pixel
        at its storage precision (``sarzoo.codec.rates``)."""
        from sarzoo.codec.rates import latent_size

        return latent_size(self.plan)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's latent, before the bottleneck (``quantise`` gives what the decoder gets)."""
        return self.encoder(x)

    def quantise(self, z: torch.Tensor) -> torch.Tensor:
        """The latent the decoder receives: the bottleneck's output (eval mode: rounded, fp16 …)."""
        return z if self.bottleneck is None else self.bottleneck(z)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, rd: bool = False):
        """``(x_hat, z_hat)``; with ``rd=True`` ``(x_hat, z_hat, likelihoods)`` for rate–distortion
        training (a keyword, not a second method, so DistributedDataParallel and torch.compile,
        which wrap ``forward``, see it)."""
        z = self.encode(x)
        if self.bottleneck is None:
            return (self.decode(z), z, ()) if rd else (self.decode(z), z)
        if self.entropy_coded:   # likelihoods in float32: bf16/fp16 autocast would make the rate noise
            with torch.autocast(z.device.type, enabled=False):
                z_hat, likelihoods = self.bottleneck(z.float())
        else:
            z_hat, likelihoods = self.bottleneck(z)
        x_hat = self.decode(z_hat)
        return (x_hat, z_hat, tuple(likelihoods)) if rd else (x_hat, z_hat)

    def forward_rd(self, x: torch.Tensor):
        """``(x_hat, z_hat, likelihoods)``: ``forward(x, rd=True)``."""
        return self(x, rd=True)

    def count_parameters(self) -> dict[str, int]:
        """``total``, ``encoder``, ``decoder``, and ``bottleneck`` when it has parameters."""
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        bn = sum(p.numel() for p in self.bottleneck.parameters()) if self.bottleneck is not None else 0
        return {"total": enc + dec + bn, "encoder": enc, "decoder": dec, **({"bottleneck": bn} if bn else {})}

    def provenance(self) -> list[dict[str, str]]:
        return [{"kind": k, "name": n, "distribution": d, "version": v} for k, n, d, v in self.components]


def count_parameters(plan: Plan) -> dict[str, int]:
    """Parameters of every stage (``encoder.stage0`` …) of the model a plan describes, counted by
    building each layer on the meta device: shapes only, no memory, no initialisation work.
    Also sets ``plan.parameters`` (the total)."""
    counts: dict[str, int] = {}
    with torch.device("meta"):
        for role, stages in (("encoder", plan.encoder), ("decoder", plan.decoder)):
            for st in stages:
                counts[f"{role}.{st.name}"] = sum(
                    p.numel() for layer in st.layers for p in _build_layer(layer).parameters())
        if plan.bottleneck is not None:
            counts["bottleneck"] = sum(p.numel() for p in _build_layer(plan.bottleneck).parameters())
    plan.parameters = sum(counts.values())
    return counts


def check_plan_memory(plan: Plan) -> None:
    """Refuse, before any weight is allocated, a model that would not fit in the memory budget
    (``sarzoo.budget.check_memory``). When even the plan's generous torch-free parameter bound
    (``Plan.parameter_bound``) fits, nothing more is needed; otherwise the parameters are counted
    exactly on the meta device (each factory is then called once more, on meta) and checked."""
    budget, _ = memory_budget()
    if plan.parameters is None and (budget is None
                                    or estimate_memory(plan, plan.parameter_bound).bytes <= budget):
        return
    check_memory(plan, stage_parameters=count_parameters(plan) if plan.parameters is None else None)


def build_model(plan: Plan, verify_shapes: bool = True) -> SarAutoencoder:
    """The model of a plan, with its initial weights; verified by one forward pass unless told not.
    Refused before anything is allocated when it would not fit in the memory budget
    (``check_plan_memory``)."""
    check_plan_memory(plan)
    model = SarAutoencoder(plan)
    plan.parameters = model.count_parameters()["total"]
    if verify_shapes:
        verify(model, plan)
    return model


def build(recipe: str | Mapping[str, Any], overrides=None) -> SarAutoencoder:
    """Build (and verify) the autoencoder a recipe describes; ``forward(x)`` returns ``(x_hat, z)``."""
    return build_model(plan_recipe(recipe, overrides))


def verify(model: "SarAutoencoder", plan: Plan, counter: Any = None) -> tuple[dict[str, tuple], Any]:
    """One forward pass that compares every layer's real output shape with its planned shape.

    The plan trusts each component's declared contract; a third-party component whose contract
    lies would otherwise surface as a cryptic conv error several layers later, or not at all. The
    first layer that disagrees is named with its plugin, distribution and version. ``counter``
    (e.g. a ``FlopCounterMode``) wraps the pass, so ``sarzoo build`` counts FLOPs in it too. The
    dummy input comes from its own generator and the pass runs in eval mode under no_grad: the
    global RNG, BatchNorm statistics and the training mode are left as they were, so building
    with or without verification trains identically. Returns the output shape of every layer and
    stage (``"encoder.stage0"`` …) and the model's output.
    """
    order, seen = [], {}
    handles = []
    for part, stages, module in (("encoder", plan.encoder, model.encoder), ("decoder", plan.decoder, model.decoder)):
        for st in stages:
            stage_mod = getattr(module, st.name)
            single = st.name in ("stem", "head")
            for layer in st.layers:
                key = f"{part}.{st.name}" + ("" if single else f".{layer.name}")
                mod = stage_mod if single else getattr(stage_mod, layer.name)
                order.append((key, layer))
                handles.append(mod.register_forward_hook(
                    lambda _m, _i, out, key=key: seen.__setitem__(key, tuple(out.shape[1:]))))
            if not single:
                handles.append(stage_mod.register_forward_hook(
                    lambda _m, _i, out, key=f"{part}.{st.name}": seen.__setitem__(key, tuple(out.shape[1:]))))
        if part == "encoder" and plan.bottleneck is not None and model.bottleneck is not None:
            order.append(("bottleneck", plan.bottleneck))
            handles.append(model.bottleneck.register_forward_hook(   # (z_hat, likelihoods): z_hat's shape
                lambda _m, _i, out: seen.__setitem__("bottleneck", tuple(
                    (out[0] if isinstance(out, (tuple, list)) and out else out).shape[1:]))))

    def liar(key, layer, got) -> SarzooError:
        p = layer.component.provenance
        return PluginError(
            f"{key} ({layer.component.kind} '{layer.component.name}' from {p.distribution} {p.version}, "
            f"recipe key '{layer.recipe_key}') produced {got} for an input of {tuple(layer.in_shape)}, "
            f"but its declared contract promises {tuple(layer.out_shape)}: the component's contract is "
            f"wrong. `sarzoo check-plugin {p.distribution}` runs sarzoo's conformance checks on it")

    error = out = None
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.rand(1, *plan.input_shape, generator=torch.Generator().manual_seed(0))
    if param is not None:
        x = x.to(param.device)
    model.eval()
    try:
        with torch.no_grad(), (counter if counter is not None else contextlib.nullcontext()):
            out = model(x)
    except Exception as exc:  # a layer fed a shape its neighbour's contract did not promise
        error = exc
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for key, layer in order:
        if key not in seen:
            if error is not None:
                raise liar(key, layer, f"an error ({describe(error)})") from error
            continue
        if seen[key] != tuple(layer.out_shape):
            raise liar(key, layer, seen[key])
    if error is not None:
        raise error
    return seen, out
