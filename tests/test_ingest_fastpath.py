"""The ingest fast path (a JPEG that already is what normalisation produces is stored as is), the
store's cached fan-out folders, and the crawler's image worker processes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal

import pytest
from PIL import Image

import imagegen
from crawler.imageworkers import ImageWorkers
from curation import images as ci
from curation.hashing import hashes_of_file
from curation.store import ImageStore


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _stored(tmp_path, data: bytes, **options):
    """process_and_store into a fresh store; (result, stored file bytes, stored file path)."""
    res = ci.process_and_store(data, tmp_path / "store", **options)
    assert res.ok, getattr(res, "error_message", "")
    path = ImageStore(tmp_path / "store").abs_path(res.store_path)
    return res, path.read_bytes(), path


@pytest.mark.parametrize("kw", [{}, {"progressive": True}, {"subsampling": 0, "quality": 95}],
                         ids=["baseline", "progressive", "444-q95"])
def test_rgb_jpeg_within_max_side_is_stored_byte_identical(tmp_path, kw):
    data = imagegen.jpeg(480, 320, seed=11, **kw)
    res, stored, path = _stored(tmp_path, data)
    assert stored == data                                     # the very bytes downloaded
    assert res.sha256 == res.orig_sha256 == hashlib.sha256(data).hexdigest()
    assert path.name == f"{res.sha256}.jpg"                   # content-addressed by those bytes
    assert (res.width, res.height) == (res.orig_width, res.orig_height) == (480, 320)
    assert (res.orig_format, res.orig_size) == ("JPEG", len(data))
    # the hashes are the stored file's, as `fid dedup` computes them from the store
    assert (res.phash, res.dhash) == hashes_of_file(path)
    assert _decode(stored).mode == "RGB"


def test_exif_without_rotation_takes_the_fast_path(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "fid-test-camera"
    data = imagegen.jpeg(400, 300, seed=12, exif=exif.tobytes())
    res, stored, path = _stored(tmp_path, data)
    assert stored == data and res.sha256 == res.orig_sha256
    assert (res.phash, res.dhash) == hashes_of_file(path)


@pytest.mark.parametrize("case", ["exif_rotated", "cmyk", "larger_than_max_side", "png", "grayscale",
                                  "bytes_after_eoi", "heavy_metadata", "webp"])
def test_everything_else_is_normalised(tmp_path, case):
    data = {
        "exif_rotated": lambda: imagegen.exif_rotated_jpeg(400, 200, orientation=6),
        "cmyk": lambda: imagegen.cmyk_jpeg(300, 200),
        "larger_than_max_side": lambda: imagegen.jpeg(700, 400, seed=13),
        "png": lambda: imagegen.png(400, 300, seed=14),
        "grayscale": lambda: imagegen.encode(imagegen.scene(300, 200, 15).convert("L"), "JPEG"),
        "bytes_after_eoi": lambda: imagegen.jpeg(300, 200, seed=16) + b"PK\x03\x04 appended archive",
        # a 200x150 JPEG carrying 100 kB of comment: far above KEEP_MAX_BYTES_PER_PIXEL
        "heavy_metadata": lambda: imagegen.jpeg(200, 150, seed=17, comment=b"x" * 60_000),
        "webp": lambda: imagegen.webp(320, 240),
    }[case]()
    res, stored, path = _stored(tmp_path, data)
    assert stored != data and res.sha256 != res.orig_sha256
    assert res.sha256 == hashlib.sha256(stored).hexdigest() and res.orig_sha256 == hashlib.sha256(data).hexdigest()
    img = _decode(stored)
    assert img.format == "JPEG" and img.mode == "RGB" and max(img.size) <= ci.DEFAULT_MAX_SIDE
    assert img.getexif().get(0x0112) in (None, 1)
    assert (res.phash, res.dhash) == hashes_of_file(path)
    if case == "exif_rotated":
        assert (res.width, res.height) == (200, 400)


def test_a_small_max_side_sends_a_jpeg_to_the_resize(tmp_path):
    data = imagegen.jpeg(400, 300, seed=18)
    res, stored, _ = _stored(tmp_path, data, max_side=256)
    assert stored != data and (res.width, res.height) == (256, 192)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_jpegs_are_rejected_as_before(cut):
    data = imagegen.jpeg(400, 300, seed=1)
    body = data[: int(len(data) * cut)]
    res = ci.process_image_bytes(body)
    assert (res.ok, res.status) == (False, "not_image")
    assert "truncated" in res.error_message
    # the same answer as Pillow's own full decode
    with pytest.raises(OSError, match="truncated"):
        _decode(body)


def test_a_corrupt_body_ending_like_a_jpeg_is_judged_like_the_full_decode(tmp_path):
    """Cut the scan data and put an EOI marker back: the fast path's reduced decode must accept or
    reject it exactly as a full decode does (libjpeg reads every scan either way)."""
    data = imagegen.jpeg(400, 300, seed=19)
    body = data[: len(data) // 2] + b"\xff\xd9"
    try:
        _decode(body)
        full_ok = True
    except OSError:
        full_ok = False
    res = ci.process_image_bytes(body)
    assert res.ok == full_ok


def test_fast_path_result_equals_a_fresh_hash_of_the_same_bytes():
    for seed in range(20, 26):
        data = imagegen.jpeg(300 + 30 * (seed - 20), 320, seed=seed, quality=75 + 3 * (seed - 20))
        res = ci.process_image_bytes(data)
        assert res.data is data or res.data == data
        assert (res.phash, res.dhash) == hashes_of_file(data)


def test_keep_original_with_the_fast_path(tmp_path):
    data = imagegen.jpeg(300, 200, seed=27)
    store = ImageStore(tmp_path)
    res = ci.process_image_bytes(data, keep_original=True)
    ci.store_processed(store, res)
    assert store.read_bytes(res.store_path) == data == store.read_bytes(res.orig_path)
    assert res.orig_path.startswith("originals/")


# ---- the store ------------------------------------------------------------------------------------

def test_store_recreates_a_fan_out_folder_removed_behind_its_back(tmp_path):
    store = ImageStore(tmp_path / "s")
    a, b = b"first" * 100, b"second" * 100
    sha_a = hashlib.sha256(a).hexdigest()
    sha_b = sha_a[:4] + hashlib.sha256(b).hexdigest()[4:]  # a name in the same ab/ folder as a
    rel_a = store.put(a, sha_a)
    folder = store.abs_path(rel_a).parent
    store.abs_path(rel_a).unlink()
    folder.rmdir()                          # the folder is remembered as made, but is gone
    rel_b = store.put(b, sha_b)
    assert store.read_bytes(rel_b) == b and store.temp_files() == []


# ---- image worker processes ---------------------------------------------------------------------

def _task(x):
    if x == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if x == "raise":
        raise ValueError("bad input")
    if isinstance(x, bytes):
        return hashlib.sha256(x).hexdigest()
    return x * 2


def test_image_workers_run_tasks_survive_errors_and_replace_dead_workers():
    pool = ImageWorkers(2, _task)
    try:
        async def main():
            big = os.urandom(3_000_000)  # larger than any socket buffer: written as the worker reads
            futs = [pool.submit(i) for i in range(20)] + [pool.submit(big)]
            assert await asyncio.gather(*futs) == [i * 2 for i in range(20)] + [hashlib.sha256(big).hexdigest()]
            with pytest.raises(RuntimeError, match="ValueError: bad input"):
                await pool.submit("raise")
            pids = {w.process.pid for w in pool.workers}
            died = pool.submit("die")
            with pytest.raises(RuntimeError, match="died"):
                await died
            assert await asyncio.gather(*[pool.submit(i) for i in range(10)]) == [i * 2 for i in range(10)]
            assert len(pool.workers) == 2 and {w.process.pid for w in pool.workers} != pids

        asyncio.run(main())
    finally:
        procs = [w.process for w in pool.workers]
        pool.shutdown(timeout=10)
    assert all(not p.is_alive() for p in procs)
