"""Sentinel-1 radiometric calibration LUTs: σ0, β0 or γ0 from a product's digital numbers.

ESA's formula (S1-RS-MDA-52-7448, "Sentinel-1 Level-1 Product Specification"; "Radiometric
Calibration of S-1 Level-1 Products"): ``value = |DN|² / A²``, where A is the calibration LUT
(``sigmaNought``, ``betaNought`` or ``gamma``) interpolated bilinearly to the pixel from the
calibration vectors, each given at one image ``line`` for a list of ``pixel`` columns.

Why a window computes its own A: a GRD scene is ~25000 × 16000 pixels, so a full-size gain image
would cost gigabytes; a window needs only the one or two vectors bracketing each of its rows,
interpolated along its columns (``np.interp``), then blended between the two rows. Outside the
vectors' lines or pixels the nearest value is held (ESA's vectors span the whole image).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Sequence

import numpy as np

from sarzoo.errors import SarzooError

#: Most calibration vectors, and values per vector, a LUT may hold (real GRD: ~30 × ~700).
MAX_VECTORS = 100_000
MAX_VALUES = 1_000_000


class CalibrationLUT:
    """One LUT: ``lines`` (n,) strictly increasing, and per vector its ``pixels`` and ``values``."""

    def __init__(self, lines: Sequence[int], pixels: Sequence[np.ndarray], values: Sequence[np.ndarray]):
        self.lines = np.asarray(lines, dtype=np.float64)
        self.pixels = [np.asarray(p, dtype=np.float64) for p in pixels]
        self.values = [np.asarray(v, dtype=np.float64) for v in values]

    def gain(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """A, float64 ``(h, w)``, for the window at ``(row, col)``: bilinear in (line, pixel)."""
        cols = np.arange(col, col + w, dtype=np.float64)
        rows = np.arange(row, row + h, dtype=np.float64)
        n = len(self.lines)
        if n == 1:
            return np.broadcast_to(np.interp(cols, self.pixels[0], self.values[0]), (h, w)).copy()
        k = np.clip(np.searchsorted(self.lines, rows, side="right") - 1, 0, n - 2)
        t = np.clip((rows - self.lines[k]) / (self.lines[k + 1] - self.lines[k]), 0.0, 1.0)[:, None]
        k0 = int(k[0])  # k rises with the rows: the window needs vectors k0 .. k[-1] + 1, once each
        along = np.stack([np.interp(cols, self.pixels[j], self.values[j]) for j in range(k0, int(k[-1]) + 2)])
        return (1.0 - t) * along[k - k0] + t * along[k - k0 + 1]

    def __repr__(self) -> str:
        return f"CalibrationLUT({len(self.lines)} vectors)"


def _numbers(text: str | None, where: str, what: str, integer: bool = False) -> np.ndarray:
    parts = (text or "").split()
    if not parts or len(parts) > MAX_VALUES:
        raise SarzooError(f"{where}: calibration vector {what} holds {len(parts):,} values; expected 1 to "
                          f"{MAX_VALUES:,}")
    try:
        a = np.array([int(p) if integer else float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise SarzooError(f"{where}: calibration vector {what} holds a value that is not a number") from None
    if not np.isfinite(a).all():
        raise SarzooError(f"{where}: calibration vector {what} holds a non-finite value")
    return a


def read_lut(root: ET.Element, name: str, where: str, key: str) -> CalibrationLUT:
    """The LUT ``name`` (``sigmaNought``, ``betaNought``, ``gamma``) of a calibration XML, checked:
    at least one vector, integer lines strictly increasing, pixels strictly increasing, as many
    values as pixels, every value finite and positive. ``key`` is the recipe's choice (for errors)."""
    vectors = root.findall("calibrationVectorList/calibrationVector")
    if root.tag != "calibration" or not vectors:
        raise SarzooError(f"{where}: holds no calibration vectors (calibration/calibrationVectorList/"
                          f"calibrationVector): the product has no calibration tables, so data.calibration: "
                          f"{key} cannot be applied; use data.calibration: none for uncalibrated |DN|²")
    if len(vectors) > MAX_VECTORS:
        raise SarzooError(f"{where}: holds {len(vectors):,} calibration vectors, more than {MAX_VECTORS:,}")
    lines, pixels, values = [], [], []
    for i, vec in enumerate(vectors):
        what = f"#{i}"
        line_el, pix_el, lut_el = vec.find("line"), vec.find("pixel"), vec.find(name)
        if lut_el is None:
            raise SarzooError(f"{where}: calibration vector {what} has no <{name}> LUT, needed for data.calibration: "
                              f"{key}; choose another calibration (sigma0, beta0, gamma0) or none")
        if line_el is None or pix_el is None:
            raise SarzooError(f"{where}: calibration vector {what} lacks <line> or <pixel>")
        line = _numbers(line_el.text, where, f"{what} <line>", integer=True)
        pix = _numbers(pix_el.text, where, f"{what} <pixel>", integer=True)
        lut = _numbers(lut_el.text, where, f"{what} <{name}>")
        if len(line) != 1 or len(pix) != len(lut):
            raise SarzooError(f"{where}: calibration vector {what} has {len(pix)} pixels but {len(lut)} <{name}> "
                              f"values (and {len(line)} line numbers); they must pair up")
        if len(pix) > 1 and not (np.diff(pix) > 0).all():
            raise SarzooError(f"{where}: calibration vector {what}: pixels are not strictly increasing")
        if not (lut > 0).all():
            raise SarzooError(f"{where}: calibration vector {what}: <{name}> holds a value <= 0 (it divides)")
        lines.append(line[0])
        pixels.append(pix)
        values.append(lut)
    if len(lines) > 1 and not (np.diff(lines) > 0).all():
        raise SarzooError(f"{where}: calibration vectors' lines are not strictly increasing")
    return CalibrationLUT(lines, pixels, values)
