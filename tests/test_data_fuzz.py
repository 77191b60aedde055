"""Hostile data files: each ends in scenes that read, or one clean ``SarzooError`` naming the file,
within a time bound and a memory bound, never a traceback, a hang or gigabytes of memory.

Every case runs in one worker subprocess (started once per module) under ``RLIMIT_AS``: a reader
that decompresses a zip bomb or allocates a declared-huge raster dies of ``MemoryError`` there
instead of taking the test machine with it, and a reader that blocks on a FIFO is killed after
``TIME_LIMIT`` seconds. The worker reports each case's outcome, time and growth of its peak RSS.
The cases are real files: ``.npy``/``.npz`` written by numpy (then truncated or edited), GeoTIFFs
written by rasterio, a real FIFO, ``/dev/zero``, directories.

CI runs the default profile (a few hundred cases); ``--hypothesis-profile=deep`` runs many more.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

rasterio = pytest.importorskip("rasterio")

#: Seconds one case may take (open, then a few windowed reads), and peak-RSS growth allowed.
TIME_LIMIT = 5.0
RSS_LIMIT_MIB = 300
#: Address space the worker may add to what it holds after its imports.
AS_HEADROOM = 1536 * 2**20

WORKER = textwrap.dedent(r"""
    import json, os, resource, sys, time, traceback
    import numpy as np
    import rasterio  # noqa: F401  (imported before the limit: GDAL maps its libraries here)
    from sarzoo.data.readers import open_sources
    from sarzoo.errors import SarzooError

    vm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                vm = int(line.split()[1]) * 1024
    limit = vm + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        out = {}
        try:
            scenes = open_sources(case["paths"], channels=case.get("channels", 1), **case.get("options", {}))
            for s in scenes[:3]:  # a window at each corner: reads stay windowed
                for r, c in ((0, 0), (max(0, s.height - 64), max(0, s.width - 64))):
                    a = s.read(r, c, min(64, s.height - r), min(64, s.width - c))
                    assert a.dtype == np.float32
            out = {"status": "ok", "n_scenes": len(scenes)}
        except SarzooError as exc:
            out = {"status": "error", "message": str(exc)}
        except BaseException as exc:
            out = {"status": "bug", "message": "".join(traceback.format_exception(exc))}
        out["seconds"] = time.perf_counter() - t0
        out["rss_growth_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(json.dumps(out), flush=True)
""")


class Worker:
    def __init__(self):
        self.proc = None

    def start(self):
        env = dict(os.environ, GDAL_CACHEMAX="64", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(AS_HEADROOM)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(self._line(60.0))["ready"]

    def _line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"no answer within {timeout} s: the reader hangs")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            raise AssertionError(f"the worker died (exit status {code})")
        return line

    def run(self, paths, channels=1, options=None) -> dict:
        if self.proc is None:
            self.start()
        case = {"paths": [str(p) for p in paths], "channels": channels, "options": options or {}}
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line(TIME_LIMIT))

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def check(worker, path, *, channels=1, expect=None, name=None, options=None) -> dict:
    """Run one case and assert its outcome: ok, or a SarzooError naming the file; time and memory bounded.
    ``options``: the ``data:`` keys ``open_sources`` takes (``multilook``, ``bands``, ``calibration``, ``domain``)."""
    res = worker.run([path], channels=channels, options=options)
    assert res["status"] != "bug", res["message"]
    assert res["seconds"] < TIME_LIMIT, res
    assert res["rss_growth_mib"] < RSS_LIMIT_MIB, res
    if res["status"] == "error":
        assert str(name or path) in res["message"], res["message"]
        assert "\n" not in res["message"].strip(), res["message"]
    if expect is not None:
        assert res["status"] == expect, res
    return res


# --- strategies -------------------------------------------------------------------------------

NPY_DTYPES = ["<f4", ">f4", "<f8", "<f2", "|u1", "<i2", "<u2", "<i4", "<i8", "<c8", "<c16", "|b1", "<U3", "|S2",
              "|O", "<M8[s]", [("a", "<f4"), ("b", "<i2")]]
shapes = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)


@st.composite
def arrays(draw):
    dt = np.dtype(draw(st.sampled_from(NPY_DTYPES)))
    shape = draw(shapes)
    n = int(np.prod(shape)) if shape else 1
    if dt.kind == "O":
        a = np.empty(shape, dtype=object)
        a.ravel()[...] = [None] * n
    elif dt.kind in "USM" or dt.fields:
        a = np.zeros(shape, dtype=dt)
    else:
        value = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"), 0.0]))
        vals = draw(st.lists(value, min_size=n, max_size=n))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.asarray(vals, dtype=np.float64).reshape(shape).astype(dt)
    return a


damage = st.one_of(st.none(), st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
                   st.tuples(st.just("flip"), st.floats(0.0, 0.999), st.integers(1, 255)))


def apply_damage(path: Path, how) -> None:
    if how is None:
        return
    data = bytearray(path.read_bytes())
    if not data:
        return
    i = int(how[1] * len(data))
    if how[0] == "truncate":
        data = data[:i]
    else:
        data[i] ^= how[2]
    path.write_bytes(bytes(data))


_counter = iter(range(10**9))


def fresh(tmp_dir: Path, suffix: str) -> Path:
    d = tmp_dir / f"case{next(_counter)}"
    d.mkdir()
    return d / f"data{suffix}"


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


looks = st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=2, max_size=2))


@FUZZ
@given(a=arrays(), how=damage, multilook=looks)
def test_npy_files(worker, tmp_path, a, how, multilook):
    p = fresh(tmp_path, ".npy")
    np.save(p, a, allow_pickle=True)  # object arrays are written with pickle: the reader must refuse them
    apply_damage(p, how)
    res = check(worker, p, options={"multilook": multilook})
    if how is None and (a.dtype.kind == "O" or a.ndim not in (2, 3) or a.size == 0):
        assert res["status"] == "error"  # (damage may turn a bad file into a valid one: then either outcome)
    fits = multilook is None or (a.ndim in (2, 3) and a.shape[-2] >= multilook[0] and a.shape[-1] >= multilook[1])
    if how is None and a.dtype.kind in "iufc" and not a.dtype.fields and a.ndim in (2, 3) and a.size:
        # numbers, complex (SLC, read as |z|²) included, are read; multilook larger than the array is refused
        assert res["status"] == ("ok" if fits else "error"), res


@FUZZ
@given(members=st.lists(arrays(), min_size=0, max_size=3), compressed=st.booleans(), how=damage,
       extra=st.booleans())
def test_npz_files(worker, tmp_path, members, compressed, how, extra):
    p = fresh(tmp_path, ".npz")
    save = np.savez_compressed if compressed else np.savez
    save(p, *members, allow_pickle=True) if members else zipfile.ZipFile(p, "w").close()
    if extra:
        with zipfile.ZipFile(p, "a") as zf:
            zf.writestr("README.txt", "not an array")
    apply_damage(p, how)
    res = check(worker, p)
    if how is None and (not members or extra):
        # damage may rewrite the zip directory into a valid one-member archive: then either outcome
        assert res["status"] == "error"


RASTER_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "complex_int16",
                 "complex64"]


@FUZZ
@given(dtype=st.sampled_from(RASTER_DTYPES), h=st.integers(1, 80), w=st.integers(1, 80), count=st.integers(1, 3),
       tiled=st.booleans(), compress=st.sampled_from([None, "deflate", "lzw"]), how=damage,
       channels=st.integers(1, 2))
def test_geotiff_files(worker, tmp_path, dtype, h, w, count, tiled, compress, how, channels):
    p = fresh(tmp_path, ".tif")
    prof = dict(driver="GTiff", width=w, height=h, count=count, dtype=dtype)
    if tiled:
        prof.update(tiled=True, blockxsize=16, blockysize=16)
    if compress:
        prof["compress"] = compress
    data = (np.arange(count * h * w) % 251).reshape(count, h, w).astype(
        "complex64" if dtype == "complex_int16" else dtype)  # numpy has no CInt16: GDAL converts on write
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(data)
    apply_damage(p, how)
    res = check(worker, p, channels=channels)
    if how is None:
        assert res["status"] == ("error" if count > channels else "ok"), res
        if count > channels:
            assert f"{count} bands" in res["message"]


@FUZZ
@given(kind=st.sampled_from(["GRD", "SLC"]), pols=st.sampled_from([("VV",), ("VV", "VH"), ("HH", "HV")]),
       target=st.sampled_from(["manifest.safe", "annotation", "calibration", "measurement"]), how=damage,
       zipped=st.booleans(), calibration=st.sampled_from(["sigma0", "beta0", "gamma0", "none"]), multilook=looks)
def test_safe_products(worker, tmp_path, kind, pols, target, how, zipped, calibration, multilook):
    """A real small product (``_safe_product``), one of its files damaged, or its zip."""
    from tests._safe_product import write_product, zip_product

    d = fresh(tmp_path, "").parent
    prod = write_product(d, pols=pols, kind=kind, shape=(12, 16))
    victim = {"manifest.safe": prod.path / "manifest.safe",
              "annotation": min((prod.path / "annotation").glob("*.xml")),
              "calibration": min((prod.path / "annotation" / "calibration").glob("*.xml")),
              "measurement": min((prod.path / "measurement").glob("*.tiff"))}[target]
    path = prod.path
    if zipped:
        path = victim = zip_product(prod.path, d / "S1A_IW_product.zip")
    apply_damage(victim, how)
    res = check(worker, path, channels=len(pols), options={"calibration": calibration, "multilook": multilook})
    if how is None:
        assert res["status"] == "ok", res


@FUZZ
@given(shape=st.lists(st.integers(1, 2**40), min_size=1, max_size=4).map(tuple),
       dtype=st.sampled_from(["<f4", "<c16", "|u1"]), n_bytes=st.integers(0, 4096), inside_npz=st.booleans())
def test_declared_sizes_are_checked(worker, tmp_path, shape, dtype, n_bytes, inside_npz):
    """A header declaring anything (up to terabytes) over a few bytes of data."""
    from numpy.lib import format as npf

    p = fresh(tmp_path, ".npy")
    with open(p, "wb") as f:
        npf.write_array_header_2_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(bytes(n_bytes))
    if inside_npz:
        z = p.with_suffix(".npz")
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(p, "x.npy")
        p.unlink()
        p = z
    check(worker, p)


# --- fixed hostile cases ----------------------------------------------------------------------

def write_zip_bomb(path: Path, shape=(32768, 16384), dtype="<f4", chunk=16 * 2**20) -> int:
    """A real ``.npz`` whose one member is a 2 GiB float32 array of zeros, a few MiB compressed:
    streamed through zipfile chunk by chunk, so writing it never allocates the array."""
    import io

    from numpy.lib import format as npf

    head = io.BytesIO()
    npf.write_array_header_1_0(head, {"descr": dtype, "fortran_order": False, "shape": shape})
    left = int(np.prod(shape)) * np.dtype(dtype).itemsize
    zeros = bytes(chunk)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            f.write(head.getvalue())
            while left > 0:
                f.write(zeros[:min(chunk, left)])
                left -= chunk
    return path.stat().st_size


def test_zip_bomb_is_refused_before_decompression(worker, tmp_path):
    p = tmp_path / "bomb.npz"
    size = write_zip_bomb(p)
    assert size < 16 * 2**20  # ~230:1; a 2 GiB read would need the whole address-space headroom
    res = check(worker, p, expect="error")
    assert "2,048.0 MiB" in res["message"] and "convert it to .npy" in res["message"], res["message"]


def test_npz_member_header_disagreeing_with_zip_entry(worker, tmp_path):
    from numpy.lib import format as npf

    p = tmp_path / "liar.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.npy", "w") as f:
        npf.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (20000, 20000)})
        f.write(bytes(1000))
    res = check(worker, p, expect="error")
    assert "zip entry holds" in res["message"]


def sparse_geotiff(path: Path, height: int, width: int) -> Path:
    """A tiled GeoTIFF declaring ``height`` × ``width`` pixels with no tile written (GDAL SPARSE_OK)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                           tiled=True, blockxsize=256, blockysize=256, sparse_ok=True, nodata=0):
            pass
    assert path.stat().st_size < 4 * 2**20
    return path


