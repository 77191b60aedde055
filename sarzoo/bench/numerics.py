"""Does the fast path train and infer like fp32? The numerics half of the performance targets.

Why training runs and not a single step: reduced precision (bf16 autocast) rounds every
activation; what matters is whether training still goes where fp32 training goes. So the recipe's
model is trained twice from the same seed on the same batches, the recipe's own training data in
the trainer's order (``epoch_batches``, ``SeededAugment``, the warm-up schedule), once in
``eager-fp32`` and once in ``fast`` (what ``sarzoo train`` runs by default), each through the
trainer's step (``sarzoo.train.assembly``). The two final losses are compared: each is the mean
of the last ``window`` steps' losses (one step's loss is as noisy as its batch). Then inference:
the *trained* fp32 model reconstructs validation patches once in fp32 and once on the fast
inference path, and the PSNR between the two outputs says how much the fast path changes them.
The target (docs/performance.md): losses within 3 % after 100 steps of ``tiny``, PSNR > 40 dB.
"""
from __future__ import annotations

import copy
import math
from typing import Any

#: Modes compared: the reference and the default fast path (names of ``sarzoo.bench.modes``).
REFERENCE, FAST = "eager-fp32", "fast"


def _train(plan, runtime: dict[str, Any], device, ds, order, steps_per_epoch: int) -> tuple[Any, list[float], str]:
    """The model trained over ``order`` in one mode, its per-step losses (NaN for a skipped step),
    and the mode's description."""
    from sarzoo.train.assembly import assemble_step, compile_step, probe_input
    from sarzoo.train.data import train_loader
    from sarzoo.train.optim import Schedule
    from sarzoo.train.runtime import Runtime

    recipe = plan.recipe
    rt = Runtime.create(str(device), runtime, 0)
    parts = assemble_step(plan, rt, int(recipe["train"]["seed"]))
    schedule = Schedule(parts.optimizer, recipe["train"], steps_per_epoch)
    if rt.fast.compile:
        size = recipe["data"]["patch_size"]
        compile_step(parts, rt, probe_input(len(order[0][0]), recipe["input"]["channels"], size, size))
    losses = []
    for step, batch in enumerate(train_loader(ds, order, rt)):
        schedule.before_step(step)
        out = parts.step(rt.to_device(batch))
        losses.append(math.nan if out is None else out["loss"])
    return parts.model, losses, rt.fast.describe()


def _final(losses: list[float], window: int) -> float:
    tail = [v for v in losses[-window:] if math.isfinite(v)]
    return sum(tail) / len(tail) if tail else math.nan


def numerics(recipe: str | dict[str, Any] = "tiny", steps: int = 100, batch: int | None = None,
             device: str = "auto", overrides: list[str] | None = None, window: int = 10,
             val_patches: int = 64) -> dict[str, Any]:
    """Train ``recipe`` for ``steps`` steps of ``batch`` patches (default: its ``train.batch_size``)
    in eager-fp32 and in fast from the same seed; compare the final losses (means of the last
    ``window`` steps) and the fast inference path's reconstructions of up to ``val_patches``
    validation patches with fp32's, both by the fp32-trained model."""
    import torch

    from sarzoo import config, fastpath
    from sarzoo.bench.loader import _batches
    from sarzoo.bench.modes import mode_table
    from sarzoo.data.dataset import build_datasets
    from sarzoo.device import pick_device
    from sarzoo.errors import SarzooError
    from sarzoo.plan import make_plan
    from sarzoo.train.data import SeededAugment, check_sizes, collate

    if steps < 1:
        raise SarzooError(f"--numerics-steps must be at least 1, got {steps}")
    r = config.load(recipe, list(overrides or []))
    plan = make_plan(r)
    dev = pick_device(device)
    cfg = r["train"]
    batch = int(batch or cfg["batch_size"])
    if batch < 1:
        raise SarzooError(f"the numerics batch must be at least 1, got {batch}")
    train_ds, val_ds, _, _ = build_datasets(copy.deepcopy(r["data"]), channels=r["input"]["channels"])
    steps_per_epoch = check_sizes(len(train_ds), batch)
    ds = SeededAugment(train_ds, int(cfg["seed"]), augment=getattr(train_ds, "augment", False))
    order = _batches(len(train_ds), batch, int(cfg["seed"]), steps)
    table = mode_table(r["runtime"], dev)

    runs = {name: _train(plan, table[name], dev, ds, order, steps_per_epoch) for name in (REFERENCE, FAST)}
    ref_loss, fast_loss = (_final(runs[n][1], window) for n in (REFERENCE, FAST))

    model = runs[REFERENCE][0]
    n_val = min(val_patches, len(val_ds)) or 0
    psnr = None
    if n_val:
        x = collate([val_ds[i] for i in range(n_val)])["x"]
        outs = {}
        for name in (REFERENCE, FAST):
            fastpath.for_inference(model, table[name], dev)
            with torch.no_grad():
                outs[name] = fastpath.forward(model, x)[0].float().cpu()
        mse = float(torch.mean((outs[FAST] - outs[REFERENCE]) ** 2))
        psnr = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
    rel = abs(fast_loss - ref_loss) / abs(ref_loss) if ref_loss else math.nan
    return {
        "recipe": r["name"], "steps": steps, "batch": batch, "device": str(dev), "seed": int(cfg["seed"]),
        "data": "the recipe's training data in the trainer's order (epoch_batches, SeededAugment, warm-up)",
        "final_loss_window": window,
        "final_loss": {REFERENCE: ref_loss, FAST: fast_loss},
        "loss_rel_diff": rel,
        "describe": {name: runs[name][2] for name in runs},
        "losses": {name: runs[name][1] for name in runs},
        "nonfinite_steps": {name: sum(not math.isfinite(v) for v in runs[name][1]) for name in runs},
        "psnr_db": psnr, "psnr_patches": n_val,
        "psnr_what": "PSNR (data range 1) between the fp32-trained model's reconstructions on the fast inference "
                     "path and in fp32, on validation patches",
    }
