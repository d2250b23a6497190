"""Fossil-like drawings per clade, a content function for :class:`crawler.emulators.imagegen.ImageGen`.

Every clade draws background, palette, lighting, rotation, scale, position, blur and noise from the
*same* distributions (:func:`render_specimen`); only the shape differs, so a classifier has to look
at shape (a colour-histogram classifier stays near chance). Labels are matched by substring:

    ammon -> spiral ammonoid shell      trilob -> segmented trilobite
    shark / selach / elasmo / tooth -> triangular tooth with a root
    frond / fern / pterid / plant -> frond      belemn -> straight belemnite guard
    aster / starfish / star -> five-armed starfish

Any other label (``None`` included) falls back to :func:`imagegen.abstract_content` ("junk").

Only shape may differ: the specimen is scaled so that the share of the picture it covers comes from
one distribution for every clade (a thin belemnite is drawn larger than a round ammonoid), and the
same matrix speckles and detail strokes are sprinkled on every picture, so neither the amount of
specimen colour nor the amount of dark detail colour gives the clade away.
:data:`CLADE_DRAWERS` maps the taxonomy's clade names to their drawers (the offline sample source
in :mod:`crawler.emulators.sample` uses it).
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .imagegen import abstract_content, add_noise, gradient, ramp

S = 256  # drawing canvas of the specimen before rotation and scaling


def _earth(rng: random.Random) -> tuple[int, int, int]:
    """A colour from one shared distribution of stone, matrix and paper tones."""
    v = rng.uniform(60, 215)
    warm = rng.uniform(-10, 30)
    return (int(min(255, v + warm)), int(v + warm * 0.4), int(max(0, v - warm * 0.6)))


def _shade(c, k: float):
    return tuple(int(max(0, min(255, x * k))) for x in c)


def ammonoid(d: ImageDraw.ImageDraw, rng: random.Random, col, dark):
    """A round, evolute shell: a bold logarithmic spiral (the whorl sutures) crossed by ribs."""
    c = S / 2
    R = S * 0.46
    d.ellipse((c - R, c - R, c + R, c + R), fill=col)
    ratio = rng.uniform(2.0, 2.8)  # radius growth per whorl
    b = math.log(ratio) / (2 * math.pi)
    turns = 3.2
    pts = []
    for i in range(400):
        t = turns * 2 * math.pi * i / 399
        r = R * math.exp(b * (t - turns * 2 * math.pi))
        pts.append((c + r * math.cos(t), c + r * math.sin(t)))
    d.line(pts, fill=dark, width=max(3, S // 36))
    d.ellipse((c - R, c - R, c + R, c + R), outline=dark, width=max(2, S // 60))
    n_ribs = rng.randint(18, 30)
    for k in range(n_ribs * 3):
        t = turns * 2 * math.pi - 2 * math.pi * k / n_ribs
        if t < 2 * math.pi:
            break
        r0 = R * math.exp(b * (t - 2 * math.pi - turns * 2 * math.pi))
        r1 = R * math.exp(b * (t - turns * 2 * math.pi))
        d.line([(c + r0 * math.cos(t), c + r0 * math.sin(t)), (c + r1 * math.cos(t), c + r1 * math.sin(t))],
               fill=dark, width=max(2, S // 90))


def trilobite(d: ImageDraw.ImageDraw, rng: random.Random, col, dark):
    """A long body in three parts: a half-moon head with backward spines, a banded thorax of
    segments, a small tail shield; three lobes along its length."""
    c = S / 2
    w = S * rng.uniform(0.2, 0.26)  # half width of the thorax
    top, bottom = S * 0.04, S * 0.96
    ceph_h = (bottom - top) * 0.26
    ceph_y = top + ceph_h
    cw = w * 1.35  # the head is wider than the thorax
    d.pieslice((c - cw, top, c + cw, ceph_y + ceph_h), 180, 360, fill=col)
    for sx in (-1, 1):  # genal spines, running back along the thorax
        d.polygon([(c + sx * cw, ceph_y - 2), (c + sx * cw * 0.8, ceph_y - 2),
                   (c + sx * cw * 1.05, ceph_y + (bottom - ceph_y) * 0.45)], fill=col)
        ex = c + sx * cw * 0.45
        d.ellipse((ex - S * 0.035, ceph_y - ceph_h * 0.55, ex + S * 0.035, ceph_y - ceph_h * 0.25), fill=dark)
    pyg_y = bottom - (bottom - top) * 0.16
    d.rectangle((c - w, ceph_y, c + w, pyg_y), fill=col)
    d.pieslice((c - w, pyg_y - (bottom - pyg_y), c + w, bottom), 0, 180, fill=col)
    n = rng.randint(9, 13)
    for i in range(n + 1):  # bold segment bands
        y = ceph_y + (pyg_y - ceph_y) * i / n
        d.line([(c - w, y), (c + w, y)], fill=dark, width=max(3, S // 70))
    ax = w * 0.32  # axial furrows: the three lobes
    d.line([(c - ax, ceph_y - ceph_h * 0.7), (c - ax * 0.7, bottom - S * 0.04)], fill=dark, width=max(3, S // 64))
    d.line([(c + ax, ceph_y - ceph_h * 0.7), (c + ax * 0.7, bottom - S * 0.04)], fill=dark, width=max(3, S // 64))
    d.line([(c - cw, ceph_y), (c + cw, ceph_y)], fill=dark, width=max(3, S // 64))


def shark_tooth(d: ImageDraw.ImageDraw, rng: random.Random, col, dark):
    c = S / 2
    half = S * rng.uniform(0.3, 0.38)
    top, base = S * 0.06, S * 0.7
    lean = rng.uniform(-0.12, 0.12) * S
    left = [(c - half + (c + lean - (c - half)) * t, base + (top - base) * t - 10 * math.sin(math.pi * t))
            for t in np.linspace(0, 1, 12)]
    right = [(c + lean + (c + half - (c + lean)) * t, top + (base - top) * t - 10 * math.sin(math.pi * t))
             for t in np.linspace(0, 1, 12)]
    d.polygon(left + right, fill=col)
    if rng.random() < 0.7:  # serrations
        for x, y in left[1:-1] + right[1:-1]:
            d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=dark)
    root = [(c - half * 1.1, base), (c + half * 1.1, base), (c + half * 0.7, S * 0.92), (c + 8, S * 0.82),
            (c - 8, S * 0.82), (c - half * 0.7, S * 0.92)]
    d.polygon(root, fill=_shade(col, 0.75))
    d.line([(c - half, base), (c + half, base)], fill=dark, width=max(3, S // 60))


def frond(d: ImageDraw.ImageDraw, rng: random.Random, col, dark):
    c = S / 2
    bend = rng.uniform(-0.15, 0.15) * S
    spine = [(c + bend * math.sin(math.pi * t), S * 0.95 - S * 0.9 * t) for t in np.linspace(0, 1, 30)]
    n = rng.randint(10, 18)
    for i in range(1, n + 1):
        t = i / (n + 1)
        x, y = spine[int(t * 29)]
        length = S * 0.4 * (1 - t * 0.8)
        for sx in (-1, 1):
            tip = (x + sx * length, y - length * 0.35)
            d.polygon([(x, y - 4), tip, (x, y + 4 + length * 0.12)], fill=col)
            d.line([(x, y), tip], fill=dark, width=1)
    d.line(spine, fill=dark, width=max(2, S // 60))


def belemnite(d: ImageDraw.ImageDraw, rng: random.Random, col, dark):
    c = S / 2
    half = S * rng.uniform(0.08, 0.12)
    top, tip = S * 0.05, S * 0.95
    body = [(c - half, top), (c + half, top), (c + half, tip - half * 4), (c, tip), (c - half, tip - half * 4)]
    d.polygon(body, fill=col)
    d.line([(c - half, top), (c, top + half * 5), (c + half, top)], fill=dark, width=2)  # alveolus
    d.line([(c + half * 0.2, top + half * 6), (c + half * 0.2, tip - half * 5)], fill=dark, width=2)  # groove


def starfish(d: ImageDraw.ImageDraw, rng: random.Random, col, dark):
    c = S / 2
    R, r = S * 0.46, S * 0.46 * rng.uniform(0.25, 0.4)
    rot = rng.uniform(0, 2 * math.pi)
    pts = []
    for i in range(10):
        rad = R if i % 2 == 0 else r
        a = rot + math.pi * i / 5
        pts.append((c + rad * math.cos(a), c + rad * math.sin(a)))
    d.polygon(pts, fill=col)
    for i in range(5):
        a = rot + 2 * math.pi * i / 5
        for k in range(3, 12):
            rr = R * k / 13
            x, y = c + rr * math.cos(a), c + rr * math.sin(a)
            d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=dark)


DRAWERS = {
    "ammon": ammonoid, "trilob": trilobite, "shark": shark_tooth, "selach": shark_tooth,
    "elasmo": shark_tooth, "tooth": shark_tooth, "frond": frond, "fern": frond, "pterid": frond,
    "plant": frond, "belemn": belemnite, "aster": starfish, "starfish": starfish, "star": starfish,
}


#: the taxonomy's clade names (dataset_db/taxonomy.toml) -> drawer
CLADE_DRAWERS = {
    "Ammonoid": ammonoid, "Trilobite": trilobite, "Shark teeth": shark_tooth, "Pteridophyte": frond,
    "Belemnite": belemnite, "Starfish": starfish,
}


def drawer_for(label: str | None):
    if not label:
        return None
    label = label.lower()
    for key, fn in DRAWERS.items():
        if key in label:
            return fn
    return None


#: share of the picture the specimen covers, drawn from this one range for every clade
COVER_RANGE = (0.2, 0.4)
#: smallest difference of the channel sums of specimen and background
CONTRAST = 200


def _speckles(d: ImageDraw.ImageDraw, rng: random.Random, w: int, h: int, col, dark) -> None:
    """Matrix grains and stray strokes in the specimen's own colours (the same amount for every clade)."""
    for _ in range(rng.randint(6, 18)):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1.0, 3.5) * max(w, h) / 256
        d.ellipse((x - r, y - r, x + r, y + r), fill=rng.choice((col, dark)))
    for _ in range(rng.randint(2, 6)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.03, 0.1) * max(w, h)
        d.line([(x, y), (x + length * math.cos(a), y + length * math.sin(a))], fill=dark,
               width=max(1, round(max(w, h) / 200)))


