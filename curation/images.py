"""The one image path every image takes, crawled or local: validate -> normalise -> hash -> store.

:func:`process_image_bytes` is pure CPU work on bytes (no catalog, no files) and returns a
picklable :class:`ProcessedImage` or :class:`Rejected`, never raising for a bad image, so the
crawler (:mod:`crawler.imageworkers`) and `fid import images` (a ``ProcessPoolExecutor``) run it
in worker processes. :func:`process_and_store`
does the same and writes the stored copy from inside the worker (only metadata travels back).
The catalog rows are written by :mod:`dataset_db.repo_images`.

Steps:

1. validate with Pillow, restricted to raster formats (no EPS/PDF that would run Ghostscript):
   empty, HTML, SVG, unknown or truncated bodies -> ``not_image``; a body above ``max_bytes`` or a
   header declaring more than ``max_pixels`` (decompression bomb, checked before decoding) ->
   ``too_large``; shorter side below ``min_side`` -> ``too_small``. Animations: first frame.
2. JPEGs are decoded with DCT scaling (``draft``) to the smallest size still at least the target
   size, so a 4000-px photo never materialises at full size.
3. EXIF orientation applied (``ImageOps.exif_transpose``); orig_width/orig_height are the
   *displayed* (oriented) size, the frame that review crop boxes use.
4. to RGB: CMYK (through its ICC profile when there is one), 16-bit grayscale scaled (not clipped)
   to 8 bits, alpha and palette transparency composited on white.
5. downscale so the longer side is at most ``max_side`` (LANCZOS); never upscale.
6. re-encode as JPEG quality 90, 4:2:0, no metadata. Why JPEG q90: every consumer (browsers, the
   review UI, ``keras.utils.image_dataset_from_directory``, TFRecord) reads it; at 512 px it is
   ~40-80 kB, about a third of q95 and a tenth of PNG, so 400k images fit in ~25 GB; its artefacts
   are below those of the web JPEGs the originals mostly are, so classifiers do not notice; and
   dropping EXIF means the stored pixels are already upright for everyone.
7. sha256 of the original bytes and of the stored copy; pHash/dHash of the stored copy computed
   from its encoded bytes with :func:`curation.hashing.hashes_of_file`, the very function
   `fid dedup` runs on store files, so both always agree.

Fast path, kept as is: a download that is already what step 6 would aim for -- a single-frame
baseline or progressive JPEG (not MPO) decoding to RGB (YCbCr or Adobe RGB; not grayscale, not
CMYK), with no EXIF orientation to apply (tag absent or 1), longer side <= ``max_side``, shorter
side >= ``min_side``, within ``max_pixels``, ending with the EOI marker (no bytes appended after the
image) and at most :data:`KEEP_MAX_BYTES_PER_PIXEL` bytes per pixel plus
:data:`KEEP_SLACK_BYTES` (no oversized metadata or needlessly high quality) -- is stored
**byte-identical to the original**: no decode to full size, no re-encode, one sha256 that is both
``orig_sha256`` and ``sha256``. It is validated by one decode in the hashing draft mode (1/2 to
1/8 scale, luma only: libjpeg still entropy-decodes every scan, so a truncated or corrupt body is
rejected exactly as on the full path), and the hashes come from that same decode, which is what
:func:`curation.hashing.hashes_of_file` does on the stored file: they are the stored copy's hashes
by construction. Such a stored copy keeps the original's metadata (EXIF without a rotation, ICC
profile, comments), its quality and its chroma subsampling; its pixels are upright for every
reader all the same. Everything else (PNG, WebP, GIF, CMYK, grayscale, EXIF-rotated, larger than
``max_side``) takes steps 2-7.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dataset_db import status as _st

from .hashing import HASH_VERSION, draft_for_hashing, hashes_of_file, hashes_of_image
from .store import ImageStore

# statuses come from the shared vocabulary; lookup() fails at import if one disappears
STORED = _st.lookup("stored").name
DUPLICATE = _st.lookup("duplicate").name
NOT_IMAGE = _st.lookup("not_image").name
TOO_SMALL = _st.lookup("too_small").name
TOO_LARGE = _st.lookup("too_large").name
ERROR = _st.lookup("error").name

DEFAULT_MIN_SIDE = 64
DEFAULT_MAX_SIDE = 512            # the paper's setting
DEFAULT_MAX_PIXELS = 100_000_000  # a 12,000 x 8,000 panorama passes; Pillow's own hard limit is 179 Mpx
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
JPEG_QUALITY = 90
WHITE = (255, 255, 255)
STORED_EXT = "jpg"
ORIGINALS_PREFIX = "originals"
#: the fast path keeps a JPEG as is only up to this many bytes per pixel (plus the slack): a
#: 512 x 512 JPEG at q95 4:2:0 is ~0.3-0.6 bytes per pixel, so this only sends unusually heavy files
#: (huge metadata blocks, q100 4:4:4) through the re-encode that bounds the store's size
KEEP_MAX_BYTES_PER_PIXEL = 1.0
KEEP_SLACK_BYTES = 16 * 1024
_JPEG_EOI = b"\xff\xd9"
_ROTATING = frozenset(range(2, 9))  # EXIF orientations that ImageOps.exif_transpose applies

#: raster formats we decode; anything else Pillow knows (EPS, PDF, ...) is `not_image`
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "AVIF", "JPEG2000", "PPM", "ICO", "TGA")
#: the Pillow plugins that register them: importing just these (not ``Image.init()``'s ~40 plugins)
#: keeps a worker's start-up short; a plugin whose codec is missing registers nothing
_WANTED_PLUGINS = ("Jpeg", "Png", "Gif", "WebP", "Bmp", "Tiff", "Mpo", "Avif", "Jpeg2K", "Ppm", "Ico", "Tga")
for _plugin in _WANTED_PLUGINS:
    try:
        importlib.import_module(f"PIL.{_plugin}ImagePlugin")
    except ImportError:  # as Image.init() does
        pass
ALLOWED_FORMATS = tuple(f for f in _WANTED_FORMATS if f in Image.OPEN)
_EXT_BY_FORMAT = {"JPEG": "jpg", "MPO": "jpg", "TIFF": "tif", "JPEG2000": "jp2"}


@dataclass(frozen=True)
class Rejected:
    """A body that is not a usable image: a status from dataset_db.status and a one-line reason."""

    status: str
    error_message: str
    ok: ClassVar[bool] = False


@dataclass
class ProcessedImage:
    """A valid image, normalised. ``data`` is the stored copy's bytes (None once written by a
    worker); ``original`` the original bytes when ``keep_original`` was asked."""

    sha256: str
    width: int
    height: int
    orig_sha256: str
    orig_width: int
    orig_height: int
    orig_format: str
    orig_size: int
    phash: int
    dhash: int
    hash_version: int = HASH_VERSION
    data: bytes | None = field(default=None, repr=False)
    original: bytes | None = field(default=None, repr=False)
    store_path: str | None = None
    orig_path: str | None = None
    ok: ClassVar[bool] = True

    @property
    def orig_ext(self) -> str:
        return _EXT_BY_FORMAT.get(self.orig_format, self.orig_format.lower() or "bin")

    def catalog_row(self) -> dict:
        """The ``images`` columns (what dataset_db.repo_images.record_images expects)."""
        if self.store_path is None:
            raise ValueError("store the image (store_processed) before recording it")
        # every field but the bytes, in field order (what dataclasses.asdict gives, without its deep copy)
        return {name: getattr(self, name) for name in _ROW_FIELDS}


#: the ``images`` columns ProcessedImage.catalog_row gives: its fields but the bytes
_ROW_FIELDS = tuple(f.name for f in fields(ProcessedImage) if f.name not in ("data", "original"))


def _fit(w: int, h: int, max_side: int) -> tuple[int, int]:
    longer = max(w, h)
    if not max_side or longer <= max_side:
        return w, h
    scale = max_side / longer
    return max(1, round(w * scale)), max(1, round(h * scale))


def _describe_non_image(data: bytes) -> str:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "the body is an HTML page, not an image"
    if b"<svg" in head:
        return "the body is an SVG (vector) image; only raster images are accepted"
    if head.startswith((b"<?xml", b"{", b"[")):
        return "the body is XML/JSON text, not an image"
    return f"unrecognised image format (starts with {data[:8]!r}); accepted: {', '.join(ALLOWED_FORMATS)}"


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            arr = arr * 255.0 if float(np.nanmax(arr)) <= 1.0 else arr
        elif mode == "I" and int(arr.max()) <= 255:
            pass
        else:  # 16-bit samples: scale to 8 bits instead of clipping at 255
            arr = arr.astype(np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "CMYK":
        icc = img.info.get("icc_profile")
        if icc:
            try:
                from PIL import ImageCms

                return ImageCms.profileToProfile(img, io.BytesIO(icc), ImageCms.createProfile("sRGB"),
                                                 outputMode="RGB")
            except Exception:  # noqa: BLE001 - a broken profile falls back to the plain conversion
                pass
        return img.convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, WHITE)
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img if mode == "RGB" else img.convert("RGB")


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF means no rotation
        return 1


def process_image_bytes(data: bytes, *, min_side: int = DEFAULT_MIN_SIDE, max_side: int = DEFAULT_MAX_SIDE,
                        max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = DEFAULT_MAX_BYTES,
                        keep_original: bool = False) -> ProcessedImage | Rejected:
    """Validate and normalise one downloaded or local image. Never raises for a bad image."""
    data = bytes(data) if not isinstance(data, bytes) else data
    if not data:
        return Rejected(NOT_IMAGE, "empty body (0 bytes)")
    if max_bytes and len(data) > max_bytes:
        return Rejected(TOO_LARGE, f"the body is {len(data):,} bytes; the limit is {max_bytes:,}")
    with warnings.catch_warnings():
        # we apply our own pixel limit below; Pillow's warning band (89-179 Mpx) is noise here
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except Image.DecompressionBombError as exc:
            return Rejected(TOO_LARGE, f"decompression bomb: {exc}")
        except UnidentifiedImageError:
            return Rejected(NOT_IMAGE, _describe_non_image(data))
        except Exception as exc:  # noqa: BLE001 - a header Pillow chokes on is not an image
            return Rejected(NOT_IMAGE, f"unreadable image header: {exc}".splitlines()[0][:300])
        try:
            return _process_open(img, data, min_side, max_side, max_pixels, keep_original)
        except MemoryError:
            return Rejected(TOO_LARGE, "out of memory while decoding")
        finally:
            img.close()


def _process_open(img, data, min_side, max_side, max_pixels, keep_original):
    fmt = img.format or ""
    w, h = img.size
    if w * h > max_pixels:
        return Rejected(TOO_LARGE, f"{w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,} "
                                   "(decompression-bomb guard)")
    if min(w, h) < min_side:
        return Rejected(TOO_SMALL, f"{w}x{h} px; the shorter side must be at least {min_side} px")
    orientation = _orientation(img)
    if _keep_as_is(img, data, fmt, orientation, max_side):
        return _kept(img, data, keep_original)
    if fmt in ("JPEG", "MPO"):
        img.draft(img.mode, _fit(w, h, max_side))  # DCT-scaled decode, still >= the target size
    failed = _load(img, fmt)  # first frame of an animation
    if failed is not None:
        return failed
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block leaves the pixels as they are
        upright = img
    ow, oh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    try:
        rgb = _to_rgb(upright)
    except Exception as exc:  # noqa: BLE001
        return Rejected(NOT_IMAGE, f"cannot convert {fmt} mode {img.mode} to RGB: {exc}"[:300])
    target = _fit(ow, oh, max_side)
    if rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=2)
    stored = buf.getvalue()
    phash, dhash = hashes_of_file(stored)
    return ProcessedImage(
        sha256=hashlib.sha256(stored).hexdigest(), width=rgb.width, height=rgb.height,
        orig_sha256=hashlib.sha256(data).hexdigest(), orig_width=ow, orig_height=oh,
        orig_format=fmt, orig_size=len(data), phash=phash, dhash=dhash, data=stored,
        original=data if keep_original else None,
    )


def _load(img: Image.Image, fmt: str) -> Rejected | None:
    """Decode the pixels; a Rejected for a truncated, corrupt or bomb body."""
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        return Rejected(TOO_LARGE, f"decompression bomb: {exc}")
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Rejected(NOT_IMAGE, f"cannot decode {fmt or 'image'} data: {msg}"[:300])
    return None


def _keep_as_is(img: Image.Image, data: bytes, fmt: str, orientation: int, max_side: int) -> bool:
    """Whether the original bytes already are the stored copy (the fast path; module docstring).
    Called after the pixel-limit and minimum-side checks, before anything is decoded."""
    w, h = img.size
    return (fmt == "JPEG" and img.mode == "RGB" and orientation not in _ROTATING
            and (not max_side or max(w, h) <= max_side)
            and len(data) <= KEEP_MAX_BYTES_PER_PIXEL * w * h + KEEP_SLACK_BYTES
            and data.endswith(_JPEG_EOI) and len(img.tile) == 1)


def _kept(img: Image.Image, data: bytes, keep_original: bool) -> ProcessedImage | Rejected:
    """The fast path: validate and hash with one draft-mode decode; the original is the stored copy."""
    w, h = img.size
    failed = _load(draft_for_hashing(img), "JPEG")
    if failed is not None:
        return failed
    phash, dhash = hashes_of_image(img)
    sha = hashlib.sha256(data).hexdigest()
    return ProcessedImage(
        sha256=sha, width=w, height=h, orig_sha256=sha, orig_width=w, orig_height=h, orig_format="JPEG",
        orig_size=len(data), phash=phash, dhash=dhash, data=data, original=data if keep_original else None,
    )


def store_processed(store: ImageStore, processed: ProcessedImage) -> str:
    """Write the stored copy (and the original when kept) into the store; returns the relative path.

    Sets ``processed.store_path`` (and ``orig_path``). Call it before recording the catalog rows,
    so no row ever points at a missing file.
    """
    if processed.data is None:
        if processed.store_path:
            return processed.store_path
        raise ValueError("processed image has no bytes to store")
    processed.store_path = store.put(processed.data, processed.sha256, STORED_EXT)
    if processed.original is not None:
        processed.orig_path = store.put(processed.original, processed.orig_sha256, processed.orig_ext,
                                        prefix=ORIGINALS_PREFIX)
    return processed.store_path


#: the ImageStore of each store root a worker has written to (a worker writes to one or two)
_STORES: dict[str | os.PathLike, ImageStore] = {}


def process_and_store(data: bytes, store_root: str | os.PathLike, **options) -> ProcessedImage | Rejected:
    """For process-pool workers: process, write to the store here, return only the metadata."""
    res = process_image_bytes(data, **options)
    if not res.ok:
        return res
    store = _STORES.get(store_root)
    if store is None:
        if len(_STORES) >= 16:
            _STORES.clear()
        store = _STORES[store_root] = ImageStore(store_root)
    try:
        store_processed(store, res)
    except OSError as exc:
        return Rejected(ERROR, f"cannot write to the image store {store_root}: {exc.strerror or exc}")
    res.data = res.original = None  # written: only the metadata goes back
    return res


def process_file(path: str | os.PathLike, store_root: str | os.PathLike, **options) -> ProcessedImage | Rejected:
    """:func:`process_and_store` on a local file (the worker reads it: no bytes cross processes)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Rejected(ERROR, f"cannot read {path}: {exc.strerror or exc}")
    return process_and_store(data, store_root, **options)


