"""Complex (SLC) input and multilooking: what a scene's values mean once detected, and looks.

Why complex data is detected at the reader: a model sees real values, and the only real quantity
of a single-look complex pixel that survives a change of phase reference is its power, so every
complex array or raster is read as linear intensity ``|z|²`` (``scene._to_float``). Hence
complex input is always in the ``intensity`` domain: a recipe declaring ``amplitude`` or ``db``
would square or exponentiate that intensity a second time, and is refused here by name.

Why multilook here, before preprocessing: SLC speckle is single-look (ENL 1); averaging the
intensity of ``az × rg`` neighbours gives about ``az·rg`` looks and a pixel closer to square on
the ground (Sentinel-1 IW SLC: ~14 m azimuth × 2.3 m slant range, so ``[1, 4]``..``[2, 8]``).
The average is always of linear intensity, whatever the domain the file holds (averaging dB or
amplitude is not multilooking); the result is converted back to that domain, so preprocessing is
unchanged. A ``MultilookScene`` maps each window onto the raw window ``az·rg`` times larger and
reads only that: memory maps and GDAL windows stay windowed.

Edges: a scene whose size is not a multiple of the looks loses its last ``H mod az`` rows and
``W mod rg`` columns (every output pixel has exactly ``az·rg`` looks; a partial block would be a
pixel with other statistics). No-data (NaN, and 0 in the linear domains) is left out of a
block's average; a block with no valid pixel is NaN.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sarzoo.data.preprocess import valid_mask
from sarzoo.data.scene import Scene
from sarzoo.errors import SarzooError

#: GDAL's complex integer types that rasterio names without a numpy dtype: CInt16 (read as complex64).
#: CInt32 needs no entry: rasterio reports it as complex64 (``rasterio.dtypes.dtype_fwd``).
GDAL_COMPLEX = ("complex_int16",)


def is_complex(dtype: Any) -> bool:
    """Whether values of ``dtype`` (numpy, or a rasterio/GDAL type name) are complex."""
    if isinstance(dtype, str) and dtype in GDAL_COMPLEX:
        return True
    try:
        return np.dtype(dtype).kind == "c"
    except TypeError:
        return False


def check_domain(where: str, domain: str) -> None:
    """Complex values are read as intensity ``|z|²``: any other declared domain would misread them."""
    if domain != "intensity":
        raise SarzooError(f"{where}: holds complex (SLC) values, which sarzoo reads as linear intensity |z|², but "
                          f"data.domain is {domain!r}, which would read that intensity as "
                          f"{'amplitude (squaring it again)' if domain == 'amplitude' else 'dB'}; set "
                          f"data.domain: intensity (the default) for complex input")


def check_looks(where: str, looks: Sequence[int], height: int, width: int) -> tuple[int, int]:
    """``(az, rg)`` after checking them against the scene; ``SarzooError`` naming the key otherwise."""
    try:
        az, rg = (int(v) for v in looks)
    except (TypeError, ValueError):
        raise SarzooError(f"{where}: data.multilook must be [azimuth, range] (two positive integers), "
                          f"got {looks!r}") from None
    if az < 1 or rg < 1 or az != looks[0] or rg != looks[1]:
        raise SarzooError(f"{where}: data.multilook must be two positive integers [azimuth, range], got {looks!r}")
    if height < az or width < rg:
        raise SarzooError(f"{where}: the scene ({height} × {width} pixels) is smaller than one multilook block of "
                          f"data.multilook = [{az}, {rg}] (rows × columns); use fewer looks")
    return az, rg


def _to_intensity(v: np.ndarray, domain: str) -> np.ndarray:
    if domain == "amplitude":
        return v * v
    if domain == "db":
        return np.power(10.0, v / 10.0)
    return v


def _from_intensity(i: np.ndarray, domain: str) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        if domain == "amplitude":
            return np.sqrt(i)
        if domain == "db":
            return 10.0 * np.log10(i)
    return i


def block_mean(raw: np.ndarray, az: int, rg: int, domain: str = "intensity") -> np.ndarray:
    """The ``az × rg`` block average of the linear intensity of ``raw`` (last two axes, sizes multiples
    of the looks), returned in ``domain``; no-data (NaN, ±inf, 0 in the linear domains) left out."""
    *lead, h, w = raw.shape
    v = raw.astype(np.float64).reshape(*lead, h // az, az, w // rg, rg)
    valid = valid_mask(v, domain)
    i = np.where(valid, _to_intensity(np.where(valid, v, 0.0), domain), 0.0)
    n = valid.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = i.sum(axis=(-3, -1)) / n
    out = _from_intensity(np.where(n > 0, mean, np.nan), domain)
    return out.astype(np.float32)


class MultilookScene(Scene):
    """A scene seen through ``az × rg`` looks: its pixel ``(r, c)`` is the block average of the base
    scene's rows ``r·az … r·az+az-1`` and columns ``c·rg … c·rg+rg-1`` (in linear intensity).

    Any leading axes of the base scene's windows (channels) are kept, so a ``(C, h, w)`` scene
    stays one. It deliberately exposes no ``path``/``band``: its pixels are not the file's grid.
    """

    def __init__(self, base: Scene, looks: Sequence[int], domain: str = "intensity"):
        self.base, self.domain = base, domain
        self.az, self.rg = check_looks(base.id, looks, base.height, base.width)
        self.id, self.group = base.id, base.group
        self.height, self.width = base.height // self.az, base.width // self.rg
        self.channels = getattr(base, "channels", 1)
        self.nodata = None  # the base already returns its no-data as NaN, and the average keeps NaN
        self.has_clean = base.has_clean

    def _raw_window(self, row: int, col: int, h: int, w: int) -> tuple[int, int, int, int]:
        self._check_window(row, col, h, w)
        return row * self.az, col * self.rg, h * self.az, w * self.rg

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        return block_mean(self.base.read(*self._raw_window(row, col, h, w)), self.az, self.rg, self.domain)

    def read_clean(self, row: int, col: int, h: int, w: int) -> np.ndarray | None:
        clean = self.base.read_clean(*self._raw_window(row, col, h, w))
        return None if clean is None else block_mean(clean, self.az, self.rg, "intensity")

    def release(self) -> None:
        self.base.release()

    def __repr__(self) -> str:
        return f"MultilookScene({self.id!r}, {self.height}x{self.width}, looks {self.az}x{self.rg})"


def detected(where: str, scenes: list[Scene], *, complex_input: bool, domain: str = "intensity",
             looks: Sequence[int] | None = None) -> list[Scene]:
    """The scenes of one input as the pipeline reads them: complex input checked against ``domain``,
    then multilooked when ``looks`` (``data.multilook``) asks for more than one look."""
    if complex_input:
        check_domain(where, domain)
    if looks is None or tuple(looks) == (1, 1):
        return scenes
    return [MultilookScene(s, looks, domain) for s in scenes]
