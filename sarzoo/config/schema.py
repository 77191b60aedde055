"""Every recipe key, declared once: its type, default, bounds and one-line meaning.

The model sections (``input``, ``init``, ``encoder``, ``decoder``, ``bottleneck``), ``train:`` and
``runtime:`` are declared here with ``Field`` (``data:``, the longest, in ``data_keys``); values are
checked by ``sarzoo.config.values.check`` (which component options use too), and
``sarzoo.config.resolve`` fills defaults and derived defaults. A new section is one more entry in
``SECTIONS``. Import-light on purpose: ``sarzoo --help`` and the docs test read it without torch.
"""

from __future__ import annotations

from typing import Any

from sarzoo.config.data_keys import DATA
from sarzoo.config.field import REQUIRED, Field

__all__ = ["DATA", "MODEL", "REQUIRED", "RUNTIME", "SECTIONS", "TRAIN", "Field", "defaults", "iter_keys"]

def _stage_fields(role: str) -> dict[str, Field]:
    f = {
        "compose": Field("ref:stage", "how the stage is composed from its parts (stage component)", default="standard"),
        "block": Field("ref:block", "block component repeated `depth` times", default="preact", nullable=True),
        "attention": Field(
            "ref:attention", "attention applied after blocks, or null for none", default=None, nullable=True
        ),
        "depth": Field("int", "number of blocks in the stage", default=2, min=0, max=32),
    }
    if role == "encoder":
        f["stride"] = Field("int", "spatial reduction of the stage (first block is strided)", default=2, min=1, max=8)
    else:
        f["upsample"] = Field(
            "ref:upsample", "upsampling component at the start of the stage", default="interp", nullable=True
        )
        f["scale"] = Field("int", "spatial enlargement of the stage", default=2, min=1, max=8)
    return f


def _stage_item(role: str) -> Field:
    children = {"out_channels": Field("int", "channels the stage outputs", default=REQUIRED, min=1, max=4096)}
    for k, v in _stage_fields(role).items():
        children[k] = Field(
            v.type,
            f"per-stage override of {role}.stage.{k}",
            default=None,
            choices=v.choices,
            min=v.min,
            max=v.max,
            nullable=True,
        )
    return Field("section", f"one {role} stage", children=children)


MODEL: dict[str, Field] = {
    "name": Field("str", "recipe name (default: the file name without .yaml)", default=None, nullable=True),
    "description": Field("str", "one line saying what the model is", default=""),
    "input": Field(
        "section",
        "the image the model takes",
        children={
            "channels": Field("int", "input channels (1 for single-polarisation SAR)", default=1, min=1, max=64),
            "size": Field(
                "size2", "[height, width] used to validate and for `sarzoo build`", default=[256, 256], min=8, max=16384
            ),
        },
    ),
    "init": Field(
        "section",
        "weight initialisation",
        children={
            "scheme": Field(
                "str",
                "default (PyTorch's) or kaiming_normal on every conv",
                default="default",
                choices=("default", "kaiming_normal"),
            ),
            "negative_slope": Field("float", "kaiming `a` (LeakyReLU slope)", default=0.2, min=0, max=1),
            "mode": Field("str", "kaiming mode", default="fan_out", choices=("fan_in", "fan_out")),
            "nonlinearity": Field("str", "kaiming gain", default="leaky_relu", choices=("leaky_relu", "relu")),
        },
    ),
    "encoder": Field(
        "section",
        "the encoder: stem then stages",
        children={
            "stem": Field(
                "step:block", "block before the first stage (no stage), or null", default=None, nullable=True
            ),
            "stage": Field("section", "defaults for every encoder stage", children=_stage_fields("encoder")),
            "stages": Field(
                "list",
                "encoder stages, in order",
                default=REQUIRED,
                item=_stage_item("encoder"),
                min_items=1,
                max_items=12,
            ),
        },
    ),
    "decoder": Field(
        "section",
        "the decoder; mirrors the encoder unless `stages` is given",
        children={
            "stage": Field(
                "section",
                "defaults for every decoder stage; unset keys inherit encoder.stage",
                children=_stage_fields("decoder"),
            ),
            "stages": Field(
                "list",
                "decoder stages, in order; null mirrors the encoder",
                default=None,
                nullable=True,
                item=_stage_item("decoder"),
                min_items=1,
                max_items=12,
            ),
            "head": Field(
                "step:block",
                "block after the last stage producing the output image, or null",
                default=None,
                nullable=True,
            ),
        },
    ),
    "bottleneck": Field(
        "ref:bottleneck",
        "between encoder and decoder: how the latent is quantised and stored (none = float32, fp16, quantize, "
        "factorized, hyperprior; docs/codec.md)",
        default="none",
    ),
}


