"""Small synthetic Sentinel-1 SAFE products that GDAL's SAFE driver really reads, for the tests.

A product is what ESA ships, cut down: ``manifest.safe`` (an XFDU document whose Measurement Data
Units point, through ``dmdID``s and metadata objects, at their annotation and calibration XML),
one annotation XML per measurement (size, product type, polarisation, swath, pixel type), one
calibration XML with ``sigmaNought``/``betaNought``/``gamma``/``dn`` vectors at a few lines and
pixels, and the measurement TIFFs: uint16 amplitude digital numbers (GRD, zero columns at the swath
border) or CInt16 complex samples (SLC), stripped one row per strip like ESA's.

``reference_gain`` interpolates a LUT for one pixel the slow, obvious way, independently of
``sarzoo.data.calibration``, so the tests check the reader against ESA's formula, not itself.
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LUT_NAMES = ("sigmaNought", "betaNought", "gamma", "dn")
START, STOP = "2020-01-01T00:00:00.000000", "2020-01-01T00:00:10.000000"


@dataclass
class Product:
    path: Path
    #: (swath, pol) → the raw samples written (uint16 DN, or complex for SLC)
    samples: dict = field(default_factory=dict)
    #: (swath, pol) → {lut name: (lines, [pixels per vector], [values per vector])}
    luts: dict = field(default_factory=dict)


def _vectors(rng, h: int, w: int):
    """Vector lines spanning the image, a shared pixel grid except one vector with its own, and
    positive LUT values (amplitude gains of a few hundred, like ESA's)."""
    lines = sorted({0, h // 3, (2 * h) // 3, h - 1})
    grid = sorted({0, w // 5, w // 2, (4 * w) // 5, w - 1})
    other = sorted({0, w // 3, w - 1})
    pixels = [other if i == 1 else grid for i in range(len(lines))]
    luts = {name: [rng.uniform(150, 900, len(p)).round(4) for p in pixels] for name in LUT_NAMES}
    return lines, pixels, luts


def reference_gain(lut, r: int, c: int) -> float:
    """A at pixel (r, c): linear along each bracketing vector's pixels, then between the two lines."""
    lines, pixels, values = lut

    def along(i):
        px, v = pixels[i], values[i]
        if c <= px[0]:
            return v[0]
        if c >= px[-1]:
            return v[-1]
        j = max(k for k in range(len(px)) if px[k] <= c)
        t = (c - px[j]) / (px[j + 1] - px[j])
        return (1 - t) * v[j] + t * v[j + 1]

    if r <= lines[0]:
        return along(0)
    if r >= lines[-1]:
        return along(len(lines) - 1)
    i = max(k for k in range(len(lines)) if lines[k] <= r)
    t = (r - lines[i]) / (lines[i + 1] - lines[i])
    return (1 - t) * along(i) + t * along(i + 1)


def write_product(root: Path, *, pols=("VV", "VH"), shape=(30, 40), kind="GRD", swaths=None, sizes=None,
                  calibration=True, vectors=True, lut_names=LUT_NAMES, seed=0,
                  name="S1A_IW_GRDH_1SDV_20200101T000000_20200101T000010_000001_000001_ABCD.SAFE") -> Product:
    """Write a product folder under ``root``. ``sizes``: pol → (h, w) overriding ``shape`` (a broken
    product); ``calibration=False`` leaves the calibration files out of the manifest; ``vectors=False``
    writes calibration XML without a vector list; ``lut_names`` limits the LUTs written."""
    import rasterio

    rng = np.random.default_rng(seed)
    safe = Path(root) / name
    for d in ("measurement", "annotation/calibration"):
        (safe / d).mkdir(parents=True, exist_ok=True)
    swaths = swaths or (("IW",) if kind == "GRD" else ("IW1",))
    prod = Product(safe)
    units, meta, objs = [], [], []
    for swath in swaths:
        for pol in pols:
            h, w = (sizes or {}).get(pol, shape)
            tag = f"{swath.lower()}-{pol.lower()}"
            base = f"s1a-{tag}-{kind.lower()}-20200101t000000-20200101t000010-000001-000001-001"
            meas, ann, cal = (f"measurement/{base}.tiff", f"annotation/{base}.xml",
                              f"annotation/calibration/calibration-{base}.xml")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning
                if kind == "GRD":
                    a = rng.integers(1, 1000, (h, w)).astype(np.uint16)
                    a[:, :2] = 0  # swath border: no data
                    prof = dict(dtype="uint16")
                else:
                    a = (rng.integers(-300, 300, (h, w)) + 1j * rng.integers(-300, 300, (h, w))).astype(np.complex64)
                    prof = dict(dtype="complex_int16")
                with rasterio.open(safe / meas, "w", driver="GTiff", width=w, height=h, count=1, blockysize=1,
                                   **prof) as dst:
                    dst.write(a, 1)
            prod.samples[(swath, pol)] = a
            pixel_type = "16 bit Unsigned Integer" if kind == "GRD" else "16 bit Signed Integer"
            header = (f"<adsHeader><missionId>S1A</missionId><productType>{kind}</productType>"
                      f"<polarisation>{pol}</polarisation><mode>IW</mode><swath>{swath}</swath>"
                      f"<startTime>{START}</startTime><stopTime>{STOP}</stopTime><imageNumber>001</imageNumber>"
                      f"</adsHeader>")
            (safe / ann).write_text(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<product>{header}<imageAnnotation><imageInformation>'
                f"<numberOfSamples>{w}</numberOfSamples><numberOfLines>{h}</numberOfLines>"
                f"<outputPixels>{pixel_type}</outputPixels><rangePixelSpacing>10</rangePixelSpacing>"
                f"<azimuthPixelSpacing>10</azimuthPixelSpacing></imageInformation></imageAnnotation></product>\n")
            lines, pixels, luts = _vectors(rng, h, w)
            prod.luts[(swath, pol)] = {n: (lines, pixels, luts[n]) for n in LUT_NAMES}
            body = ""
            for i, line in enumerate(lines):
                px = pixels[i]
                body += (f"<calibrationVector><azimuthTime>2020-01-01T00:00:0{i}.000000</azimuthTime>"
                         f"<line>{line}</line><pixel count=\"{len(px)}\">{' '.join(map(str, px))}</pixel>")
                for n in lut_names:
                    body += f"<{n} count=\"{len(px)}\">{' '.join(f'{v:.4f}' for v in luts[n][i])}</{n}>"
                body += "</calibrationVector>"
            vec = f'<calibrationVectorList count="{len(lines)}">{body}</calibrationVectorList>' if vectors else ""
            (safe / cal).write_text(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<calibration>{header}<calibrationInformation>'
                f"<absoluteCalibrationConstant>1.0</absoluteCalibrationConstant></calibrationInformation>"
                f"{vec}</calibration>\n")
            dmd = f"product_{tag}" + (f" calibration_{tag}" if calibration else "")
            units.append(f'<xfdu:contentUnit unitType="Measurement Data Unit" repID="s1Level1MeasurementSchema" '
                         f'dmdID="{dmd}"><dataObjectPointer dataObjectID="measurement_{tag}"/></xfdu:contentUnit>')
            for kind_id, rep, href in (("product", "s1Level1ProductSchema", ann),
                                       ("calibration", "s1Level1CalibrationSchema", cal)):
                meta.append(f'<metadataObject ID="{kind_id}_{tag}" classification="DESCRIPTION" category="DMD">'
                            f'<dataObjectPointer dataObjectID="{kind_id}data_{tag}"/></metadataObject>')
                objs.append(f'<dataObject ID="{kind_id}data_{tag}" repID="{rep}"><byteStream mimeType="text/xml">'
                            f'<fileLocation locatorType="URL" href="./{href}"/></byteStream></dataObject>')
            objs.append(f'<dataObject ID="measurement_{tag}" repID="s1Level1MeasurementSchema"><byteStream '
                        f'mimeType="application/octet-stream"><fileLocation locatorType="URL" href="./{meas}"/>'
                        f'</byteStream></dataObject>')
    (safe / "manifest.safe").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" '
        'version="esa/safe/sentinel-1.0/sentinel-1/sar/level-1">\n<informationPackageMap>'
        '<xfdu:contentUnit unitType="SAFE Archive Information Package">' + "".join(units)
        + "</xfdu:contentUnit></informationPackageMap>\n<metadataSection>" + "".join(meta) + "".join(
            f'<metadataObject ID="{i}" classification="DESCRIPTION" category="DMD"/>'  # what GDAL looks up too
            for i in ("platform", "acquisitionPeriod", "processing", "measurementOrbitReference",
                      "measurementFrameSet"))
        + "</metadataSection>\n<dataObjectSection>" + "".join(objs) + "</dataObjectSection>\n</xfdu:XFDU>\n")
    return prod


def zip_product(product: Path, zip_path: Path, *, compress: bool = False) -> Path:
    """The product zipped as ESA ships it: its folder at the top of the archive."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(zip_path, "w", mode) as zf:
        for f in sorted(product.rglob("*")):
            zf.write(f, f.relative_to(product.parent).as_posix())
    return zip_path
