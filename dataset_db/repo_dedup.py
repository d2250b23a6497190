"""Every SQL statement behind `fid dedup`: images that need perceptual hashes, saving hashes,
loading the hash arrays, the sighting clades of images, and storing duplicate groups.

Scale: the catalog may hold hundreds of thousands of images, so reads use Core selects straight
into numpy arrays (hash columns read as plain BIGINT, skipping the per-row ``Hash64`` conversion,
and reinterpreted as unsigned in numpy) and writes are executemany batches.

Groups are written by difference (:func:`save_groups`): a group is identified by its
representative; a stored group whose representative, members, distances, clades, conflict flag and
settings are all unchanged keeps its row untouched (its id and ``created_at`` too, which the export
uses to decide whether a curator answered a conflict after it was flagged). A group whose members
change but whose clades and conflict flag do not keeps its id and ``created_at``; when its clades
or conflict flag change, ``created_at`` is set to now (an earlier accept did not see the new
labels). Groups that no longer exist are deleted. All in the caller's transaction.

Each successful run is recorded as a ``Run`` of kind ``dedup`` whose settings hold the method,
threshold, hash version and the exact set of image ids it grouped (a zlib-compressed bitmap: a few
hundred bytes for 400k mostly consecutive ids), so the next run knows exactly which images are new.
"""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import BigInteger, bindparam, delete, func, insert, or_, select, type_coerce, update
from sqlalchemy.orm import Session

from . import repo
from .errors import FidError
from .models import DupGroup, GroupMember, Image, Run, Sighting, Url, utcnow

RUN_KIND = "dedup"
UNASSIGNED = repo.UNASSIGNED
HASH_BATCH = 2000
_CHUNK = 1000  # IN-list size


class DedupStoreError(FidError):
    """Inconsistent input to the dedup writes (a group without its representative, an image twice)."""


def _chunks(seq: Sequence, n: int = _CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


# ---- hashes -----------------------------------------------------------------------------------

def count_images(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Image)) or 0)


def images_needing_hashes(s: Session, hash_version: int) -> list[tuple[int, str]]:
    """``(image id, store path)`` of images whose pHash or dHash is missing or of another version."""
    it = Image.__table__
    q = (select(it.c.id, it.c.store_path)
         .where(or_(it.c.hash_version.is_(None), it.c.hash_version != hash_version,
                    it.c.phash.is_(None), it.c.dhash.is_(None)))
         .order_by(it.c.id))
    return [(int(i), p) for i, p in s.connection().execute(q)]


def save_hashes(s: Session, rows: Iterable[tuple[int, int, int]], hash_version: int) -> int:
    """Set ``(image id, phash, dhash)`` (unsigned 64-bit) and ``hash_version`` on each image."""
    it = Image.__table__
    params = [{"b_id": int(i), "b_phash": int(p), "b_dhash": int(d), "b_version": int(hash_version)}
              for i, p, d in rows]
    if not params:
        return 0
    upd = (update(it).where(it.c.id == bindparam("b_id"))
           .values(phash=bindparam("b_phash", type_=it.c.phash.type),
                   dhash=bindparam("b_dhash", type_=it.c.dhash.type),
                   hash_version=bindparam("b_version")))
    conn = s.connection()
    for chunk in _chunks(params, HASH_BATCH):
        conn.execute(upd, chunk)
    return len(params)


@dataclass
class HashArrays:
    """Aligned arrays, ascending by id: ids, pixel counts (original size), pHash, dHash (uint64)."""

    ids: np.ndarray
    pixels: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)


def _fetch_all(s: Session, stmt) -> list[tuple]:
    """Rows of a Core select as plain tuples, through the DBAPI cursor of the session's connection.

    For reads of hundreds of thousands of rows: SQLAlchemy's Row objects and result processing
    cost ~3x the database's own time here. The statement is compiled for the connection's dialect
    with its (integer and fixed string) parameters rendered inline; no result-type processing is
    applied, so select plain columns (hashes come back signed)."""
    conn = s.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


def load_hash_arrays(s: Session, hash_version: int) -> HashArrays:
    """Every image hashed with ``hash_version``. Pixels are the original's (``orig_width *
    orig_height``): the representative of a group is its largest original."""
    it = Image.__table__
    q = (select(it.c.id, it.c.orig_width, it.c.orig_height,
                type_coerce(it.c.phash, BigInteger), type_coerce(it.c.dhash, BigInteger))
         .where(it.c.hash_version == int(hash_version), it.c.phash.is_not(None), it.c.dhash.is_not(None))
         .order_by(it.c.id))
    rows = _fetch_all(s, q)
    if not rows:
        e = np.empty(0, dtype=np.int64)
        return HashArrays(e, e.copy(), e.view(np.uint64).copy(), e.view(np.uint64).copy())
    a = np.array(rows, dtype=np.int64)
    return HashArrays(a[:, 0].copy(), a[:, 1] * a[:, 2], a[:, 3].view(np.uint64).copy(), a[:, 4].view(np.uint64).copy())