#: ``data.patch_size``/``stride``/``synthetic.size`` default to null and are derived during
#: resolution from ``input.size`` (``sarzoo.config.resolve``), so a recipe trains at its own size.
TRAIN: dict[str, Field] = {
    "epochs": Field("int", "passes over the training patches (the seeds' 30)", default=30, min=1, max=100000),
    "max_steps": Field(
        "int",
        "stop after this many optimizer steps in total, even mid-epoch; null = no limit",
        default=None,
        min=1,
        nullable=True,
    ),
    "batch_size": Field(
        "int",
        "patches per process and micro-batch (see accumulate); the last incomplete step of an epoch is dropped "
        "(drop_last) for stable BatchNorm",
        default=16,
        min=1,
        max=65536,
    ),
    "accumulate": Field(
        "int",
        "micro-batches of batch_size whose gradients make one optimizer step (gradient accumulation); the "
        "step's batch is batch_size × accumulate × processes. May change on resume (keep the batch when the "
        "number of processes changes)",
        default=1,
        min=1,
        max=4096,
    ),
    "sync_bn": Field(
        "bool",
        "with several processes, BatchNorm statistics over the whole step's batch (all processes) instead of "
        "each process's share: torch.nn.SyncBatchNorm on CUDA, sarzoo's gloo equivalent on CPU",
        default=False,
    ),
    "lr": Field("float", "peak learning rate (after warm-up)", default=0.0001, min=0, max=10),
    "optimizer": Field(
        "section",
        "the optimizer: Adam as in the seeds, or AdamW",
        children={
            "type": Field("str", "adam, or adamw (decoupled weight decay)", default="adam", choices=("adam", "adamw")),
            "weight_decay": Field("float", "L2 penalty (adam) or decoupled weight decay (adamw)", default=0.0, min=0),
            "beta1": Field("float", "Adam's first-moment decay", default=0.9, min=0, max=1),
            "beta2": Field("float", "Adam's second-moment decay", default=0.999, min=0, max=1),
            "eps": Field("float", "Adam's epsilon", default=1e-08, min=0),
        },
    ),
    "warmup": Field(
        "section",
        "linear learning-rate warm-up: the seeds start at lr/10 so early BatchNorm statistics settle",
        children={
            "epochs": Field(
                "float",
                "length of the linear learning-rate warm-up in epochs (fractions allowed; 0 = none); the rate rises "
                "every step",
                default=5.0,
                min=0,
            ),
            "start_factor": Field(
                "float", "warm-up starts at lr × start_factor (the seeds' lr/10)", default=0.1, min=0, max=1
            ),
        },
    ),
    "schedule": Field(
        "str",
        "the rate after the warm-up: plateau (ReduceLROnPlateau on the validation loss, the seeds') or cosine "
        "(a half cosine per step from lr to zero at the end of train.epochs; plateau.* is then unused)",
        default="plateau",
        choices=("plateau", "cosine"),
    ),
    "plateau": Field(
        "section",
        "ReduceLROnPlateau on the validation loss, after the warm-up (train.schedule: plateau)",
        children={
            "patience": Field(
                "int",
                "ReduceLROnPlateau: epochs without validation-loss improvement before the rate is cut; 0 cuts at the "
                "first epoch without improvement",
                default=10,
                min=0,
            ),
            "factor": Field("float", "ReduceLROnPlateau: the rate is multiplied by this", default=0.5, min=0, max=1),
            "min_lr": Field("float", "ReduceLROnPlateau: never below this rate", default=0.0, min=0),
        },
    ),
    "early_stopping": Field(
        "section",
        "stop when the validation loss no longer improves",
        children={
            "patience": Field(
                "int",
                "stop after this many epochs without validation-loss improvement; null = never (keep it above "
                "plateau.patience)",
                default=20,
                min=1,
                nullable=True,
            ),
            "min_delta": Field(
                "float", "an improvement must lower the validation loss by more than this", default=0.0, min=0
            ),
        },
    ),
    "grad_clip": Field(
        "float", "clip the global gradient norm to this; null = no clipping", default=1.0, min=0, nullable=True
    ),
    "loss": Field(
        "section",
        "the training loss: MSE plus (1 − SSIM), weighted, no-data masked",
        children={
            "mse": Field("float", "weight of the MSE term", default=0.5, min=0),
            "ssim": Field(
                "float",
                "weight of the (1 − SSIM) term (pytorch-msssim, data_range 1, nonnegative_ssim)",
                default=0.5,
                min=0,
            ),
            "win_size": Field("int", "SSIM Gaussian window size (odd)", default=11, min=3, max=31),
            "masked": Field("bool", "ignore no-data pixels (mask False) in both terms", default=True),
        },
    ),
    "rate": Field(
        "section",
        "rate-distortion training: loss = distortion + lmbda × bits per valid pixel (docs/codec.md)",
        children={
            "lmbda": Field(
                "float",
                "weight of the rate (bits per valid pixel, from the bottleneck's likelihoods) in the loss; 0 = "
                "distortion only. Only an entropy-coded bottleneck (quantize, factorized, hyperprior) has a rate to "
                "learn",
                default=0.0,
                min=0,
            ),
        },
    ),
    "seed": Field("int", "seed of weight init, data order and augmentation (--seed overrides)", default=0),
    "num_workers": Field(
        "int",
        "DataLoader worker processes; null = 0 on CPU, min(4, cores − 1) on CUDA",
        default=None,
        min=0,
        max=256,
        nullable=True,
    ),
    "checkpoint_every_steps": Field(
        "int",
        "also write last.pt every N optimizer steps (mid-epoch); null = only at the end of each epoch",
        default=None,
        min=1,
        nullable=True,
    ),
    "log_every_steps": Field("int", "write a step record to log.jsonl every N steps", default=10, min=1),
    "histogram_every": Field(
        "int",
        "TensorBoard weight and gradient histograms every N epochs (and after the first); 0 = never",
        default=10,
        min=0,
    ),
    "preview_samples": Field(
        "int", "fixed validation patches in the per-epoch image grid and preview PNG", default=4, min=0, max=64
    ),
    "max_nonfinite": Field(
        "int", "stop after this many NaN/Inf losses in a row (each one skips its step)", default=5, min=1
    ),
}
RUNTIME: dict[str, Field] = {
    "amp": Field(
        "str",
        "mixed precision: auto (CUDA: bf16 if supported else fp16 with a GradScaler; CPU: bf16 where the CPU has "
        "native bf16 (AMX or AVX512-BF16), else off), off, bf16 (autocast), fp16 (autocast + GradScaler)",
        default="auto",
        choices=("auto", "off", "bf16", "fp16"),
    ),
    "channels_last": Field(
        "bool", "NHWC memory format for weights and activations; null = automatic (on: every device measured "
        "runs convolutions faster in it)", default=None, nullable=True,
    ),
    "compile": Field(
        "bool", "torch.compile the training step's model, with a clean fallback to eager where it cannot run; "
        "null = automatic (on for CUDA; off on CPU, where it did not pay: docs/performance.md)",
        default=None, nullable=True,
    ),
    "compile_mode": Field(
        "str", "torch.compile mode", default="default", choices=("default", "reduce-overhead", "max-autotune"),
    ),
    "cudnn_benchmark": Field(
        "bool", "let cuDNN time its convolution algorithms once per shape (CUDA only); null = on",
        default=None, nullable=True,
    ),
    "checkpoint": Field(
        "bool", "activation checkpointing per stage in training: keep only each stage's input and recompute the "
        "rest in backward (about a third more compute for much less memory)", default=False,
    ),
}


