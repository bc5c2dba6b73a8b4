"""Fuzz the dataset readers for a bounded time: whatever the bytes, only our DataError may escape."""

import contextlib
import gzip
import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgclf.data.cifar import read_cifar_pickle
from imgclf.data.idx import read_idx, write_idx
from imgclf.data.images import decode_image
from imgclf.errors import DataError

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(base: bytes, pos: int, blob: bytes, cut: int) -> list[bytes]:
    pos = pos % (len(base) + 1)
    return [blob, base[:cut], base[:pos] + blob + base[pos + len(blob):]]


@FUZZ
@given(blob=st.binary(max_size=300), pos=st.integers(0, 10_000), cut=st.integers(0, 3000))
def test_idx_reader(tmp_path, blob, pos, cut):
    good = tmp_path / "good.gz"
    if not good.exists():
        write_idx(good, np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256)
    raw = gzip.decompress(good.read_bytes())
    for name, data in [("x", b) for b in _mutate(raw, pos, blob, cut)] + \
                      [("x.gz", b) for b in _mutate(good.read_bytes(), pos, blob, cut)]:
        p = tmp_path / name
        p.write_bytes(data)
        with contextlib.suppress(DataError):
            read_idx(p)


@FUZZ
@given(blob=st.binary(max_size=200), pos=st.integers(0, 10_000), cut=st.integers(0, 4000))
def test_cifar_reader(blob, pos, cut):
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)
    for data in _mutate(good, pos, blob, cut):
        with contextlib.suppress(DataError):
            read_cifar_pickle(data, "fuzz")


@FUZZ
@given(blob=st.binary(max_size=200), pos=st.integers(0, 10_000), cut=st.integers(0, 2000),
       ext=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".webp"]))
def test_image_decoder(tmp_path, blob, pos, cut, ext):
    from PIL import Image

    good = tmp_path / f"good{ext}"
    if not good.exists():
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3)).astype(np.uint8)).save(good)
    for data in _mutate(good.read_bytes(), pos, blob, cut):
        p = tmp_path / f"x{ext}"
        p.write_bytes(data)
        try:
            arr = decode_image(p)
            assert arr.dtype == np.uint8 and arr.ndim == 3
        except DataError:
            pass
