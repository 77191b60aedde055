"""The plan: every layer of a resolved recipe, walked through the components' contracts.

``make_plan`` allocates nothing and imports no torch. It walks the input shape through stem,
stages and head using each component's declared contract, so channel, stride and size problems
are reported with the recipe key that causes them before any weight exists. ``sarzoo.model``
turns a plan into modules and checks the real shapes against it.

It also refuses a model that would not fit in memory, before anything is allocated (``sarzoo.budget``;
the rule is in ``MemoryEstimate``): ``make_plan`` checks the activations the contracts imply, and
``sarzoo.model.build_model`` checks again with the exact parameter count (counted on the meta
device) before it builds, so ``sarzoo build``, ``sarzoo.build()``, training and checkpoint loading
all get the check.
"""
from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field
from typing import Any

from sarzoo.config import RawRecipe, keypath, load_with_origins, total_stride
from sarzoo.config.source import PathKey
from sarzoo.errors import PluginError, SarzooError, describe
from sarzoo.interfaces import (
    KIND_ARGS,
    STEP_KINDS,
    Component,
    Ref,
    Shape,
    StageSpec,
    Step,
    default_input_multiple,
    default_output_shape,
)
from sarzoo.registry import FIRST_PARTY_DISTRIBUTION, Registry, get_registry


@dataclass
class Layer:
    """One planned layer: which component, called how, and the shapes it maps between."""

    name: str                  # module path inside the model, e.g. encoder.stage1.block0
    component: Component
    args: dict[str, Any]       # kind arguments + options, exactly what the factory receives
    in_shape: Shape
    out_shape: Shape
    recipe_key: str

    @property
    def parameter_bound(self) -> int:
        """A generous bound on the layer's parameters from its kind arguments alone (no torch):
        ``2048·(in·out + out²) + 1024·(in + out + 1)`` for a block or upsample, ``8·c² + 1024·(c + 1)``
        for attention, ``128·n² + 1024·(n + 1)`` for a bottleneck (``n``: channels plus its largest
        integer option, e.g. a hyperprior's ``hyper_channels``). Every first-party component stays
        well under it (the largest, a 5×5 pixel-shuffle conv at scale 8, has 1600·in·out); a
        third-party one need not, which is why ``sarzoo.model`` counts exactly (on the meta device)
        whenever this bound does not fit."""
        a = self.args
        if self.component.kind == "bottleneck":   # a hyper-autoencoder's widths may differ from the latent's
            c = int(a.get("channels", self.in_shape[0]))
            ints = [int(v) for k, v in a.items() if k != "channels" and isinstance(v, int) and not isinstance(v, bool)]
            n = c + max(ints, default=0)
            return 128 * n * n + 1024 * (n + 1)
        if self.component.kind == "attention":
            c = int(a.get("channels", self.in_shape[0]))
            return 8 * c * c + 1024 * (c + 1)
        cin = int(a.get("in_channels", self.in_shape[0]))
        cout = int(a.get("out_channels", self.out_shape[0]))
        return 2048 * (cin * cout + cout * cout) + 1024 * (cin + cout + 1)

    def build(self):
        """Call the factory. A third-party factory that raises on arguments its contract accepts
        is reported as that plugin's bug with the recipe key, not as a traceback from inside it."""
        try:
            return self.component.factory(**self.args)
        except SarzooError:
            raise
        except (Exception, SystemExit) as exc:  # a third-party factory can raise anything
            if self.component.provenance.distribution == FIRST_PARTY_DISTRIBUTION:
                raise  # a bug in sarzoo itself: keep the traceback
            raise PluginError(f"key '{self.recipe_key}': " + plugin_fault(
                self.component, f"building it at {self.name} raised", exc)) from exc


@dataclass
class StagePlan:
    name: str                  # stem, stage0.., head
    layers: list[Layer] = field(default_factory=list)
    path: PathKey = ()         # its recipe key, e.g. ("encoder", "stages", 2)

    @property
    def activations(self) -> int:
        """Values its layers output for one image (the contracts' output shapes)."""
        return sum(math.prod(layer.out_shape) for layer in self.layers)

    @property
    def out_shape(self) -> Shape:
        return self.layers[-1].out_shape


