"""One rate–distortion report: checkpoints and classical codecs on the same images, as one JSON-ready dict.

Why it is built on ``sarzoo eval``'s pieces rather than beside them: a rate–distortion point is only
comparable with an evaluation if it measures the same pixels the same way. So the images are
``eval_data``'s (the checkpoint's validation scenes by default, ``--data`` files, ``--heldout``
scenes; the stored clip range), cut into eval's windows (``selection.pieces``), and every codec's
decoded image is measured with ``metrics.batch_metrics``, the call eval's ``figures`` makes: a model's
PSNR here is the PSNR ``sarzoo eval --no-patches`` prints for it, and the bicubic point at the
model's compression factor is eval's classical reference.

Every checkpoint must see the very images the first one sees (same scenes, windows and
preprocessing), or their points would not lie on one set of axes; a mismatch is refused.

The rate of a point is **bits per valid pixel over the whole data set**: the sum of the codec's
bits over every image divided by the sum of valid pixels (a pixel = one location, all its bands).
The distortion figures are the means over images, as eval's are.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import numpy as np

from sarzoo.errors import SarzooError

__all__ = ["DEFAULT_JP2_RATES", "DEFAULT_BICUBIC_FACTORS", "FIGURES", "CLEAN_FIGURES", "JP2_CURVE", "BICUBIC_CURVE",
           "rd_report"]

#: Target rates of JPEG 2000 (bits per pixel): from below a learned codec's usual range to beyond the
#: float latent of a 16×-compressing model (2 bpp).
DEFAULT_JP2_RATES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
#: Downsampling factors (per side) of the bicubic reference; 4 is eval's reference for 16× models.
DEFAULT_BICUBIC_FACTORS = (2.0, 3.0, 4.0, 6.0, 8.0)
#: Figures of every point (against the input), and against the clean truth on synthetic data.
FIGURES = ("psnr", "ssim", "enl_ratio", "epi")
CLEAN_FIGURES = ("psnr_clean", "ssim_clean", "epi_clean")
#: Names of the classical curves; BD figures of every model curve are against ``JP2_CURVE``.
JP2_CURVE = "JPEG 2000"
BICUBIC_CURVE = "bicubic"
#: BD figures are computed for these metrics (the ``_clean`` one where there is a clean truth).
BD_METRICS = ("psnr", "ssim", "psnr_clean")


class _Point:
    """One codec setting being measured: its codec function and the sums that make its figures."""

    def __init__(self, curve: str, codec: str, setting: dict[str, Any], fn: Callable[[Any, Any], tuple[Any, int]]):
        self.curve, self.codec, self.setting, self.fn = curve, codec, setting, fn
        self.bits = 0
        self.items: list[dict[str, Any]] = []


def rd_report(checkpoints: Sequence[str | os.PathLike] = (), data: Sequence[str] | None = None, *,
              curves: Sequence[tuple[str, Sequence[str | os.PathLike]]] = (), split: str | None = None,
              heldout: int | None = None, overrides: Sequence[str] = (),
              jp2_rates: Sequence[float] = DEFAULT_JP2_RATES,
              bicubic_factors: Sequence[float] = DEFAULT_BICUBIC_FACTORS, device: str = "auto",
              window: int | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything ``sarzoo rd`` reports, as one JSON-ready dict (non-finite values become None).

    ``checkpoints`` form curves by their recipe's name (all checkpoints of one recipe = one curve, a
    point each); ``curves`` are named curves given explicitly (``--curve NAME=CKPT,CKPT``). ``data``,
    ``split``, ``heldout`` and ``overrides`` select the images exactly as ``sarzoo eval`` does, from the
    first checkpoint. ``jp2_rates`` (target bits per pixel) and ``bicubic_factors`` (per side) are the
    classical points; either may be empty. Nothing is written; bad input raises ``SarzooError`` before
    any image is coded.
    """
    from sarzoo import checkpoint as ck
    from sarzoo import fastpath
    from sarzoo.device import pick_device
    from sarzoo.evaluation.selection import SCENE_WINDOW, eval_data
    from sarzoo.files import jsonable
    from sarzoo.rd import codecs

    say = progress or (lambda s: None)
    rates = _numbers(jp2_rates, "--jp2-rates", "a target rate in bits per pixel", low=0.0)
    factors = _numbers(bicubic_factors, "--bicubic-factors", "a downsampling factor per side", low=1.0)
    entries = _entries(checkpoints, curves, ck)
    if not entries:
        raise SarzooError("no checkpoint given: name one or more (sarzoo rd CKPT [CKPT ...] or --curve NAME=CKPT,...)")
    if rates:
        codecs.check_jp2()
    dev = pick_device(device)

    # the images: the first checkpoint's evaluation data; every other checkpoint must see the same
    loaded = []
    first = None
    for curve, path in entries:
        ckpt = ck.read(path)
        if ckpt.get("preprocessing") is None:
            raise SarzooError(f"{path}: is an untrained model file (`sarzoo build --output`): it has no fitted "
                              f"preprocessing to read the data with; train it first (`sarzoo train`)")
        ed = eval_data(ckpt, data, split, overrides, heldout=heldout)
        if first is None:
            first = (path, ed)
        else:
            _same_images(first, path, ed)
        name = curve or str(ckpt["recipe"].get("name") or "model")
        loaded.append((f"{name} (model)" if name in (JP2_CURVE, BICUBIC_CURVE) else name, path, ckpt, ed))
    ed = first[1]
    channels = int(ed.recipe["input"]["channels"])
    too_high = [r for r in rates if codecs.jp2_quality(r, channels) >= 100.0]
    if too_high:
        raise SarzooError(f"--jp2-rates {', '.join(f'{r:g}' for r in too_high)}: a target must stay below the "
                          f"uncompressed {codecs.JP2_SAMPLE_BITS * channels} bits per pixel of this "
                          f"{channels}-channel data")

    # the model tiles as eval's scene level does: on the evaluation's patch size (``--set
    # data.patch_size`` included), on which eval's windows (``selection.pieces``) are aligned
    points: list[_Point] = []
    meta = []
    for curve, path, ckpt, ced in loaded:
        model = ck.model_from_checkpoint(ckpt, dev)
        fastpath.for_inference(model, ced.recipe["runtime"], dev)
        info = {"checkpoint": str(path), "recipe": ckpt["recipe"].get("name"), "epoch": ckpt.get("epoch"),
                "step": ckpt.get("step"), "latent_shape": list(model.latent_shape),
                "compression_ratio": float(model.compression_ratio)}
        meta.append({**info, "curve": curve})
        points.append(_Point(curve, "model", info,
                             lambda x, m, model=model: codecs.model_roundtrip(model, x, m)))
    for r in rates:
        points.append(_Point(JP2_CURVE, "jpeg2000", {"target_bpp": r},
                             lambda x, m, r=r: codecs.jpeg2000(x, m, r)))
    for f in factors:
        points.append(_Point(BICUBIC_CURVE, "bicubic", {"factor": f, "kept_number_bits": codecs.KEPT_NUMBER_BITS},
                             lambda x, m, f=f: codecs.bicubic(x, m, f)))

    from sarzoo.inference.clips import ClipTally

    clips = ClipTally()
    valid, n_images, inputs = _measure(points, ed, window or SCENE_WINDOW, say, channels, clips)
    if valid == 0:
        raise SarzooError(f"no valid pixel in the data ({ed.description}): every pixel is no-data, so no rate "
                          f"per valid pixel exists; check the files and data.nodata")
    report: dict[str, Any] = {
        "checkpoints": meta,
        "data": {"source": ed.source, "split": ed.split, "description": ed.description, "paths": ed.config["paths"],
                 "n_scenes": len(ed.regions), "n_images": n_images, "valid_pixels": valid, "channels": channels,
                 "preprocessing": ed.preprocessing.to_dict()},
        "rate": "bits per valid pixel: a codec's bits summed over every image / the valid pixels summed",
        "curves": _curves(points, valid),
        "bd_anchor": JP2_CURVE,
        "warnings": clips.warn(ed.preprocessing),
    }
    if inputs:
        report["input"] = {k: _mean([it[k] for it in inputs]) for k in ("psnr", "ssim", "epi")}
    _add_bd(report)
    return jsonable(report)


