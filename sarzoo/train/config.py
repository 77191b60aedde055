"""The ``train:`` and ``data:`` sections of the recipe schema.

Import-light on purpose (no torch, no numpy): ``sarzoo.schema`` imports this module to register
both sections, and ``import sarzoo`` / ``sarzoo --help`` must stay instant. ``sarzoo.schema`` is
imported inside the functions, so either module may be imported first.

The defaults are the seeds' training settings (SPEC §2); a recipe overrides any of them in its
own ``train:`` section, and ``sarzoo train --set train.lr=3e-4`` overrides the recipe.
"""
from __future__ import annotations

import copy
from typing import Any

#: Every ``train:`` key with its default, type and one-line meaning. Nested sections are dicts
#: of the same shape. ``(default, type, doc, extra)``; ``extra`` holds Field keyword arguments.
TRAIN_SPEC: dict[str, Any] = {
    "epochs": (30, "int", "passes over the training patches (the seeds' 30)", {"min": 1, "max": 100_000}),
    "max_steps": (None, "int", "stop after this many optimizer steps in total, even mid-epoch; null = no limit",
                  {"min": 1, "nullable": True}),
    "batch_size": (16, "int", "patches per optimizer step; the last incomplete batch of an epoch is "
                              "dropped (drop_last) for stable BatchNorm", {"min": 1, "max": 65_536}),
    "lr": (1e-4, "float", "peak learning rate (after warm-up)", {"min": 0, "max": 10}),
    "optimizer": {
        "type": ("adam", "str", "adam, or adamw (decoupled weight decay)", {"choices": ("adam", "adamw")}),
        "weight_decay": (0.0, "float", "L2 penalty (adam) or decoupled weight decay (adamw)", {"min": 0}),
        "beta1": (0.9, "float", "Adam's first-moment decay", {"min": 0, "max": 1}),
        "beta2": (0.999, "float", "Adam's second-moment decay", {"min": 0, "max": 1}),
        "eps": (1e-8, "float", "Adam's epsilon", {"min": 0}),
    },
    "warmup": {
        "epochs": (5.0, "float", "length of the linear learning-rate warm-up in epochs (fractions allowed; "
                                 "0 = none); the rate rises every step", {"min": 0}),
        "start_factor": (0.1, "float", "warm-up starts at lr × start_factor (the seeds' lr/10)",
                         {"min": 0, "max": 1}),
    },
    "plateau": {
        "patience": (10, "int", "ReduceLROnPlateau: epochs without validation-loss improvement before the "
                                "rate is cut; 0 cuts at the first epoch without improvement", {"min": 0}),
        "factor": (0.5, "float", "ReduceLROnPlateau: the rate is multiplied by this", {"min": 0, "max": 1}),
        "min_lr": (0.0, "float", "ReduceLROnPlateau: never below this rate", {"min": 0}),
    },
    "early_stopping": {
        "patience": (20, "int", "stop after this many epochs without validation-loss improvement; "
                                "null = never (keep it above plateau.patience)", {"min": 1, "nullable": True}),
        "min_delta": (0.0, "float", "an improvement must lower the validation loss by more than this",
                      {"min": 0}),
    },
    "grad_clip": (1.0, "float", "clip the global gradient norm to this; null = no clipping",
                  {"min": 0, "nullable": True}),
    "amp": ("auto", "str", "mixed precision: auto (CUDA: bf16 if supported else fp16 with a GradScaler; "
                           "CPU: bf16 where the CPU has native bf16 (AMX or AVX512-BF16), else off), off, "
                           "bf16 (autocast), fp16 (autocast + GradScaler)",
            {"choices": ("auto", "off", "bf16", "fp16")}),
    "loss": {
        "mse": (0.5, "float", "weight of the MSE term", {"min": 0}),
        "ssim": (0.5, "float", "weight of the (1 − SSIM) term (pytorch-msssim, data_range 1, "
                               "nonnegative_ssim)", {"min": 0}),
        "win_size": (11, "int", "SSIM Gaussian window size (odd)", {"min": 3, "max": 31}),
        "masked": (True, "bool", "ignore no-data pixels (mask False) in both terms", {}),
    },
    "seed": (0, "int", "seed of weight init, data order and augmentation (--seed overrides)", {}),
    "num_workers": (None, "int", "DataLoader worker processes; null = 0 on CPU, min(4, cores − 1) on CUDA",
                    {"min": 0, "max": 256, "nullable": True}),
    "checkpoint_every_steps": (None, "int", "also write last.pt every N optimizer steps (mid-epoch); "
                                            "null = only at the end of each epoch",
                               {"min": 1, "nullable": True}),
    "log_every_steps": (10, "int", "write a step record to log.jsonl every N steps", {"min": 1}),
    "histogram_every": (10, "int", "TensorBoard weight and gradient histograms every N epochs (and "
                                   "after the first); 0 = never", {"min": 0}),
    "preview_samples": (4, "int", "fixed validation patches in the per-epoch image grid and preview PNG",
                        {"min": 0, "max": 64}),
    "max_nonfinite": (5, "int", "stop after this many NaN/Inf losses in a row (each one skips its step)",
                      {"min": 1}),
}


