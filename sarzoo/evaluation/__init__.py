"""Evaluation of a trained checkpoint (what ``sarzoo eval`` reports), as data: no printing here.

- ``selection``: which regions, patches and windows are measured, read with which preprocessing;
- ``figures``: model and classical reference figures of an image or batch, and their means;
- ``outputs``: what ``--save-images`` writes (PNG panels, reconstructions, ``metrics.json``);
- ``run``: ``evaluate()``, one evaluation from checkpoint to report dict.

The text report and exit status belong to the command (``sarzoo.commands.evaluate``); loading a
model and tiling scenes, to the notebook API (``sarzoo.inference``). Nothing here imports the
training loop or the command line.
"""
from __future__ import annotations

from sarzoo.evaluation.run import SCENE_WINDOW, evaluate

__all__ = ["evaluate", "SCENE_WINDOW"]
