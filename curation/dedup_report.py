"""`fid dedup --report DIR`: a static HTML gallery of the largest duplicate groups and every label
conflict, for a curator to open in a browser.

``DIR/index.html`` holds everything but the pictures: inline CSS, no script, no network. Each group
is a row of thumbnails side by side (the representative first, marked), with each member's
Hamming distance to the representative, its size and clades, and the URLs it was found at (links
to the source and the page). Thumbnails are small JPEGs written into ``DIR/thumbs/`` (longer side
:data:`THUMB_SIDE`), named by the image's sha256; the page refers to them by relative paths only,
never to the image store, so the folder can be zipped or copied elsewhere. A member whose store
file is missing is shown as a grey box saying so.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path

from PIL import Image

from dataset_db import repo_dedup as rd
from dataset_db.errors import FidError

from .store import ImageStore, StoreError

__all__ = ["ReportError", "write_report", "THUMB_SIDE"]

THUMB_SIDE = 160
THUMB_QUALITY = 80
MAX_MEMBERS_SHOWN = 40
THUMBS = "thumbs"
_POOL_MIN = 256


class ReportError(FidError):
    pass


def _thumbnail(job: tuple[str, str]) -> bool:
    """Write a small JPEG of ``src`` at ``dest``; False when ``src`` cannot be read."""
    src, dest = job
    if os.path.exists(dest):
        return True
    try:
        with Image.open(src) as img:
            img.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
            img = img.convert("RGB")
            img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
            tmp = dest + ".tmp"
            img.save(tmp, "JPEG", quality=THUMB_QUALITY)
            os.replace(tmp, dest)
        return True
    except Exception:  # noqa: BLE001 - a missing or broken file becomes a placeholder
        return False


def _make_thumbnails(jobs: list[tuple[str, str]], processes: int | None) -> list[bool]:
    if len(jobs) < _POOL_MIN or (processes or os.cpu_count() or 1) <= 1:
        return [_thumbnail(j) for j in jobs]
    from .hashing import process_pool

    with process_pool(processes, preload=(__name__,)) as pool:
        return list(pool.map(_thumbnail, jobs, chunksize=32))


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
.group{background:#fff;border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em .8em}
.group.conflict{border-color:#d33;box-shadow:0 0 0 1px #d33}
.head{font-size:.95em;margin-bottom:.4em}
.badge{background:#d33;color:#fff;border-radius:3px;padding:0 .4em;font-size:.85em}
.row{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}
figure{margin:0;width:170px;font-size:.75em;word-break:break-all}
figure img{display:block;max-width:160px;max-height:160px;border:1px solid #bbb}
figure.rep img{border:3px solid #2a7}
.missing{width:160px;height:120px;background:#ddd;display:flex;align-items:center;justify-content:center;color:#666}
.clade{font-weight:bold}.more{font-size:.85em;color:#666;align-self:center}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
nav a{margin-right:1em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _link(url: str, label: str) -> str:
    if url.startswith(("http://", "https://")):
        return f'<a href="{_e(url)}" rel="noreferrer noopener" target="_blank">{_e(label)}</a>'
    return _e(url)  # file:// and anything else is shown, never linked


def _figure(m: dict, rep_id: int, thumbs: dict[str, bool]) -> str:
    is_rep = m["image_id"] == rep_id
    ok = thumbs.get(m["sha256"], False)
    pic = (f'<img src="{THUMBS}/{_e(m["sha256"])}.jpg" alt="image {m["image_id"]}" loading="lazy">' if ok
           else '<div class="missing">file missing</div>')
    clades = sorted({sg["clade"] for sg in m["sightings"] if sg["clade"]})
    lines = [f'#{m["image_id"]} &middot; {"representative" if is_rep else "distance " + str(m["distance"])}',
             f'{m["orig_width"]}&times;{m["orig_height"]} px',
             f'<span class="clade">{_e(", ".join(clades) or "no clade")}</span>']
    seen = set()
    for sg in m["sightings"]:
        key = (sg["url"], sg["page_url"])
        if key in seen:
            continue
        seen.add(key)
        src = _link(sg["url"], "image")
        page = f' &middot; {_link(sg["page_url"], "page")}' if sg["page_url"] else ""
        lines.append(f'{_e(sg["source"] or "source")}: {src}{page}')
    return f'<figure class="{"rep" if is_rep else ""}">{pic}<figcaption>{"<br>".join(lines)}</figcaption></figure>'


def _group_html(g: dict, thumbs: dict[str, bool], anchor: str = "g") -> str:
    shown = g["members"][:MAX_MEMBERS_SHOWN]
    more = len(g["members"]) - len(shown)
    badge = ' <span class="badge">label conflict</span>' if g["conflict"] else ""
    clades = f' &middot; clades: {_e(", ".join(g["clades"]))}' if g["clades"] else ""
    figs = "".join(_figure(m, g["representative_id"], thumbs) for m in shown)
    if more > 0:
        figs += f'<div class="more">+{more} more</div>'
    return (f'<div class="group{" conflict" if g["conflict"] else ""}" id="{anchor}{g["id"]}">'
            f'<div class="head"><b>group {g["id"]}</b> &middot; {g["size"]} image{"s" if g["size"] != 1 else ""}'
            f' &middot; representative #{g["representative_id"]}{clades}{badge}</div>'
            f'<div class="row">{figs}</div></div>')


def write_report(catalog, store_root, out_dir, largest: int = 50, processes: int | None = None,
                 summary: dict | None = None) -> dict:
    """Write ``out_dir/index.html`` and ``out_dir/thumbs/*.jpg`` from the groups stored in the
    catalog. Returns ``{"index", "groups", "conflicts", "thumbnails", "missing"}``."""
    out = Path(out_dir)
    try:
        (out / THUMBS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    with catalog.session() as s:
        groups = rd.report_groups(s, largest=largest)
    store = ImageStore(store_root)
    jobs, shas = [], []
    for g in groups:
        for m in g["members"][:MAX_MEMBERS_SHOWN]:
            if m["sha256"] in shas:
                continue
            try:
                src = str(store.abs_path(m["store_path"]))
            except StoreError:
                src = ""
            shas.append(m["sha256"])
            jobs.append((src, str(out / THUMBS / f"{m['sha256']}.jpg")))
    thumbs = dict(zip(shas, _make_thumbnails(jobs, processes)))

    big = [g for g in groups if g["size"] >= 2][:largest]
    conflicts = [g for g in groups if g["conflict"]]
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    settings = sorted({(g["method"], g["threshold"]) for g in groups})
    pairs: dict[tuple[str, str], int] = {}
    for g in conflicts:
        cs = sorted(g["clades"])
        for i in range(len(cs)):
            for j in range(i + 1, len(cs)):
                pairs[(cs[i], cs[j])] = pairs.get((cs[i], cs[j]), 0) + 1
    rows = "".join(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td><td>{n}</td></tr>"
                   for (a, b), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>fid dedup report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>fid dedup report</h1>",
        f"<p>Written {_e(stamp)}. Settings: "
        f"{_e(', '.join(f'{m} threshold {t}' for m, t in settings) or 'no groups stored')}. "
        f"{len(big)} largest group(s) and {len(conflicts)} label conflict(s) shown; the representative "
        "(green frame) is what an export keeps, distances are Hamming bits to it.</p>",
        '<nav><a href="#largest">Largest groups</a><a href="#conflicts">Label conflicts</a></nav>',
    ]
    if summary:
        parts.append(f"<p>{summary.get('groups', 0):,} groups, {summary.get('images_in_groups', 0):,} images in "
                     f"groups, {summary.get('conflicts', 0):,} conflicts.</p>")
    parts.append('<h2 id="largest">Largest groups</h2>')
    parts += [_group_html(g, thumbs) for g in big] or ["<p>No duplicate groups.</p>"]
    parts.append('<h2 id="conflicts">Label conflicts</h2>')
    if rows:
        parts.append(f"<table><tr><th>clade</th><th>clade</th><th>groups</th></tr>{rows}</table>")
    parts += [_group_html(g, thumbs, "c") for g in conflicts] or ["<p>No label conflicts.</p>"]
    parts.append("</body></html>")
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, index)
    return {"index": str(index), "groups": len(big), "conflicts": len(conflicts),
            "thumbnails": sum(thumbs.values()), "missing": sum(not v for v in thumbs.values())}
