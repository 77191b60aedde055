"""Sentinel-1 SAFE products (a ``.SAFE`` folder, or the ``.zip`` it is distributed as) as scenes.

A product is one acquisition: per swath, one measurement TIFF per polarisation, each with an
annotation XML (size, product type, pixel type) and a calibration XML (the σ0/β0/γ0 LUTs). It
becomes one scene per swath (GRD: one; IW SLC: IW1..IW3) whose channels are its polarisations, in
``data.bands`` order (default VV, VH / HH, HV), read window by window.

Why the pixels come through GDAL's SAFE driver (``SENTINEL1_CALIB:UNCALIB:<manifest>:<swath>:
AMPLITUDE`` for GRD digital numbers, ``…:INTENSITY`` for SLC ``|DN|²``) and the calibration does
not: GDAL (3.10) offers no calibrated subdataset for GRD products (OSGeo/gdal#5826, "Measurement
bands not found"), and its SLC ``SIGMA0``/``BETA0``/``GAMMA`` subdatasets return ``|DN|²`` with
no LUT applied. So sarzoo reads the LUT itself and applies ESA's formula, σ0 = |DN|² / A², with A
interpolated bilinearly in (line, pixel) between the calibration vectors (``calibration.py``).

Why the product is parsed here before GDAL sees it: every file the product names is checked to
be present, regular and of sane size, and every XML to parse without a DTD, so a broken or
hostile product ends in one ``SarzooError`` naming the file. (GDAL's own LUT parser loops forever
on a calibration XML without a vector list; it is never asked to read one.)
"""
from __future__ import annotations

import os
import posixpath
import stat
import warnings
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sarzoo.data.calibration import CalibrationLUT, read_lut
from sarzoo.data.scene import _HANDLES, Scene, check_scene_size
from sarzoo.errors import SarzooError, describe

MANIFEST = "manifest.safe"
#: Largest XML file of a product read (manifest, annotation, calibration; real ones are < 20 MiB).
MAX_XML_BYTES = 64 * 2**20
#: Most members a product ``.zip`` may list (a real one holds about 30 to 100).
MAX_ZIP_MEMBERS = 10_000
#: ``data.calibration`` → the calibration vector's element holding that LUT (``none``: no LUT).
CALIBRATIONS = {"sigma0": "sigmaNought", "beta0": "betaNought", "gamma0": "gamma", "none": None}
#: Channel order when ``data.bands`` is null: co-polarisation first, as ESA names the products.
POL_ORDER = ("VV", "VH", "HH", "HV")
#: Level-1 product types GDAL's driver reads, and the subdataset unit sarzoo reads them as.
UNITS = {"GRD": "AMPLITUDE", "SLC": "INTENSITY"}


# --- recognising a product ----------------------------------------------------------------------

def is_product_dir(path: str) -> bool:
    """A folder named ``*.SAFE`` or holding a ``manifest.safe``: one product, never searched for files."""
    return os.path.isdir(path) and (path.rstrip("/").lower().endswith(".safe")
                                    or os.path.isfile(os.path.join(path, MANIFEST)))


def looks_like_product_zip(path: str) -> bool:
    """A ``.zip`` named as ESA names products (``S1A_IW_GRDH_….zip``, ``….SAFE.zip``): found in a
    directory search; other ``.zip`` files there are skipped like any unsupported file."""
    name = os.path.basename(path)
    return name.lower().endswith(".zip") and (name.upper().startswith("S1") or name.lower().endswith(".safe.zip"))


def is_product(path: str) -> bool:
    """Whether ``path`` (named explicitly) is to be opened as a product: a product folder, or any ``.zip``."""
    return is_product_dir(path) or (path.lower().endswith(".zip") and os.path.isfile(path))


def check_driver(path: str) -> None:
    """``SarzooError`` when this GDAL was built without the SAFE driver (or it was skipped)."""
    import rasterio

    with rasterio.Env() as env:
        if "SAFE" in env.drivers():
            return
    raise SarzooError(f"{path}: is a Sentinel-1 SAFE product, but the GDAL {rasterio.__gdal_version__} that "
                      f"rasterio {rasterio.__version__} uses has no SAFE driver (built without it, or skipped by "
                      f"GDAL_SKIP); install a rasterio wheel with the SAFE driver (the PyPI wheels have it), or "
                      f"give the measurement TIFFs (…/measurement/*.tiff, uncalibrated amplitude: "
                      f"data.domain: amplitude) instead of the product")


