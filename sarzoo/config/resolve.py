"""Resolution: what the user wrote → the fully explicit recipe, checked against the schema.

The resolved recipe is what is printed, stored with checkpoints and rebuilt from: defaults
filled in, component references expanded to ``{type: name, **all options}``, a mirrored decoder
written out stage by stage, and derived defaults (``data.patch_size`` from ``input.size``…)
made explicit, once, here. Nothing here allocates tensors; errors name file, line and key path.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sarzoo.config.schema import MODEL, REQUIRED, SECTIONS, Field
from sarzoo.config.source import PathKey, RawRecipe, keypath
from sarzoo.config.values import Invalid, check
from sarzoo.errors import SarzooError, did_you_mean


class _Resolver:
    def __init__(self, raw: RawRecipe):
        self.raw = raw

    @property
    def registry(self):
        from sarzoo.registry import get_registry

        return get_registry()

    def fail(self, message: str, path: PathKey):
        raise self.raw.error(message, path)

    # -- scalars ---------------------------------------------------------------------------
    def scalar(self, value: Any, f: Field, path: PathKey) -> Any:
        try:
            return check(value, f.type, choices=f.choices, min=f.min, max=f.max, nullable=f.nullable)
        except Invalid as exc:
            self.fail(str(exc), path)

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
                self.fail(f"unknown key '{k}' in {where}." + did_you_mean(k, fields)
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
            if f.item.type != "section":  # a list of values (data.bands)
                return [self.value(v, f.item, path + (i,)) for i, v in enumerate(value)]
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
                self.fail(f"{kind} '{name}' has no option '{k}'." + did_you_mean(k, valid)
                          + f" Its options: {', '.join(valid) if valid else '(none)'}.", path + (k,))
            try:
                out[k] = allowed[k].parse(v)
            except Invalid as exc:
                self.fail(f"option '{k}' of {kind} '{name}' {exc}", path + (k,))
        for k, opt in allowed.items():
            out.setdefault(k, opt.default)
        for k, f in extra_args.items():
            out.setdefault(k, f.default)
        return out

    # -- whole recipe ----------------------------------------------------------------------
    def resolve(self) -> dict[str, Any]:
        data = self.moved_keys(self.raw.data)
        enc_raw = data.get("encoder")
        dec_raw = data.get("decoder")
        top = {k: v for k, v in SECTIONS.items() if k not in ("encoder", "decoder")}
        out = self.section({k: v for k, v in data.items() if k not in ("encoder", "decoder")},
                           {**top, "encoder": Field("any", ""), "decoder": Field("any", "")}, ())
        out.pop("encoder", None), out.pop("decoder", None)
        if out.get("name") is None:
            src = self.raw.source
            out["name"] = Path(src).stem if src and not src.startswith("<") else "recipe"
        out["encoder"] = self.encoder(enc_raw)
        out["decoder"] = self.decoder(dec_raw, out["encoder"], out["input"]["channels"])
        out = {k: out[k] for k in SECTIONS if k in out}
        self.derive(out)
        return out

    def moved_keys(self, data: dict[str, Any]) -> dict[str, Any]:
        """Keys of older recipes under their current names: ``train.amp`` is ``runtime.amp`` since
        the runtime section exists, and stored checkpoints and users' files still say it (a
        ``--set runtime.amp=…`` then overrides it, as it would the new name)."""
        train = data.get("train")
        if not isinstance(train, dict) or "amp" not in train:
            return data
        runtime = data.get("runtime")
        if runtime is None:
            runtime = {}
        if not isinstance(runtime, dict):
            return data  # the section check reports the malformed runtime section
        data = dict(data)
        data["train"] = {k: v for k, v in train.items() if k != "amp"}
        data["runtime"] = {"amp": train["amp"], **runtime}   # the current name wins when both are given
        return data

    def derive(self, r: dict[str, Any]) -> None:
        """Defaults that depend on other keys, and checks that span keys, made once, here."""
        self.derive_data(r["data"], r["input"]["size"], total_stride(r), r["input"]["channels"])

    def derive_data(self, d: dict[str, Any], input_size: list[int], stride: int, channels: int | None = None) -> None:
        """``channels``: the recipe's ``input.channels``, which ``bands`` and per-channel clip bounds must
        match (None: a ``data:`` section alone, checked against its own ``bands`` only)."""
        if d["patch_size"] is None:
            # square patches of the model's input side (the smaller one for a non-square input);
            # a multiple of the encoder's stride whenever the input is, which the planner checks
            d["patch_size"] = int(min(input_size))
        elif d["patch_size"] % stride:
            self.fail(f"patch size {d['patch_size']} is not a multiple of the encoder's total stride {stride}",
                      ("data", "patch_size"))
        if d["stride"] is None:
            d["stride"] = d["patch_size"]
        if d["synthetic"]["size"] is None:
            d["synthetic"]["size"] = 2 * d["patch_size"]
        clip = d["clip"]
        if not clip["low"] < clip["high"]:
            self.fail(f"need low < high, got low={clip['low']}, high={clip['high']}", ("data", "clip", "low"))
        bands = d["bands"]
        if bands is not None:
            folded = [b.lower() for b in bands]
            if len(set(folded)) != len(folded) or not all(b.strip() and b == b.strip() for b in bands):
                self.fail(f"band names must be distinct (case-insensitive) and non-blank, got {bands}",
                          ("data", "bands"))
            if channels is not None and len(bands) != channels:
                self.fail(f"names {len(bands)} band(s) {bands} but input.channels is {channels}: give one name "
                          f"per channel", ("data", "bands"))
        n = channels if channels is not None else (len(bands) if bands is not None else None)
        lo, hi = clip["vmin"], clip["vmax"]
        for key, v in (("vmin", lo), ("vmax", hi)):
            if isinstance(v, list) and n is not None and len(v) != n:
                self.fail(f"gives {len(v)} bounds {v} but there are {n} channel(s): give one number for all "
                          f"channels, or one per channel", ("data", "clip", key))
        if isinstance(lo, list) and isinstance(hi, list) and len(lo) != len(hi):
            self.fail(f"vmin gives {len(lo)} bounds and vmax {len(hi)}: give as many of each",
                      ("data", "clip", "vmin"))
        size = max(len(v) if isinstance(v, list) else 1 for v in (lo, hi))
        los = lo if isinstance(lo, list) else [lo] * size
        his = hi if isinstance(hi, list) else [hi] * size
        if not all(a < b for a, b in zip(los, his)):
            self.fail(f"need vmin < vmax (for every channel), got vmin={lo}, vmax={hi}", ("data", "clip", "vmin"))

    def _stages(self, raw_stages: list, defaults: dict, role: str, path: PathKey) -> list[dict]:
        list_field = MODEL[role].children["stages"]
        item_fields = list_field.item.children
        # First pass checks structure and scalars; references are resolved below against the
        # stage defaults, so a per-stage {act: none} can amend the default block.
        loose = Field("list", "", item=Field("section", "", children={
            k: (Field("any", "", nullable=True) if f.type.startswith("ref:") else f) for k, f in item_fields.items()}),
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
        fields = MODEL["encoder"].children
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
        fields = MODEL["decoder"].children
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


def resolve_section(name: str, raw: RawRecipe) -> dict[str, Any]:
    """Section ``name`` of ``raw`` alone, as inside a recipe with default model sections (the
    ``data:`` section's derived defaults then come from the default ``input.size``)."""
    res = _Resolver(raw)
    out = res.section(raw.data.get(name), SECTIONS[name].children, (name,))
    if name == "data":
        res.derive_data(out, SECTIONS["input"].children["size"].default, 1)
    return out


def total_stride(recipe: dict[str, Any]) -> int:
    """The encoder's total spatial reduction: the input size must be a multiple of it."""
    stem = recipe["encoder"]["stem"]
    return math.prod(st["stride"] for st in recipe["encoder"]["stages"]) * (stem.get("stride", 1) if stem else 1)