def _walk(spec: dict[str, Any], prefix: str = ""):
    for k, v in spec.items():
        if isinstance(v, dict):
            yield f"{prefix}{k}", None
            yield from _walk(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def train_defaults() -> dict[str, Any]:
    """The ``train:`` section with every default (a fresh dict)."""
    def build(spec):
        return {k: (build(v) if isinstance(v, dict) else copy.deepcopy(v[0])) for k, v in spec.items()}
    return build(TRAIN_SPEC)


TRAIN_DOCS: dict[str, str] = {path: v[2] for path, v in _walk(TRAIN_SPEC) if v is not None}


def train_section():
    """The schema ``Field`` of the ``train:`` section."""
    from sarzoo.schema import Field

    def build(spec):
        out = {}
        for k, v in spec.items():
            if isinstance(v, dict):
                out[k] = Field("section", k.replace("_", " "), children=build(v))
            else:
                default, typ, doc, extra = v
                out[k] = Field(typ, doc, default=default, **extra)
        return out

    return Field("section", "training settings (sarzoo train); defaults are the seeds'", children=build(TRAIN_SPEC))


# --- data ------------------------------------------------------------------------------------

#: Where the schema departs from ``DATA_DEFAULTS`` so a recipe trains at its own input size:
#: patches default to ``input.size`` and synthetic scenes to twice the patch side.
DATA_SCHEMA_DEFAULTS = {"patch_size": None, "stride": None, "synthetic.size": None}
DATA_SCHEMA_DOCS = {
    "patch_size": "side in pixels of the square patches cut from each scene; null = the recipe's input.size",
    "synthetic.size": "side in pixels of each synthetic scene; null = 2 × patch_size",
}
_DATA_TYPES = {
    "paths": dict(type="any", nullable=True),
    "domain": dict(type="str", choices=("intensity", "amplitude", "db")),
    "clip.mode": dict(type="str", choices=("percentile", "fixed")),
    "stride": dict(type="int", nullable=True, min=1),
    "patch_size": dict(type="int", nullable=True, min=8, max=16384),
    "nodata": dict(type="float", nullable=True),
    "min_valid": dict(type="float", min=0, max=1),
    "val_fraction": dict(type="float", min=0, max=0.999),
    "clip.low": dict(type="float", min=0, max=100),
    "clip.high": dict(type="float", min=0, max=100),
    "synthetic.n_scenes": dict(type="int", min=1, max=1_000_000),
    "synthetic.size": dict(type="int", nullable=True, min=8, max=65536),
    "synthetic.looks": dict(type="float", min=1e-6),
}


def _infer(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "bool"}
    if isinstance(value, int):
        return {"type": "int"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        return {"type": "str"}
    return {"type": "any", "nullable": True}


def data_section():
    """The schema ``Field`` of the ``data:`` section, built from ``sarzoo.data.DATA_DEFAULTS``/``DATA_DOCS``."""
    from sarzoo.data import DATA_DEFAULTS, DATA_DOCS
    from sarzoo.schema import Field

    def build(defaults: dict, prefix: str) -> dict:
        out = {}
        for k, v in defaults.items():
            path = prefix + k
            doc = DATA_SCHEMA_DOCS.get(path) or DATA_DOCS.get(path) or path
            if isinstance(v, dict):
                out[k] = Field("section", doc, children=build(v, path + "."))
                continue
            kw = dict(_DATA_TYPES.get(path) or _infer(v))
            typ = kw.pop("type")
            default = DATA_SCHEMA_DEFAULTS.get(path, v)
            if v is None:
                kw["nullable"] = True
            out[k] = Field(typ, doc, default=copy.deepcopy(default), **kw)
        return out

    return Field("section", "training/evaluation data (sarzoo.data); null paths = synthetic SAR",
                 children=build(DATA_DEFAULTS, ""))