# --- the product's files -------------------------------------------------------------------------

class _Product:
    """The files of one product, in a folder or a zip: names relative to the folder holding
    ``manifest.safe``, read with size limits; ``gdal`` is that folder as GDAL names it."""

    def __init__(self, path: str):
        self.path = path
        if os.path.isdir(path):
            self.zip: zipfile.ZipFile | None = None
            self.root = path
            self.gdal = os.path.abspath(path)
            if not os.path.lexists(os.path.join(path, MANIFEST)):
                raise SarzooError(f"{path}: is not a Sentinel-1 SAFE product: it has no {MANIFEST} (a product "
                                  f"folder holds manifest.safe, annotation/ and measurement/; give the .SAFE "
                                  f"folder itself, or a folder of data files that is not named *.SAFE)")
        else:
            try:
                self.zip = zipfile.ZipFile(path)
                names = self.zip.namelist()
            except Exception as exc:
                raise SarzooError(f"{path}: cannot read it as a zipped Sentinel-1 SAFE product "
                                  f"({describe(exc)})") from exc
            if len(names) > MAX_ZIP_MEMBERS:
                raise SarzooError(f"{path}: lists {len(names):,} members, more than the {MAX_ZIP_MEMBERS:,} a "
                                  f"Sentinel-1 product holds; not a SAFE product")
            roots = sorted(n[:-len(MANIFEST)] for n in names
                           if posixpath.basename(n) == MANIFEST and n.count("/") <= 1)
            if len(roots) != 1:
                what = "no" if not roots else f"{len(roots)}"
                raise SarzooError(f"{path}: is not a zipped Sentinel-1 SAFE product: {what} {MANIFEST} at its top "
                                  f"level or in one top folder (X.SAFE/{MANIFEST}); a .zip is read only as a "
                                  f"product (zip several products separately)")
            self.root = roots[0].rstrip("/")
            self.infos = {i.filename: i for i in self.zip.infolist()}
            self.gdal = "/vsizip/" + os.path.abspath(path) + ("/" + self.root if self.root else "")

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def where(self, rel: str) -> str:
        return f"{self.path}: {rel}" if self.zip else os.path.join(self.path, rel)

    def _member(self, rel: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, rel)) if self.root else posixpath.normpath(rel)

    def size(self, rel: str) -> int:
        """The file's size after checking it exists and is a regular file (a FIFO would block GDAL)."""
        norm = posixpath.normpath(rel)
        if norm.startswith(("/", "..")) or "\\" in rel or ":" in rel:
            raise SarzooError(f"{self.path}: its {MANIFEST} names {rel!r}, outside the product; refused")
        if self.zip is not None:
            info = self.infos.get(self._member(rel))
            if info is None or info.is_dir():
                raise SarzooError(f"{self.path}: the product names {rel} in its {MANIFEST}, but the zip has no such "
                                  f"file: the product is incomplete")
            return info.file_size
        full = os.path.join(self.root, rel)
        try:
            st = os.stat(full)
        except OSError as exc:
            raise SarzooError(f"{full}: named in the product's {MANIFEST} but cannot be accessed "
                              f"({exc.strerror or exc}): the product is incomplete") from exc
        if not stat.S_ISREG(st.st_mode):
            raise SarzooError(f"{full}: is not a regular file; a SAFE product holds plain files")
        return st.st_size

    def xml(self, rel: str) -> ET.Element:
        """The root element of an XML file of the product; no DTD, at most ``MAX_XML_BYTES``."""
        where = self.where(rel)
        n = self.size(rel)
        if n > MAX_XML_BYTES:
            raise SarzooError(f"{where}: {n:,} bytes, more than the {MAX_XML_BYTES:,} an XML file of a Sentinel-1 "
                              f"product may have; the product is broken")
        try:
            if self.zip is not None:
                data = self.zip.read(self._member(rel))
            else:
                data = Path(self.root, rel).read_bytes()
        except Exception as exc:
            raise SarzooError(f"{where}: cannot read ({describe(exc)})") from exc
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise SarzooError(f"{where}: declares a DTD or entities, which Sentinel-1 XML never does; refused")
        try:
            root = ET.fromstring(data)
        except Exception as exc:  # ParseError, and LookupError for a declared encoding Python lacks
            raise SarzooError(f"{where}: not well-formed XML ({describe(exc)})") from exc
        for el in root.iter():  # namespaces are not needed to find ESA's element names
            if isinstance(el.tag, str) and "}" in el.tag:
                el.tag = el.tag.split("}", 1)[1]
        return root

    def gdal_path(self, rel: str) -> str:
        return posixpath.join(self.gdal, posixpath.normpath(rel))