def test_declared_huge_geotiff_is_refused(worker, tmp_path):
    p = sparse_geotiff(tmp_path / "huge.tif", 100_000, 100_000)
    res = check(worker, p, expect="error")
    assert "100,000 × 100,000" in res["message"]


def test_large_sparse_geotiff_is_read_by_window(worker, tmp_path):
    p = sparse_geotiff(tmp_path / "large.tif", 50_000, 40_000)  # under the limit: opened, read window by window
    check(worker, p, expect="ok")


def test_fifo_is_refused_without_opening(worker, tmp_path):
    p = tmp_path / "pipe.npy"
    os.mkfifo(p)
    assert "FIFO" in check(worker, p, expect="error")["message"]
    link = tmp_path / "link.tif"
    link.symlink_to(p)
    check(worker, link, expect="error")


def test_fifo_inside_a_directory_is_skipped(worker, tmp_path):
    os.mkfifo(tmp_path / "pipe.npy")
    np.save(tmp_path / "ok.npy", np.ones((8, 8), np.float32))
    res = check(worker, tmp_path, expect="ok")
    assert res["n_scenes"] == 1


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused(worker):
    assert "character device" in check(worker, "/dev/zero", expect="error")["message"]


def test_directory_named_like_a_file(worker, tmp_path):
    d = tmp_path / "empty.tif"
    d.mkdir()
    check(worker, d, expect="error")


