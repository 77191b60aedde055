"""Validation of the model during training, the classical reference on the same patches, and the preview.

It runs the model the way ``sarzoo eval`` does (``Runtime.infer``: the fast path's precision and
memory format, never compiled nor checkpointed) and with the same ``sarzoo.metrics.batch_metrics``,
so the numbers stored in checkpoints are the ones ``sarzoo eval`` reproduces on the same machine.
The preview is a fixed set of validation patches, so the images of successive epochs compare.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from sarzoo import metrics as M
from sarzoo.images import triple_grid
from sarzoo.train.data import collate, preview_indices, val_loader, val_rounds
from sarzoo.train.loss import ReconstructionLoss
from sarzoo.train.runtime import Runtime


class Validation:
    """``net`` is what runs forward (the eager model: a compiled training graph is not the inference one);
    ``latent_numel`` sizes the classical reference to the model's code."""

    def __init__(self, net: torch.nn.Module, val_ds, loss_fn: ReconstructionLoss, runtime: Runtime, batch_size: int,
                 preprocessing: Any, latent_numel: int, preview_samples: int):
        self.net, self.val_ds, self.loss_fn, self.rt = net, val_ds, loss_fn, runtime
        self.batch_size = max(batch_size, 1)
        self.preprocessing = preprocessing
        self.latent_numel = latent_numel
        self.preview_idx = preview_indices(len(val_ds), preview_samples)
        self.rd = bool(getattr(net, "entropy_coded", False))

    @torch.no_grad()
    def run(self, reference: bool = False, interrupted: Callable[[], bool] = lambda: False) -> dict[str, float] | None:
        """Mean validation metrics of the model (or, with ``reference``, of the classical reference).

        None if ``interrupted()`` became true (a signal: the run stops at once rather than finish it)."""
        if len(self.val_ds) == 0:
            return {}
        # without sync_bn each process's BatchNorm statistics drifted apart since the last forward: all
        # validate rank 0's model, the one its checkpoint holds
        self.rt.world.share_buffers(self.net)
        self.net.eval()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(k, v, n):
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return
            sums[k] = sums.get(k, 0.0) + float(v) * n
            counts[k] = counts.get(k, 0) + n

        try:
            batches = iter(val_loader(self.val_ds, self.batch_size, self.rt))
            # every process asks ``interrupted`` (a collective with several) as often as the one with the most
            # batches, so that all of them stop at the same batch
            for _ in range(val_rounds(len(self.val_ds), self.batch_size, self.rt.world.world_size)):
                if interrupted():
                    return None
                batch = next(batches, None)
                if batch is None:
                    continue
                batch = self.rt.to_device(batch)
                x, mask = batch["x"], batch["mask"]
                n = x.shape[0]
                likelihoods = None
                if reference:
                    x_hat = M.classical_reference(x.float(), self.latent_numel)
                else:
                    with self.rt.infer.autocast():
                        if self.rd:   # eval-mode likelihoods: the rate the coder will spend
                            x_hat, _, likelihoods = self.net(x, rd=True)
                            x_hat = x_hat.float()
                        else:
                            x_hat = self.net(x)[0].float()
                loss, parts = self.loss_fn(x_hat, x, mask, likelihoods)
                add("loss", float(loss), n)
                add("mse", float(parts["mse"]), n)
                if "bpp" in parts:
                    add("bpp", float(parts["bpp"]), n)
                # per_scene: each image in its own scene's range (ENL); several bands: "psnr/VV" beside the mean
                prep = self.val_ds.item_preprocessing(batch["scene"]) if hasattr(self.val_ds, "item_preprocessing") \
                    else self.preprocessing
                figures = M.batch_metrics(x, x_hat, mask, prep, batch.get("clean"))
                for k, v in M.flatten_channels(figures).items():
                    add(k, v, n)
                if "clean" in batch and reference:
                    add("psnr_clean_input", M.psnr(batch["clean"], x, mask), n)
        finally:
            self.net.train()
        # several processes validated their share of the batches: every process adds up everyone's
        # sums in rank order, so all get the same figures (one process: its own, unchanged)
        total: dict[str, float] = {}
        n: dict[str, int] = {}
        for part_sums, part_counts in self.rt.world.gather((sums, counts)):
            for k, v in part_sums.items():
                total[k] = total.get(k, 0.0) + v
                n[k] = n.get(k, 0) + part_counts[k]
        return {k: total[k] / n[k] for k in total}

    @torch.no_grad()
    def preview(self) -> torch.Tensor | None:
        """The image grid (original | reconstruction | difference) of the fixed preview patches."""
        if not self.preview_idx:
            return None
        batch = self.rt.to_device(collate([self.val_ds[i] for i in self.preview_idx]))
        self.net.eval()
        try:
            with self.rt.infer.autocast():
                x_hat = self.net(batch["x"])[0].float()
        finally:
            self.net.train()
        return triple_grid(batch["x"], x_hat, mask=batch["mask"])
