"""Perceptual hashes (pHash, dHash) as unsigned 64-bit integers: the one function ingest and
`fid dedup` both call.

The arithmetic is imagehash's (``imagehash.phash`` / ``imagehash.dhash``, hash_size 8): grayscale,
LANCZOS resize to 32x32 (pHash) or 9x8 (dHash), 2-D DCT-II, top-left 8x8 block thresholded at its
median; bits read row-major with the first bit as the most significant, so ``int(str(h), 16)`` of
an imagehash equals our integer for the same pixels.

The speed comes from decoding: before hashing a file we call ``img.draft("L", (128, 128))`` so that
libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 scale (DCT scaling) straight to luma, never producing the
full-size RGB raster (a 512-px JPEG decodes at 128 px: ~2x imagehash's speed). Drafting all the way
down to 32 px is ~1.7x faster still but drifts by up to 4-6 bits on textured images, because the
8x8 block averages and LANCZOS treat detail near the 32-px grid's Nyquist frequency differently;
keeping at least 4x the grid keeps us within a bit or two of imagehash on the full-size image
(tests/test_hashing.py measures it). Other formats ignore ``draft`` and are hashed exactly.

How the bits are computed (same bits as the definition above, cheaper): the two LANCZOS resizes
run on Pillow's core image (no ``Image`` wrapper copying the JPEG's ``info`` each time); pHash
needs only the top-left 8x8 block of the 32x32 DCT, computed as ``D8 @ X @ D8.T`` with the 8
lowest-frequency rows of the DCT-II matrix, and thresholded at the mean of the 32nd and 33rd
smallest values, which is ``np.median`` of 64 values. That block differs from SciPy's DCT only by
float rounding (~1e-9 on values up to ~1e6), which can flip a bit only when two coefficients sit
within rounding of the median: then the two middle values are less than :data:`_TIE_GAP` apart,
and that image (flat, a pure gradient, a symmetric pattern: coefficients that are 0 in exact
arithmetic and float noise in practice) is recomputed with imagehash's arithmetic (SciPy's
``dct``, imported on first need, and ``np.median``), so its bits are imagehash's too.

Hashes carry :data:`HASH_VERSION`; hashes of different versions are never compared. Bump it when
anything here changes the bits.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

HASH_VERSION = 1
HASH_SIZE = 8
PHASH_SIDE = HASH_SIZE * 4  # imagehash's highfreq_factor = 4
#: JPEGs are decoded (DCT-scaled) to the smallest size whose shorter side is at least this
DRAFT_SIDE = 4 * PHASH_SIDE
_LANCZOS = Image.Resampling.LANCZOS


def _dct_matrix(n: int) -> np.ndarray:
    """Unnormalised DCT-II as a matrix: y = M @ x equals scipy's dct(x, type=2, norm=None)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT32 = _dct_matrix(PHASH_SIDE)
#: the DCT-II rows of the HASH_SIZE lowest frequencies: the top-left block is _DCT8 @ X @ _DCT8_T
_DCT8 = np.ascontiguousarray(_DCT32[:HASH_SIZE])
_DCT8_T = np.ascontiguousarray(_DCT8.T)
#: when the two middle coefficients of the fast pHash block are closer than this, the bits are
#: recomputed the reference way. Both DCTs are exact to ~1e-8 (|coefficient| <= 4 * 32 * 32 * 255):
#: a gap above 2 * (their difference) keeps every coefficient on the same side of the median.
_TIE_GAP = 1e-4
_MIDDLE = HASH_SIZE * HASH_SIZE // 2
_scipy_dct = None  # scipy.fft.dct once the reference path needed it; False without SciPy


def _dct2(pixels: np.ndarray) -> np.ndarray:
    """imagehash's 2-D DCT (``scipy.fft.dct`` on both axes); numpy's matrix DCT without SciPy.
    SciPy is imported on the first call: only the rare near-tie images need it."""
    global _scipy_dct
    if _scipy_dct is None:
        try:  # scipy ships with imagehash; numpy's matrix DCT is the fallback
            from scipy.fft import dct as _scipy_dct
        except ImportError:  # pragma: no cover - exercised only without scipy
            _scipy_dct = False
    if _scipy_dct:
        return _scipy_dct(_scipy_dct(pixels, axis=0), axis=1)
    return _DCT32 @ pixels @ _DCT32.T