def test_broken_symlink(worker, tmp_path):
    p = tmp_path / "gone.npy"
    p.symlink_to(tmp_path / "nothing.npy")
    check(worker, p, expect="error")


def test_too_many_frames(worker, tmp_path):
    p = tmp_path / "frames.npy"
    np.save(p, np.zeros((200_000, 1, 1), np.float32))
    assert "frames" in check(worker, p, expect="error")["message"]


def test_safe_product_with_a_fifo_for_its_manifest(worker, tmp_path):
    p = tmp_path / "S1A_IW_GRDH_x.SAFE"
    p.mkdir()
    os.mkfifo(p / "manifest.safe")
    assert "not a regular file" in check(worker, p, expect="error")["message"]


def test_safe_zip_with_a_bomb_for_an_xml_member(worker, tmp_path):
    """A product zip whose manifest member inflates to 80 MiB: refused from the zip directory."""
    from tests._safe_product import write_product

    prod = write_product(tmp_path, pols=("VV",))
    z = tmp_path / "S1A_IW_bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in sorted(prod.path.rglob("*")):
            if f.name != "manifest.safe":
                zf.write(f, f.relative_to(tmp_path).as_posix())
        with zf.open(f"{prod.path.name}/manifest.safe", "w") as m:
            for _ in range(80):
                m.write(bytes(2**20))
    assert z.stat().st_size < 2 * 2**20
    assert "more than the" in check(worker, z, expect="error")["message"]