def render_specimen(rng: random.Random, drawer, w: int, h: int) -> Image.Image:
    """One specimen photo: shared scene distributions, clade-specific ``drawer`` for the shape."""
    bg = _earth(rng)
    bg2 = _shade(bg, rng.uniform(0.7, 1.2))
    img = gradient(w, h, bg, bg2, rng.uniform(0, 2 * math.pi))
    col = _earth(rng)
    if abs(sum(col) - sum(bg)) < CONTRAST:  # keep contrast: same rule for every clade
        col = _shade(bg, rng.uniform(0.35, 0.55)) if sum(bg) > 382 else _shade(bg, rng.uniform(1.6, 2.2))
    dark = _shade(col, rng.uniform(0.45, 0.7))
    layer = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    drawer(ImageDraw.Draw(layer), rng, col + (255,), dark + (255,))
    layer = layer.rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR, expand=True)
    layer = layer.crop(layer.getbbox() or (0, 0, layer.width, layer.height))
    # scale so the specimen covers a share of the picture drawn from one range for every clade
    drawn = float(np.asarray(layer.getchannel("A"), np.float32).sum() / 255.0) or 1.0
    cover = rng.uniform(*COVER_RANGE) * w * h
    k = math.sqrt(cover / drawn)
    k = min(k, 1.15 * max(w, h) / max(layer.size))  # long thin shapes may run off the picture, not far
    lw, lh = max(1, int(layer.width * k)), max(1, int(layer.height * k))
    layer = layer.resize((lw, lh), Image.Resampling.BILINEAR)
    x = int((w - lw) / 2 + rng.uniform(-0.2, 0.2) * w)
    y = int((h - lh) / 2 + rng.uniform(-0.2, 0.2) * h)
    # keep a specimen that fits wholly inside the picture (the same visible share for every clade)
    x = min(max(x, min(0, w - lw)), max(0, w - lw))
    y = min(max(y, min(0, h - lh)), max(0, h - lh))
    if rng.random() < 0.5:  # soft shadow
        shadow = Image.new("RGBA", layer.size, (0, 0, 0, 0))
        shadow.putalpha(layer.getchannel("A").point(lambda a: a * 0.35))
        shadow = shadow.filter(ImageFilter.BoxBlur(5))
        img.paste(shadow, (x + 6, y + 6), shadow)
    img.paste(layer, (x, y), layer)
    _speckles(ImageDraw.Draw(img), rng, w, h, col, dark)
    dim = rng.uniform(0.65, 1.0)
    light = 1.0 - (1.0 - dim) * ramp(w, h, rng.uniform(0, 2 * math.pi))
    img = Image.fromarray(np.clip(np.asarray(img, np.float32) * light[..., None], 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, 1.2)))
    return add_noise(img, rng, rng.uniform(2, 9))


def fossil_content(rng: random.Random, label: str | None, w: int, h: int) -> Image.Image:
    """Content function: a fossil-like drawing for known clade labels, abstract shapes otherwise."""
    drawer = drawer_for(label)
    if drawer is None:
        return abstract_content(rng, label, w, h)
    return render_specimen(rng, drawer, w, h)