def bits_to_int(bits: np.ndarray) -> int:
    """64 booleans (row-major, first bit most significant) -> unsigned 64-bit int."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool).ravel()).tobytes(), "big")


def _phash_reference(pixels: np.ndarray) -> int:
    """imagehash.phash's arithmetic on 32x32 float64 pixels (SciPy's DCT, np.median)."""
    low = _dct2(pixels)[:HASH_SIZE, :HASH_SIZE]
    return bits_to_int(low > np.median(low))


def _phash_fast(pixels: np.ndarray) -> int | None:
    """The same bits from the 8x8 block alone, or None when a coefficient is too close to the
    median for float rounding to be ruled out (then only the reference arithmetic decides)."""
    low = np.dot(np.dot(_DCT8, pixels), _DCT8_T).ravel()
    srt = np.sort(low)
    below, above = float(srt[_MIDDLE - 1]), float(srt[_MIDDLE])
    if above - below <= _TIE_GAP:  # every other coefficient is farther from the median
        return None
    return bits_to_int(low > (below + above) / 2)


def _phash_pixels(pixels: np.ndarray) -> int:
    fast = _phash_fast(pixels)
    return _phash_reference(pixels) if fast is None else fast


def _resized(gray: Image.Image, size: tuple[int, int]) -> bytes:
    """``gray.resize(size, LANCZOS).tobytes()`` for an "L" image, on Pillow's core image."""
    gray.load()
    core = gray.im
    if core.size != size:  # Image.resize copies an image already at the size
        core = core.resize(size, _LANCZOS)
    encoder = Image.core.raw_encoder("L", "L")
    try:
        encoder.setimage(core, (0, 0, *size))
        chunks = []
        while True:
            _, err, chunk = encoder.encode(65536)
            chunks.append(chunk)
            if err:
                break
        if err < 0:
            raise RuntimeError(f"encoder error {err} reading {size} pixels")
    finally:
        encoder.cleanup()
    return b"".join(chunks)


class PHash:
    """imagehash.phash, hash_size 8."""

    side = PHASH_SIDE

    @staticmethod
    def from_gray(gray: Image.Image) -> int:
        small = _resized(gray, (PHASH_SIDE, PHASH_SIDE))
        return _phash_pixels(np.frombuffer(small, np.uint8).astype(np.float64).reshape(PHASH_SIDE, PHASH_SIDE))


class DHash:
    """imagehash.dhash (horizontal differences), hash_size 8."""

    side = HASH_SIZE + 1

    @staticmethod
    def from_gray(gray: Image.Image) -> int:
        small = np.frombuffer(_resized(gray, (HASH_SIZE + 1, HASH_SIZE)), np.uint8).reshape(HASH_SIZE, HASH_SIZE + 1)
        return bits_to_int(small[:, 1:] > small[:, :-1])


def _gray(img: Image.Image) -> Image.Image:
    return img if img.mode == "L" else img.convert("L")


def draft_for_hashing(img: Image.Image) -> Image.Image:
    """Ask the JPEG decoder of a just-opened, not yet loaded image for reduced-size luma (a no-op
    for other formats): the decode every hash here is defined on. Returns ``img``."""
    img.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
    return img


def _open_draft(source) -> Image.Image:
    """Open a file or bytes and ask the JPEG decoder for reduced-size luma (a no-op elsewhere)."""
    img = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)
    return draft_for_hashing(img)


def hashes_of_image(img: Image.Image) -> tuple[int, int]:
    """(phash, dhash) of an already opened image. For the fast path open it with draft mode first
    (:func:`draft_for_hashing`, as :func:`hashes_of_file` does)."""
    gray = _gray(img)
    return PHash.from_gray(gray), DHash.from_gray(gray)


def hashes_of_file(path_or_bytes) -> tuple[int, int]:
    """(phash, dhash) of an image file (path or bytes) through the draft-mode fast path."""
    with _open_draft(path_or_bytes) as img:
        return hashes_of_image(img)


def phash_file(path) -> int:
    with _open_draft(path) as img:
        return PHash.from_gray(_gray(img))


def dhash_file(path) -> int:
    with _open_draft(path) as img:
        return DHash.from_gray(_gray(img))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two unsigned 64-bit hashes."""
    return (int(a) ^ int(b)).bit_count()


def _safe_hashes(path) -> tuple[int, int] | None:
    try:
        return hashes_of_file(path)
    except Exception:  # noqa: BLE001 - an unreadable file hashes to None, never stops a batch
        return None


#: below this many files a process pool costs more than it saves
POOL_MIN_BATCH = 64


def process_pool(processes: int | None = None, preload: Sequence[str] = (__name__,)):
    """A ``ProcessPoolExecutor`` for image work. Where available (Linux, macOS) its workers are
    forked from a fork server that has already imported ``preload``: they start fast, and they are
    never forks of a parent that runs threads (a rich progress bar, Twisted's reactor)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = None
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(max_workers=processes or os.cpu_count() or 1, mp_context=ctx)


def hash_files(paths: Sequence[str | os.PathLike], processes: int | None = None,
               progress: Callable[[int], None] | None = None) -> list[tuple[int, int] | None]:
    """(phash, dhash) for each path, in order; ``None`` for a file that cannot be decoded.

    Large batches run in a process pool of ``processes`` workers (default: all cores);
    ``progress(n)`` is called with the number of files finished since the last call.
    """
    paths = [str(Path(p)) for p in paths]
    processes = processes or os.cpu_count() or 1
    out: list[tuple[int, int] | None] = []
    if processes <= 1 or len(paths) < POOL_MIN_BATCH:
        for p in paths:
            out.append(_safe_hashes(p))
            if progress:
                progress(1)
        return out
    chunk = max(8, min(256, len(paths) // (processes * 8) or 1))
    with process_pool(processes) as pool:
        for res in pool.map(_safe_hashes, paths, chunksize=chunk):
            out.append(res)
            if progress:
                progress(1)
    return out

