"""How fast the training data arrives, and where it lives: the loader half of "data never starves
the model".

Why the trainer's own loader: the figure must be what training gets, so the datasets come from
the recipe's ``data:`` section through ``build_datasets`` and are iterated by
``train.data.train_loader`` over ``epoch_batches`` order with ``SeededAugment``: window reads,
preprocessing (dB, clipping, no-data mask), patching, dihedral augmentation and collation, in the
worker processes the runtime uses (and with 2 workers too where that differs). Opening the data
(generating the synthetic scenes, fitting the clip range) happens once, before any timing.

Synthetic scenes are generated into memory by design; to measure the path real data takes, the
same scenes are also written once to ``.npy`` files and read back memory-mapped (``files``).
``residency`` reports, scene by scene, whether the datasets keep data memory-mapped (``.npy``),
streamed by window (GeoTIFF/PNG through GDAL) or in memory (synthetic, and ``.npz`` members, which
a zip cannot map); it looks, it does not change the readers.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

#: The loader is timed over at least this many batches and seconds after its first batch (so the
#: batches the workers prefetched during start-up weigh little), and at most ``MAX_BATCHES``.
MIN_BATCHES, MIN_SECONDS, MAX_BATCHES = 20, 1.0, 2000


def residency(ds) -> dict[str, Any]:
    """Where the scenes of a ``PatchDataset`` keep their pixels, counted per scene."""
    import numpy as np

    from sarzoo.data.readers import ArrayScene, MemoryScene, RasterScene

    scenes = {id(p.region.scene): p.region.scene for p in ds.patches}.values()
    counts = {"memory_mapped": 0, "streamed": 0, "in_memory": 0, "loaded_whole": 0, "other": 0}
    in_memory_bytes = 0
    for s in scenes:
        if isinstance(s, ArrayScene) and s.key is None:
            kind = "memory_mapped" if isinstance(s._array(), np.memmap) else "in_memory"
        elif isinstance(s, ArrayScene):
            kind = "loaded_whole"     # a .npz member: decompressed whole on first read
        elif isinstance(s, RasterScene):
            kind = "streamed"         # rasterio window reads of the tiles/strips a patch touches
        elif isinstance(s, MemoryScene):
            kind = "in_memory"
            in_memory_bytes += s.data.nbytes + (s.clean.nbytes if s.clean is not None else 0)
        else:
            kind = "other"
        counts[kind] += 1
    return {"scenes": len(scenes), **counts, "in_memory_mb": in_memory_bytes / 2**20,
            "never_fully_loaded": counts["in_memory"] == 0 and counts["loaded_whole"] == 0}


def _batches(n: int, batch_size: int, seed: int, count: int) -> list:
    """``count`` steps (of one batch each) in training order: epoch after epoch of ``epoch_batches``."""
    from sarzoo.train.data import epoch_batches

    out, epoch = [], 0
    while len(out) < count:
        out += epoch_batches(n, batch_size, seed, epoch)
        epoch += 1
    return out[:count]


def time_loader(train_ds, recipe: dict[str, Any], device: str, workers: int, batches: int = MIN_BATCHES,
                seconds: float = MIN_SECONDS) -> dict[str, Any]:
    """Images/s of the training loader with ``workers`` worker processes, over at least ``batches``
    batches and ``seconds`` seconds after the first batch (up to ``MAX_BATCHES``). The time to the
    first batch (worker start-up) is reported apart; the rate is over the rest."""
    from sarzoo.train.data import SeededAugment, check_sizes, train_loader
    from sarzoo.train.runtime import Runtime

    cfg = recipe["train"]
    batch_size, seed = int(cfg["batch_size"]), int(cfg["seed"])
    check_sizes(len(train_ds), batch_size)
    ds = SeededAugment(train_ds, seed, augment=getattr(train_ds, "augment", False))
    order = _batches(len(train_ds), batch_size, seed, max(MAX_BATCHES, batches + 1))
    rt = Runtime.create(device, recipe["runtime"], workers)
    t0 = time.perf_counter()
    it = iter(train_loader(ds, order, rt))
    next(it)
    t1 = t2 = time.perf_counter()
    images = done = 0
    for b in it:
        images, done = images + int(b["x"].shape[0]), done + 1
        t2 = time.perf_counter()
        if done >= batches and t2 - t1 >= seconds:
            break
    del it   # stops the workers
    return {"workers": workers, "images_per_s": images / (t2 - t1), "batches": done,
            "batch_size": batch_size, "startup_s": t1 - t0, "seconds": t2 - t1}


def _as_npy_files(train_ds, val_ds, data_cfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The synthetic scenes written to ``folder`` as ``.npy`` (linear intensity), and the ``data:``
    section that reads them instead: same patches, preprocessing and augmentation."""
    import numpy as np

    scenes = {p.region.scene.id: p.region.scene for ds in (train_ds, val_ds) for p in ds.patches}
    for i, scene in enumerate(scenes.values()):
        np.save(folder / f"scene_{i:05d}.npy", np.asarray(scene.data, dtype=np.float32))  # (C, H, W)
    cfg = copy.deepcopy(data_cfg)
    cfg.update(paths=[str(folder)], domain="intensity")
    return cfg


def loader_throughput(recipe: dict[str, Any], device: str, workers: int | None = None,
                      batches: int = MIN_BATCHES, seconds: float = MIN_SECONDS) -> dict[str, Any]:
    """The loader's images/s over the recipe's data with the runtime's workers (``workers``
    overrides; 2 workers measured too when different), where the data lives, and, for synthetic
    data, the same through memory-mapped ``.npy`` copies of the scenes."""
    from sarzoo.data.dataset import build_datasets
    from sarzoo.train.runtime import Runtime

    channels = recipe["input"]["channels"]
    if workers is None:
        workers = Runtime.create(device, recipe["runtime"], recipe["train"]["num_workers"]).num_workers
    counts = [workers] + ([2] if workers != 2 else [])
    t0 = time.perf_counter()
    train_ds, val_ds, _, cfg = build_datasets(copy.deepcopy(recipe["data"]), channels=channels)
    setup_s = time.perf_counter() - t0
    runs = [time_loader(train_ds, recipe, device, n, batches, seconds) for n in counts]
    out: dict[str, Any] = {
        "source": "synthetic" if recipe["data"]["paths"] is None else "files",
        "images_per_s": runs[0]["images_per_s"], "workers": workers,
        "patch_size": cfg["patch_size"], "augment": bool(cfg["augment"]), "setup_s": setup_s,
        "runs": runs, "residency": residency(train_ds),
    }
    if recipe["data"]["paths"] is None:
        with tempfile.TemporaryDirectory(prefix="sarzoo-bench-") as tmp:
            files_cfg = _as_npy_files(train_ds, val_ds, cfg, Path(tmp))
            files_ds, _, _, _ = build_datasets(files_cfg, channels=channels)
            file_runs = [time_loader(files_ds, recipe, device, n, batches, seconds) for n in counts]
            out["files"] = {"what": "the same synthetic scenes written once to .npy files and read "
                                    "memory-mapped, as real data is",
                            "images_per_s": file_runs[0]["images_per_s"], "runs": file_runs,
                            "residency": residency(files_ds)}
    return out
