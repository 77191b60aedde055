"""What an evaluation measures: the regions and patches of a checkpoint's data or of ``--data``
files, the preprocessing that reads them, and the windows a large scene is measured in.

Data and preprocessing follow the checkpoint: without ``--data`` the split the training used is
rebuilt from the stored ``data:`` section (same seed, same synthetic scenes), and the stored
clip range is used, never refitted (a refit on other data would change what the model sees) —
except for a checkpoint trained with ``clip.mode: per_scene``, whose model saw every scene in its
own range: each scene evaluated is then refitted the same way (``scene_preprocessing``).
``--heldout N`` swaps the data for N scenes of the synthetic generator's held-out profile, at the
checkpoint's scene size and seed: scenes unlike any the model trained on, to see how it transfers.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple, Sequence

from sarzoo.errors import SarzooError

__all__ = ["SCENE_WINDOW", "MAX_HELDOUT_SCENES", "EvalData", "eval_data", "Piece", "pieces"]

#: Largest side (px) of the piece of a scene reconstructed and measured at once; bounded memory.
SCENE_WINDOW = 2048
#: The most held-out scenes ``--heldout N`` accepts (they are generated and held in memory).
MAX_HELDOUT_SCENES = 100_000


class EvalData(NamedTuple):
    source: str           # "synthetic" | "files"
    split: str            # "val" | "train" | "all" | "heldout"
    regions: list
    patches: list
    config: dict
    description: str
    preprocessing: Any    # the stored one, with --set data.domain/nodata applied
    recipe: dict          # the checkpoint's recipe with --data/--heldout/--set applied (``config`` is its data)
    scene_preprocessing: dict = {}   # per_scene checkpoints: each scene's own, by scene id

    def prep_for(self, scene_id: str) -> Any:
        """The preprocessing that reads scene ``scene_id``."""
        return self.scene_preprocessing.get(scene_id, self.preprocessing)


def eval_data(ckpt: dict[str, Any], data: Sequence[str] | None = None, split: str | None = None,
              overrides: Sequence[str] = (), heldout: int | None = None) -> EvalData:
    """The regions (scenes or split parts of scenes) and patches to evaluate on, with the recipe
    they were resolved from (``eval_recipe``: bad overrides are refused here, before any model).

    Without ``data`` this is the checkpoint's own data, split exactly as training split it
    (``split_scenes`` with the stored seed); with ``data`` every scene of those files, whole; with
    ``heldout`` that many held-out synthetic scenes, whole.
    """
    from sarzoo.data.dataset import open_scenes, patches_of, scene_preprocessing
    from sarzoo.data.patches import Region, split_scenes

    _check_heldout(heldout, data, split)
    recipe = eval_recipe(ckpt, data, overrides, heldout)
    cfg = recipe["data"]
    synthetic = cfg["paths"] is None
    # the valid-pixel filter below must read values the way this evaluation will (e.g. zeros are
    # valid 0 dB after --set data.domain=db), so the overrides apply before it
    trained_on_files = (ckpt["recipe"].get("data") or {}).get("paths") is not None
    prep = _eval_prep(ckpt["preprocessing"], cfg, synthetic, overrides, trained_on_files)
    scenes = open_scenes(cfg, channels=int((ckpt["recipe"].get("input") or {}).get("channels") or 1))
    if data or heldout:
        split = "heldout" if heldout else "all"
        regions = [Region.whole(s) for s in scenes]
    else:
        split = split or "val"
        train, val = split_scenes(scenes, cfg["val_fraction"], cfg["seed"])
        regions = {"val": val, "train": train, "all": train + val}[split]
        if not regions:
            raise SarzooError(f"the checkpoint's data has no {split} scenes (data.val_fraction = "
                              f"{cfg['val_fraction']}); use --split train/all or --data")
    patches = patches_of(regions, cfg, prep)
    per_scene = scene_preprocessing([r.scene for r in regions], prep)[0] if prep.per_scene else {}
    if synthetic:
        syn = cfg["synthetic"]
        size = f"{syn['n_scenes']} scenes {syn['size']}×{syn['size']} (seed {cfg['seed']}"
        if heldout:
            desc = f"synthetic SAR, held-out profile: {size}; docs/data.md)"
        elif syn["profile"] == "heldout":
            desc = f"synthetic SAR, held-out profile, {split} split of {size})"
        else:
            looks = syn["looks"]
            looks = f"{looks:g}" if isinstance(looks, (int, float)) else f"{looks[0]:g}–{looks[1]:g}"
            desc = f"synthetic SAR, {split} split of {size}, {looks} looks)"
    else:
        more = " …" if len(cfg["paths"]) > 3 else ""
        desc = (f"{len(scenes)} scene(s) from " + ", ".join(cfg["paths"][:3]) + more
                + ("" if data else f" ({split} split)"))
    return EvalData("synthetic" if synthetic else "files", split, regions, patches, cfg, desc, prep, recipe,
                    per_scene)


def _check_heldout(heldout: int | None, data: Sequence[str] | None, split: str | None) -> None:
    if heldout is None:
        return
    if isinstance(heldout, bool) or not isinstance(heldout, int) or not 1 <= heldout <= MAX_HELDOUT_SCENES:
        raise SarzooError(f"--heldout takes a count of scenes from 1 to {MAX_HELDOUT_SCENES}, got {heldout!r}")
    if data:
        raise SarzooError("--heldout evaluates generated held-out scenes; it cannot be combined with --data")
    if split is not None:
        raise SarzooError("--heldout evaluates whole generated scenes; it cannot be combined with --split")


def eval_recipe(ckpt: dict[str, Any], data: Sequence[str] | None, overrides: Sequence[str],
                heldout: int | None = None) -> dict[str, Any]:
    """The checkpoint's recipe with ``--data`` and ``--set data.KEY=VALUE`` / ``runtime.KEY=VALUE``
    applied: the stored recipe goes through the same resolution as a recipe file, overrides and all.
    With ``heldout``: its data becomes that many scenes of the synthetic held-out profile, at the
    stored scene size (``data.synthetic.size``) and seed, whatever the checkpoint trained on.
    ``heldout`` is checked by the caller (``eval_data``)."""
    from sarzoo import config
    from sarzoo.config.source import normalise_overrides

    overrides = list(overrides or [])
    for key, _ in normalise_overrides(overrides):
        if key.split(".")[0] not in ("data", "runtime") or "." not in key:
            raise SarzooError(f"--set {key}: only data.KEY=VALUE and runtime.KEY=VALUE overrides apply to "
                              f"evaluation (the model and its training settings are fixed by the checkpoint)")
    extra = None
    if data:
        extra = {"data.paths": [os.path.abspath(os.path.expanduser(p)) if not any(ch in p for ch in "*?[") else p
                                for p in data]}
    elif heldout:
        extra = {"data.paths": None, "data.synthetic.profile": "heldout", "data.synthetic.n_scenes": heldout}
    source = f"recipe stored in {ckpt.get('_path', 'the checkpoint')}"
    return config.load_with_origins(ckpt["recipe"], overrides, extra=extra, source=source).recipe


def _eval_prep(stored: dict[str, Any], cfg: dict[str, Any], synthetic: bool, overrides: Sequence[str],
               trained_on_files: bool = False):
    """The stored preprocessing; ``--set data.domain/nodata`` change how raw values are read, never the clip."""
    from sarzoo.data.preprocess import Preprocessing

    d = dict(stored)
    keys = {o.split("=", 1)[0].strip() for o in overrides or []}
    if synthetic and (stored.get("domain") != "intensity" or trained_on_files):
        # --heldout on a checkpoint trained on files: synthetic scenes are linear intensity without a
        # nodata value, whatever those files held; the clip range stays the stored one
        d["domain"], d["nodata"] = "intensity", None
    elif "data.domain" in keys and not synthetic:
        d["domain"] = cfg["domain"]
    if "data.nodata" in keys:
        d["nodata"] = cfg["nodata"]
    return Preprocessing.from_dict(d)


# --- windows of a scene ------------------------------------------------------------------------

class Piece(NamedTuple):
    """A window of a scene measured as one image."""

    id: str
    scene: Any
    row: int
    col: int
    height: int
    width: int


def _cuts(length: int, win: int, tile: int) -> list[tuple[int, int]]:
    """``(start, size)`` along one axis: every ``win`` px, a remainder shorter than a tile merged
    into the window before it (so every window but a lone small scene holds at least one tile)."""
    starts = list(range(0, length, win))
    if len(starts) > 1 and length - starts[-1] < tile:
        starts.pop()
    return [(s, (starts[i + 1] if i + 1 < len(starts) else length) - s) for i, s in enumerate(starts)]


def pieces(region: Any, window: int, tile: int) -> list[Piece]:
    """Split a region into windows of about ``window`` px whose sizes are multiples of ``tile``.

    Why multiples, and why a short remainder is merged: then the tiles of every window are exactly
    the tiles the whole scene would get (multiples of the tile plus one flush with the far edge),
    so reconstructing window by window changes nothing but the memory used.
    """
    win = max(tile, (window // tile) * tile)
    sc = region.scene
    rows, cols = _cuts(region.height, win, tile), _cuts(region.width, win, tile)
    out = []
    for r, h in rows:
        for c, w in cols:
            r0, c0 = region.row + r, region.col + c
            whole = (r0, c0, h, w) == (0, 0, *sc.shape)
            out.append(Piece(sc.id if whole else f"{sc.id}[{r0}:{r0 + h}, {c0}:{c0 + w}]", sc, r0, c0, h, w))
    return out
