"""The ``data:`` section's keys, declared once (``sarzoo.config.schema.SECTIONS`` assembles every
section). The longest section (files, bands, calibration, synthetic generator, clip range) in a
module of its own; checked like every key by ``sarzoo.config.values.check``.
"""

from __future__ import annotations

from sarzoo.config.field import Field

DATA: dict[str, Field] = {
    "paths": Field(
        "paths",
        "input files, directories (searched recursively) or globs; null = synthetic scenes",
        default=None,
        nullable=True,
    ),
    "domain": Field(
        "str",
        "what the files hold: 'intensity' (power), 'amplitude' (sqrt of intensity) or 'db'",
        default="intensity",
        choices=("intensity", "amplitude", "db"),
    ),
    "bands": Field(
        "list",
        "band (polarisation) names in channel order, e.g. [VV, VH]; its length is input.channels. Files named "
        "alike but for one band token (delimited by - _ or .; any case) form one scene; a Sentinel-1 product gives "
        "these polarisations; null = multi-band files as they are, every polarisation of a product (VV, VH or HH, HV)",
        default=None,
        nullable=True,
        item=Field("str", "a band (polarisation) name, e.g. VV"),
        min_items=1,
        max_items=64,
    ),
    "calibration": Field(
        "str",
        "radiometric calibration of a Sentinel-1 SAFE product, from its calibration LUTs: 'sigma0', 'beta0', "
        "'gamma0' (linear intensity), or 'none' (uncalibrated |DN|^2)",
        default="sigma0",
        choices=("sigma0", "beta0", "gamma0", "none"),
    ),
    "multilook": Field(
        "size2",
        "[azimuth, range] looks: block average of linear intensity, rows x columns, before preprocessing (complex "
        "SLC or real data); one integer = the same in both; null = none",
        default=None,
        nullable=True,
        min=1,
        max=64,
    ),
    "patch_size": Field(
        "int",
        "side in pixels of the square patches cut from each scene; null = the recipe's input.size (its smaller side)",
        default=None,
        nullable=True,
        min=8,
        max=16384,
    ),
    "stride": Field(
        "int",
        "step in pixels between patch origins (< patch_size overlaps); null = patch_size",
        default=None,
        nullable=True,
        min=1,
    ),
    "clip": Field(
        "section",
        "dB clip range before scaling to [0, 1]",
        children={
            "mode": Field(
                "str",
                "'percentile' (from the training scenes, streamed, per channel), 'fixed' (vmin/vmax) or "
                "'per_scene' (every scene's own low/high percentiles, refitted on each input at inference: "
                "uncalibrated data, no common radiometric scale)",
                default="percentile",
                choices=("percentile", "fixed", "per_scene"),
            ),
            "low": Field(
                "float",
                "lower percentile (0-100) of the dB values, for modes 'percentile' and 'per_scene'",
                default=1.0,
                min=0,
                max=100,
            ),
            "high": Field(
                "float",
                "upper percentile (0-100) of the dB values, for modes 'percentile' and 'per_scene'",
                default=99.0,
                min=0,
                max=100,
            ),
            "vmin": Field(
                "numbers", "lower clip bound in dB for mode 'fixed': one number, or a list of one per channel",
                default=-25.0,
            ),
            "vmax": Field(
                "numbers", "upper clip bound in dB for mode 'fixed': one number, or a list of one per channel",
                default=0.0,
            ),
        },
    ),
    "nodata": Field(
        "float",
        "raw value meaning no measurement; null = the file's own nodata (NaN, and 0 in the linear domains, are always "
        "no-data)",
        default=None,
        nullable=True,
    ),
    "min_valid": Field(
        "float", "patches with a smaller fraction (0-1) of valid pixels are skipped", default=0.5, min=0, max=1
    ),
    "val_fraction": Field(
        "float",
        "fraction (0 <= f < 1) of scenes held out for validation; split by scene",
        default=0.2,
        min=0,
        max=0.999,
    ),
    "augment": Field("bool", "random flips and 90-degree rotations of training patches", default=True),
    "synthetic": Field(
        "section",
        "synthetic scenes used when paths is null",
        children={
            "n_scenes": Field(
                "int", "number of synthetic scenes (train and validation together)", default=32, min=1, max=1000000
            ),
            "size": Field(
                "int",
                "side in pixels of each synthetic scene; null = 2 × patch_size",
                default=None,
                nullable=True,
                min=8,
                max=65536,
            ),
            "looks": Field(
                "range",
                "looks L of the speckle (each pixel Gamma(L): mean 1, variance 1/L; non-integer allowed): a number "
                "for every scene, or [low, high] drawn uniformly per scene",
                default=[1.0, 5.0], min=1, max=1000,
            ),
            "correlation": Field(
                "range",
                "speckle correlation: σ in px of the Gaussian amplitude point-spread function that filters each "
                "complex look (0 = white speckle); a number, or [low, high] drawn uniformly per scene",
                default=[0.0, 1.2], min=0, max=16,
            ),
            "texture": Field(
                "range",
                "shape ν of the Gamma texture of textured regions (K-distributed intensity; smaller = more "
                "heterogeneous, variance 1/ν): a number, or [low, high] drawn log-uniformly per region",
                default=[1.0, 10.0], min=1, max=1000,
            ),
            "texture_fraction": Field(
                "float", "chance that a land region (open water never is) is textured rather than homogeneous",
                default=0.5, min=0, max=1,
            ),
            "profile": Field(
                "str",
                "train (the keys above) or heldout (fixed parameters unlike the training ones, its own seed "
                "stream; looks/correlation/texture/texture_fraction are ignored: docs/data.md)",
                default="train", choices=("train", "heldout"),
            ),
        },
    ),
    "seed": Field("int", "seed of the synthetic scenes and of the train/validation split", default=0),
}
