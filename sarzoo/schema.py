"""The recipe schema: every key, its type, default and meaning, and resolution of a raw recipe.

Resolution turns what the user wrote into the fully explicit recipe that is printed, stored with
checkpoints and rebuilt from: defaults filled in, component references expanded to
``{type: name, **all options}``, and a mirrored decoder written out stage by stage. Nothing here
allocates tensors; errors name file, line and key path.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarzoo.errors import SarzooError
from sarzoo.recipes import PathKey, RawRecipe, keypath

REQUIRED = object()
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass
class Field:
    """One recipe key. ``type``: int, float, bool, str, size2, section, list, any, or ref:KIND /
    step:KIND (a component reference; a step also carries out_channels and stride)."""

    type: str
    doc: str
    default: Any = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    children: dict[str, "Field"] = field(default_factory=dict)
    item: "Field | None" = None
    min_items: int = 0
    max_items: int = 1_000


def _stage_fields(role: str) -> dict[str, Field]:
    f = {
        "compose": Field("ref:stage", "how the stage is composed from its parts (stage component)",
                         default="standard"),
        "block": Field("ref:block", "block component repeated `depth` times", default="preact",
                       nullable=True),
        "attention": Field("ref:attention", "attention applied after blocks, or null for none",
                           default=None, nullable=True),
        "depth": Field("int", "number of blocks in the stage", default=2, min=0, max=32),
    }
    if role == "encoder":
        f["stride"] = Field("int", "spatial reduction of the stage (first block is strided)",
                            default=2, min=1, max=8)
    else:
        f["upsample"] = Field("ref:upsample", "upsampling component at the start of the stage",
                              default="interp", nullable=True)
        f["scale"] = Field("int", "spatial enlargement of the stage", default=2, min=1, max=8)
    return f


def _stage_item(role: str) -> Field:
    children = {"out_channels": Field("int", "channels the stage outputs", default=REQUIRED,
                                      min=1, max=4096)}
    for k, v in _stage_fields(role).items():
        children[k] = Field(v.type, f"per-stage override of {role}.stage.{k}", default=None,
                            choices=v.choices, min=v.min, max=v.max, nullable=True)
    return Field("section", f"one {role} stage", children=children)


SCHEMA: dict[str, Field] = {
    "name": Field("str", "recipe name (default: the file name without .yaml)", default=None,
                  nullable=True),
    "description": Field("str", "one line saying what the model is", default=""),
    "input": Field("section", "the image the model takes", children={
        "channels": Field("int", "input channels (1 for single-polarisation SAR)", default=1,
                          min=1, max=64),
        "size": Field("size2", "[height, width] used to validate and for `sarzoo build`",
                      default=[256, 256], min=8, max=16384),
    }),
    "init": Field("section", "weight initialisation", children={
        "scheme": Field("str", "default (PyTorch's) or kaiming_normal on every conv",
                        default="default", choices=("default", "kaiming_normal")),
        "negative_slope": Field("float", "kaiming `a` (LeakyReLU slope)", default=0.2, min=0, max=1),
        "mode": Field("str", "kaiming mode", default="fan_out", choices=("fan_in", "fan_out")),
        "nonlinearity": Field("str", "kaiming gain", default="leaky_relu",
                              choices=("leaky_relu", "relu")),
    }),
    "encoder": Field("section", "the encoder: stem then stages", children={
        "stem": Field("step:block", "block before the first stage (no stage), or null", default=None,
                      nullable=True),
        "stage": Field("section", "defaults for every encoder stage", children=_stage_fields("encoder")),
        "stages": Field("list", "encoder stages, in order", default=REQUIRED, item=_stage_item("encoder"),
                        min_items=1, max_items=12),
    }),
    "decoder": Field("section", "the decoder; mirrors the encoder unless `stages` is given", children={
        "stage": Field("section", "defaults for every decoder stage; unset keys inherit encoder.stage",
                       children=_stage_fields("decoder")),
        "stages": Field("list", "decoder stages, in order; null mirrors the encoder", default=None,
                        nullable=True, item=_stage_item("decoder"), min_items=1, max_items=12),
        "head": Field("step:block", "block after the last stage producing the output image, or null",
                      default=None, nullable=True),
    }),
}

# Sections other modules add (training, data); each is a Field of type section.
EXTRA_SECTIONS: dict[str, Field] = {}


def all_fields() -> dict[str, Field]:
    return {**SCHEMA, **EXTRA_SECTIONS}


def iter_keys(fields: dict[str, Field] | None = None, prefix: str = "") -> list[str]:
    """Every documented key path (``encoder.stages[].depth`` style), for the docs test."""
    out = []
    for name, f in (all_fields() if fields is None else fields).items():
        path = f"{prefix}{name}"
        out.append(path)
        if f.type == "section":
            out += iter_keys(f.children, path + ".")
        elif f.type == "list" and f.item is not None and f.item.type == "section":
            out += iter_keys(f.item.children, path + "[].")
    return out


def suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=3, cutoff=0.5)
    return (" Did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""


class _Resolver:
    def __init__(self, raw: RawRecipe):
        self.raw = raw
        from sarzoo.registry import get_registry
        self.registry = get_registry()

    def fail(self, message: str, path: PathKey):
        raise self.raw.error(message, path)

    # -- scalars ---------------------------------------------------------------------------
    def scalar(self, value: Any, f: Field, path: PathKey) -> Any:
        if value is None:
            if f.nullable:
                return None
            self.fail("must not be empty/null", path)
        t = f.type
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(f"must be an integer, got {type(value).__name__} {value!r}", path)
        elif t == "float":
            if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
                value = float(value)  # YAML 1.1 (PyYAML) reads 1e-4 without a dot as a string
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(f"must be a number, got {type(value).__name__} {value!r}", path)
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                self.fail(f"must be a finite number, got {value!r}", path)
        elif t == "bool":
            if not isinstance(value, bool):
                self.fail(f"must be true or false, got {type(value).__name__} {value!r}", path)
        elif t == "str":
            if isinstance(value, bool) and f.choices and "off" in f.choices:
                # YAML 1.1 reads `off`/`on`/`no`/`yes` as booleans; for a switch-like choice the
                # user meant the word, so false is "off" and true the first other choice
                value = "off" if not value else next(c for c in f.choices if c != "off")
            if not isinstance(value, str):
                self.fail(f"must be a string, got {type(value).__name__} {value!r}", path)
        elif t == "any":
            return value
        elif t == "size2":
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value, value]
            if (not isinstance(value, list) or len(value) != 2
                    or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
                self.fail(f"must be [height, width] (two integers) or one integer, got {value!r}", path)
            for v in value:
                self._range(v, f, path)
            return list(value)
        if f.choices is not None and value not in f.choices:
            self.fail(f"must be one of {', '.join(map(repr, f.choices))}, got {value!r}."
                      + suggest(value, f.choices), path)
        self._range(value, f, path)
        return value

    def _range(self, value, f: Field, path):
        if f.min is not None and value < f.min:
            self.fail(f"must be >= {f.min:g}, got {value!r}", path)
        if f.max is not None and value > f.max:
            self.fail(f"must be <= {f.max:g}, got {value!r}", path)

    # -- structure -------------------------------------------------------------------------
    def section(self, value: Any, fields: dict[str, Field], path: PathKey,
                fill_defaults: bool = True) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(f"must be a mapping of keys, got {type(value).__name__} {value!r}", path)
        for k in value:
            if k not in fields:
                where = f"'{keypath(path)}'" if path else "the top level of a recipe"
                self.fail(f"unknown key '{k}' in {where}." + suggest(k, fields)
                          + f" Valid keys: {', '.join(fields)}.", path + (k,))
        out: dict[str, Any] = {}
        for k, f in fields.items():
            if k in value:
                out[k] = self.value(value[k], f, path + (k,))
            elif f.default is REQUIRED:
                self.fail(f"required key '{k}' is missing", path + (k,))
            elif fill_defaults:
                out[k] = self.default(f, path + (k,))
        return out

    def default(self, f: Field, path: PathKey) -> Any:
        if f.type == "section":
            return self.section({}, f.children, path)
        if f.type.startswith(("ref:", "step:")) and f.default is not None:
            return self.value(f.default, f, path)
        return list(f.default) if isinstance(f.default, list) else f.default

    def value(self, value: Any, f: Field, path: PathKey) -> Any:
        if f.type == "section":
            return self.section(value, f.children, path)
        if f.type == "list":
            if value is None and f.nullable:
                return None
            if not isinstance(value, list):
                self.fail(f"must be a list, got {type(value).__name__} {value!r}", path)
            if not f.min_items <= len(value) <= f.max_items:
                self.fail(f"must have {f.min_items} to {f.max_items} items, got {len(value)}", path)
            return [self.section(v, f.item.children, path + (i,), fill_defaults=False)
                    for i, v in enumerate(value)]
        if f.type.startswith(("ref:", "step:")):
            if value is None:
                return self.scalar(value, f, path)
            return self.ref(value, f.type.split(":", 1)[1], path, step=f.type.startswith("step:"))
        return self.scalar(value, f, path)

    def ref(self, value: Any, kind: str, path: PathKey, step: bool = False,
            base: dict | None = None) -> dict[str, Any]:
        """``name`` or ``{type: name, **options}`` → ``{type: name, **all options}``."""
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            self.fail(f"must be a {kind} name or a mapping with 'type', got {type(value).__name__} "
                      f"{value!r}", path)
        if "type" not in value:
            if base is None:
                self.fail(f"a {kind} mapping needs 'type' (the component name)", path)
            value = {**{k: v for k, v in base.items()}, **value}
        name = value["type"]
        if not isinstance(name, str) or not name:
            self.fail(f"'type' must be a {kind} name, got {name!r}", path + ("type",))
        try:
            comp = self.registry.get(kind, name)
        except SarzooError as exc:
            self.fail(str(exc), path + ("type",))
        allowed = dict(comp.options)
        extra_args = {}
        if step:
            extra_args = {"out_channels": Field("int", "", default=None, min=1, max=4096, nullable=True),
                          "stride": Field("int", "", default=1, min=1, max=8)}
        out: dict[str, Any] = {"type": name}
        for k, v in value.items():
            if k == "type":
                continue
            if k in extra_args:
                out[k] = self.scalar(v, extra_args[k], path + (k,))
                continue
            if k not in allowed:
                valid = list(allowed) + list(extra_args)
                self.fail(f"{kind} '{name}' has no option '{k}'." + suggest(k, valid)
                          + f" Its options: {', '.join(valid) if valid else '(none)'}.", path + (k,))
            problem = allowed[k].check(v)
            if problem:
                self.fail(f"option '{k}' of {kind} '{name}' {problem}", path + (k,))
            out[k] = v
        for k, opt in allowed.items():
            out.setdefault(k, opt.default)
        for k, f in extra_args.items():
            out.setdefault(k, f.default)
        return out

    # -- whole recipe ----------------------------------------------------------------------
    def resolve(self) -> dict[str, Any]:
        data = self.raw.data
        enc_raw = data.get("encoder")
        dec_raw = data.get("decoder")
        top = {k: v for k, v in all_fields().items() if k not in ("encoder", "decoder")}
        out = self.section({k: v for k, v in data.items() if k not in ("encoder", "decoder")},
                           {**top, "encoder": Field("any", ""), "decoder": Field("any", "")}, ())
        out.pop("encoder", None), out.pop("decoder", None)
        if out.get("name") is None:
            src = self.raw.source
            out["name"] = Path(src).stem if src and not src.startswith("<") else "recipe"
        out["encoder"] = self.encoder(enc_raw)
        out["decoder"] = self.decoder(dec_raw, out["encoder"], out["input"]["channels"])
        order = ["name", "description", "input", "init", "encoder", "decoder"] + list(EXTRA_SECTIONS)
        return {k: out[k] for k in order if k in out}

    def _stages(self, raw_stages: list, defaults: dict, role: str, path: PathKey) -> list[dict]:
        list_field = SCHEMA[role].children["stages"]
        item_fields = list_field.item.children
        # First pass checks structure and scalars; references are resolved below against the
        # stage defaults, so a per-stage {act: none} can amend the default block.
        loose = Field("list", "", item=Field("section", "", children={
            k: (Field("any", "") if f.type.startswith("ref:") else f) for k, f in item_fields.items()}),
            min_items=list_field.min_items, max_items=list_field.max_items)
        stages = self.value(raw_stages, loose, path)
        resolved = []
        for i, (st, raw_st) in enumerate(zip(stages, raw_stages)):
            full = {"out_channels": st["out_channels"]}
            for k in item_fields:
                if k == "out_channels":
                    continue
                if k in raw_st and raw_st[k] is not None and item_fields[k].type.startswith("ref:"):
                    kind = item_fields[k].type.split(":", 1)[1]
                    base = defaults.get(k)
                    full[k] = self.ref(raw_st[k], kind, path + (i, k), base=base)
                elif k in raw_st and (raw_st[k] is not None or item_fields[k].type.startswith("ref:")):
                    full[k] = st[k]
                else:
                    full[k] = defaults[k]
            resolved.append(full)
        return resolved

    def encoder(self, enc: Any) -> dict[str, Any]:
        path = ("encoder",)
        if enc is None:
            self.fail("required section 'encoder' is missing", path)
        fields = SCHEMA["encoder"].children
        if not isinstance(enc, dict):
            self.fail(f"must be a mapping, got {type(enc).__name__}", path)
        self.section({k: v for k, v in enc.items() if k != "stages"},
                     {k: v for k, v in fields.items() if k != "stages"} | {"stages": Field("any", "")},
                     path)
        if "stages" not in enc:
            self.fail("required key 'stages' is missing", path + ("stages",))
        stem = self.value(enc.get("stem"), fields["stem"], path + ("stem",))
        stage = self.section(enc.get("stage"), fields["stage"].children, path + ("stage",))
        stages = self._stages(enc["stages"], stage, "encoder", path + ("stages",))
        return {"stem": stem, "stage": stage, "stages": stages}

    def decoder(self, dec: Any, encoder: dict, in_channels: int) -> dict[str, Any]:
        path = ("decoder",)
        dec = {} if dec is None else dec
        if not isinstance(dec, dict):
            self.fail(f"must be a mapping, got {type(dec).__name__}", path)
        fields = SCHEMA["decoder"].children
        self.section(dec, fields | {"stages": Field("any", ""), "stage": Field("any", "")}, path)
        inherited = {k: v for k, v in encoder["stage"].items() if k != "stride"}
        inherited["scale"] = encoder["stage"]["stride"]
        raw_stage = dec.get("stage") or {}
        if not isinstance(raw_stage, dict):
            self.fail(f"must be a mapping, got {type(raw_stage).__name__}", path + ("stage",))
        stage = self.section({**{k: v for k, v in inherited.items() if k not in raw_stage}, **raw_stage},
                             fields["stage"].children, path + ("stage",))
        if dec.get("stages") is None:
            stages = self.mirror(encoder, stage, in_channels)
        else:
            stages = self._stages(dec["stages"], stage, "decoder", path + ("stages",))
        head = self.value(dec.get("head"), fields["head"], path + ("head",))
        if head is not None and head.get("out_channels") is None:
            head["out_channels"] = in_channels
        return {"stage": stage, "stages": stages, "head": head}

    @staticmethod
    def mirror(encoder: dict, stage: dict, in_channels: int) -> list[dict]:
        """Decoder stage i undoes encoder stage n-1-i: same depth, scale = that stage's stride,
        and it outputs the channels that stage took in."""
        ins = [encoder["stem"]["out_channels"] if encoder["stem"] and encoder["stem"].get("out_channels")
               else in_channels]
        for st in encoder["stages"][:-1]:
            ins.append(st["out_channels"])
        out = []
        for st, ch in zip(reversed(encoder["stages"]), reversed(ins)):
            out.append({"out_channels": ch, "compose": stage["compose"], "block": stage["block"],
                        "attention": stage["attention"], "depth": st["depth"],
                        "upsample": stage["upsample"], "scale": st["stride"]})
        return out


def resolve(raw: RawRecipe) -> dict[str, Any]:
    return _Resolver(raw).resolve()


def _register_sections() -> None:
    """The ``train:`` and ``data:`` sections (sarzoo.train.config; import-light)."""
    from sarzoo.train.config import data_section, train_section

    EXTRA_SECTIONS.setdefault("train", train_section())
    EXTRA_SECTIONS.setdefault("data", data_section())


_register_sections()