SECTIONS: dict[str, Field] = {
    **MODEL,
    "train": Field("section", "training settings (sarzoo train); defaults are the seeds'", children=TRAIN),
    "data": Field("section", "training/evaluation data (sarzoo.data); null paths = synthetic SAR", children=DATA),
    "runtime": Field("section", "how the model runs (training, evaluation, reconstruction): precision, memory "
                     "format, compilation, checkpointing; automatic per device by default", children=RUNTIME),
}


def iter_keys(fields: dict[str, Field] | None = None, prefix: str = "") -> list[str]:
    """Every documented key path (``encoder.stages[].depth`` style), for the docs test."""
    out = []
    for name, f in (SECTIONS if fields is None else fields).items():
        path = f"{prefix}{name}"
        out.append(path)
        if f.type == "section":
            out += iter_keys(f.children, path + ".")
        elif f.type == "list" and f.item is not None and f.item.type == "section":
            out += iter_keys(f.item.children, path + "[].")
    return out


def defaults(section: str) -> dict[str, Any]:
    """A fresh dict of a section's declared defaults (derived ones still null)."""
    import copy

    def fill(fields: dict[str, Field]) -> dict[str, Any]:
        return {k: fill(f.children) if f.type == "section" else copy.deepcopy(f.default) for k, f in fields.items()}

    return fill(SECTIONS[section].children)
