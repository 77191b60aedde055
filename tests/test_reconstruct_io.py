"""Where reconstructions are written when things go wrong, and what stays in memory on the way.

A full disk is simulated with a file-size limit (``RLIMIT_FSIZE``) in a subprocess, SIGXFSZ ignored
so that a write past it fails with EFBIG as a write to a full disk fails with ENOSPC. Every failure
must be one paragraph with exit status 2, nothing under the output's name and no temporary file.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests._reconstruct_common import speckled, train_tiny, write_geotiff
from tests._train_common import sarzoo_cmd, subprocess_env

rasterio = pytest.importorskip("rasterio")

#: The file-size cap: far below the outputs written under it.
LIMIT = 30_000


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("recon_io") / "run", 10)


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))


def _capped():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def run_capped(args, timeout=240) -> subprocess.CompletedProcess:
    """A command under the file-size cap (ignored SIGXFSZ: writes past it fail with EFBIG)."""
    return subprocess.run(args, capture_output=True, text=True, env=subprocess_env(), timeout=timeout,
                          preexec_fn=_capped)


def _refused(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "cannot write" in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


# --- a full disk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("side", [150, 300])
def test_geotiff_that_cannot_be_written_is_refused_and_leaves_nothing(ckpt, tmp_path, side):
    """150 px: every block fits GDAL's cache and the failure comes at close, which rasterio does not
    report (the truncated file used to be renamed into place with exit 0); 300 px: the write itself fails
    (it used to be a traceback)."""
    src = write_geotiff(tmp_path / "s.tif", speckled(side, side, seed=side))
    out = tmp_path / "o.tif"
    r = run_capped(sarzoo_cmd(["reconstruct", ckpt, src, out, "--overlap", 0]))
    _refused(r, str(out))
    assert not out.exists() and leftovers(tmp_path) == []


def test_npy_that_cannot_be_written_fails_before_any_tile(ckpt, tmp_path):
    np.save(tmp_path / "s.npy", speckled(150, 150))
    out = tmp_path / "o.npy"
    r = run_capped(sarzoo_cmd(["reconstruct", ckpt, tmp_path / "s.npy", out, "--overlap", 0, "--json"]))
    _refused(r, f"{out}: cannot write (File too large)")
    assert r.stdout == "" and not out.exists() and leftovers(tmp_path) == []


def test_eval_save_images_reports_a_failed_write(tmp_path):
    """``sarzoo eval --save-images`` writes through the same sink (``SceneWriter``): the same check."""
    src = write_geotiff(tmp_path / "s.tif", speckled(150, 150))
    code = ("import sys\n"
            "from pathlib import Path\n"
            "import numpy as np\n"
            "from sarzoo.data.preprocess import Preprocessing\n"
            "from sarzoo.data.readers import open_file\n"
            "from sarzoo.errors import SarzooError\n"
            "from sarzoo.evaluation.outputs import SceneWriter\n"
            "scene = open_file(sys.argv[1])[0]\n"
            "w = SceneWriter(Path(sys.argv[2]), 0, scene, Preprocessing(vmin=-30.0, vmax=5.0))\n"
            "import rasterio\n"
            "try:\n"
            "    with rasterio.Env(GDAL_CACHEMAX=2 ** 27):   # the block stays in the cache until close\n"
            "        w.write(0, 0, np.random.default_rng(0).random((1, 150, 150), dtype=np.float32), "
            "np.ones((1, 150, 150), bool))\n"
            "        w.close()\n"
            "except SarzooError as exc:\n"
            "    w.abort()\n"
            "    print(exc)\n"
            "    sys.exit(2)\n")
    (tmp_path / "imgs").mkdir()
    r = run_capped([sys.executable, "-c", code, str(src), str(tmp_path / "imgs")])
    assert r.returncode == 2 and "cannot write" in r.stdout, (r.stdout, r.stderr)
    assert list((tmp_path / "imgs").iterdir()) == []


def test_npy_writes_loop_over_short_writes_and_report_errors(tmp_path, monkeypatch):
    """``pwrite`` may write less than asked: the rest is written; an error is one ``SarzooError``."""
    from sarzoo.errors import SarzooError
    from sarzoo.inference.rasters import NpySink

    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, at: real(fd, bytes(data)[:7], at))
    a = np.random.default_rng(0).random((2, 30, 40), dtype=np.float32)
    sink = NpySink(tmp_path / "o.npy", 30, 40, 2)
    sink.write(0, 0, a[:, :, :40])
    sink.write(0, 0, a[:, :20, :25])      # a block narrower than the array: row by row
    sink.write(0, 25, a[:, :20, 25:])
    sink.write(20, 0, a[:, 20:])
    sink.commit()
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), a)

    def full(fd, data, at):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    sink = NpySink(tmp_path / "p.npy", 30, 40, 2)
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(SarzooError, match=r"p\.npy: cannot write \(No space left on device\)"):
        sink.write(0, 0, a)
    sink.abort()
    assert not (tmp_path / "p.npy").exists() and leftovers(tmp_path) == []


# --- temporary files ----------------------------------------------------------------------------

def test_a_failure_while_opening_or_before_the_first_block_leaves_no_temporary_file(ckpt, tmp_path, monkeypatch):
    from sarzoo.errors import SarzooError
    from sarzoo.inference import rasters, seams
    from sarzoo.inference.run import reconstruct_file

    src = write_geotiff(tmp_path / "s.tif", speckled(64, 64))

    def refuse(*a, **k):
        raise SarzooError("no tags today")

    monkeypatch.setattr(rasters, "sarzoo_tags", refuse)   # inside GeoTiffSink's constructor
    with pytest.raises(SarzooError, match="no tags today"):
        reconstruct_file(ckpt, src, tmp_path / "o.tif", device="cpu")
    assert leftovers(tmp_path) == [] and not (tmp_path / "o.tif").exists()
    monkeypatch.undo()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(seams.SeamMeter, "__init__", interrupted)   # between opening the output and the first block
    with pytest.raises(KeyboardInterrupt):
        reconstruct_file(ckpt, src, tmp_path / "o.tif", device="cpu", seams=True)
    assert leftovers(tmp_path) == [] and not (tmp_path / "o.tif").exists()


# --- georeferencing and no-data -------------------------------------------------------------------

def test_a_transform_without_a_crs_is_kept(ckpt, tmp_path):
    from sarzoo.inference.run import reconstruct_file

    transform = rasterio.Affine.from_gdal(1000, 10, 0, 2000, 0, -10)
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=64, width=80, count=1, dtype="float32",
                       transform=transform) as dst:
        dst.write(speckled(64, 80), 1)
    reconstruct_file(ckpt, tmp_path / "s.tif", tmp_path / "o.tif", device="cpu")
    with rasterio.open(tmp_path / "o.tif") as o:
        assert o.crs is None and o.transform == transform


def test_eval_save_images_writes_no_data_as_reconstruct_does(ckpt, tmp_path):
    """The input's declared nodata value at the no-data pixels, declared in the file, in both."""
    from sarzoo.evaluation import evaluate
    from sarzoo.inference.run import reconstruct_file

    a = speckled(96, 80, seed=3)
    a[:20, :30] = -9999.0
    src = write_geotiff(tmp_path / "s.tif", a, nodata=-9999.0)
    rep = evaluate(ckpt, [str(src)], patches=False, device="cpu", save_images=tmp_path / "imgs")
    reconstruct_file(ckpt, src, tmp_path / "r.tif", device="cpu", overlap=0)
    with rasterio.open(rep["scenes"]["images"][0]["reconstruction"]) as e, rasterio.open(tmp_path / "r.tif") as r:
        assert e.nodata == r.nodata == -9999.0
        ev, rv = e.read(1), r.read(1)
    assert (ev[:20, :30] == -9999.0).all() and not np.isnan(ev).any()
    np.testing.assert_allclose(ev, rv, rtol=1e-6)