# ---- sightings --------------------------------------------------------------------------------

def image_clade_arrays(s: Session) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Distinct (image id, clade) pairs over the images' URL sightings, ``unassigned`` and empty
    clades ignored: ``(image ids, clade codes, clade names)``, the arrays aligned and sorted by
    image id then code, codes indexing the names (sorted)."""
    q = (select(Url.image_id, Sighting.clade).join(Url, Url.id == Sighting.url_id)
         .where(Url.image_id.is_not(None), Sighting.clade != UNASSIGNED, Sighting.clade != ""))
    rows = _fetch_all(s, q)
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), []
    img_col, clade_col = zip(*rows)
    names, codes = np.unique(np.array(clade_col, dtype=object).astype(str), return_inverse=True)
    key = np.unique(np.array(img_col, dtype=np.int64) * len(names) + codes.astype(np.int64))
    return key // len(names), key % len(names), [str(n) for n in names]


def image_clades(s: Session, image_ids: Iterable[int] | None = None) -> dict[int, tuple[str, ...]]:
    """Image id -> the distinct clades its URLs were sighted under (``unassigned`` and empty
    ignored), sorted. Images with no such sighting are absent. ``image_ids``: only these."""
    ids, codes, names = image_clade_arrays(s)
    if image_ids is not None:
        keep = np.isin(ids, np.fromiter((int(i) for i in image_ids), dtype=np.int64))
        ids, codes = ids[keep], codes[keep]
    out: dict[int, list[str]] = defaultdict(list)
    for i, c in zip(ids.tolist(), codes.tolist()):
        out[i].append(names[c])
    return {i: tuple(cs) for i, cs in out.items()}


# ---- previous runs and stored groups ------------------------------------------------------------

def encode_id_set(ids: np.ndarray) -> dict:
    """A set of image ids as a compact JSON-able bitmap."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return {"base": 0, "n": 0, "bits": ""}
    base = int(ids.min())
    mask = np.zeros(int(ids.max()) - base + 1, dtype=bool)
    mask[ids - base] = True
    packed = zlib.compress(np.packbits(mask).tobytes(), 9)
    return {"base": base, "n": int(mask.size), "bits": base64.b64encode(packed).decode("ascii")}


def decode_id_set(obj: Mapping | None) -> np.ndarray | None:
    """Inverse of :func:`encode_id_set`; None when ``obj`` is missing or unreadable."""
    try:
        base, n = int(obj["base"]), int(obj["n"])
        if n == 0:
            return np.empty(0, dtype=np.int64)
        bits = np.frombuffer(zlib.decompress(base64.b64decode(obj["bits"])), dtype=np.uint8)
        mask = np.unpackbits(bits)[:n].astype(bool)
        return np.flatnonzero(mask).astype(np.int64) + base
    except (KeyError, TypeError, ValueError, zlib.error):
        return None


def last_dedup_run(s: Session) -> dict | None:
    """The latest finished dedup run: ``{"id", "method", "threshold", "hash_version", "image_ids",
    "ended_at"}`` (``image_ids`` None when its record is unreadable), or None."""
    r = s.execute(select(Run).where(Run.kind == RUN_KIND, Run.status == "done")
                  .order_by(Run.id.desc()).limit(1)).scalar_one_or_none()
    if r is None:
        return None
    cfg = dict(r.settings or {})
    return {"id": r.id, "method": cfg.get("method"), "threshold": cfg.get("threshold"),
            "hash_version": cfg.get("hash_version"), "image_ids": decode_id_set(cfg.get("images")),
            "ended_at": r.ended_at}


@dataclass
class StoredGroup:
    id: int
    representative_id: int
    method: str
    threshold: int
    hash_version: int
    size: int
    conflict: bool
    clades: list
    created_at: dt.datetime
    members: dict[int, int] = field(default_factory=dict)  # image id -> distance


def load_groups(s: Session) -> dict[int, StoredGroup]:
    """Every stored group by id, with its members."""
    gt, mt = DupGroup.__table__, GroupMember.__table__
    conn = s.connection()
    groups = {int(r.id): StoredGroup(int(r.id), int(r.representative_id), r.method, int(r.threshold),
                                     int(r.hash_version), int(r.size), bool(r.conflict), list(r.clades or []),
                                     r.created_at)
              for r in conn.execute(select(gt))}
    for image_id, group_id, distance in conn.execute(select(mt.c.image_id, mt.c.group_id, mt.c.distance)):
        g = groups.get(int(group_id))
        if g is not None:
            g.members[int(image_id)] = int(distance)
    return groups


