"""Images generated at request time, deterministic from (seed, kind, ident, format).

The *content* of a good image comes from a pluggable function::

    content(rng: random.Random, label: str | None, width: int, height: int) -> PIL.Image.Image (RGB)

``label`` is the prefix of the ident before the first ``-`` (the emulator plan puts a slug of the
keyword there, e.g. ``trilobita-3fa2c19e0b41``), so a content function can draw per clade
(see :mod:`crawler.emulators.fossils`). :func:`abstract_content` (the default) draws random shapes.

:class:`ImageGen` turns content into bytes for every *kind* the image hosts serve, good and bad:
``ok`` (format from the extension), ``cmyk``, ``png16``, ``palette`` (with transparency), ``gif``
(animated), ``webp``, ``exif`` (stored rotated, EXIF Orientation 6), ``tiny`` (1x1), ``small``,
``truncated``, ``html``, ``svg``, ``empty``, ``bomb`` (a small PNG declaring 20000x20000 pixels),
``resized`` / ``cropped`` / ``recompressed`` (near-duplicates of ``ok``) and ``thumb``.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ContentFn = Callable[[random.Random, Optional[str], int, int], Image.Image]

#: extension -> Pillow format
FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "": "JPEG"}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}

#: kinds whose format follows the URL extension
EXT_KINDS = ("ok", "tiny", "small", "thumb")
#: every kind ImageGen.render accepts
IMAGE_KINDS = (
    "ok", "cmyk", "png16", "palette", "gif", "webp", "exif", "tiny", "small", "truncated", "html",
    "svg", "empty", "bomb", "resized", "cropped", "recompressed", "thumb",
)
#: the dimensions the decompression bomb declares (4e8 pixels, above 2x Pillow's default limit)
BOMB_SIZE = (20000, 20000)
SMALL_SIZE = (48, 36)


def rng_for(seed, *parts) -> random.Random:
    """A ``random.Random`` seeded from ``seed`` and ``parts`` (stable across runs and platforms)."""
    h = hashlib.sha256("|".join(str(p) for p in (seed,) + parts).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def np_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(64))


def label_of(ident: str) -> str | None:
    """The content label encoded in an ident (``trilobita-3fa2...`` -> ``trilobita``)."""
    return ident.split("-", 1)[0] if "-" in ident else None


def format_for(ext: str) -> str:
    return FORMATS.get(ext.lower().lstrip("."), "JPEG")


# --------------------------------------------------------------------------- content


def ramp(w: int, h: int, angle: float) -> np.ndarray:
    """A float32 (h, w) ramp from 0 to 1 along ``angle`` (radians), computed at 1/8 size and upsampled."""
    sw, sh = max(2, w // 8 + 1), max(2, h // 8 + 1)
    xs = np.linspace(0, w, sw, dtype=np.float32)[None, :] * np.float32(np.cos(angle))
    ys = np.linspace(0, h, sh, dtype=np.float32)[:, None] * np.float32(np.sin(angle))
    d = xs + ys
    lo, hi = float(d.min()), float(d.max())
    d = (d - lo) * np.float32(1.0 / max(hi - lo, 1e-6))
    return np.asarray(Image.fromarray(d, "F").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


def gradient(w: int, h: int, c0, c1, angle: float) -> Image.Image:
    """An RGB linear gradient from colour c0 to c1 along ``angle`` (radians)."""
    sw, sh = max(2, w // 8 + 1), max(2, h // 8 + 1)
    d = ramp(sw, sh, angle)[..., None]
    c0 = np.asarray(c0, np.float32)
    c1 = np.asarray(c1, np.float32)
    small = np.clip(c0 + d * (c1 - c0), 0, 255).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BILINEAR)


_NOISE_TILE = 1024


_ONCE_LOCK = threading.Lock()
_TILE: list = []


def _noise_tile() -> np.ndarray:
    """Gaussian noise (sd 16) as int8, generated once per process; images use random windows of it."""
    if not _TILE:
        with _ONCE_LOCK:  # many server threads ask at once on the first requests
            if not _TILE:
                g = np.random.default_rng(12345).standard_normal((_NOISE_TILE, _NOISE_TILE, 3), dtype=np.float32)
                _TILE.append(np.clip(g * 16, -127, 127).astype(np.int8))
    return _TILE[0]


def add_noise(img: Image.Image, rng: random.Random, sigma: float) -> Image.Image:
    """Add Gaussian-like noise of standard deviation ``sigma`` (a random window of a shared tile)."""
    w, h = img.size
    tile = _noise_tile()
    if w > _NOISE_TILE or h > _NOISE_TILE:
        noise = np_rng(rng).normal(0.0, 16.0, (h, w, 3)).astype(np.float32)
    else:
        y0, x0 = rng.randint(0, _NOISE_TILE - h), rng.randint(0, _NOISE_TILE - w)
        noise = tile[y0:y0 + h, x0:x0 + w].astype(np.float32)
    arr = np.asarray(img, dtype=np.float32) + noise * np.float32(sigma / 16.0)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _rand_colour(rng: random.Random):
    return tuple(rng.randint(0, 255) for _ in range(3))


def abstract_content(rng: random.Random, label: str | None, w: int, h: int) -> Image.Image:
    """Random gradient, 3-8 shapes and sensor-like noise: distinct perceptual hashes per image."""
    img = gradient(w, h, _rand_colour(rng), _rand_colour(rng), rng.uniform(0, 6.283))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 8)):
        x0, y0 = rng.uniform(-0.2, 0.9) * w, rng.uniform(-0.2, 0.9) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h
        shape = rng.choice(("ellipse", "rectangle", "polygon"))
        fill = _rand_colour(rng)
        if shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            pts = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(rng.randint(3, 6))]
            draw.polygon(pts, fill=fill)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 1.5)))
    return add_noise(img, rng, rng.uniform(3, 10))


# --------------------------------------------------------------------------- encoders


def encode(img: Image.Image, fmt: str, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    elif fmt == "WEBP":
        img.convert("RGB").save(buf, "WEBP", quality=quality)
    elif fmt == "GIF":
        img.convert("RGB").quantize(128, method=Image.Quantize.FASTOCTREE).save(buf, "GIF")
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


_BOMB_LOCK = threading.Lock()


def bomb_png(width: int = BOMB_SIZE[0], height: int = BOMB_SIZE[1]) -> bytes:
    """A complete, valid 1-bit PNG of ``width`` x ``height`` black pixels that compresses to ~50 KB."""
    with _BOMB_LOCK:
        return _bomb_png(width, height)


@lru_cache(maxsize=2)
def _bomb_png(width: int, height: int) -> bytes:
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = []
    chunk = row * 256
    for _ in range(height // 256):
        parts.append(comp.compress(chunk))
    parts.append(comp.compress(row * (height % 256)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def html_page(ident: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html><head><title>403 Hotlinking not allowed</title></head>"
            f"<body><h1>Hotlinking not allowed</h1><p>Please visit our gallery to see {ident}.</p>"
            f"</body></html>\n").encode()


def svg_doc(rng: random.Random, w: int, h: int) -> bytes:
    shapes = "".join(
        f'<circle cx="{rng.randint(0, w)}" cy="{rng.randint(0, h)}" r="{rng.randint(10, w // 3)}" '
        f'fill="#{rng.randint(0, 0xFFFFFF):06x}"/>'
        for _ in range(5)
    )
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{w}" height="{h}" viewBox="0 0 {w} {h}">{shapes}</svg>\n').encode()


# --------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str


class ImageGen:
    """Deterministic image bytes per (kind, ident, ext, width), with a bounded LRU cache."""

    def __init__(self, seed: int = 0, content: ContentFn | None = None,
                 size_range: tuple[int, int] = (300, 512), cache_size: int = 256):
        self.seed = seed
        self.content = content or abstract_content
        lo, hi = size_range
        if not (1 <= lo <= hi):
            raise ValueError(f"size_range {size_range!r}; expected (min, max) with 1 <= min <= max")
        self.size_range = (lo, hi)
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()
        self._bases: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Build the shared noise tile now rather than on the first requests."""
        _noise_tile()

    # -- geometry and content
    def size(self, ident: str) -> tuple[int, int]:
        """(width, height) of the good image for ``ident`` (what sources report)."""
        r = rng_for(self.seed, "size", ident)
        return r.randint(*self.size_range), r.randint(*self.size_range)

    def quality(self, ident: str) -> int:
        return rng_for(self.seed, "quality", ident).randint(78, 93)

    def base(self, ident: str) -> Image.Image:
        """The good picture for ``ident`` (RGB, :meth:`size`); treat it as read-only."""
        with self._lock:
            hit = self._bases.get(ident)
            if hit is not None:
                self._bases.move_to_end(ident)
                return hit
        w, h = self.size(ident)
        img = self.content(rng_for(self.seed, "content", ident), label_of(ident), w, h)
        if img.size != (w, h):
            img = img.resize((w, h))
        img = img.convert("RGB")
        with self._lock:
            self._bases[ident] = img
            while len(self._bases) > 16:
                self._bases.popitem(last=False)
        return img

    # -- bytes
    def render(self, kind: str, ident: str, ext: str = "jpg", width: int | None = None) -> Rendered:
        if kind not in IMAGE_KINDS:
            raise ValueError(f"unknown image kind {kind!r}; choose from: {', '.join(IMAGE_KINDS)}")
        ext = ext.lower().lstrip(".")
        key = (kind, ident, format_for(ext) if kind in EXT_KINDS else "", width)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        out = self._render(kind, ident, ext, width)
        if self.cache_size:
            with self._lock:
                self._cache[key] = out
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _render(self, kind: str, ident: str, ext: str, width: int | None) -> Rendered:
        q = self.quality(ident)
        fmt = format_for(ext)
        if kind == "empty":
            return Rendered(b"", "image/jpeg")
        if kind == "html":
            return Rendered(html_page(ident), "image/jpeg")
        if kind == "svg":
            w, h = self.size(ident)
            return Rendered(svg_doc(rng_for(self.seed, "svg", ident), w, h), "image/svg+xml")
        if kind == "bomb":
            return Rendered(bomb_png(), "image/png")
        if kind == "tiny":
            return Rendered(encode(Image.new("RGB", (1, 1), (255, 255, 255)), fmt, q), MIME[fmt])
        if kind == "small":
            return Rendered(encode(self.base(ident).resize(SMALL_SIZE), fmt, q), MIME[fmt])
        base = self.base(ident)
        if kind == "ok":
            if width:
                base = base.resize((width, max(1, round(base.height * width / base.width))))
            return Rendered(encode(base, fmt, q), MIME[fmt])
        if kind == "thumb":
            t = base.copy()
            t.thumbnail((width or 120, width or 120))
            return Rendered(encode(t, fmt, 70), MIME[fmt])
        if kind == "truncated":
            full = encode(base, "JPEG", q)
            return Rendered(full[: int(len(full) * 0.6)], "image/jpeg")
        if kind == "cmyk":
            buf = io.BytesIO()
            base.convert("CMYK").save(buf, "JPEG", quality=q)
            return Rendered(buf.getvalue(), "image/jpeg")
        if kind == "png16":
            arr = np.asarray(base.convert("L"), dtype=np.uint16) * 257
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "PNG")  # mode I;16: 16-bit greyscale
            return Rendered(buf.getvalue(), "image/png")
        if kind == "palette":
            return Rendered(self._palette(base), "image/png")
        if kind == "gif":
            return Rendered(self._animated(base), "image/gif")
        if kind == "webp":
            return Rendered(encode(base, "WEBP", q), "image/webp")
        if kind == "exif":
            stored = base.transpose(Image.Transpose.ROTATE_90)  # Orientation 6 rotates it back
            exif = Image.Exif()
            exif[0x0112] = 6
            buf = io.BytesIO()
            stored.save(buf, "JPEG", quality=q, exif=exif.tobytes())
            return Rendered(buf.getvalue(), "image/jpeg")
        if kind == "resized":
            return Rendered(encode(base.resize((base.width * 3 // 4, base.height * 3 // 4)), "JPEG", q), "image/jpeg")
        if kind == "cropped":
            dx, dy = base.width // 12, base.height // 12
            return Rendered(encode(base.crop((dx, dy, base.width - dx // 2, base.height - dy // 2)), "JPEG", q),
                            "image/jpeg")
        if kind == "recompressed":
            return Rendered(encode(base, "JPEG", 35), "image/jpeg")
        raise AssertionError(kind)  # pragma: no cover - IMAGE_KINDS checked above

    @staticmethod
    def _palette(base: Image.Image) -> bytes:
        p = base.quantize(63, method=Image.Quantize.FASTOCTREE)
        idx = np.asarray(p, dtype=np.uint8) + 1
        h, w = idx.shape
        ys, xs = np.mgrid[0:h, 0:w]
        outside = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2 > 0.8
        idx = np.where(outside, 0, idx).astype(np.uint8)
        out = Image.fromarray(idx, "P")
        out.putpalette([0, 0, 0] + p.getpalette()[: 63 * 3])
        buf = io.BytesIO()
        out.save(buf, "PNG", transparency=0)
        return buf.getvalue()

    @staticmethod
    def _animated(base: Image.Image) -> bytes:
        frames = [base]
        for k in (1, 2):
            frames.append(Image.fromarray(np.roll(np.asarray(base), k * base.width // 7, axis=1)))
        first = frames[0].quantize(128, method=Image.Quantize.FASTOCTREE)
        frames = [first] + [f.quantize(palette=first, dither=Image.Dither.NONE) for f in frames[1:]]
        buf = io.BytesIO()
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=120, loop=0)
        return buf.getvalue()
