"""Synthetic, visually distinct image classes and a tiny export of them (tests and CPU demos).

Shapes (not colours) tell the classes apart: colours, positions, sizes and noise are random.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "stripes", "checker", "triangle")
CLADES = [("Trilobita", "Arthropoda"), ("Ammonoidea", "Mollusca"),
          ("Crinoidea", "Echinodermata"), ("Brachiopoda", "Lophophorata")]


def _colour(rng):
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def draw(kind: str, rng: np.random.Generator, width: int = 96, height: int = 80) -> Image.Image:
    noise = rng.normal(0, 18, (height, width, 3))
    bg = np.clip(np.array(_colour(rng)) * 0.5 + 60 + noise, 0, 255).astype(np.uint8)
    im = Image.fromarray(bg)
    d = ImageDraw.Draw(im)
    fg = _colour(rng)
    s = min(width, height)
    cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
    r = rng.uniform(0.25, 0.4) * s
    if kind == "disc":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "triangle":
        a = rng.uniform(0, 2 * math.pi)
        d.polygon([(cx + r * math.cos(a + k * 2 * math.pi / 3), cy + r * math.sin(a + k * 2 * math.pi / 3))
                   for k in range(3)], fill=fg)
    elif kind == "stripes":
        step = int(rng.integers(6, 11))
        for x in range(-height, width + height, step * 2):
            d.polygon([(x, 0), (x + step, 0), (x + step + height * 0.5, height), (x + height * 0.5, height)], fill=fg)
    elif kind == "checker":
        step = int(rng.integers(7, 12))
        for y in range(0, height, step):
            for x in range(0, width, step):
                if (x // step + y // step) % 2 == 0:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=fg)
    else:
        raise ValueError(f"unknown shape {kind!r}; choose from: {', '.join(SHAPES)}")
    return im


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_synthetic_export(cat, store: str | Path, name: str, n_classes: int = 3,
                          per_split: dict | None = None, size: tuple[int, int] = (96, 80),
                          seed: int = 0) -> dict:
    """Write generated JPEGs into the content-addressed ``store`` and record them and an export
    ``name`` (train/val/test) in the catalog. Returns ``{"export", "clades", "counts"}``."""
    from dataset_db.repo_training import add_stored_images, create_export, ensure_clades

    per_split = per_split or {"train": 24, "val": 8, "test": 10}
    rng = np.random.default_rng(seed)
    store = Path(store)
    clades = CLADES[:n_classes]
    rows, meta = [], []
    for (clade, _sup), kind in zip(clades, SHAPES):
        for split, n in per_split.items():
            for _ in range(n):
                data = jpeg_bytes(draw(kind, rng, *size))
                sha = hashlib.sha256(data).hexdigest()
                rel = f"{sha[:2]}/{sha}.jpg"
                (store / rel).parent.mkdir(parents=True, exist_ok=True)
                (store / rel).write_bytes(data)
                rows.append({"sha256": sha, "width": size[0], "height": size[1], "store_path": rel,
                             "orig_size": len(data)})
                meta.append((split, clade))
    with cat.session() as s:
        ensure_clades(s, clades)
        ids = add_stored_images(s, rows)
        items = [{"image_id": i, "split": sp, "clade": c, "group_key": str(i)} for i, (sp, c) in zip(ids, meta)]
        create_export(s, name, items, taxonomy_version="synthetic", params={"synthetic": True, "seed": seed})
    counts = {sp: n * len(clades) for sp, n in per_split.items()}
    return {"export": name, "clades": [c for c, _ in clades], "counts": counts, "image_ids": ids}