def group_settings(s: Session) -> list[tuple[str, int, int]]:
    """Distinct (method, threshold, hash_version) of the stored groups."""
    q = select(DupGroup.method, DupGroup.threshold, DupGroup.hash_version).distinct()
    return [(m, int(t), int(v)) for m, t, v in s.execute(q)]


@dataclass
class GroupChanges:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    reflagged: int = 0  # updated groups whose clades or conflict flag changed (created_at reset)
    group_ids: dict[int, int] = field(default_factory=dict)  # representative id -> group id

    def as_dict(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted,
                "unchanged": self.unchanged, "reflagged": self.reflagged}


def save_groups(s: Session, groups: Sequence[Mapping], *, method: str, threshold: int, hash_version: int,
                run_record: Mapping | None = None) -> GroupChanges:
    """Make the stored groups equal ``groups`` by difference (see the module docstring).

    Each group: ``representative_id``, ``members`` ({image id: distance to the representative},
    the representative included), ``conflict`` (bool), ``clades`` (list). Every image may be in
    one group only. ``run_record``: ``{"image_ids": array, "counts": dict}`` to record this run.
    Runs in the caller's transaction: an error leaves the catalog unchanged.
    """
    gt, mt = DupGroup.__table__, GroupMember.__table__
    conn = s.connection()
    now = utcnow()
    seen_images: set[int] = set()
    desired: dict[int, dict] = {}
    for g in groups:
        rep = int(g["representative_id"])
        members = {int(k): int(v) for k, v in dict(g["members"]).items()}
        if rep not in members:
            raise DedupStoreError(f"group of representative {rep} lacks its representative among its members")
        if rep in desired:
            raise DedupStoreError(f"two groups have representative {rep}; each image may lead one group")
        dup = seen_images.intersection(members)
        if dup:
            raise DedupStoreError(f"image {min(dup)} is in more than one group; each image may be in one group")
        seen_images.update(members)
        desired[rep] = {"members": members, "conflict": bool(g.get("conflict", False)),
                        "clades": sorted(g.get("clades") or [])}

    stored = load_groups(s)
    by_rep: dict[int, StoredGroup] = {}
    drop: list[int] = []
    for gid in sorted(stored):
        sg = stored[gid]
        if sg.representative_id in desired and sg.representative_id not in by_rep:
            by_rep[sg.representative_id] = sg
        else:
            drop.append(gid)

    ch = GroupChanges()
    settings = (method, int(threshold), int(hash_version))
    upd_rows, member_rows_for, clear = [], [], list(drop)
    new_groups = []
    for rep, d in desired.items():
        sg = by_rep.get(rep)
        if sg is None:
            new_groups.append(rep)
            continue
        ch.group_ids[rep] = sg.id
        same_labels = sg.conflict == d["conflict"] and sorted(sg.clades) == d["clades"]
        same_members = sg.members == d["members"]
        if same_labels and same_members and sg.size == len(d["members"]) and \
                (sg.method, sg.threshold, sg.hash_version) == settings:
            ch.unchanged += 1
            continue
        ch.updated += 1
        if not same_labels:
            ch.reflagged += 1
        upd_rows.append({"b_id": sg.id, "b_size": len(d["members"]), "b_conflict": d["conflict"],
                         "b_clades": d["clades"], "b_method": method, "b_threshold": int(threshold),
                         "b_version": int(hash_version),
                         "b_created": sg.created_at if same_labels else now})
        if not same_members:
            clear.append(sg.id)
            member_rows_for.append(rep)
    ch.deleted = len(drop)

    # members of changed and dropped groups go first (an image may move between groups)
    for chunk in _chunks(clear):
        conn.execute(delete(mt).where(mt.c.group_id.in_(chunk)))
    for chunk in _chunks(drop):
        conn.execute(delete(gt).where(gt.c.id.in_(chunk)))
    if upd_rows:
        conn.execute(update(gt).where(gt.c.id == bindparam("b_id"))
                     .values(size=bindparam("b_size"), conflict=bindparam("b_conflict"),
                             clades=bindparam("b_clades", type_=gt.c.clades.type), method=bindparam("b_method"),
                             threshold=bindparam("b_threshold"), hash_version=bindparam("b_version"),
                             created_at=bindparam("b_created")), upd_rows)
    if new_groups:
        rows = [{"representative_id": rep, "method": method, "threshold": int(threshold),
                 "hash_version": int(hash_version), "size": len(desired[rep]["members"]),
                 "conflict": desired[rep]["conflict"], "clades": desired[rep]["clades"], "created_at": now}
                for rep in new_groups]
        for chunk in _chunks(rows):
            res = conn.execute(insert(gt).returning(gt.c.id, gt.c.representative_id, sort_by_parameter_order=True),
                               chunk)
            for gid, rep in res:
                ch.group_ids[int(rep)] = int(gid)
        ch.inserted = len(new_groups)
        member_rows_for.extend(new_groups)
    members = [{"image_id": m, "group_id": ch.group_ids[rep], "distance": dist}
               for rep in member_rows_for for m, dist in sorted(desired[rep]["members"].items())]
    for chunk in _chunks(members, 5000):
        conn.execute(insert(mt), chunk)

    if run_record is not None:
        run_id = repo.start_run(s, RUN_KIND, source=method, settings={
            "method": method, "threshold": int(threshold), "hash_version": int(hash_version),
            "images": encode_id_set(run_record.get("image_ids", np.empty(0, dtype=np.int64)))})
        repo.finish_run(s, run_id, dict(run_record.get("counts") or {}))
    return ch