@dataclass
class Plan:
    recipe: dict[str, Any]
    input_shape: Shape
    encoder: list[StagePlan]
    decoder: list[StagePlan]
    total_stride: int
    raw: RawRecipe | None = field(default=None, repr=False)   # where each key came from, for errors
    parameters: int | None = None  # set by sarzoo.model.count_parameters (meta device); None = not counted
    bottleneck: Layer | None = None   # between encoder and decoder (recipe key `bottleneck`)

    @property
    def parameter_bound(self) -> int:
        """The sum of the layers' ``Layer.parameter_bound``: generous, torch-free."""
        return sum(layer.parameter_bound for layer in self.layers())

    @property
    def activations(self) -> int:
        """Values the input and every layer's output hold for one image (batch 1)."""
        return math.prod(self.input_shape) + sum(st.activations for st in self.encoder + self.decoder)

    @property
    def latent_shape(self) -> Shape:
        return self.encoder[-1].out_shape

    @property
    def output_shape(self) -> Shape:
        return self.decoder[-1].out_shape

    @property
    def compression_ratio(self) -> float:
        return math.prod(self.input_shape) / math.prod(self.latent_shape)

    def layers(self):
        for st in self.encoder:
            yield from st.layers
        if self.bottleneck is not None:
            yield self.bottleneck
        for st in self.decoder:
            yield from st.layers


def _ref(d: dict | None) -> Ref | None:
    if d is None:
        return None
    return Ref(d["type"], {k: v for k, v in d.items() if k not in ("type", "out_channels", "stride")})