def _numbers(values: Sequence[Any], flag: str, what: str, low: float) -> list[float]:
    """The distinct finite numbers above ``low`` of a flag, sorted; anything else refused, naming the flag."""
    out = []
    for v in values or ():
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise SarzooError(f"{flag}: {v!r} is not a number ({what})") from None
        if not math.isfinite(f) or f <= low:
            raise SarzooError(f"{flag}: {v!r} is not {what} above {low:g}")
        out.append(f)
    if len(set(out)) != len(out):
        raise SarzooError(f"{flag}: a value is given twice ({', '.join(f'{v:g}' for v in out)})")
    return sorted(out)


def _entries(checkpoints: Sequence[Any], curves: Sequence[tuple[str, Sequence[Any]]], ck: Any) -> list[tuple]:
    """``(curve name or None, resolved path)`` of every checkpoint, in order; a file given twice is refused."""
    out: list[tuple[str | None, Any]] = []
    seen: dict[str, str] = {}
    for name, paths in [(None, [p]) for p in checkpoints] + [(n, list(ps)) for n, ps in curves]:
        if name is not None and (not str(name).strip() or name in (JP2_CURVE, BICUBIC_CURVE)):
            raise SarzooError(f"--curve {name!r}: a curve needs a name of its own (not empty, "
                              f"'{JP2_CURVE}' or '{BICUBIC_CURVE}')")
        if name is not None and not paths:
            raise SarzooError(f"--curve {name}: names no checkpoint (NAME=CKPT,CKPT,...)")
        for p in paths:
            path = ck.resolve_path(p)
            key = os.path.realpath(path)
            if key in seen:
                raise SarzooError(f"{p}: the same checkpoint as {seen[key]}, given twice; each checkpoint is one "
                                  f"point of one curve")
            seen[key] = str(p)
            out.append((name, path))
    return out


