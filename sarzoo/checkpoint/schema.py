"""What a checkpoint must hold: the format's name and kinds, and the one schema of the payload.

Each top-level key: what it must be, and who needs it: "model"
(every checkpoint: what ``sarzoo.load`` and ``sarzoo eval`` use), "training" (every training
checkpoint), "resume" (a training checkpoint read to continue the run). Keys not listed are
ignored. The recipe, the weights, the optimizer, the scheduler and the RNG states need more than
a type check; they are checked against the architecture the stored recipe builds (``validate``).

"""
from __future__ import annotations

import torch

from sarzoo.checkpoint.spec import Any_, Either, Int, Map, Num, Opt, Scalar, Seq, Spec, Str, Tensor

FORMAT = "sarzoo.checkpoint/1"
CHECKPOINT_KINDS = ("training", "model")
#: Format of model files written by sarzoo 0.1's ``sarzoo build --output``; still read.
LEGACY_MODEL_FORMAT = "sarzoo.model/1"

#: the running sums of the current epoch (``sarzoo.train.state``'s ``METRIC_KEYS`` + n, time)
ACCUM_KEYS = ("loss", "mse", "ssim", "psnr", "n", "time")
_COUNT = Int(0)
#: a clip bound: one number (single-channel checkpoints, all of them before multi-channel models),
#: or one per channel; ``mode``/``low``/``high`` are stored for ``per_scene`` models, ``bands`` when named
_BOUND = Either(Num(finite=True), Seq(Num(finite=True)))
PREPROCESSING = Map({"domain": Str(), "vmin": _BOUND, "vmax": _BOUND,
                     "eps": Num(finite=True, lo=0.0), "fill": Num(finite=True, lo=0.0, hi=1.0),
                     "nodata": Opt(Num(nan=True)), "mode": Str(("global", "per_scene")),
                     "low": Num(finite=True, lo=0.0, hi=100.0), "high": Num(finite=True, lo=0.0, hi=100.0),
                     "bands": Opt(Seq(Str()))}, required=("domain", "vmin", "vmax"))
PROVENANCE = Map({"sarzoo": Str(),
                  "components": Seq(Map({"kind": Str(), "name": Str(), "distribution": Str(), "version": Str()}))},
                 required=())
BEST = Map({"value": Num(), "epoch": Opt(_COUNT), "step": Opt(_COUNT), "metric": Str(("val_loss", "train_loss")),
            "psnr": Opt(Num(nan=True)), "ssim": Opt(Num(nan=True))}, required=("value", "epoch", "step", "metric"))
RNG = Map({"torch": Tensor(torch.uint8),
           "numpy": Map({"algorithm": Str(("MT19937",)), "keys": Tensor("int", numel=624), "pos": Int(0, 624),
                         "has_gauss": Int(0, 1), "cached_gaussian": Num(nan=True)}),
           "python": Map({"version": Int(3, 3), "internal": Seq(Int(0, 2 ** 32 - 1), 625), "gauss_next": Opt(Num())}),
           "cuda": Seq(Tensor(torch.uint8, ndim=1))}, required=("torch", "numpy", "python"))
SCALER = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")

#: key → (spec, needed by). Needed by "model": every checkpoint; "training": every training
#: checkpoint; "resume": a training checkpoint read to continue its run. A trailing "?": checked
#: when there, for that purpose (files written by earlier versions may lack it).
SCHEMA: dict[str, tuple[Spec, str]] = {
    "format": (Str((FORMAT,)), "model"),
    "kind": (Str(CHECKPOINT_KINDS), "model"),
    "recipe": (Map(extra=Any_()), "model"),              # + resolved and planned like a recipe file
    "model": (Map(extra=Tensor("any")), "model"),      # + every weight against the recipe's model
    "preprocessing": (Opt(PREPROCESSING), "model"),      # a mapping in a training checkpoint
    "provenance": (PROVENANCE, "model?"),
    "sarzoo_version": (Str(), "model?"),
    "torch_version": (Str(), "model?"),
    "saved_at": (Num(), "model?"),
    "epoch": (_COUNT, "training"),
    "step": (_COUNT, "training"),
    "best": (BEST, "training"),
    "batch_in_epoch": (_COUNT, "resume"),
    "steps_per_epoch": (Int(1), "resume"),
    "samples_in_epoch": (_COUNT, "resume?"),        # written since training on several processes
    "step_batch": (Int(1), "resume?"),              # patches per optimizer step, all processes together
    "world_size": (Int(1), "resume?"),
    "n_train": (_COUNT, "resume"),
    "n_val": (_COUNT, "resume"),
    "early_stopping": (Map({"bad_epochs": _COUNT}), "resume"),
    "nonfinite": (Map({"total": _COUNT, "in_a_row": _COUNT}), "resume"),
    "accum": (Map({**{k: Num() for k in ACCUM_KEYS}, "n": _COUNT, "bpp": Num()},
                  required=ACCUM_KEYS), "resume"),   # bpp: rate–distortion training only
    "metrics": (Opt(Map(extra=Scalar())), "resume?"),
    "reference": (Opt(Map(extra=Scalar())), "resume?"),
    "data": (Opt(Map(extra=Any_())), "resume?"),
    "amp": (Opt(Str()), "resume?"),
    "scaler": (Opt(Map({k: Num(finite=True) for k in SCALER}, required=())), "resume?"),  # + all or none
    "optimizer": (Map({"state": Map(extra=Any_(), key_type=int),  # + against the model's parameters
                       "param_groups": Seq(Map(extra=Any_()))}), "resume"),
    "scheduler": (Map({"plateau": Map(extra=Any_())}), "resume"),   # + against a fresh scheduler
    "rng": (RNG, "resume"),                                          # + tried on fresh generators
}
