"""The codecs a rate–distortion report compares: JPEG 2000, downsample + bicubic, and a model.

Every codec here has one shape, so the report treats them alike: it takes one image exactly as the
model sees it (``x01``: ``(C, H, W)`` float32 in [0, 1], no-data already filled; ``mask``: ``(H, W)``
bool, True = valid) and returns ``(x01_hat, bits)``: the decoded image, ``(C, H, W)`` float32 in
[0, 1], and the bits its coded form takes. The rate of a codec point is then the sum of ``bits``
over the data set divided by the sum of valid pixels (``sarzoo.rd.run``).

Why these choices (docs/rd.md says the same for users):

- **JPEG 2000** codes the very [0, 1] dB-domain image the model is fed, quantised to 16-bit
  unsigned integers (an error of at most 7.6e-6, about 107 dB PSNR: nothing measured moves), with GDAL's
  JP2OpenJPEG driver (OpenJPEG, through rasterio, in memory). The rate is the length of the bytes
  it produced: a raw J2K codestream (``CODEC=J2K``: no JP2 boxes, no GeoJP2/GMLJP2 metadata), so the
  count is what a JPEG 2000 coder needs, headers included. No-data pixels are filled with the mean of
  the image's valid pixels before coding: a flat area costs next to nothing and draws no edge for the
  wavelet to spend bits on; they are excluded from every metric anyway.
- **Downsample + bicubic** is eval's classical reference (``sarzoo.metrics.classical_reference``) at
  several factors; its rate is the numbers it keeps × 16 bits (counted, not applied: rounding the
  kept [0, 1] means to 16 bits moves the output by at most ~1e-5, so 32-bit floats would only inflate
  its rate).
- **A model** goes through ``_model_roundtrip``, the one adapter to ``sarzoo.codec.roundtrip``.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from sarzoo.errors import SarzooError, first_line

__all__ = ["JP2_DRIVER", "JP2_SAMPLE_BITS", "KEPT_NUMBER_BITS", "check_jp2", "jp2_encode", "jp2_decode",
           "jp2_quality", "jp2_resolutions", "jpeg2000", "bicubic", "bicubic_kept", "model_roundtrip"]

#: GDAL's OpenJPEG-based JPEG 2000 driver (bundled with rasterio's wheels).
JP2_DRIVER = "JP2OpenJPEG"
#: JPEG 2000 codes the [0, 1] image at this many bits per sample.
JP2_SAMPLE_BITS = 16
#: Wavelet resolution levels: OpenJPEG's own default (5 decompositions). GDAL picks far fewer for a small
#: image, which is unfair to JPEG 2000: on a 128 px synthetic scene at a 0.8 bpp target GDAL's default gave
#: 0.79 bpp at 20.6 dB PSNR, 6 levels 0.75 bpp at 24.5 dB.
JP2_MAX_RESOLUTIONS = 6
#: The bicubic reference's rate: bits per number it keeps.
KEPT_NUMBER_BITS = 16


def check_jp2() -> None:
    """Refuse, in one paragraph, when this GDAL has no JPEG 2000 writer (a rasterio build without
    OpenJPEG, or ``GDAL_SKIP`` naming it)."""
    import rasterio

    with rasterio.Env() as env:
        drivers = env.drivers()
    if JP2_DRIVER not in drivers:
        raise SarzooError(f"JPEG 2000 is not available: the GDAL bundled with rasterio {rasterio.__version__} "
                          f"(GDAL {rasterio.__gdal_version__}) has no {JP2_DRIVER} driver (a build without "
                          f"OpenJPEG, or GDAL_SKIP names it). Install rasterio's own wheel (`pip install "
                          f"--force-reinstall rasterio`), or unset GDAL_SKIP")


def jp2_quality(rate: float, channels: int) -> float:
    """GDAL's ``QUALITY`` for a target of ``rate`` bits per pixel: the output size as a percentage of
    the uncompressed 16-bit image (``channels`` × 16 bits per pixel)."""
    return 100.0 * rate / (JP2_SAMPLE_BITS * channels)


def jp2_resolutions(height: int, width: int) -> int:
    """Resolution levels for an image: OpenJPEG's default, fewer where a side is too short to halve."""
    return max(1, min(JP2_MAX_RESOLUTIONS, int(math.log2(max(1, min(height, width)))) - 1))