# --- the manifest and the annotations -------------------------------------------------------------

@dataclass
class Measurement:
    """One measurement TIFF and what the product says about it."""

    swath: str
    pol: str
    product_type: str
    measurement: str          # paths relative to the product folder
    annotation: str
    calibration: str | None
    lines: int
    samples: int


def _text(el: ET.Element | None, path: str, where: str) -> str:
    node = None if el is None else el.find(path)
    if node is None or not (node.text or "").strip():
        raise SarzooError(f"{where}: has no <{path.replace('/', '><')}>; not a Sentinel-1 annotation")
    return node.text.strip()


def _href(obj: ET.Element | None) -> str | None:
    loc = None if obj is None else obj.find("byteStream/fileLocation")
    href = None if loc is None else loc.get("href")
    return href or None


def measurements(product: _Product) -> list[Measurement]:
    """Every measurement the manifest lists, with its annotation and calibration files, found the way
    GDAL's driver finds them (a Measurement Data Unit's ``dmdID``s → metadata objects → data objects)."""
    where = product.where(MANIFEST)
    root = product.xml(MANIFEST)
    units = [u for u in root.iter("contentUnit") if u.get("unitType") == "Measurement Data Unit"]
    if root.tag != "XFDU" or root.find("dataObjectSection") is None or not units:
        raise SarzooError(f"{where}: is not a Sentinel-1 SAFE manifest (an XFDU document listing Measurement Data "
                          f"Units); not a Level-1 SAFE product")
    objects = {o.get("ID"): o for o in root.iter("dataObject")}
    meta = {m.get("ID"): m for m in root.iter("metadataObject")}
    out = []
    for unit in units:
        ptr = unit.find("dataObjectPointer")
        data = objects.get(None if ptr is None else ptr.get("dataObjectID"))
        meas = _href(data)
        if data is None or meas is None or data.get("repID") != "s1Level1MeasurementSchema":
            continue
        files: dict[str, str] = {}
        for ident in (unit.get("dmdID") or "").split():
            mp = meta.get(ident)
            mp = None if mp is None else mp.find("dataObjectPointer")
            obj = objects.get(None if mp is None else mp.get("dataObjectID"))
            if obj is not None and _href(obj):
                files.setdefault(obj.get("repID", ""), _href(obj))
        ann = files.get("s1Level1ProductSchema")
        if ann is None:
            raise SarzooError(f"{where}: names no annotation (s1Level1ProductSchema) for measurement {meas}: the "
                              f"product is incomplete")
        a = product.xml(ann)
        aw = product.where(ann)
        lines, samples = (_text(a, f"imageAnnotation/imageInformation/{k}", aw) for k in ("numberOfLines",
                                                                                      "numberOfSamples"))
        try:
            lines, samples = int(lines), int(samples)
        except ValueError:
            raise SarzooError(f"{aw}: image size {lines!r} × {samples!r} is not two integers") from None
        out.append(Measurement(swath=_text(a, "adsHeader/swath", aw).upper(),
                               pol=_text(a, "adsHeader/polarisation", aw).upper(),
                               product_type=_text(a, "adsHeader/productType", aw).upper(),
                               measurement=meas, annotation=ann,
                               calibration=files.get("s1Level1CalibrationSchema"), lines=lines, samples=samples))
    if not out:
        raise SarzooError(f"{where}: lists no measurement (s1Level1MeasurementSchema data object); not a Level-1 "
                          f"GRD or SLC product")
    return out