# --- memory: a memory-mapped scene is released after every block ---------------------------------

class _Mapped:
    """A scene that counts the blocks read since it was last released (a memory map's resident pages)."""

    def __init__(self, a):
        from sarzoo.data.readers import MemoryScene

        self.inner = MemoryScene("mapped", a)
        self.id = self.group = "mapped"
        self.channels, self.height, self.width = self.inner.channels, self.inner.height, self.inner.width
        self.shape = (self.height, self.width)
        self.has_clean, self.held, self.most = False, 0, 0

    def read(self, *window):
        self.held += 1
        self.most = max(self.most, self.held)
        return self.inner.read(*window)

    def release(self):
        self.held = 0


def test_streaming_passes_release_the_scene_after_every_block():
    from sarzoo.data.dataset import region_blocks, scene_preprocessing
    from sarzoo.data.patches import Region
    from sarzoo.data.preprocess import Preprocessing

    scene = _Mapped(speckled(100, 90))
    assert sum(1 for _ in region_blocks([Region.whole(scene)], block=32)) == 12
    assert scene.most == 1
    prep = Preprocessing(mode="per_scene", low=1.0, high=99.0)
    assert scene_preprocessing([scene], prep)[0]["mapped"].vmin is not None and scene.most == 1


def test_rd_releases_every_scene_after_its_window(tmp_path, monkeypatch):
    from sarzoo.data.arrays import ArrayScene
    from sarzoo.rd import rd_report
    from tests.test_rd import make_ckpt

    np.save(tmp_path / "s.npy", speckled(80, 70))
    released = []
    monkeypatch.setattr(ArrayScene, "release", lambda self: released.append(self.id))
    rep = rd_report([make_ckpt(tmp_path / "m.pt")], [str(tmp_path / "s.npy")], jp2_rates=[], bicubic_factors=[],
                    device="cpu", window=32)
    assert rep["data"]["n_images"] == len(released) == 4    # 80 × 70 in windows of 32 (remainders merged): 2 × 2