# ---- worker pools -----------------------------------------------------------------------------

def image_pool(processes: int | None = None):
    """The process pool for :func:`process_image_bytes` / :func:`process_and_store` /
    :func:`process_file` (the crawler uses it too): see :func:`curation.hashing.process_pool`."""
    from .hashing import process_pool

    return process_pool(processes, preload=(__name__,))


# ---- local folders: `fid import images` ----------------------------------------------------------

#: files considered images by extension (content is still validated; SVG ends as not_image)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif",
                              ".tiff", ".avif", ".jp2", ".j2k", ".heic", ".heif", ".svg", ".ppm", ".tga"})
IMPORT_BATCH = 256
POOL_MIN_FILES = 32


def _image_files(folder: Path) -> tuple[list[Path], int]:
    """Image files under ``folder`` (recursive, hidden entries skipped) and the count of others."""
    files, others = [], 0
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel) or not p.is_file():
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            files.append(p)
        else:
            others += 1
    return files, others


def plan_image_folder(directory: str | os.PathLike, clade_names: list[str], clade: str | None = None,
                      unassigned: str = "unassigned") -> tuple[list[tuple[Path, str]], int]:
    """``([(file, clade)], skipped)`` for a tree with one sub-folder per clade (names matched
    case-insensitively) or, with ``clade``, for a flat folder. Reads the disk only; raises
    InputFileError/UnknownCladeError before anything is written."""
    from dataset_db.errors import InputFileError, UnknownCladeError

    d = Path(directory)
    if not d.is_dir():
        raise InputFileError(f"cannot read folder {d}; expected a folder of images with one sub-folder per "
                             "clade, or a flat folder with --clade NAME")
    by_lower = {n.lower(): n for n in clade_names}
    by_lower.setdefault(unassigned, unassigned)
    if clade is not None:
        name = by_lower.get(clade.strip().lower())
        if name is None:
            raise UnknownCladeError(clade, clade_names)
        files, skipped = _image_files(d)
        return [(f, name) for f in files], skipped
    subdirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise InputFileError(f"{d} has no sub-folders; name one sub-folder per clade, or give --clade NAME "
                             "for a flat folder")
    unknown = [p.name for p in subdirs if p.name.lower() not in by_lower]
    if unknown:
        raise InputFileError(
            f"unknown clade folder{'s' if len(unknown) > 1 else ''} in {d}: {', '.join(repr(u) for u in unknown)}; "
            f"sub-folders must be named after clades (case-insensitive): {', '.join(clade_names)}, {unassigned}")
    skipped = sum(1 for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    out = []
    for sub in subdirs:
        files, others = _image_files(sub)
        skipped += others
        out.extend((f, by_lower[sub.name.lower()]) for f in files)
    return out, skipped


def import_image_folder(catalog, store_root: str | os.PathLike, directory: str | os.PathLike,
                        clade: str | None = None, *, processes: int | None = None,
                        batch_size: int = IMPORT_BATCH, progress=None, **options) -> dict:
    """`fid import images`: every image file becomes a ``file://`` URL with a sighting (source
    ``local``) in an ``import_images`` run, goes through :func:`process_and_store` and is recorded
    in batches (one transaction each). Files already stored are not processed again.

    ``options`` are those of :func:`process_image_bytes`. ``progress(done, total)`` is called as
    files finish. Returns the counts shown by the CLI.
    """
    import time
    from collections import Counter
    from functools import partial

    from dataset_db.repo import clade_names, finish_run, start_run
    from dataset_db.repo_images import DOWNLOADED_STATUSES, ensure_urls_and_sightings, record_failures, record_images
    from dataset_db.urlnorm import normalise_url

    t0 = time.perf_counter()
    directory = Path(directory).resolve()
    with catalog.session() as s:
        names = clade_names(s)
    plan, skipped = plan_image_folder(directory, names, clade)

    settings = {"directory": str(directory), "clade": clade or "", **options}
    with catalog.session() as s:
        run_id = start_run(s, "import_images", source="local", clade=plan[0][1] if clade and plan else "",
                           settings=settings)
    counts = Counter()
    rejected: Counter = Counter()
    try:
        todo: list[tuple[Path, int]] = []
        for start in range(0, len(plan), 5000):
            chunk = plan[start:start + 5000]
            items = [{"url": p.as_uri(), "source": "local", "clade": c, "title": p.name} for p, c in chunk]
            with catalog.session() as s:
                rows = ensure_urls_and_sightings(s, items, run_id=run_id)
            for (p, _c), item in zip(chunk, items):
                row = rows[normalise_url(item["url"])]
                if row["status"] in DOWNLOADED_STATUSES and row["image_id"] is not None:
                    counts["already_imported"] += 1
                else:
                    todo.append((p, row["id"]))
        done = counts["already_imported"]
        if progress:
            progress(done, len(plan))

        work = partial(process_file, store_root=str(Path(store_root)), **options)
        pool = image_pool(processes) if (processes or os.cpu_count() or 1) > 1 and len(todo) >= POOL_MIN_FILES else None
        try:
            results = (pool.map(work, [p for p, _ in todo], chunksize=8) if pool
                       else (work(p) for p, _ in todo))
            ok_rows, failed_rows = [], []

            def flush():
                with catalog.session() as s:
                    res = record_images(s, ok_rows)
                    record_failures(s, failed_rows)
                counts["stored"] += res["stored"]
                counts["duplicate"] += res["duplicate"]
                ok_rows.clear()
                failed_rows.clear()

            for (p, url_id), res in zip(todo, results):
                if res.ok:
                    ok_rows.append({"url_id": url_id, **res.catalog_row()})
                else:
                    rejected[res.status] += 1
                    failed_rows.append({"url_id": url_id, "status": res.status, "error_message": res.error_message})
                done += 1
                if len(ok_rows) + len(failed_rows) >= batch_size:
                    flush()
                if progress:
                    progress(done, len(plan))
            if ok_rows or failed_rows:
                flush()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    except BaseException:
        with catalog.session() as s:
            finish_run(s, run_id, {**counts, "rejected": dict(rejected)}, status="failed")
        raise
    result = {
        "run_id": run_id,
        "directory": str(directory),
        "files": len(plan),
        "skipped": skipped,
        "already_imported": counts["already_imported"],
        "stored": counts["stored"],
        "duplicate": counts["duplicate"],
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": sum(rejected.values()),
        "per_clade": dict(Counter(c for _, c in plan)),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    with catalog.session() as s:
        finish_run(s, run_id, {k: v for k, v in result.items() if k not in ("run_id", "directory")})
    return result
