"""Training data around ``sarzoo.data``: resumable order, seeded augmentation, loaders.

Why not ``shuffle=True``: a resumed run must see exactly the batches the interrupted one would
have seen. The order of epoch ``e`` is a permutation drawn from a generator seeded with
``(train.seed, e)`` alone, so a run resumed mid-epoch rebuilds it and skips the batches already
consumed. Augmentation is seeded per ``(seed, epoch, index)`` the same way; neither touches the
global RNGs, so DataLoader workers, their number, and resuming change nothing.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sarzoo.errors import SarzooError


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (splitmix-style), stable across platforms."""
    x = 0x9E3779B97F4A7C15
    for v in ints:
        x ^= (int(v) + 0x9E3779B97F4A7C15 + ((x << 6) & 0xFFFFFFFFFFFFFFFF) + (x >> 2)) & 0xFFFFFFFFFFFFFFFF
        x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


Step = list[list[tuple[int, int]]]   # one optimizer step of this process: its micro-batches of (epoch, index)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  accumulate: int = 1, start: int = 0) -> list[Step]:
    """This process's optimizer steps of epoch ``epoch`` from sample ``start`` on: each a list of
    ``accumulate`` micro-batches of ``batch_size`` ``(epoch, index)`` pairs; an incomplete last step dropped.

    Every process draws the same permutation (it depends on ``(seed, epoch)`` only). Step ``s``
    takes the next ``batch_size × accumulate × world_size`` samples of it, cut into micro-batches
    of ``batch_size``; process ``rank`` takes ``accumulate`` consecutive ones. So the shards are
    disjoint and equally long, and the samples of a step do not depend on how they are shared: one
    process with batch 16, two with batch 8 and one with batch 8 × 2 micro-batches see the same 16.
    ``start`` (samples of the epoch already consumed) lets a run resumed with another number of
    processes continue where the epoch stopped.
    """
    g = torch.Generator().manual_seed(_mix(seed, epoch, 1))
    perm = torch.randperm(n, generator=g).tolist()[start:]
    share = batch_size * accumulate          # one process's part of a step
    per_step = share * world_size
    steps = []
    for s in range(len(perm) // per_step):
        mine = perm[s * per_step + rank * share:s * per_step + (rank + 1) * share]
        steps.append([[(epoch, i) for i in mine[k * batch_size:(k + 1) * batch_size]] for k in range(accumulate)])
    return steps


class SeededAugment(Dataset):
    """Items of a ``PatchDataset`` indexed by ``(epoch, index)``, with the dihedral augmentation
    drawn from a generator seeded by ``(seed, epoch, index)``."""

    def __init__(self, base, seed: int, augment: bool):
        self.base = base
        self.seed = int(seed)
        self.augment = bool(augment)
        base.augment = False  # the base would draw from the global RNG

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        item = self.base[i]
        if self.augment:
            from sarzoo.data.patches import random_dihedral

            g = torch.Generator().manual_seed(_mix(self.seed, epoch, i, 2))
            keys = [k for k in ("x", "mask", "clean") if k in item]
            out = random_dihedral([item[k] for k in keys], generator=g)
            for k, t in zip(keys, out):
                item[k] = t.contiguous()
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def train_loader(ds: SeededAugment, steps: list[Step], runtime) -> DataLoader:
    """Micro-batches of ``steps`` in order (``grouped`` puts each step's back together)."""
    return DataLoader(ds, batch_sampler=[mb for step in steps for mb in step], num_workers=runtime.num_workers,
                      collate_fn=collate, pin_memory=runtime.pin_memory, generator=torch.Generator().manual_seed(0))


def grouped(loader: DataLoader, accumulate: int):
    """The loader's micro-batches, ``accumulate`` at a time: one list per optimizer step."""
    step = []
    for batch in loader:
        step.append(batch)
        if len(step) == accumulate:
            yield step
            step = []


def val_loader(ds, batch_size: int, runtime) -> DataLoader:
    """Validation batches in order; with several processes, process ``rank`` takes batches ``rank``,
    ``rank + world_size``, …: the same batches as one process would make, shared out (the sums are
    then reduced), so the figures do not depend on the number of processes."""
    n, world = len(ds), runtime.world
    batches = [list(range(b, min(b + batch_size, n))) for b in range(0, n, batch_size)][world.rank::world.world_size]
    return DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=runtime.num_workers,
                      pin_memory=runtime.pin_memory, generator=torch.Generator().manual_seed(0))


def val_rounds(n: int, batch_size: int, world_size: int) -> int:
    """Validation batches of the process that has the most (rank 0): ``val_loader``'s share, rounded up."""
    batches = (n + batch_size - 1) // batch_size
    return (batches + world_size - 1) // world_size


def check_sizes(n_train: int, batch_size: int, world_size: int = 1, accumulate: int = 1) -> int:
    """Steps per epoch (``len(epoch_batches(...))`` of every process), refusing a data set without one."""
    per_step = batch_size * accumulate * world_size
    steps = n_train // per_step
    if steps < 1:
        share = []
        if accumulate > 1:
            share.append(f"{accumulate} micro-batches (train.accumulate)")
        if world_size > 1:
            share.append(f"{world_size} processes")
        per = f" of {batch_size} × " + " × ".join(share) + f" = {per_step}" if share else f" of {batch_size}"
        raise SarzooError(f"the training set has {n_train} patches, fewer than one batch{per} "
                          f"(the incomplete last batch is dropped): lower train.batch_size"
                          + (" or train.accumulate" if accumulate > 1 else "")
                          + (", use fewer processes" if world_size > 1 else "")
                          + ", add data, or use a smaller data.stride")
    return steps


def preview_indices(n_val: int, k: int) -> list[int]:
    """``k`` fixed, evenly spread validation indices."""
    if n_val == 0 or k == 0:
        return []
    k = min(k, n_val)
    return sorted({round(i * (n_val - 1) / max(k - 1, 1)) for i in range(k)})
