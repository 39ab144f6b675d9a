"""Property-based fuzzing of the readers where outside files enter: images, intrinsics, GT depth, checkpoints.

Whatever the bytes, each reader either returns a well-formed value or raises its one documented error
type (``DataError`` / ``CheckpointError``) — never another exception, never a hang. (Found this way: a
``.npy`` depth file that is really a zip archive raised ``BadZipFile``; an empty intrinsics file warned.)
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from robustdepth.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from robustdepth.data.base import DataError, parse_intrinsics, read_depth, read_rgb

# Derandomised (the same examples every run: no flaky suite); FUZZ_EXAMPLES=1000 for a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow], database=None)
HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"GIF89a", b"\x93NUMPY", b"PK\x03\x04", b"\x80\x02"]


_TMP = tempfile.TemporaryDirectory(prefix="robustdepth_fuzz_")  # removed at interpreter exit


def _write(data: bytes, suffix: str) -> Path:
    """``data`` as the (reused) file ``f<suffix>`` in this module's temporary folder."""
    path = Path(_TMP.name) / f"f{suffix}"
    path.write_bytes(data)
    return path


junk = st.tuples(st.sampled_from(HEADERS), st.binary(max_size=2048)).map(lambda t: t[0] + t[1])


@FUZZ
@given(data=junk, suffix=st.sampled_from([".png", ".jpg", ".bmp"]))
def test_read_rgb_on_arbitrary_bytes(data: bytes, suffix: str) -> None:
    try:
        img = read_rgb(_write(data, suffix))
    except DataError:
        return
    assert img.mode == "RGB" and img.width > 0 and img.height > 0


@FUZZ
@given(mode=st.sampled_from(["L", "I;16", "I", "F", "RGB", "RGBA", "LA", "P", "1"]),
       height=st.integers(1, 24), width=st.integers(1, 24), seed=st.integers(0, 2**16),
       fmt=st.sampled_from(["PNG", "TIFF"]), cut=st.one_of(st.none(), st.integers(0, 400)))
def test_read_rgb_on_images_of_every_mode_whole_or_truncated(mode: str, height: int, width: int, seed: int,
                                                             fmt: str, cut: int | None) -> None:
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode == "F":
        img = Image.fromarray(rng.random((height, width), dtype=np.float32) * rng.choice([1.0, 255.0, 1e6]))
    else:
        img = base.convert(mode)
    if fmt == "PNG" and mode in ("F", "I"):
        fmt = "TIFF"  # PNG has no float or 32-bit integer mode
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = buf.getvalue() if cut is None else buf.getvalue()[:cut]
    try:
        out = read_rgb(_write(data, ".png" if fmt == "PNG" else ".tif"))
    except DataError:
        assert cut is not None, "a whole image file must read"
        return
    assert out.mode == "RGB" and out.size == (width, height)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12))


@FUZZ
@given(values=st.lists(numbers, max_size=20))
def test_parse_intrinsics_on_arbitrary_numbers(values: list[float]) -> None:
    try:
        K = parse_intrinsics(values, "fuzz")
    except DataError:
        return
    assert K.shape == (3, 3) and K.dtype == np.float32 and np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0


@FUZZ
@given(text=st.one_of(st.text(max_size=200),
                      st.lists(numbers, max_size=16).map(lambda v: " ".join(map(str, v)))),
       raw=st.binary(max_size=64), use_raw=st.booleans())
def test_parse_intrinsics_on_arbitrary_files(text: str, raw: bytes, use_raw: bool) -> None:
    path = _write(raw if use_raw else text.encode("utf-8", "surrogatepass"), ".txt")
    try:
        K = parse_intrinsics(path, "fuzz")
    except DataError:
        return
    assert K.shape == (3, 3) and np.isfinite(K).all()


arrays = st.tuples(
    st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint16, np.bool_, np.complex64]),
    st.lists(st.integers(0, 6), min_size=0, max_size=3), st.integers(0, 2**16))


@FUZZ
@given(spec=arrays, junk_bytes=junk, use_junk=st.booleans(), suffix=st.sampled_from([".npy", ".png"]))
@example(spec=(np.float32, [], 0), junk_bytes=b"PK\x03\x04", use_junk=True, suffix=".npy")  # found by fuzzing
def test_read_depth_on_arbitrary_files(spec: tuple, junk_bytes: bytes, use_junk: bool, suffix: str) -> None:
    dtype, shape, seed = spec
    if use_junk:
        path = _write(junk_bytes, suffix)
    else:
        values = np.random.default_rng(seed).normal(10, 20, size=shape)
        buf = io.BytesIO()
        if suffix == ".npy":
            np.save(buf, values.astype(dtype))
        else:
            if len(shape) != 2 or 0 in shape:
                return
            Image.fromarray(np.clip(values * 256, 0, 65535).astype(np.uint16)).save(buf, format="PNG")
        path = _write(buf.getvalue(), suffix)
    try:
        depth = read_depth(path)
    except DataError:
        return
    assert depth.ndim == 2 and depth.dtype == np.float32 and depth.size > 0


def _valid_checkpoint_bytes() -> bytes:
    payload = {"config": {"optim": {"lr": 1e-4}}, "step": 3, "models": {"depth": {"w": torch.arange(6.0)}}}
    return save_checkpoint(Path(_TMP.name) / "valid.pt", payload).read_bytes()


VALID = _valid_checkpoint_bytes()


@FUZZ
@given(cut=st.integers(0, len(VALID)), flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)),
                                                       max_size=4))
def test_load_checkpoint_on_truncated_or_corrupted_checkpoints(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for index, xor in flips:
        data[index] ^= xor
    try:
        ckpt = load_checkpoint(_write(bytes(data[:cut]), ".pt"))
    except CheckpointError:
        return
    assert isinstance(ckpt["config"], dict) and isinstance(ckpt["models"]["depth"], dict)


plain = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                     lambda children: st.one_of(st.lists(children, max_size=4),
                                                st.dictionaries(st.text(max_size=6), children, max_size=4)),
                     max_leaves=12)


@FUZZ
@given(obj=plain, data=junk, kind=st.sampled_from(["torch", "zip", "bytes"]))
def test_load_checkpoint_on_arbitrary_files(obj: object, data: bytes, kind: str) -> None:
    buf = io.BytesIO()
    if kind == "torch":
        torch.save(obj, buf)
    elif kind == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", data)
    else:
        buf.write(data)
    try:
        ckpt = load_checkpoint(_write(buf.getvalue(), ".pt"))
    except CheckpointError:
        return
    assert isinstance(ckpt["config"], dict)
