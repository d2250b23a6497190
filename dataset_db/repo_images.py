"""The catalog side of the image pipeline: images, the URL -> image link, URL outcomes.

Batch-oriented SQLAlchemy Core (``INSERT ... ON CONFLICT DO NOTHING`` and executemany
``UPDATE``), on SQLite and PostgreSQL. Each function runs inside the caller's session and
transaction: the caller commits one transaction per batch, so a failed batch leaves nothing.

An image is unique by the sha256 of its stored copy; a URL whose bytes are already an image is
linked to that image with status ``duplicate``; the first URL to bring an image gets ``stored``.
An image is also matched by the sha256 of its *original* bytes, so the same file processed with
other settings (another max side) still links to the image already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from . import status as st
from .errors import FidError
from .models import Image, Sighting, Url, utcnow
from .urlnorm import normalise_url, sighting_key, url_key

STORED = st.lookup("stored").name
DUPLICATE = st.lookup("duplicate").name
DOWNLOADED_STATUSES = (STORED, DUPLICATE)
_CHUNK = 1000  # IN-list size

IMAGE_COLUMNS = ("sha256", "width", "height", "store_path", "orig_sha256", "orig_width", "orig_height",
                 "orig_format", "orig_size", "orig_path", "phash", "dhash", "hash_version")


class CatalogWriteError(FidError):
    pass


def _insert(session: Session, table):
    name = session.get_bind().dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover
        raise CatalogWriteError(f"unsupported catalog database {name!r}; expected sqlite or postgresql")
    return insert(table)


def _chunks(seq: Sequence, n: int = _CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _get(row: Any, key: str, default=None):
    if isinstance(row, Mapping):
        return row.get(key, default)
    return getattr(row, key, default)


# ---- URLs and sightings -----------------------------------------------------------------------

def ensure_urls_and_sightings(session: Session, items: Iterable[Mapping], run_id: int | None = None) -> dict[str, dict]:
    """Make sure each item's URL and sighting exist; return ``{normalised url: url row}``.

    Each item has ``url`` and optionally ``source``, ``keyword``, ``clade``, ``page_url``, ``title``,
    ``license``, ``rights_holder``, ``extra``. Keys follow :mod:`dataset_db.urlnorm` (the same as
    `fid import urls`), so the same URL seen twice from the same place adds nothing. The returned
    rows have ``id``, ``status``, ``image_id`` and ``attempts`` as they are now.
    """
    now = utcnow()
    urls: dict[str, dict] = {}
    sightings: dict[str, dict] = {}
    for it in items:
        url = normalise_url(it["url"])
        if url is None:
            raise CatalogWriteError(f"not an http(s) or file URL: {it['url']!r}")
        h = url_key(url)
        urls.setdefault(h, {"url_hash": h, "url": url, "status": st.lookup("pending").name, "attempts": 0,
                            "first_seen_at": now, "updated_at": now})
        source, keyword, clade = it.get("source") or "", it.get("keyword") or "", it.get("clade") or ""
        page = it.get("page_url") or ""
        sk = sighting_key(url, source, keyword, clade, page)
        sightings.setdefault(sk, {"sighting_key": sk, "url_hash": h, "run_id": run_id, "source": source,
                                  "keyword": keyword, "clade": clade, "page_url": page,
                                  "title": it.get("title") or "", "license": it.get("license") or "unknown",
                                  "rights_holder": it.get("rights_holder") or "", "extra": it.get("extra"),
                                  "seen_at": now})
    if not urls:
        return {}
    conn = session.connection()
    ut, stt = Url.__table__, Sighting.__table__
    conn.execute(_insert(session, ut).on_conflict_do_nothing(index_elements=["url_hash"]), list(urls.values()))
    q = (select(ut.c.id, ut.c.url_hash, ut.c.url, ut.c.status, ut.c.image_id, ut.c.attempts)
         .where(ut.c.url_hash.in_(bindparam("hashes", expanding=True))))
    found: dict[str, dict] = {}
    for chunk in _chunks(list(urls)):
        for r in conn.execute(q, {"hashes": chunk}).mappings():
            found[r["url_hash"]] = dict(r)
    rows = []
    for srow in sightings.values():
        srow = dict(srow)
        srow["url_id"] = found[srow.pop("url_hash")]["id"]
        rows.append(srow)
    conn.execute(_insert(session, stt).on_conflict_do_nothing(index_elements=["sighting_key"]), rows)
    return {r["url"]: r for r in found.values()}


# ---- outcomes ---------------------------------------------------------------------------------

def record_images(session: Session, rows: Sequence[Mapping | Any]) -> dict:
    """Record downloaded, valid images for a batch of URLs.

    Each row (a mapping or an object) has ``url_id``, the image columns of :data:`IMAGE_COLUMNS`
    (``store_path`` must point at a file already in the store; ``phash``/``dhash`` unsigned, the
    ``Hash64`` column type stores them signed) and optionally ``http_status``.
    Inserts the images not yet in the catalog, links every URL to its image and sets its status:
    ``stored`` for the URL that brought a new image, ``duplicate`` when the image was already
    there (or came with an earlier row of the batch). A URL re-processed onto the image it
    already had keeps its status. Increments ``attempts``, sets ``last_attempt_at``.

    Returns ``{"stored": n, "duplicate": n, "images_added": n, "status": {url_id: status},
    "image_id": {url_id: image_id}}``.
    """
    if not rows:
        return {"stored": 0, "duplicate": 0, "images_added": 0, "status": {}, "image_id": {}}
    conn = session.connection()
    it, ut = Image.__table__, Url.__table__
    now = utcnow()

    new_rows: dict[str, dict] = {}
    for row in rows:
        sha = _get(row, "sha256")
        if not sha or not _get(row, "store_path"):
            raise CatalogWriteError(f"image row for url_id {_get(row, 'url_id')} lacks sha256/store_path; "
                                    "store the image before recording it")
        if sha not in new_rows:
            rec = {k: _get(row, k) for k in IMAGE_COLUMNS}
            rec["created_at"] = now
            new_rows[sha] = rec

    def lookup(column, keys) -> dict[str, int]:
        out: dict[str, int] = {}
        q = select(it.c.id, column).where(column.in_(bindparam("keys", expanding=True))).order_by(it.c.id)
        for chunk in _chunks(list(keys)):
            for iid, key in conn.execute(q, {"keys": chunk}):
                out.setdefault(key, iid)
        return out

    existing = lookup(it.c.sha256, new_rows)  # stored sha256 -> image id
    pending = [r for sha, r in new_rows.items() if sha not in existing]
    by_orig = lookup(it.c.orig_sha256, {r["orig_sha256"] for r in pending})  # original sha256 -> image id
    first_by_orig: dict[str, str] = {}  # the same original twice in a batch is one image
    to_insert = []
    for r in pending:
        if r["orig_sha256"] not in by_orig and r["orig_sha256"] not in first_by_orig:
            first_by_orig[r["orig_sha256"]] = r["sha256"]
            to_insert.append(r)
    inserted: set[str] = set()
    if to_insert:
        ins = _insert(session, it).on_conflict_do_nothing(index_elements=["sha256"]).returning(it.c.sha256)
        for chunk in _chunks(to_insert):
            inserted.update(conn.execute(ins, chunk).scalars())
        existing.update(lookup(it.c.sha256, [r["sha256"] for r in to_insert]))

    def image_for(sha: str) -> int:
        if sha in existing:
            return existing[sha]
        orig = new_rows[sha]["orig_sha256"]
        return by_orig[orig] if orig in by_orig else existing[first_by_orig[orig]]

    url_ids = [_get(r, "url_id") for r in rows]
    current: dict[int, tuple] = {}
    q = select(ut.c.id, ut.c.status, ut.c.image_id).where(ut.c.id.in_(bindparam("ids", expanding=True)))
    for chunk in _chunks(url_ids):
        for uid, status, image_id in conn.execute(q, {"ids": chunk}):
            current[uid] = (status, image_id)
    missing = [u for u in url_ids if u not in current]
    if missing:
        raise CatalogWriteError(f"unknown url_id(s) {missing[:5]}; record URLs before their images")

    params, status_by_url, image_by_url = [], {}, {}
    claimed: set[int] = set()
    for row in rows:
        uid = _get(row, "url_id")
        sha = _get(row, "sha256")
        image_id = image_for(sha)
        prev_status, prev_image = current[uid]
        if prev_image == image_id and prev_status in DOWNLOADED_STATUSES:
            status = prev_status
        elif sha in inserted and image_id not in claimed:
            status = STORED
        else:
            status = DUPLICATE
        claimed.add(image_id)
        status_by_url[uid], image_by_url[uid] = status, image_id
        params.append({"b_id": uid, "b_status": status, "b_image_id": image_id,
                       "b_http_status": _get(row, "http_status"), "b_now": now})
    upd = (ut.update().where(ut.c.id == bindparam("b_id"))
           .values(status=bindparam("b_status"), image_id=bindparam("b_image_id"),
                   http_status=bindparam("b_http_status"), error_message=None,
                   attempts=ut.c.attempts + 1, last_attempt_at=bindparam("b_now"), updated_at=bindparam("b_now")))
    conn.execute(upd, params)
    stored = sum(1 for s in status_by_url.values() if s == STORED)
    return {"stored": stored, "duplicate": len(status_by_url) - stored, "images_added": len(inserted),
            "status": status_by_url, "image_id": image_by_url}


def record_failures(session: Session, rows: Sequence[Mapping | Any]) -> dict[str, int]:
    """Record URLs that failed: each row has ``url_id``, ``status`` (from :mod:`dataset_db.status`),
    ``error_message`` and optionally ``http_status``. Increments ``attempts``. Returns counts by
    status."""
    if not rows:
        return {}
    ut = Url.__table__
    now = utcnow()
    params, counts = [], {}
    for row in rows:
        name = _get(row, "status")
        try:
            st.lookup(name)
        except ValueError as exc:
            raise CatalogWriteError(str(exc)) from None
        if name in DOWNLOADED_STATUSES or st.bucket(name) != st.FAILED:
            raise CatalogWriteError(f"status {name!r} is not a failure; use record_images for stored images")
        msg = _get(row, "error_message")
        params.append({"b_id": _get(row, "url_id"), "b_status": name,
                       "b_error": (str(msg)[:2000] if msg else None),
                       "b_http_status": _get(row, "http_status"), "b_now": now})
        counts[name] = counts.get(name, 0) + 1
    upd = (ut.update().where(ut.c.id == bindparam("b_id"))
           .values(status=bindparam("b_status"), error_message=bindparam("b_error"),
                   http_status=bindparam("b_http_status"), attempts=ut.c.attempts + 1,
                   last_attempt_at=bindparam("b_now"), updated_at=bindparam("b_now")))
    session.connection().execute(upd, params)
    return counts


def images_by_orig_sha(session: Session, orig_sha256s: Iterable[str]) -> dict[str, int]:
    """``{original sha256: image id}`` for originals already in the catalog (skip reprocessing)."""
    it = Image.__table__
    keys = list(set(orig_sha256s))
    out: dict[str, int] = {}
    q = select(it.c.id, it.c.orig_sha256).where(it.c.orig_sha256.in_(bindparam("keys", expanding=True)))
    for chunk in _chunks(keys):
        for iid, key in session.connection().execute(q, {"keys": chunk}):
            out.setdefault(key, iid)
    return out
