"""Rate–distortion reports (``sarzoo rd``): learned codecs against JPEG 2000 and the bicubic reference.

- ``codecs``: JPEG 2000 (GDAL's OpenJPEG driver, in memory), downsample + bicubic, and the adapter to
  a model's bitstream codec, all as ``(x01, mask) → (x01_hat, bits)``;
- ``curves``: Bjøntegaard deltas (BD-rate, BD-PSNR) of a curve against an anchor;
- ``run``: ``rd_report()``, the images of ``sarzoo eval``'s selection through every codec → one dict;
- ``report``: the text table of that dict;
- ``plot``: the PNG figure (matplotlib, Agg), bits per pixel against every metric.

The command (``sarzoo.commands.rd``) prints and writes; nothing here prints. Definitions: docs/rd.md.
"""
from __future__ import annotations

from sarzoo.rd.run import rd_report

__all__ = ["rd_report"]