def _signature(ed: Any) -> tuple:
    return ([(r.scene.id, r.row, r.col, r.height, r.width) for r in ed.regions], ed.preprocessing.to_dict(),
            {k: p.to_dict() for k, p in ed.scene_preprocessing.items()})


def _same_images(first: tuple[Any, Any], path: Any, ed: Any) -> None:
    """Refuse a checkpoint that would read other images than the first one (other channels, scenes,
    split or clip range): its points would not be comparable."""
    path0, ed0 = first
    c0, c = int(ed0.recipe["input"]["channels"]), int(ed.recipe["input"]["channels"])
    if c != c0:
        raise SarzooError(f"{path}: takes {c}-channel images, {path0} takes {c0}: the codecs of one report are "
                          f"measured on one set of images; report them separately")
    s0, s = _signature(ed0), _signature(ed)
    if s[0] != s0[0]:
        raise SarzooError(f"{path}: its evaluation data ({ed.description}) is not the images of {path0} "
                          f"({ed0.description}): the codecs of one report are measured on the same images; give "
                          f"them with --data, or report checkpoints trained on other data separately")
    if s[1:] != s0[1:]:
        raise SarzooError(f"{path}: reads the data with the clip range {ed.preprocessing.range_text()} "
                          f"({ed.preprocessing.domain}), {path0} with {ed0.preprocessing.range_text()} "
                          f"({ed0.preprocessing.domain}): their [0, 1] images differ, so their figures would not "
                          f"share axes; report them separately (or train both with one fixed data.clip range)")


