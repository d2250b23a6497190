"""The crawler's SQL: crawl queries from clades, URLs + sightings for crawled items, the URLs the
`catalog` spider fetches, download outcomes (images + URL statuses) in batches, and the store
checks of `fid doctor`. Every write is one transaction per batch (SQLAlchemy Core executemany)."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select, update

from . import status as st
from .models import (Clade, Decision, ExportItem, GroupMember, Image, ReviewLease, ReviewState, Sighting,
                     Suspect, Url, utcnow)
from .urlnorm import normalise_url


# ---- what to crawl ------------------------------------------------------------------------------

def crawl_clades(s, names: list[str] | None) -> list[dict]:
    """``[{"clade", "taxon", "keywords"}]`` for the named clades (catalog spelling), or all of them.
    ``taxon`` is "" for clades that are no taxon (Stromatolite, Trace fossil): collections skip them."""
    from .repo import require_clade

    q = select(Clade).order_by(Clade.order_index, Clade.name)
    if names:
        wanted = [require_clade(s, n) for n in names]
        q = q.where(Clade.name.in_(wanted))
    return [{"clade": c.name, "taxon": (c.taxon or "").strip(), "keywords": dict(c.keywords or {})}
            for c in s.scalars(q)]


def _retryable_statuses() -> list[str]:
    return st.retryable_names() + st.retryable_http_names()


def pending_urls(s, clade: str | None = None, limit: int | None = None) -> list[dict]:
    """URLs to (re)download: pending, or in a retryable status with attempts left, oldest first.

    Each comes with one of its sightings' clade, source and keyword (for counting)."""
    from .repo import require_clade

    first = (select(Sighting.url_id, func.min(Sighting.id).label("sid")).group_by(Sighting.url_id)
             .subquery())
    q = (select(Url.id, Url.url, Url.status, Url.attempts, Sighting.clade, Sighting.source, Sighting.keyword)
         .outerjoin(first, first.c.url_id == Url.id).outerjoin(Sighting, Sighting.id == first.c.sid)
         .where(Url.status.in_(_retryable_statuses())).order_by(Url.id))
    if clade:
        name = require_clade(s, clade, allow_unassigned=True)
        q = q.where(Url.id.in_(select(Sighting.url_id).where(Sighting.clade == name)))
    out = []
    for uid, url, status, attempts, c, source, kw in s.execute(q.execution_options(yield_per=5000)):
        if st.is_retryable(status, attempts or 0):
            out.append({"url_id": uid, "url": url, "clade": c or "unassigned", "source": source or "",
                        "keyword": kw or ""})
            if limit and len(out) >= limit:
                break
    return out


# ---- crawled items ----------------------------------------------------------------------------------

def upsert_items(engine, run_id: int | None, items: list[dict]) -> dict[str, dict]:
    """Add the URLs and sightings of a batch of crawled items in one transaction
    (:func:`dataset_db.repo_images.ensure_urls_and_sightings`).

    ``items`` carry image_url, page_url, source, keyword, clade, title, license, rights_holder,
    record. Returns ``{image_url: {"url_id", "url", "status", "attempts", "image_id"}}`` for every
    item whose URL is valid (``url`` is the normalised spelling); invalid URLs are left out.
    """
    from sqlalchemy.orm import Session

    from .repo_images import ensure_urls_and_sightings

    valid, norm_of = [], {}
    for it in items:
        norm = normalise_url(it.get("image_url") or "")
        if norm is None or not norm.startswith(("http://", "https://")):
            continue
        norm_of[it["image_url"]] = norm
        valid.append({"url": norm, "source": it["source"], "keyword": it.get("keyword") or "",
                      "clade": it["clade"], "page_url": it.get("page_url") or "",
                      "title": (it.get("title") or "")[:2000], "license": (it.get("license") or "unknown")[:64],
                      "rights_holder": it.get("rights_holder") or "", "extra": it.get("record")})
    if not valid:
        return {}
    with Session(engine) as s, s.begin():
        rows = ensure_urls_and_sightings(s, valid, run_id=run_id)
    return {u: {"url_id": rows[n]["id"], "url": n, "status": rows[n]["status"],
                "attempts": rows[n]["attempts"] or 0, "image_id": rows[n]["image_id"]}
            for u, n in norm_of.items()}