def _filled(x01: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x01`` with every no-data pixel set to its channel's mean over the valid pixels (0.5 if none)."""
    m = np.asarray(mask, dtype=bool)
    if m.all():
        return x01
    out = np.array(x01, dtype=np.float32, copy=True)
    for c in range(out.shape[0]):
        out[c][~m] = float(out[c][m].mean()) if m.any() else 0.5
    return out


def jp2_encode(x01: np.ndarray, mask: np.ndarray, rate: float) -> bytes:
    """The J2K codestream of ``x01`` (``(C, H, W)`` in [0, 1]) at a target of ``rate`` bits per pixel."""
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.io import MemoryFile

    c, h, w = x01.shape
    q = np.round(np.clip(_filled(x01, mask), 0.0, 1.0) * (2 ** JP2_SAMPLE_BITS - 1)).astype(np.uint16)
    opts = {"QUALITY": f"{jp2_quality(rate, c):.6g}", "REVERSIBLE": "NO", "RESOLUTIONS": str(jp2_resolutions(h, w)),
            "CODEC": "J2K", "GMLJP2": "NO", "GeoJP2": "NO", "YCC": "NO", "NBITS": str(JP2_SAMPLE_BITS)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile() as mf:
                with mf.open(driver=JP2_DRIVER, width=w, height=h, count=c, dtype="uint16", **opts) as ds:
                    ds.write(q)
                return bytes(mf.read())
    except RasterioError as exc:
        raise SarzooError(f"JPEG 2000 ({JP2_DRIVER}) could not code a {c}×{h}×{w} image at {rate:g} bpp: "
                          f"{first_line(exc)}") from None


def jp2_decode(data: bytes) -> np.ndarray:
    """A J2K codestream back to ``(C, H, W)`` float32 in [0, 1]."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(data) as mf, mf.open() as ds:
            q = ds.read()
    return (q.astype(np.float32) / np.float32(2 ** JP2_SAMPLE_BITS - 1)).astype(np.float32)


def jpeg2000(x01: np.ndarray, mask: np.ndarray, rate: float) -> tuple[np.ndarray, int]:
    """JPEG 2000 at a target of ``rate`` bits per pixel: the decoded image and the codestream's bits
    (its real length: targets below a small image's header floor all give that floor)."""
    data = jp2_encode(x01, mask, rate)
    return jp2_decode(data), 8 * len(data)


def bicubic_kept(shape: tuple[int, int, int], factor: float) -> tuple[int, int]:
    """``(latent_numel, kept)`` of the reference at ``factor``: the count ``classical_reference`` is
    asked for (as eval asks: numbers / compression, compression = factor²) and the count it keeps."""
    from sarzoo.metrics import reference_size

    c = shape[0]
    latent_numel = max(1, round(math.prod(shape) / factor ** 2))
    h, w = reference_size(tuple(shape), latent_numel)
    return latent_numel, c * h * w


def bicubic(x01: np.ndarray, mask: np.ndarray, factor: float) -> tuple[np.ndarray, int]:
    """Area-downsample by ``factor`` per side, bicubic back (eval's classical reference); bits = the
    numbers kept × ``KEPT_NUMBER_BITS``. ``mask`` is unused: the reference sees the image as the model does."""
    from sarzoo.metrics import classical_reference

    latent_numel, kept = bicubic_kept(x01.shape, factor)
    return classical_reference(x01, latent_numel).astype(np.float32, copy=False), kept * KEPT_NUMBER_BITS


def model_roundtrip(model: Any, x01: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """A model's decoded image and bits for one image: ``sarzoo.codec.roundtrip``'s contract, ``(C, H, W)``
    float32 in [0, 1] as ``sarzoo decode`` would produce it, and the total bits of the coded latents."""
    y, bits = _model_roundtrip(model, x01, mask)
    y = np.asarray(y, dtype=np.float32).reshape(x01.shape)
    return y, int(bits)


def _model_roundtrip(model: Any, x01: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The one adapter to the bitstream codec: what ``sarzoo decode`` gives back and the bits
    ``sarzoo encode`` writes for the image's tiles (no-data tiles cost nothing; the fixed header
    is left out, as a per-file constant). The codec tiles on the model's training patch size (its
    file format records that grid), which is eval's too unless ``--set data.patch_size`` overrides it."""
    from sarzoo.codec import roundtrip

    return roundtrip(model, x01, mask)
