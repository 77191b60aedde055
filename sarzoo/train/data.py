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


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world_size: int = 1) -> list[list[tuple[int, int]]]:
    """This process's batches of epoch ``epoch``: ``(epoch, index)`` pairs, shuffled, incomplete batch dropped.

    Every process draws the same permutation (it depends on ``(seed, epoch)`` only) and takes every
    ``world_size``-th batch from ``rank`` on: the shards are disjoint and equally long (the batches
    beyond a multiple of ``world_size`` are dropped), and a single process takes them all.
    """
    g = torch.Generator().manual_seed(_mix(seed, epoch, 1))
    perm = torch.randperm(n, generator=g).tolist()
    nb = n // batch_size // world_size * world_size
    return [[(epoch, i) for i in perm[b * batch_size:(b + 1) * batch_size]] for b in range(rank, nb, world_size)]


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


def train_loader(ds: SeededAugment, batches: list[list[tuple[int, int]]], runtime) -> DataLoader:
    return DataLoader(ds, batch_sampler=batches, num_workers=runtime.num_workers, collate_fn=collate,
                      pin_memory=runtime.pin_memory, generator=torch.Generator().manual_seed(0))


def val_loader(ds, batch_size: int, runtime) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False, drop_last=False, collate_fn=collate,
                      num_workers=runtime.num_workers, pin_memory=runtime.pin_memory,
                      generator=torch.Generator().manual_seed(0))


def check_sizes(n_train: int, batch_size: int, world_size: int = 1) -> int:
    """Steps per epoch (``len(epoch_batches(...))`` of every process), refusing a data set without one."""
    steps = n_train // batch_size // world_size
    if steps < 1:
        per = f" for each of {world_size} processes" if world_size > 1 else ""
        raise SarzooError(f"the training set has {n_train} patches, fewer than one batch of {batch_size}{per} "
                          f"(the incomplete last batch is dropped): lower train.batch_size, add data, or use "
                          f"a smaller data.stride")
    return steps


def preview_indices(n_val: int, k: int) -> list[int]:
    """``k`` fixed, evenly spread validation indices."""
    if n_val == 0 or k == 0:
        return []
    k = min(k, n_val)
    return sorted({round(i * (n_val - 1) / max(k - 1, 1)) for i in range(k)})
