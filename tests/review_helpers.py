"""Helpers for the review tests: images written with Pillow into a temp store, catalog rows inserted."""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

from PIL import Image as PILImage, ImageDraw

from dataset_db.models import DupGroup, GroupMember, Image, Sighting, Url

_counter = itertools.count(1)


def add_image(cat, store: Path, clade: str = "Ammonoid", *, size=(320, 240), orig_size=None,
              source: str = "gbif", url: str | None = None, license: str = "cc-by",
              keyword: str = "trilobite fossil", extra_clades=(), write_file: bool = True) -> int:
    """A JPEG in ``store`` and its Image/Url/Sighting rows; returns the image id."""
    n = next(_counter)
    w, h = size
    img = PILImage.new("RGB", (w, h), ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256))
    ImageDraw.Draw(img).rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=(n % 256, 200, 30))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    sha = hashlib.sha256(data + str(n).encode()).hexdigest()
    rel = f"{sha[:2]}/{sha[2:4]}/{sha}.jpg"
    if write_file:
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
    ow, oh = orig_size or size
    url = url or f"https://images.example.org/{n}.jpg"
    with cat.session() as s:
        im = Image(sha256=sha, width=w, height=h, store_path=rel, orig_sha256=sha, orig_width=ow,
                   orig_height=oh, orig_format="JPEG", orig_size=len(data))
        s.add(im)
        s.flush()
        u = Url(url_hash=hashlib.sha1(url.encode()).hexdigest(), url=url, status="stored", image_id=im.id)
        s.add(u)
        s.flush()
        for c in (clade, *extra_clades):
            s.add(Sighting(sighting_key=hashlib.sha1(f"{url}|{c}".encode()).hexdigest(), url_id=u.id,
                           source=source, keyword=keyword, clade=c, page_url=f"https://example.org/page/{n}",
                           title=f"image {n}", license=license))
        return im.id


def add_group(cat, image_ids, conflict: bool, clades=()) -> int:
    with cat.session() as s:
        g = DupGroup(representative_id=image_ids[0], method="phash", threshold=6, hash_version=1,
                     size=len(image_ids), conflict=conflict, clades=list(clades))
        s.add(g)
        s.flush()
        for i in image_ids:
            s.add(GroupMember(image_id=i, group_id=g.id, distance=0))
        return g.id