class _Planner:
    def __init__(self, recipe: dict, raw: RawRecipe | None, registry: Registry):
        self.recipe, self.raw, self.registry = recipe, raw, registry

    def fail(self, message: str, path: PathKey):
        if self.raw is not None:
            raise self.raw.error(message, path)
        raise SarzooError(f"key '{keypath(path)}': {message}")

    def contract(self, comp: Component, what: str, fn, args: tuple, path: PathKey):
        """Call one of ``comp``'s contract functions. When a third-party contract raises, the
        recipe is fine and the plugin is not: say which plugin, not a traceback from inside it."""
        # each call gets its own copy of the arguments: a contract that mutates them (clears the
        # dict it was given) must not change what the planner and the factory see afterwards
        args = tuple(copy.deepcopy(a) if isinstance(a, (dict, list)) else a for a in args)
        try:
            return fn(*args)
        except SarzooError:
            raise
        except (Exception, SystemExit) as exc:  # a third-party contract can raise anything
            if comp.provenance.distribution == FIRST_PARTY_DISTRIBUTION:
                raise  # a bug in sarzoo itself: keep the traceback
            self.fail(plugin_fault(comp, f"its contract's {what}() raised", exc), path)

    def check_result(self, comp: Component, problem: Any, path: PathKey) -> str | None:
        """A contract's ``check()`` result: None or a reason string; anything else is the plugin's bug."""
        if problem is not None and not isinstance(problem, str):
            self.fail(plugin_fault(comp, f"its contract's check() returned {_short(problem)}, not "
                                   "None or a str", None), path)
        return problem

    def layer(self, name: str, kind: str, ref: Ref, args: dict, shape: Shape, path: PathKey) -> Layer:
        try:
            comp = self.registry.get(kind, ref.name)
        except SarzooError as exc:
            self.fail(str(exc), path + ("type",))
        full = {**args, **ref.options}
        expected_in = args.get("in_channels", args.get("channels"))
        if expected_in is not None and expected_in != shape[0]:
            self.fail(f"channel mismatch: {kind} '{ref.name}' at {name} is built for {expected_in} input "
                      f"channels but receives {shape[0]}", path)
        if comp.check is not None:
            problem = self.check_result(comp, self.contract(comp, "check", comp.check, (full,), path), path)
            if problem:
                self.fail(f"{kind} '{ref.name}': {problem}", path)
        if comp.input_multiple is not None:
            raw = self.contract(comp, "input_multiple", comp.input_multiple, (full,), path)
            m = _positive_int(raw)
            if m is None:
                self.fail(plugin_fault(comp, "its contract's input_multiple() returned "
                                       f"{_short(raw)}, not a positive int", None), path)
        else:
            m = default_input_multiple(kind, full)
        if m > 1 and (shape[1] % m or shape[2] % m):
            p = comp.provenance
            who = "" if p.distribution == FIRST_PARTY_DISTRIBUTION else f" (from {p.distribution} {p.version})"
            self.fail(f"{kind} '{ref.name}'{who} at {name} needs a spatial size divisible by {m} but receives "
                      f"{shape[1]}×{shape[2]}; the input size must be a multiple of the encoder's total "
                      f"stride", path)
        if comp.output_shape is not None:
            raw = self.contract(comp, "output_shape", comp.output_shape, (shape, full), path)
            out = _shape(raw)
            if out is None:
                self.fail(plugin_fault(comp, f"its contract's output_shape() returned {_short(raw)} for "
                                       f"an input of {shape}, not a (channels, height, width) tuple "
                                       "of positive ints", None), path)
            rule = self.contract(comp, "output_shape", default_output_shape, (kind, shape, full), path)
            if out != tuple(rule):
                self.fail(plugin_fault(comp, f"its contract's output_shape() returned {out} for an input "
                                       f"of {shape} that its contract accepts, but {_a(kind)} must produce "
                                       f"{tuple(rule)} there", None), path)
        else:
            out = self.contract(comp, "output_shape", comp.shape_after, (shape, full), path)
            if min(out) < 1:
                self.fail(f"{kind} '{ref.name}' at {name} would produce an empty output {out}", path)
        return Layer(name, comp, full, shape, out, keypath(path))

    def step_layer(self, name: str, d: dict, shape: Shape, path: PathKey) -> StagePlan:
        if d.get("out_channels") is None:
            self.fail("out_channels is required", path + ("out_channels",))
        args = {"in_channels": shape[0], "out_channels": d["out_channels"], "stride": d.get("stride", 1)}
        return StagePlan(name, [self.layer(name, "block", _ref(d), args, shape, path)], path=path)

    def stage(self, role: str, idx: int, st: dict, shape: Shape) -> StagePlan:
        path = (role, "stages", idx)
        spec = StageSpec(role=role, in_channels=shape[0], out_channels=st["out_channels"], depth=st["depth"],
                         stride=st.get("stride", 1), scale=st.get("scale", 1), block=_ref(st.get("block")),
                         attention=_ref(st.get("attention")), upsample=_ref(st.get("upsample")))
        compose_ref = _ref(st["compose"])
        try:
            comp = self.registry.get("stage", compose_ref.name)
        except SarzooError as exc:
            self.fail(str(exc), path + ("compose",))
        args = {"stage": spec, **compose_ref.options}
        if comp.check is not None:
            problem = self.check_result(comp, self.contract(comp, "check", comp.check, (args,), path), path)
            if problem:
                self.fail(f"stage: {problem}", path)
        steps: list[Step] = self.contract(comp, "stage factory", lambda: comp.factory(
            spec, **compose_ref.options), (), path)
        if not isinstance(steps, (list, tuple)) or not all(isinstance(s, Step) for s in steps):
            self.fail(plugin_fault(comp, "its stage factory returned something other than a list "
                                   "of sarzoo.interfaces.Step", None), path)
        names: set[str] = set()
        for step in steps:
            problem = _step_problem(step, names)
            if problem:
                label = f"'{step.name}'" if isinstance(step.name, str) else _short(step.name)
                self.fail(plugin_fault(comp, f"its stage factory returned step {label} with "
                                       f"{problem}", None), path)
            names.add(step.name)
        plan = StagePlan(f"stage{idx}", path=path)
        for step in steps:
            sub = {"block": "block", "attention": "attention", "upsample": "upsample"}[step.kind]
            layer = self.layer(f"{role}.stage{idx}.{step.name}", step.kind, step.ref, step.args, shape,
                               path + (sub,))
            layer.name = step.name
            plan.layers.append(layer)
            shape = layer.out_shape
        if not plan.layers:
            self.fail("stage has no layers (depth 0 and nothing to upsample)", path)
        if shape[0] != st["out_channels"]:
            self.fail(f"stage ends with {shape[0]} channels, not the declared out_channels "
                      f"{st['out_channels']}", path)
        return plan

    def plan(self) -> Plan:
        r = self.recipe
        c = r["input"]["channels"]
        h, w = r["input"]["size"]
        in_shape: Shape = (c, h, w)
        total = total_stride(r)
        if h % total or w % total:
            self.fail(f"input size {h}×{w} is not a multiple of the encoder's total stride {total}; "
                      f"use e.g. {max(total, h // total * total)}×{max(total, w // total * total)}",
                      ("input", "size"))
        shape = in_shape
        enc: list[StagePlan] = []
        if r["encoder"]["stem"]:
            enc.append(self.step_layer("stem", r["encoder"]["stem"], shape, ("encoder", "stem")))
            shape = enc[-1].out_shape
        for i, st in enumerate(r["encoder"]["stages"]):
            enc.append(self.stage("encoder", i, st, shape))
            shape = enc[-1].out_shape
        bottleneck = None
        if r.get("bottleneck") is not None:
            bottleneck = self.layer("bottleneck", "bottleneck", _ref(r["bottleneck"]), {"channels": shape[0]},
                                    shape, ("bottleneck",))
        dec: list[StagePlan] = []
        for i, st in enumerate(r["decoder"]["stages"]):
            dec.append(self.stage("decoder", i, st, shape))
            shape = dec[-1].out_shape
        if r["decoder"]["head"]:
            dec.append(self.step_layer("head", r["decoder"]["head"], shape, ("decoder", "head")))
            shape = dec[-1].out_shape
        if shape != in_shape:
            hint = ""
            if shape[0] != in_shape[0]:
                hint = (f" The decoder ends with {shape[0]} channels; its last stage or decoder.head must "
                        f"output {in_shape[0]}.")
            if shape[1:] != in_shape[1:]:
                scale = math.prod(st["scale"] for st in r["decoder"]["stages"])
                hint += (f" The decoder enlarges by {scale} in total but the encoder reduces by {total}.")
            key = ("decoder", "head") if (r["decoder"]["head"] and shape[0] != in_shape[0]) else ("decoder", "stages")
            if self.raw is not None and key not in self.raw.origins:
                key = ("decoder",)
            self.fail(f"the decoder outputs {shape} but the input is {in_shape}.{hint}", key)
        return Plan(r, in_shape, enc, dec, total, self.raw, bottleneck=bottleneck)