def _measure(points: list[_Point], ed: Any, window: int, say: Callable[[str], None], channels: int,
             clips: Any) -> tuple[int, int, list[dict[str, Any]]]:
    """Code and measure every image with every point; ``(valid pixels, images measured, input-vs-clean
    figures)``. An image without a valid pixel is skipped (and not counted): it costs no codec
    anything and has no figure. ``clips`` (a ``ClipTally``) counts each file's clipped pixels, as
    ``sarzoo eval`` does: every codec's figures on saturated input mean little. Each scene is
    released after its window is read, so a memory-mapped ``.npy`` stays one window resident."""
    from sarzoo.data.dataset import clean_forward
    from sarzoo.evaluation.selection import pieces
    from sarzoo.metrics import band_names, batch_metrics

    tile = int(ed.config["patch_size"])
    todo = [p for reg in ed.regions for p in pieces(reg, window, tile)]
    n_models = sum(p.codec == "model" for p in points)
    say(f"images     {len(todo)} ({ed.description})")
    say(f"codecs     {n_models} model(s), {len(points) - n_models} classical point(s)")
    valid = measured = 0
    inputs: list[dict[str, Any]] = []
    for i, piece in enumerate(todo):
        prep = ed.prep_for(piece.scene.id)
        raw = piece.scene.read(piece.row, piece.col, piece.height, piece.width)
        piece.scene.release()
        x, m = prep.forward(raw)
        x = np.asarray(x, dtype=np.float32).reshape(channels, piece.height, piece.width)
        m = np.asarray(m, dtype=bool).reshape(x.shape)
        mask = m.all(axis=0)
        clips.add(piece.scene.group, x, m)
        if not mask.any():  # nothing to code or measure: no codec would spend bits on it
            continue
        clean = None
        if piece.scene.has_clean:
            clean = clean_forward(prep, piece.scene.read_clean(piece.row, piece.col, piece.height, piece.width)
                                  .reshape(x.shape), m)
        bands = band_names(channels, prep) if channels > 1 else None
        valid += int(mask.sum())
        measured += 1
        for p in points:
            y, bits = p.fn(x, mask)
            p.bits += int(bits)
            p.items.append(batch_metrics(x, y, m, prep, clean, bands=bands))
        if clean is not None:  # the speckled input itself against the clean truth, as eval measures it
            inputs.append(batch_metrics(clean, x, m, bands=bands))
        if (i + 1) % 25 == 0 or i + 1 == len(todo):
            say(f"           {i + 1}/{len(todo)} images")
    return valid, measured, inputs


def _mean(values: Sequence[float | None]) -> float | None:
    from sarzoo.evaluation.figures import mean_defined

    return mean_defined(values, [1.0] * len(values))


def _curves(points: list[_Point], valid: int) -> list[dict[str, Any]]:
    """Points grouped into curves (models first, in the order given; then JPEG 2000, bicubic), each
    curve's points sorted by rate."""
    curves: dict[str, dict[str, Any]] = {}
    for p in points:
        c = curves.setdefault(p.curve, {"name": p.curve, "codec": p.codec, "points": []})
        figs = {k: _mean([it.get(k) for it in p.items]) for k in FIGURES}
        if p.items and "psnr_clean" in p.items[0]:
            figs.update({k: _mean([it.get(k) for it in p.items]) for k in CLEAN_FIGURES})
        c["points"].append({**p.setting, "bits": p.bits, "bpp": p.bits / valid, **figs})
    for c in curves.values():
        c["points"].sort(key=lambda q: q["bpp"])
    return list(curves.values())


def _add_bd(report: dict[str, Any]) -> None:
    """BD-rate and BD-<metric> of every model curve against JPEG 2000 (``sarzoo.rd.curves``)."""
    from sarzoo.rd.curves import bd

    anchor = next((c for c in report["curves"] if c["name"] == JP2_CURVE), None)
    for c in report["curves"]:
        if c["codec"] != "model":
            continue
        c["bd"] = {}
        for k in BD_METRICS:
            if k not in c["points"][0]:
                continue
            if anchor is None:
                c["bd"][k] = {"bd_rate": None, "bd_value": None, "note": "n/a (no JPEG 2000 points: --jp2-rates)"}
                continue
            c["bd"][k] = bd([q["bpp"] for q in anchor["points"]], [q[k] for q in anchor["points"]],
                            [q["bpp"] for q in c["points"]], [q[k] for q in c["points"]],
                            rising_part=k.endswith("_clean"))
