"""Generated test images (Pillow only): varied, photo-like JPEG/PNG/WebP/... and the bad cases the
image pipeline must handle. Every function is deterministic for a given seed and returns bytes."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A photo-like picture: a lit gradient background, soft-edged shapes, 1/f grain and noise.

    Shapes are drawn on a quarter-size canvas, blurred and enlarged (soft edges, and fast)."""
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    cw, ch = max(8, width // 4), max(8, height // 4)
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    angle = rnd.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / cw + np.sin(angle) * yy / ch
    base = np.stack([rnd.uniform(40, 200) + rnd.uniform(-60, 60) * ramp for _ in range(3)], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rnd.randint(3, 12)):
        x0, y0 = rnd.uniform(-0.2, 1.0) * cw, rnd.uniform(-0.2, 1.0) * ch
        w, h = rnd.uniform(0.05, 0.6) * cw, rnd.uniform(0.05, 0.6) * ch
        colour = tuple(rnd.randint(0, 255) for _ in range(3))
        shape = rnd.choice(("ellipse", "rectangle", "polygon"))
        if shape == "ellipse":
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == "rectangle":
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            pts = [(x0 + rnd.uniform(0, w), y0 + rnd.uniform(0, h)) for _ in range(rnd.randint(3, 7))]
            draw.polygon(pts, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(radius=max(cw, ch) / rnd.uniform(150, 400)))
    img = img.resize((width, height), Image.Resampling.BICUBIC)
    # rock-grain texture with a photo-like 1/f spectrum (made small, then enlarged), plus sensor noise
    grain = Image.fromarray(_pink_noise(64, 64, rng, rnd.uniform(1.0, 2.0)))
    grain = np.asarray(grain.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16) - 128
    amp = rnd.uniform(10, 40)
    arr = np.asarray(img, dtype=np.int16) + (grain * amp / 64).astype(np.int16)[..., None]
    arr += rng.integers(-4, 5, size=arr.shape, dtype=np.int16)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return img if mode == "RGB" else img.convert(mode)


def _pink_noise(h: int, w: int, rng, beta: float) -> np.ndarray:
    """uint8 noise whose amplitude falls as 1/f**beta, centred on 128 (std ~40)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** beta
    spec[0, 0] = 0
    field = np.fft.irfft2(spec, s=(h, w))
    field = field / (field.std() or 1.0) * 40 + 128
    return np.clip(field, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        kw.setdefault("quality", 85)
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(width: int = 400, height: int = 300, seed: int = 0, quality: int = 85, **kw) -> bytes:
    return encode(scene(width, height, seed), "JPEG", quality=quality, **kw)


def png(width: int = 400, height: int = 300, seed: int = 0) -> bytes:
    return encode(scene(width, height, seed), "PNG", compress_level=1)


def varied_set(n: int = 60, seed: int = 0) -> list[tuple[str, bytes]]:
    """(file name, bytes) of n varied images: JPEG at several sizes and qualities (baseline and
    progressive, 4:4:4 and 4:2:0), grayscale JPEG, PNG, WebP."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        w = rnd.choice((256, 320, 400, 512, 640, 800, 1024))
        h = int(w * rnd.uniform(0.5, 1.5))
        img = scene(w, h, seed * 1000 + i)
        kind = i % 6
        if kind in (0, 1, 2):
            data = encode(img, "JPEG", quality=rnd.choice((70, 80, 90, 95)),
                          progressive=kind == 1, subsampling=0 if kind == 2 else 2)
            out.append((f"img{i:03d}.jpg", data))
        elif kind == 3:
            out.append((f"img{i:03d}.jpg", encode(img.convert("L"), "JPEG", quality=88)))
        elif kind == 4:
            out.append((f"img{i:03d}.png", encode(img, "PNG", compress_level=1)))
        else:
            out.append((f"img{i:03d}.webp", encode(img, "WEBP", quality=85, method=0)))
    return out


# ---- the bad and awkward cases ------------------------------------------------------------------

def truncated_jpeg(seed: int = 1) -> bytes:
    data = jpeg(400, 300, seed)
    return data[: len(data) // 2]


def html_page() -> bytes:
    return (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>"
            b"<body><h1>Forbidden</h1><p>Hotlinking is not allowed.</p></body></html>\n")


def svg() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            b'width="400" height="300"><rect width="400" height="300" fill="#a85"/>'
            b'<circle cx="200" cy="150" r="80" fill="#553"/></svg>\n')


def empty() -> bytes:
    return b""


def decompression_bomb(side: int = 12_000) -> bytes:
    """A tiny PNG (a few kB) that declares side*side pixels (144 Mpx by default)."""
    return encode(Image.new("1", (side, side), 0), "PNG", optimize=True)


def cmyk_jpeg(width: int = 300, height: int = 200, seed: int = 2) -> bytes:
    return encode(scene(width, height, seed).convert("CMYK"), "JPEG", quality=90)


def png16(width: int = 300, height: int = 200) -> bytes:
    """16-bit grayscale PNG (mode I;16) using the full 0..65535 range."""
    ramp = np.linspace(0, 65535, width, dtype=np.float64)[None, :].repeat(height, axis=0)
    return encode(Image.fromarray(ramp.astype(np.uint16)), "PNG")


def palette_png_transparent(width: int = 200, height: int = 160) -> bytes:
    """A palette PNG whose index 0 is transparent: a red disc on a transparent background."""
    img = Image.new("P", (width, height), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    ImageDraw.Draw(img).ellipse([width // 4, height // 4, 3 * width // 4, 3 * height // 4], fill=1)
    return encode(img, "PNG", transparency=0)


def animated_gif(width: int = 160, height: int = 120, frames: int = 4) -> bytes:
    """Frame 0 is solid red, later frames solid blue/green..."""
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0)]
    imgs = [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return buf.getvalue()


def webp(width: int = 320, height: int = 240, seed: int = 3) -> bytes:
    return encode(scene(width, height, seed), "WEBP", quality=80)


def exif_rotated_jpeg(width: int = 400, height: int = 200, orientation: int = 6, seed: int = 4) -> bytes:
    """A landscape raster whose EXIF says 'rotate 90° on display' (orientation 6 or 8)."""
    img = scene(width, height, seed)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=90, exif=exif.tobytes())


def one_pixel() -> bytes:
    return encode(Image.new("RGB", (1, 1), (120, 80, 40)), "PNG")


BAD_CASES = {
    # name: (bytes factory, expected URL status, or None when it must be stored)
    "truncated_jpeg": (truncated_jpeg, "not_image"),
    "html_as_jpg": (html_page, "not_image"),
    "svg": (svg, "not_image"),
    "zero_bytes": (empty, "not_image"),
    "decompression_bomb": (decompression_bomb, "too_large"),
    "one_pixel": (one_pixel, "too_small"),
    "cmyk_jpeg": (cmyk_jpeg, None),
    "png16": (png16, None),
    "palette_transparent": (palette_png_transparent, None),
    "animated_gif": (animated_gif, None),
    "webp": (webp, None),
    "exif_rotated_jpeg": (exif_rotated_jpeg, None),
}