def make_plan(recipe: dict, raw: RawRecipe | None = None, registry: Registry | None = None) -> Plan:
    """The plan of a resolved recipe; refuses (``check_memory``) one whose activations alone would
    not fit in the memory budget. The parameters are checked when the model is built."""
    plan = _Planner(recipe, raw, registry or get_registry()).plan()
    from sarzoo.budget import check_memory

    check_memory(plan)
    return plan


def plan_recipe(recipe, overrides=None) -> Plan:
    """Load, validate and plan a recipe (path, built-in name or dict) without allocating anything."""
    loaded = load_with_origins(recipe, overrides)
    return make_plan(loaded.recipe, loaded.raw)


def _short(value: Any) -> str:
    """``type value``, kept short, for a plugin's result that is not what its contract promises."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__
        text = "?"
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _positive_int(value: Any) -> int | None:
    """``value`` as an int when it is a positive integer (not a bool, not a float), else None."""
    if isinstance(value, bool):
        return None
    try:
        value = operator.index(value)
    except Exception:
        return None
    return value if value >= 1 else None


def _shape(value: Any) -> Shape | None:
    """``value`` as a ``(C, H, W)`` tuple of positive ints, else None."""
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        return None
    dims = [_positive_int(v) for v in value]
    return None if None in dims else tuple(dims)  # type: ignore[return-value]


def _step_problem(step: Step, names: set[str]) -> str | None:
    """What is wrong with one ``Step`` a stage factory returned, or None."""
    if not isinstance(step.name, str) or not step.name or "." in step.name or step.name in names:
        return "an invalid or repeated name (a non-empty string without '.', unique in the stage)"
    if not isinstance(step.kind, str) or step.kind not in STEP_KINDS:
        return f"kind {step.kind!r}"
    if not isinstance(step.ref, Ref) or not isinstance(step.ref.options, dict) or not all(
            isinstance(k, str) for k in step.ref.options):
        return "no Ref (a sarzoo.interfaces.Ref with a dict of options)"
    if not isinstance(step.args, dict):
        return f"args {_short(step.args)}, not a dict"
    missing = [a for a in KIND_ARGS[step.kind] if a not in step.args]
    if missing:
        return f"no {', '.join(missing)}"
    bad = [a for a in KIND_ARGS[step.kind] if _positive_int(step.args[a]) is None]
    if bad:
        return f"{', '.join(bad)} not a positive int"
    return None


def plugin_fault(comp: Component, what: str, exc: BaseException | None) -> str:
    """The message for a third-party component that misbehaves on a recipe its contract accepts."""
    p = comp.provenance
    text = f" {describe(exc)}" if exc is not None else ""
    return (f"{comp.kind} '{comp.name}' from {p.distribution} {p.version} (plugin '{p.plugin}'): "
            f"{what}{text}. This is a bug in {p.distribution}, not in the recipe; "
            f"`sarzoo check-plugin {p.distribution}` runs sarzoo's conformance checks on it")