# ---- the report -----------------------------------------------------------------------------------

def report_groups(s: Session, largest: int = 50) -> list[dict]:
    """The ``largest`` biggest groups (two or more members) and every conflicting group, largest
    first: ``{"id", "representative_id", "size", "conflict", "clades", "method", "threshold",
    "created_at", "members": [{"image_id", "distance", "sha256", "store_path", "width", "height",
    "orig_width", "orig_height", "sightings": [{"url", "page_url", "clade", "source"}]}]}``;
    members ordered representative first, then by distance and id."""
    gt = DupGroup.__table__
    big = (select(gt.c.id).where(gt.c.size >= 2).order_by(gt.c.size.desc(), gt.c.id).limit(max(0, int(largest))))
    ids = set(s.scalars(big)) | set(s.scalars(select(gt.c.id).where(gt.c.conflict.is_(True))))
    if not ids:
        return []
    out: dict[int, dict] = {}
    for chunk in _chunks(sorted(ids)):
        for r in s.execute(select(gt).where(gt.c.id.in_(chunk))):
            out[r.id] = {"id": r.id, "representative_id": r.representative_id, "size": r.size,
                         "conflict": bool(r.conflict), "clades": list(r.clades or []), "method": r.method,
                         "threshold": r.threshold, "created_at": r.created_at, "members": []}
    it, mt = Image.__table__, GroupMember.__table__
    by_image: dict[int, dict] = {}
    for chunk in _chunks(sorted(ids)):
        q = (select(mt.c.group_id, mt.c.image_id, mt.c.distance, it.c.sha256, it.c.store_path, it.c.width,
                    it.c.height, it.c.orig_width, it.c.orig_height)
             .join(it, it.c.id == mt.c.image_id).where(mt.c.group_id.in_(chunk)))
        for r in s.execute(q):
            m = {"image_id": r.image_id, "distance": r.distance, "sha256": r.sha256, "store_path": r.store_path,
                 "width": r.width, "height": r.height, "orig_width": r.orig_width, "orig_height": r.orig_height,
                 "sightings": []}
            out[r.group_id]["members"].append(m)
            by_image[r.image_id] = m
    image_ids = sorted(by_image)
    for chunk in _chunks(image_ids):
        q = (select(Url.image_id, Url.url, Sighting.page_url, Sighting.clade, Sighting.source)
             .join(Sighting, Sighting.url_id == Url.id).where(Url.image_id.in_(chunk))
             .order_by(Url.image_id, Sighting.id))
        for r in s.execute(q):
            by_image[r.image_id]["sightings"].append({"url": r.url, "page_url": r.page_url or "",
                                                      "clade": r.clade or "", "source": r.source or ""})
    groups = list(out.values())
    for g in groups:
        g["members"].sort(key=lambda m: (m["image_id"] != g["representative_id"], m["distance"], m["image_id"]))
    groups.sort(key=lambda g: (-g["size"], g["id"]))
    return groups


__all__ = [
    "RUN_KIND", "DedupStoreError", "HashArrays", "StoredGroup", "GroupChanges",
    "count_images", "images_needing_hashes", "save_hashes", "load_hash_arrays", "image_clades",
    "encode_id_set", "decode_id_set", "last_dedup_run", "load_groups", "group_settings", "save_groups",
    "report_groups",
]