def choose_bands(path: str, swath: str, have: Sequence[str], bands: Sequence[str] | None) -> list[str]:
    """The polarisations to read, in channel order: ``bands`` (checked against the product), or all."""
    if bands is None:
        return sorted(have, key=lambda p: (POL_ORDER.index(p) if p in POL_ORDER else len(POL_ORDER), p))
    want = [str(b).strip().upper() for b in bands]
    dup = sorted({b for b in want if want.count(b) > 1})
    if dup:
        raise SarzooError(f"{path}: data.bands names {', '.join(dup)} twice; name each polarisation once")
    missing = [b for b in want if b not in have]
    if missing:
        raise SarzooError(f"{path}: data.bands asks for {', '.join(missing)}, but swath {swath} of this product "
                          f"has only {', '.join(have)}; set data.bands to some of {list(have)} (or null for all)")
    return want


# --- scenes ---------------------------------------------------------------------------------------

class SafeScene(Scene):
    """One swath of a product: ``channels`` polarisations, calibrated, read by window as float32
    ``(C, h, w)`` linear intensity (0 where the product has no data, which preprocessing masks).

    Holds names and the LUTs, never a handle (it pickles into DataLoader workers): the GDAL dataset
    comes from the per-process cache of open files.
    """

    def __init__(self, product: str, swath: str, pols: Sequence[str], subdataset: str, indexes: Sequence[int],
                 height: int, width: int, squared: bool, luts: Sequence[CalibrationLUT] | None,
                 calibration: str, scene_id: str):
        self.path, self.swath, self.pols = product, swath, list(pols)
        self.subdataset, self.indexes = subdataset, [int(i) for i in indexes]
        self.height, self.width, self.channels = int(height), int(width), len(self.pols)
        self.squared, self.calibration = squared, calibration
        self.luts = None if luts is None else list(luts)
        self.id, self.group = scene_id, product  # the split keeps a product's swaths together

    def _open(self) -> Any:
        def opener() -> Any:
            import rasterio

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # NotGeoreferencedWarning: a product has GCPs only
                    return rasterio.open(self.subdataset)
            except Exception as exc:
                raise SarzooError(f"{self.path}: GDAL's SAFE driver cannot open swath {self.swath} "
                                  f"({describe(exc)})") from exc

        return _HANDLES.get(("safe", self.subdataset), opener, lambda src: src.close())

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        from rasterio.windows import Window

        self._check_window(row, col, h, w)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dn = self._open().read(self.indexes, window=Window(col, row, w, h)).astype(np.float64)
        except SarzooError:
            raise
        except Exception as exc:
            raise SarzooError(f"{self.path}: failed to read swath {self.swath} window (row={row}, col={col}, "
                              f"{h}x{w}): {describe(exc)}") from exc
        power = dn * dn if self.squared else dn  # GRD: amplitude DN; SLC: GDAL's |DN|² already
        if self.luts is not None:
            for k, lut in enumerate(self.luts):
                a = lut.gain(row, col, h, w)
                power[k] /= a * a
        return power.astype(np.float32)

    def __repr__(self) -> str:
        return (f"SafeScene({self.id!r}, {'+'.join(self.pols)}, {self.calibration}, "
                f"{self.height}x{self.width})")


def _measurement_size(product: _Product, m: Measurement) -> tuple[int, int]:
    """The measurement TIFF's own size, from its header (GDAL would read past a short one)."""
    import rasterio

    product.size(m.measurement)  # present and a regular file, before GDAL opens it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(product.gdal_path(m.measurement)) as src:
                return int(src.height), int(src.width)
    except Exception as exc:
        raise SarzooError(f"{product.where(m.measurement)}: cannot read the measurement TIFF "
                          f"({describe(exc)})") from exc


