"""The code file's parser against hostile bytes: every damaged file is one ``SarzooError``, never a
traceback, a hang or an allocation the file's own lengths asked for."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sarzoo.codec import format as fmt
from sarzoo.errors import SarzooError

HEADER = {"model": {"digest": "ab" * 32, "recipe": "t", "bottleneck": "hyperprior", "coding_digest": ""},
          "scene": {"height": 70, "width": 130, "channels": 1, "domain": "intensity"},
          "tiles": {"size": 32, "latent": [4, 4, 4], "group": 4},
          "preprocessing": {"domain": "intensity", "vmin": -25.0, "vmax": 0.0}, "geo": {"crs": None}}


def _valid() -> bytes:
    mask = np.ones((70, 130), dtype=bool)
    mask[:, :40] = False     # tile column 0 holds no valid pixel: 3 rows × 4 coded columns = 12 tiles
    presence = fmt.tile_presence(mask, 32)
    assert presence.sum() == 12
    return fmt.serialise(fmt.CodeFile(HEADER, mask, [b"\x01" * 8, b"\x02" * 12, b"\x03" * 4]))


def test_roundtrip_and_sizes():
    data = _valid()
    code = fmt.parse(data, "f.szc")
    assert code.header == HEADER and code.mask.shape == (70, 130) and not code.mask[:, :40].any()
    assert code.payloads == [b"\x01" * 8, b"\x02" * 12, b"\x03" * 4]
    assert code.tile_bytes() == 3 * 5 + 24 and fmt.fixed_bytes(code) == len(data) - code.tile_bytes()


@pytest.mark.parametrize("cut", [0, 5, 8, 10, 14, 40, -30, -1])
def test_truncated(cut):
    data = _valid()
    with pytest.raises(SarzooError, match="f.szc"):
        fmt.parse(data[:cut], "f.szc")


def test_other_files_and_versions():
    with pytest.raises(SarzooError, match="not a sarzoo code file"):
        fmt.parse(b"GIF89a" + bytes(100), "x")
    data = bytearray(_valid())
    data[8:10] = struct.pack("<H", 99)
    with pytest.raises(SarzooError, match="version 99.*newer"):
        fmt.parse(bytes(data), "x")
    with pytest.raises(SarzooError, match="follow the last record"):
        fmt.parse(_valid() + b"\x00", "x")


def test_a_record_count_that_disagrees_with_the_mask():
    mask = np.ones((70, 130), dtype=bool)
    data = fmt.serialise(fmt.CodeFile(HEADER, mask, [b"\x01" * 8]))   # 15 tiles need 4 records of 4
    with pytest.raises(SarzooError, match="index ends before record 2 of 4"):
        fmt.parse(data, "x")


def test_a_huge_declared_length_allocates_nothing():
    head = fmt.MAGIC + struct.pack("<H", fmt.FORMAT_VERSION) + struct.pack("<II", 2**31, 0)
    with pytest.raises(SarzooError, match="more than the"):
        fmt.parse(head + b"{}", "x")


def test_header_checks():
    def with_header(h) -> bytes:
        raw = __import__("json").dumps(h).encode()
        return fmt.MAGIC + struct.pack("<H", 1) + struct.pack("<II", len(raw), zlib.crc32(raw)) + raw

    for h in ([], {"model": {}}, {**HEADER, "scene": {**HEADER["scene"], "height": -1}},
              {**HEADER, "tiles": {**HEADER["tiles"], "group": 0}}, {**HEADER, "model": {"digest": 3}}):
        with pytest.raises(SarzooError):
            fmt.parse(with_header(h), "x")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_hostile_bytes(data):
    """Flipped bytes, cut files, inserted bytes and pure noise: a SarzooError or, for a change that
    keeps the file intact (a CRC collision is not drawn), the same result."""
    good = _valid()
    how = data.draw(st.sampled_from(["flip", "cut", "insert", "noise"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(good) - 1))
        b = data.draw(st.integers(1, 255))
        bad = good[:i] + bytes([good[i] ^ b]) + good[i + 1:]
    elif how == "cut":
        bad = good[:data.draw(st.integers(0, len(good) - 1))]
    elif how == "insert":
        i = data.draw(st.integers(0, len(good)))
        bad = good[:i] + data.draw(st.binary(min_size=1, max_size=16)) + good[i:]
    else:
        bad = fmt.MAGIC + data.draw(st.binary(max_size=200))
    with pytest.raises(SarzooError):
        fmt.parse(bad, "hostile.szc")