def needs_download(info: dict, refetch: bool = False) -> bool:
    """Whether a URL (as returned by :func:`upsert_items`) should be downloaded now."""
    if info["status"] == st.PENDING or refetch:
        return True
    return st.is_retryable(info["status"], info["attempts"])


# ---- outcomes ---------------------------------------------------------------------------------

def record_outcomes(engine, rows: list[dict]) -> list[str]:
    """Write a batch of download outcomes in one transaction
    (:func:`dataset_db.repo_images.record_images` / ``record_failures``).

    Each row: ``url_id``, ``status`` (``stored`` rows carry ``image``, the images columns with a
    ``store_path`` already in the store), ``http_status``, ``error_message``. Returns each row's
    final status, in order (``stored`` becomes ``duplicate`` for bytes already in the catalog).
    """
    from sqlalchemy.orm import Session

    from .repo_images import record_failures, record_images

    if not rows:
        return []
    images = [dict(r["image"], url_id=r["url_id"], http_status=r.get("http_status")) for r in rows if r.get("image")]
    failures = [r for r in rows if not r.get("image")]
    with Session(engine) as s, s.begin():
        res = record_images(s, images) if images else {"status": {}}
        record_failures(s, failures)
    return [res["status"][r["url_id"]] if r.get("image") else r["status"] for r in rows]


# ---- doctor -------------------------------------------------------------------------------------

def image_paths(s) -> dict[str, int]:
    """``{store_path: image_id}`` for every image (and ``orig_path`` when the original was kept)."""
    out: dict[str, int] = {}
    for iid, path, orig in s.execute(select(Image.id, Image.store_path, Image.orig_path)):
        out[path] = iid
        if orig:
            out[orig] = iid
    return out


_IMAGE_REFS = ((GroupMember, GroupMember.image_id), (Decision, Decision.image_id),
               (ReviewState, ReviewState.image_id), (ExportItem, ExportItem.image_id),
               (Suspect, Suspect.image_id), (ReviewLease, ReviewLease.image_id))


def forget_images(s, image_ids: list[int]) -> dict[str, int]:
    """Repair images whose files are missing: their URLs go back to ``pending`` (the next fetch
    downloads them again); image rows nothing else refers to are deleted, the rest are kept so
    review history survives (the re-download restores their file under the same content address)."""
    ids = list(image_ids)
    if not ids:
        return {"urls_reset": 0, "images_deleted": 0, "images_kept": 0}
    res = s.execute(update(Url).where(Url.image_id.in_(ids))
                    .values(status=st.PENDING, image_id=None, attempts=0, error_message="file missing from the store",
                            updated_at=utcnow()))
    referenced: set[int] = set()
    for _model, col in _IMAGE_REFS:
        referenced.update(s.scalars(select(col).where(col.in_(ids)).distinct()))
    deletable = [i for i in ids if i not in referenced]
    if deletable:
        s.execute(delete(Image).where(Image.id.in_(deletable)))
    return {"urls_reset": res.rowcount or 0, "images_deleted": len(deletable),
            "images_kept": len(ids) - len(deletable)}


def url_counts(s) -> dict[str, int]:
    return dict(s.execute(select(Url.status, func.count()).group_by(Url.status)).all())


def dangling_urls(s) -> int:
    """URLs in a downloaded status without an image (should be 0)."""
    return s.scalar(select(func.count()).select_from(Url).where(
        Url.status.in_(["stored", "duplicate"]), or_(Url.image_id.is_(None)))) or 0