def _swath_scene(product: _Product, swath: str, units: list[Measurement], bands: Sequence[str] | None,
                 calibration: str, scene_id: str) -> SafeScene:
    path = product.path
    by_pol = {m.pol: m for m in units}
    pols = choose_bands(path, swath, list(by_pol), bands)
    chosen = [by_pol[p] for p in pols]
    types = sorted({m.product_type for m in chosen})
    if len(types) != 1 or types[0] not in UNITS:
        raise SarzooError(f"{path}: product type {'/'.join(types)}; sarzoo reads Level-1 GRD and SLC products")
    sizes = {}
    for m in chosen:
        check_scene_size(product.where(m.annotation), m.lines, m.samples)
        real = _measurement_size(product, m)
        if real != (m.lines, m.samples):
            raise SarzooError(f"{product.where(m.measurement)}: is {real[0]} × {real[1]} pixels but its annotation "
                              f"{m.annotation} says {m.lines} × {m.samples}: the product is broken")
        sizes[m.pol] = real
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{p} {h} × {w} ({by_pol[p].measurement})" for p, (h, w) in sizes.items())
        raise SarzooError(f"{path}: the measurement bands of swath {swath} differ in size ({listing}); their pixels "
                          f"do not match, so they cannot be one multi-channel scene; choose one with data.bands")
    luts: list[CalibrationLUT] | None = [] if CALIBRATIONS[calibration] is not None else None
    for m in chosen:
        if m.calibration is None:  # GDAL's driver, too, skips a measurement without one
            raise SarzooError(f"{path}: has no calibration tables (its {MANIFEST} names no s1Level1CalibrationSchema "
                              f"file for {m.measurement}); a Level-1 product has one per measurement, and GDAL's "
                              f"SAFE driver reads no measurement without it: the product is incomplete")
        cal = product.xml(m.calibration)  # well-formed, even for calibration: none (GDAL parses it)
        if luts is not None:
            luts.append(read_lut(cal, CALIBRATIONS[calibration], product.where(m.calibration), calibration))
    height, width = sizes[pols[0]]
    subdataset = f"SENTINEL1_CALIB:UNCALIB:{product.gdal_path(MANIFEST)}:{swath}:{UNITS[types[0]]}"
    scene = SafeScene(path, swath, pols, subdataset, [], height, width, squared=types[0] == "GRD", luts=luts,
                      calibration=calibration, scene_id=scene_id)
    src = scene._open()
    found = {(src.tags(i).get("POLARIZATION") or "").upper(): i for i in range(1, src.count + 1)}
    if any(p not in found for p in pols) or (src.height, src.width) != (height, width):
        raise SarzooError(f"{path}: GDAL's SAFE driver gives swath {swath} as {src.count} band(s) "
                          f"{sorted(found)} of {src.height} × {src.width}, not {'+'.join(pols)} of {height} × {width} "
                          f"as the annotations say: the product is inconsistent")
    scene.indexes = [found[p] for p in pols]
    return scene


def open_product(path: str, *, bands: Sequence[str] | None = None, calibration: str = "sigma0",
                 channels: int | None = None, domain: str = "intensity") -> list[Scene]:
    """The scenes of a product (one per swath), after checking everything but the pixels.

    ``bands`` (``data.bands``): polarisations in channel order, default all; ``calibration``
    (``data.calibration``); ``channels`` (``input.channels``): the scene must have that many;
    ``domain`` must be ``intensity``, which is what a product is read as.
    """
    path = str(path)
    if calibration not in CALIBRATIONS:
        raise SarzooError(f"{path}: data.calibration must be one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
    if domain != "intensity":
        raise SarzooError(f"{path}: a Sentinel-1 product is read as linear intensity (data.calibration: "
                          f"{calibration}), but data.domain is {domain!r}; set data.domain: intensity")
    product = _Product(path)
    try:
        check_driver(path)
        units = measurements(product)
        if any(m.swath.startswith("WV") for m in units):
            raise SarzooError(f"{path}: is a Wave-mode (WV) product of separate vignettes; sarzoo reads SM, IW and "
                              f"EW products")
        swaths = sorted({m.swath for m in units})
        scenes: list[SafeScene] = []
        for swath in swaths:
            scene_id = path if len(swaths) == 1 else f"{path}:{swath}"
            scenes.append(_swath_scene(product, swath, [m for m in units if m.swath == swath], bands, calibration,
                                       scene_id))
    finally:
        product.close()
    for s in scenes:
        if channels is not None and s.channels != channels:
            pols = "+".join(s.pols)
            fix = (f"choose {channels} with data.bands (e.g. data.bands: [{', '.join(s.pols[:channels])}])"
                   if s.channels > channels else f"train a {s.channels}-channel recipe")
            raise SarzooError(f"{path}: gives {s.channels} polarisation(s) ({pols}) but the recipe's input.channels "
                              f"is {channels}; {fix}")
    return list(scenes)
