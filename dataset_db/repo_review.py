"""Review: every SQL statement behind decisions, the current-state table, queues and leases.

Model
-----
``Decision`` is the append-only history; ``ReviewState`` holds the state each image is in after
its last decision and is written in the same transaction as that decision. The state after a
decision is a pure function of the state before it (:func:`apply_decision`), so
:func:`rebuild_review_state` can recompute the whole table from the history and
:func:`check_review_state` can compare the two.

=========  ======================================================================
decision   effect on the state
=========  ======================================================================
accept     status accepted, reason cleared (relabel and crop kept)
reject     status rejected with a reason from ``status.REJECT_REASONS``
relabel    clade set (must be a catalog clade), status accepted
crop       crop box set (original-image pixels, inside the image); an unreviewed
           image becomes accepted, otherwise the status is kept
reset      back to unreviewed: no relabel, no crop, no reason
undo       a new row with ``undoes_id`` whose fields carry the full state that held
           before the undone decision (its kind is accept/reject/reset by status);
           applying it sets that state exactly. Only an image's latest decision
           can be undone; undoing an undo re-applies the original decision.
=========  ======================================================================

Concurrency
-----------
Writers serialise per image. On PostgreSQL the image row is locked ``FOR UPDATE`` before the
state is read; on SQLite the first statement of every write transaction here is a write (a
lease delete), so the database write lock is held before anything is read (pysqlite only opens
the transaction at the first write). :func:`run_in_transaction` retries the transient failures
(PostgreSQL deadlock/serialisation, SQLite busy) so no decision is lost when reviewers race.

Leases: :func:`claim_queue` leases the images it returns to the asking reviewer for a few
minutes; an image leased to someone else is never returned by a queue until the lease expires
or is released. The lease row's primary key (image id) makes the claim atomic on both backends
(``INSERT .. ON CONFLICT DO NOTHING RETURNING``).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import status as st
from .errors import FidError
from .models import (Decision, DupGroup, GroupMember, Image, ReviewLease, ReviewState, Sighting,
                     Suspect, Url, utcnow)
from .repo import require_clade

QUEUES = ("unreviewed", "conflicts", "second", "suspects")
DEFAULT_LEASE_SECONDS = 300
MAX_REVIEWER_LEN = 128
STATE_FIELDS = ("status", "clade", "reason", "crop_x0", "crop_y0", "crop_x1", "crop_y1",
                "reviewer", "last_decision_id")
CSV_FIELDS = ("id", "image_id", "image_sha256", "reviewer", "decision", "reason", "clade",
              "crop_x0", "crop_y0", "crop_x1", "crop_y1", "note", "undoes_id", "created_at")


class ReviewError(FidError):
    """A decision, queue or lease request that cannot be carried out."""


class NotFoundError(ReviewError):
    pass


# ---- pure state machine -------------------------------------------------------------------------

EMPTY_STATE = {"status": st.REVIEW_UNREVIEWED, "clade": None, "reason": None,
               "crop_x0": None, "crop_y0": None, "crop_x1": None, "crop_y1": None}
_KIND_FOR_STATUS = {st.REVIEW_UNREVIEWED: "reset", st.REVIEW_ACCEPTED: "accept",
                    st.REVIEW_REJECTED: "reject"}
_STATUS_FOR_KIND = {v: k for k, v in _KIND_FOR_STATUS.items()}
_CROP = ("crop_x0", "crop_y0", "crop_x1", "crop_y1")


def apply_decision(state: dict | None, d) -> dict:
    """The state after decision ``d`` (a Decision or a mapping with its fields)."""
    g = (lambda k: d[k]) if isinstance(d, dict) else (lambda k: getattr(d, k))
    new = dict(EMPTY_STATE if state is None else {k: state[k] for k in EMPTY_STATE})
    kind = g("decision")
    if g("undoes_id") is not None:
        new = {"status": _STATUS_FOR_KIND[kind], "clade": g("clade"), "reason": g("reason"),
               **{k: g(k) for k in _CROP}}
    elif kind == "accept":
        new.update(status=st.REVIEW_ACCEPTED, reason=None)
    elif kind == "reject":
        new.update(status=st.REVIEW_REJECTED, reason=g("reason"))
    elif kind == "relabel":
        new.update(status=st.REVIEW_ACCEPTED, reason=None, clade=g("clade"))
    elif kind == "crop":
        new.update({k: g(k) for k in _CROP})
        if new["status"] == st.REVIEW_UNREVIEWED:
            new["status"] = st.REVIEW_ACCEPTED
    elif kind == "reset":
        new = dict(EMPTY_STATE)
    new["reviewer"] = g("reviewer")
    new["last_decision_id"] = g("id")
    return new


# ---- transactions -------------------------------------------------------------------------------

def _transient(exc: DBAPIError) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if code in ("40001", "40P01", "55P03"):
        return True
    msg = str(orig or exc).lower()
    return "database is locked" in msg or "database is busy" in msg or "deadlock" in msg


def run_in_transaction(catalog, fn: Callable, *args, retries: int = 8, **kwargs):
    """Run ``fn(session, *args, **kwargs)`` in one transaction, retrying transient conflicts."""
    for attempt in range(retries):
        try:
            with catalog.session() as s:
                return fn(s, *args, **kwargs)
        except DBAPIError as exc:
            if attempt == retries - 1 or not _transient(exc):
                raise
            time.sleep(random.uniform(0.005, 0.02) * (2 ** attempt))
    raise AssertionError("unreachable")


def _dialect(s: Session) -> str:
    return s.get_bind().dialect.name


def _insert(s: Session, table):
    if _dialect(s) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


def _lock_image(s: Session, image_id: int, reviewer: str | None) -> Image:
    """Take the per-image write lock (see module docstring) and return the image row."""
    # A write first: on SQLite this takes the database write lock before anything is read.
    s.execute(delete(ReviewLease).where(ReviewLease.image_id == image_id,
                                        ReviewLease.reviewer == (reviewer or "")))
    img = s.execute(select(Image).where(Image.id == image_id).with_for_update()).scalar_one_or_none()
    if img is None:
        raise NotFoundError(f"no image with id {image_id} in the catalog")
    return img


def _state_dict(row: ReviewState | None) -> dict | None:
    return None if row is None else {k: getattr(row, k) for k in STATE_FIELDS}


def _write_state(s: Session, image_id: int, new: dict, existing: bool) -> None:
    values = {k: new[k] for k in STATE_FIELDS}
    values["updated_at"] = utcnow()
    if existing:
        s.execute(update(ReviewState).where(ReviewState.image_id == image_id).values(**values))
    else:
        s.execute(insert(ReviewState).values(image_id=image_id, **values))


# ---- validation ---------------------------------------------------------------------------------

def check_reviewer(reviewer) -> str:
    name = (reviewer or "").strip() if isinstance(reviewer, str) or reviewer is None else None
    if not name or len(name) > MAX_REVIEWER_LEN or any(ord(c) < 32 for c in name):
        raise ReviewError(f"invalid reviewer name {reviewer!r}; expected 1-{MAX_REVIEWER_LEN} printable characters")
    return name


def _check_crop(img: Image, crop) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(v) for v in crop)
        if any(float(v) != int(v) for v in crop):
            raise ValueError
    except (TypeError, ValueError):
        raise ReviewError(f"invalid crop {crop!r}; expected four integers x0, y0, x1, y1") from None
    if not (0 <= x0 < x1 <= img.orig_width and 0 <= y0 < y1 <= img.orig_height):
        raise ReviewError(
            f"crop {[x0, y0, x1, y1]} is outside image {img.id} ({img.orig_width}x{img.orig_height} "
            "original pixels); expected 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height")
    return x0, y0, x1, y1


# ---- decisions ----------------------------------------------------------------------------------

def decision_dict(d: Decision) -> dict:
    out = {k: getattr(d, k) for k in ("id", "image_id", "reviewer", "decision", "reason", "clade",
                                       "note", "undoes_id")}
    out["crop"] = None if d.crop_x0 is None else [d.crop_x0, d.crop_y0, d.crop_x1, d.crop_y1]
    out["created_at"] = d.created_at.isoformat() if d.created_at else None
    return out


def state_dict_public(state: dict | None) -> dict:
    state = state or {**EMPTY_STATE, "reviewer": None, "last_decision_id": None}
    out = {k: state[k] for k in ("status", "clade", "reason", "reviewer", "last_decision_id")}
    out["crop"] = None if state["crop_x0"] is None else [state[k] for k in _CROP]
    return out


def record_decision(s: Session, image_id: int, reviewer: str, decision: str, *, reason: str | None = None,
                    clade: str | None = None, crop: Sequence[int] | None = None, note: str | None = None,
                    only_if_unreviewed: bool = False, created_at: dt.datetime | None = None) -> dict | None:
    """Append one decision and update the image's current state in the same transaction.

    Call it first in its transaction (or after other calls of this module). Returns
    ``{"decision": ..., "state": ...}``, or None when ``only_if_unreviewed`` and the image was
    already reviewed (checked under the lock, so a bulk rule never overrides a curator).
    """
    reviewer = check_reviewer(reviewer)
    if decision not in st.DECISIONS:
        raise ReviewError(f"unknown decision {decision!r}; choose from: {', '.join(st.DECISIONS)}")
    if decision == "reject":
        if reason not in st.REJECT_REASONS:
            raise ReviewError(f"invalid reject reason {reason!r}; choose from: {', '.join(st.REJECT_REASONS)}")
    elif reason is not None:
        raise ReviewError(f"a reason is only given with reject, not with {decision!r}")
    if decision != "relabel" and clade is not None:
        raise ReviewError(f"a clade is only given with relabel, not with {decision!r}")
    if decision != "crop" and crop is not None:
        raise ReviewError(f"a crop box is only given with crop, not with {decision!r}")
    if decision == "relabel" and not clade:
        raise ReviewError("relabel needs a clade name (see `fid clades list`)")
    if decision == "crop" and crop is None:
        raise ReviewError("crop needs a box [x0, y0, x1, y1] in original-image pixels")
    image_id = int(image_id)
    img = _lock_image(s, image_id, reviewer)
    if decision == "relabel":
        clade = require_clade(s, clade)
    box = _check_crop(img, crop) if decision == "crop" else (None,) * 4
    row = s.get(ReviewState, image_id, populate_existing=True)
    old = _state_dict(row)
    if only_if_unreviewed and old is not None and old["status"] != st.REVIEW_UNREVIEWED:
        return None
    d = Decision(image_id=image_id, reviewer=reviewer, decision=decision, reason=reason, clade=clade,
                 crop_x0=box[0], crop_y0=box[1], crop_x1=box[2], crop_y1=box[3],
                 note=note or None, created_at=created_at or utcnow())
    s.add(d)
    s.flush()
    new = apply_decision(old, d)
    _write_state(s, image_id, new, existing=row is not None)
    return {"decision": decision_dict(d), "state": state_dict_public(new)}


def record_decisions(s: Session, image_ids: Iterable[int], reviewer: str, decision: str, **kw) -> list[dict]:
    """The same decision on several images, in one transaction (ids locked in ascending order)."""
    out = []
    for image_id in sorted({int(i) for i in image_ids}):
        res = record_decision(s, image_id, reviewer, decision, **kw)
        if res is not None:
            out.append(res)
    return out


def _replay(s: Session, image_id: int, before_id: int | None = None) -> dict | None:
    q = select(Decision).where(Decision.image_id == image_id).order_by(Decision.id)
    if before_id is not None:
        q = q.where(Decision.id < before_id)
    state = None
    for d in s.scalars(q):
        state = apply_decision(state, d)
    return state


def undo_decision(s: Session, decision_id: int, reviewer: str, note: str | None = None,
                  created_at: dt.datetime | None = None) -> dict:
    """Append a decision that restores the state from before ``decision_id`` (its image's latest)."""
    reviewer = check_reviewer(reviewer)
    target = s.get(Decision, int(decision_id))
    if target is None:
        raise NotFoundError(f"no decision with id {decision_id}")
    _lock_image(s, target.image_id, reviewer)
    row = s.get(ReviewState, target.image_id, populate_existing=True)
    if row is None or row.last_decision_id != target.id:
        latest = row.last_decision_id if row is not None else None
        raise ReviewError(f"decision {target.id} is not the latest on image {target.image_id} "
                          f"(latest: {latest}); only the latest decision can be undone")
    prev = _replay(s, target.image_id, before_id=target.id) or dict(EMPTY_STATE)
    d = Decision(image_id=target.image_id, reviewer=reviewer, decision=_KIND_FOR_STATUS[prev["status"]],
                 reason=prev["reason"], clade=prev["clade"], **{k: prev[k] for k in _CROP},
                 note=note or f"undo {target.id}", undoes_id=target.id, created_at=created_at or utcnow())
    s.add(d)
    s.flush()
    new = apply_decision(_state_dict(row), d)
    _write_state(s, target.image_id, new, existing=True)
    return {"decision": decision_dict(d), "state": state_dict_public(new)}


def last_decision_of(s: Session, reviewer: str, image_id: int | None = None) -> int | None:
    """Id of ``reviewer``'s latest decision that is still the latest on its image."""
    q = (select(Decision.id).join(ReviewState, ReviewState.last_decision_id == Decision.id)
         .where(Decision.reviewer == reviewer).order_by(Decision.id.desc()).limit(1))
    if image_id is not None:
        q = q.where(Decision.image_id == int(image_id))
    return s.scalar(q)


def current_decisions_of(s: Session, reviewer: str) -> tuple[list[int], int]:
    """(ids of ``reviewer``'s decisions that are still their image's latest, number superseded)."""
    current = list(s.scalars(select(Decision.id).join(ReviewState, ReviewState.last_decision_id == Decision.id)
                             .where(Decision.reviewer == reviewer, Decision.undoes_id.is_(None))
                             .order_by(Decision.image_id)))
    total = s.scalar(select(func.count()).select_from(Decision)
                     .where(Decision.reviewer == reviewer, Decision.undoes_id.is_(None))) or 0
    return current, total - len(current)


def undo_reviewer(catalog, reviewer: str, by: str, batch: int = 500) -> dict:
    """Undo every decision of ``reviewer`` that is still the latest on its image (e.g. an auto rule)."""
    reviewer = check_reviewer(reviewer)
    ids, superseded = run_in_transaction(catalog, current_decisions_of, reviewer)
    undone = []
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        undone += run_in_transaction(catalog, lambda s: [undo_decision(s, d, by) for d in chunk])
    return {"undone": undone, "superseded": superseded}


def image_state(s: Session, image_id: int) -> dict:
    return state_dict_public(_state_dict(s.get(ReviewState, int(image_id))))


# ---- rebuild / check ----------------------------------------------------------------------------

def _states_from_history(s: Session) -> dict[int, dict]:
    states: dict[int, dict] = {}
    for d in s.execute(select(Decision).order_by(Decision.image_id, Decision.id)).scalars():
        states[d.image_id] = apply_decision(states.get(d.image_id), d)
    return states


def check_review_state(s: Session) -> list[dict]:
    """Differences between ``review_state`` and its rebuild from the history ([] when equal)."""
    want = _states_from_history(s)
    have = {r.image_id: _state_dict(r) for r in s.scalars(select(ReviewState))}
    diffs = []
    for image_id in sorted(set(want) | set(have)):
        w, h = want.get(image_id), have.get(image_id)
        if w != h:
            diffs.append({"image_id": image_id, "expected": w, "found": h})
    return diffs


def rebuild_review_state(s: Session, batch: int = 1000) -> int:
    """Recompute ``review_state`` from the decision history; returns the number of rows."""
    states = _states_from_history(s)
    s.execute(delete(ReviewState))
    now = utcnow()
    rows = [{"image_id": i, **{k: v[k] for k in STATE_FIELDS}, "updated_at": now} for i, v in states.items()]
    for i in range(0, len(rows), batch):
        s.execute(insert(ReviewState), rows[i:i + batch])
    return len(rows)


# ---- leases -------------------------------------------------------------------------------------

def _active_lease_by_other(reviewer: str, now: dt.datetime):
    return exists().where(ReviewLease.image_id == Image.id, ReviewLease.expires_at > now,
                          ReviewLease.reviewer != reviewer)


def release_leases(s: Session, reviewer: str, image_ids: Iterable[int] | None = None) -> int:
    q = delete(ReviewLease).where(ReviewLease.reviewer == reviewer)
    if image_ids is not None:
        q = q.where(ReviewLease.image_id.in_([int(i) for i in image_ids]))
    return s.execute(q).rowcount or 0


def lease_images(s: Session, reviewer: str, image_ids: Sequence[int], seconds: int = DEFAULT_LEASE_SECONDS,
                 now: dt.datetime | None = None) -> list[int]:
    """Lease the given images to ``reviewer``; returns those now leased to them (others skipped)."""
    now = now or utcnow()
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        return []
    expires = now + dt.timedelta(seconds=seconds)
    # first statement is a write (SQLite write lock); expired leases on these images go
    s.execute(delete(ReviewLease).where(ReviewLease.image_id.in_(ids), ReviewLease.expires_at <= now))
    # take the free ones and renew our own in one upsert; a lease held by someone else is left
    # alone. Core executemany: one cached statement whatever the number of ids (a multi-row
    # VALUES list would be compiled anew on every call).
    table = ReviewLease.__table__
    stmt = _insert(s, table)
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.image_id], set_={"expires_at": stmt.excluded.expires_at},
                                      where=table.c.reviewer == stmt.excluded.reviewer)
    s.connection().execute(stmt, [{"image_id": i, "reviewer": reviewer, "expires_at": expires} for i in ids])
    mine = s.scalars(select(ReviewLease.image_id).where(ReviewLease.image_id.in_(ids),
                                                        ReviewLease.reviewer == reviewer))
    return sorted(mine)


# ---- queues -------------------------------------------------------------------------------------

def _unreviewed():
    return or_(ReviewState.image_id.is_(None), ReviewState.status == st.REVIEW_UNREVIEWED)


def _not_reviewed(image_id):
    """``image_id`` has no state or an unreviewed one (status is never NULL), as a correlated
    NOT EXISTS: SQLite probes the primary key and rejects a reviewed image before any other term
    is checked; PostgreSQL plans it as an anti-join."""
    return ~exists().where(ReviewState.image_id == image_id, ReviewState.status != st.REVIEW_UNREVIEWED)


def _conflict_members():
    return (select(GroupMember.image_id).join(DupGroup, DupGroup.id == GroupMember.group_id)
            .where(DupGroup.conflict.is_(True)))


def _queue_query(queue: str, reviewer: str, clade: str | None, now: dt.datetime | None):
    """SELECT image ids (ordered) of one queue, without images leased to someone else at ``now``
    (leases ignored when ``now`` is None)."""
    # Speed (400k images, bench/review.py): terms are written cheapest-rejecting first, since
    # SQLite checks them in that order for each image it walks in id order.
    if queue == "unreviewed":
        if clade:
            # the clade's image ids (index sightings(clade, url_id), then urls by primary key),
            # walked in id order; cost grows with the clade's size, not the catalog's
            img_ids = select(Url.image_id).join(Sighting, Sighting.url_id == Url.id).where(Sighting.clade == clade)
            q = select(Image.id).where(Image.id.in_(img_ids), _not_reviewed(Image.id))
        else:
            # walk images in id order: reviewed ones are rejected by one primary-key probe
            # before the sighting check
            sighted = exists().where(Url.image_id == Image.id, Sighting.url_id == Url.id)
            q = select(Image.id).where(_not_reviewed(Image.id), sighted)
        q = q.order_by(Image.id)
    elif queue == "conflicts":
        q = (select(Image.id).where(Image.id.in_(_conflict_members()), _not_reviewed(Image.id))
             .order_by(Image.id))
    elif queue == "second":
        mine = exists().where(Decision.image_id == Image.id, Decision.reviewer == reviewer)
        q = (select(Image.id).join(ReviewState, ReviewState.image_id == Image.id)
             .where(or_(ReviewState.status == st.REVIEW_REJECTED, ReviewState.clade.is_not(None)),
                    ReviewState.reviewer != reviewer, ~mine)
             .order_by(Image.id))
    elif queue == "suspects":
        sub = (select(Suspect.image_id, func.max(Suspect.score).label("score"),
                      func.max(Suspect.created_at).label("at")).group_by(Suspect.image_id).subquery())
        decided_since = exists().where(Decision.image_id == sub.c.image_id, Decision.created_at >= sub.c.at)
        q = (select(Image.id).join(sub, sub.c.image_id == Image.id).where(~decided_since)
             .order_by(sub.c.score.desc(), Image.id))
    else:
        raise ReviewError(f"unknown queue {queue!r}; choose from: {', '.join(QUEUES)}")
    return q if now is None else q.where(~_active_lease_by_other(reviewer, now))


def queue_ids(s: Session, queue: str, reviewer: str, clade: str | None = None, limit: int = 100,
              offset: int = 0) -> list[int]:
    """Image ids in a queue for ``reviewer`` (read only, no leases taken)."""
    q = _queue_query(queue, check_reviewer(reviewer), clade, utcnow())
    return list(s.scalars(q.limit(limit).offset(offset)))


def claim_queue(s: Session, queue: str, reviewer: str, clade: str | None = None, limit: int = 100,
                offset: int = 0, seconds: int = DEFAULT_LEASE_SECONDS) -> list[int]:
    """Lease up to ``limit`` images of a queue to ``reviewer`` and return their ids in queue order.

    Images already leased to ``reviewer`` come back (their lease is renewed); images leased to
    anyone else never do.
    """
    reviewer = check_reviewer(reviewer)
    if not 1 <= limit <= 1000:
        raise ReviewError(f"invalid page size {limit}; expected 1 to 1000")
    if clade:
        clade = require_clade(s, clade, allow_unassigned=True)
    now = utcnow()
    # write first (SQLite takes its write lock here): drop expired leases
    s.execute(delete(ReviewLease).where(ReviewLease.expires_at <= now))
    got: list[int] = []
    seen: set[int] = set()
    for _ in range(5):
        want = [i for i in s.scalars(_queue_query(queue, reviewer, clade, now)
                                     .limit(limit * 2 - len(got)).offset(offset)) if i not in seen]
        if not want:
            break
        seen.update(want)
        leased = set(lease_images(s, reviewer, want[:limit - len(got)], seconds, now=now))
        got += [i for i in want[:limit - len(got)] if i in leased]
        if len(got) >= limit:
            break
    if got and _dialect(s) == "postgresql":
        # READ COMMITTED: the page came from a snapshot taken before the leases; an image decided
        # and released by another reviewer in between was leased again above. Re-check the page
        # (a new snapshot, which sees every decision whose lease row we waited on) and let go of
        # what left the queue. (SQLite holds the write lock from the first statement.)
        still = set(s.scalars(_queue_query(queue, reviewer, clade, now).where(Image.id.in_(got)).order_by(None)))
        if len(still) < len(got):
            release_leases(s, reviewer, [i for i in got if i not in still])
            got = [i for i in got if i in still]
    order = {i: n for n, i in enumerate(got)}
    return sorted(got, key=order.__getitem__)


def queue_counts(s: Session, reviewer: str | None = None) -> dict:
    """Number of images in each queue (unreviewed per proposed clade), leases ignored."""
    reviewer = reviewer or ""
    per_clade = (select(Sighting.clade, func.count(func.distinct(Url.image_id)))
                 .join(Url, Url.id == Sighting.url_id)
                 .where(Url.image_id.is_not(None), _not_reviewed(Url.image_id))
                 .group_by(Sighting.clade).order_by(Sighting.clade))
    unrev = {c or "unassigned": n for c, n in s.execute(per_clade)}
    def count(queue):
        q = _queue_query(queue, reviewer, None, None).subquery()
        return s.scalar(select(func.count()).select_from(q)) or 0

    total_unrev = count("unreviewed")
    return {"unreviewed": {"total": total_unrev, "clades": unrev}, "conflicts": count("conflicts"),
            "second": count("second"), "suspects": count("suspects")}


# ---- image details ------------------------------------------------------------------------------

def image_summaries(s: Session, image_ids: Sequence[int]) -> list[dict]:
    """Metadata for a grid page: sizes, proposed clades, current state (in the given order)."""
    ids = [int(i) for i in image_ids]
    if not ids:
        return []
    # plain column rows, not ORM objects: a page is read on every grid load
    imgs = {r.id: r for r in s.execute(select(Image.id, Image.sha256, Image.width, Image.height, Image.orig_width,
                                              Image.orig_height).where(Image.id.in_(ids)))}
    clades: dict[int, set] = {}
    for image_id, clade in s.execute(select(Url.image_id, Sighting.clade).join(Sighting, Sighting.url_id == Url.id)
                                     .where(Url.image_id.in_(ids)).distinct()):
        clades.setdefault(image_id, set()).add(clade or "unassigned")
    states = {r[0]: dict(zip(STATE_FIELDS, r[1:])) for r in s.execute(
        select(ReviewState.image_id, *(getattr(ReviewState, k) for k in STATE_FIELDS))
        .where(ReviewState.image_id.in_(ids)))}
    out = []
    for i in ids:
        img = imgs.get(i)
        if img is None:
            continue
        out.append({"id": i, "sha256": img.sha256, "width": img.width, "height": img.height,
                    "orig_width": img.orig_width, "orig_height": img.orig_height,
                    "clades": sorted(clades.get(i, ())), "state": state_dict_public(states.get(i))})
    return out


def image_detail(s: Session, image_id: int) -> dict:
    """Everything the single view shows: sightings, group members, past decisions, state."""
    img = s.get(Image, int(image_id))
    if img is None:
        raise NotFoundError(f"no image with id {image_id} in the catalog")
    out = image_summaries(s, [img.id])[0]
    out["store_path"] = img.store_path
    out["sightings"] = [
        {"url": u, "page_url": sg.page_url, "source": sg.source, "keyword": sg.keyword, "clade": sg.clade,
         "license": sg.license, "rights_holder": sg.rights_holder, "title": sg.title,
         "seen_at": sg.seen_at.isoformat() if sg.seen_at else None}
        for u, sg in s.execute(select(Url.url, Sighting).join(Sighting, Sighting.url_id == Url.id)
                               .where(Url.image_id == img.id).order_by(Sighting.id))]
    gm = s.scalar(select(GroupMember.group_id).where(GroupMember.image_id == img.id))
    out["group"] = None
    if gm is not None:
        g = s.get(DupGroup, gm)
        members = list(s.execute(select(GroupMember.image_id, GroupMember.distance)
                                 .where(GroupMember.group_id == gm).order_by(GroupMember.image_id)))
        out["group"] = {"id": g.id, "conflict": bool(g.conflict), "clades": g.clades,
                        "representative_id": g.representative_id,
                        "members": [{"image_id": m, "distance": dist} for m, dist in members]}
    out["decisions"] = [decision_dict(d) for d in s.scalars(select(Decision).where(Decision.image_id == img.id)
                                                            .order_by(Decision.id))]
    return out


def store_path_of(s: Session, image_id: int) -> tuple[str, str] | None:
    """(store_path, sha256) of an image, or None."""
    row = s.execute(select(Image.store_path, Image.sha256).where(Image.id == int(image_id))).first()
    return None if row is None else (row[0], row[1])


# ---- bulk rules ---------------------------------------------------------------------------------

@dataclass
class Rule:
    clades: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()

    def empty(self) -> bool:
        return not (self.clades or self.sources or self.domains or self.licenses)

    def name(self) -> str:
        parts = [f"{k}={','.join(v)}" for k, v in (("clade", self.clades), ("source", self.sources),
                                                   ("domain", self.domains), ("license", self.licenses)) if v]
        return ";".join(parts)


def _host_matches(url: str, domains: tuple[str, ...]) -> bool:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def rule_matches(s: Session, rule: Rule, skip_conflicts: bool) -> list[int]:
    """Unreviewed image ids with a sighting matching every part of ``rule``."""
    q = (select(Url.image_id, Url.url).join(Sighting, Sighting.url_id == Url.id)
         .where(Url.image_id.is_not(None))
         .outerjoin(ReviewState, ReviewState.image_id == Url.image_id).where(_unreviewed()))
    if rule.clades:
        q = q.where(Sighting.clade.in_(rule.clades))
    if rule.sources:
        q = q.where(Sighting.source.in_(rule.sources))
    if rule.licenses:
        q = q.where(Sighting.license.in_(rule.licenses))
    if skip_conflicts:
        q = q.where(Url.image_id.not_in(_conflict_members()))
    domains = tuple(d.lower().strip(".") for d in rule.domains)
    ids = {i for i, url in s.execute(q) if not domains or _host_matches(url, domains)}
    return sorted(ids)


def _apply_rule(catalog, rule: Rule, decision: str, reviewer_prefix: str, skip_conflicts: bool,
                reason: str | None, rule_name: str | None, dry_run: bool, batch: int) -> dict:
    if rule.empty():
        raise ReviewError(f"{decision} by rule needs at least one of --clade, --source, --domain, --license")
    with catalog.session() as s:
        if rule.clades:
            rule = Rule(tuple(require_clade(s, c, allow_unassigned=True) for c in rule.clades),
                        rule.sources, rule.domains, rule.licenses)
        ids = rule_matches(s, rule, skip_conflicts)
    reviewer = check_reviewer(f"{reviewer_prefix}{rule_name or rule.name()}")
    kw = {"reason": reason} if decision == "reject" else {}
    changed: list[dict] = []
    if not dry_run:
        for i in range(0, len(ids), batch):
            chunk = ids[i:i + batch]
            changed += run_in_transaction(catalog, lambda s: [
                r for r in (record_decision(s, img, reviewer, decision, only_if_unreviewed=True, **kw)
                            for img in chunk) if r is not None])
    return {"reviewer": reviewer, "matched": ids, "changed": changed, "dry_run": dry_run}


def auto_accept(catalog, rule: Rule, rule_name: str | None = None, dry_run: bool = False, batch: int = 500) -> dict:
    """Accept unreviewed images matching ``rule`` (not in conflict groups) as reviewer ``auto:<rule>``."""
    return _apply_rule(catalog, rule, "accept", "auto:", True, None, rule_name, dry_run, batch)


def bulk_reject(catalog, rule: Rule, reason: str = "other", rule_name: str | None = None,
                dry_run: bool = False, batch: int = 500) -> dict:
    """Reject unreviewed images matching ``rule`` as reviewer ``auto:reject:<rule>``."""
    if rule.clades or rule.licenses:
        raise ReviewError("bulk-reject takes --domain and --source only")
    if reason not in st.REJECT_REASONS:
        raise ReviewError(f"invalid reject reason {reason!r}; choose from: {', '.join(st.REJECT_REASONS)}")
    return _apply_rule(catalog, rule, "reject", "auto:reject:", False, reason, rule_name, dry_run, batch)


# ---- CSV export / import ------------------------------------------------------------------------

def export_decisions(s: Session, fh) -> int:
    """Write the whole history as CSV (columns ``CSV_FIELDS``); returns the number of rows."""
    w = csv.writer(fh)
    w.writerow(CSV_FIELDS)
    n = 0
    q = select(Decision, Image.sha256).join(Image, Image.id == Decision.image_id).order_by(Decision.id)
    for d, sha in s.execute(q.execution_options(yield_per=2000)):
        w.writerow([d.id, d.image_id, sha, d.reviewer, d.decision, d.reason or "", d.clade or "",
                    *("" if v is None else v for v in (d.crop_x0, d.crop_y0, d.crop_x1, d.crop_y1)),
                    d.note or "", d.undoes_id or "", d.created_at.isoformat() if d.created_at else ""])
        n += 1
    return n


def _opt_int(v: str, what: str, line: int):
    v = (v or "").strip()
    if not v:
        return None
    try:
        return int(v)
    except ValueError:
        raise ReviewError(f"line {line}: invalid {what} {v!r}; expected an integer") from None


def import_decisions(s: Session, fh) -> dict:
    """Append the decisions of a CSV written by :func:`export_decisions` (or by hand), in file order.

    Images are found by ``image_sha256`` (falling back to ``image_id``), so files move between
    catalogs. Rows already in the history (same image, reviewer, decision, fields and time) are
    skipped, so importing a file twice changes nothing. Undo rows are re-applied as undos of the
    current latest decision. The whole file is one transaction: any bad row leaves the catalog
    unchanged.
    """
    reader = csv.DictReader(fh)
    missing = [c for c in ("reviewer", "decision") if c not in (reader.fieldnames or [])]
    if missing or not ({"image_sha256", "image_id"} & set(reader.fieldnames or [])):
        raise ReviewError(f"CSV header {reader.fieldnames!r} lacks {missing or ['image_sha256 or image_id']}; "
                          f"expected: {', '.join(CSV_FIELDS)}")
    # first statement a write: take SQLite's write lock before reading
    s.execute(delete(ReviewLease).where(ReviewLease.expires_at <= utcnow()))
    added = skipped = 0
    for line, row in enumerate(reader, start=2):
        sha = (row.get("image_sha256") or "").strip()
        if sha:
            image_id = s.scalar(select(Image.id).where(Image.sha256 == sha))
            if image_id is None:
                raise ReviewError(f"line {line}: no image with sha256 {sha}")
        else:
            image_id = _opt_int(row.get("image_id"), "image_id", line)
            if image_id is None:
                raise ReviewError(f"line {line}: no image_sha256 or image_id")
        crop = [_opt_int(row.get(k), k, line) for k in _CROP]
        at_text = (row.get("created_at") or "").strip()
        try:
            at = dt.datetime.fromisoformat(at_text) if at_text else None
        except ValueError:
            raise ReviewError(f"line {line}: invalid created_at {at_text!r}; expected ISO 8601") from None
        kind = (row.get("decision") or "").strip()
        reviewer = (row.get("reviewer") or "").strip()
        fields = {"reason": (row.get("reason") or "").strip() or None,
                  "clade": (row.get("clade") or "").strip() or None}
        if at is not None:
            dup = select(Decision.id).where(
                Decision.image_id == image_id, Decision.reviewer == reviewer, Decision.decision == kind,
                Decision.created_at == at,
                *[(getattr(Decision, k) == v) if v is not None else getattr(Decision, k).is_(None)
                  for k, v in {**fields, **dict(zip(_CROP, crop))}.items()])
            if s.scalar(dup.limit(1)) is not None:
                skipped += 1
                continue
        try:
            if (row.get("undoes_id") or "").strip():
                latest = s.scalar(select(ReviewState.last_decision_id).where(ReviewState.image_id == image_id))
                if latest is None:
                    raise ReviewError(f"image {image_id} has no decision to undo")
                undo_decision(s, latest, reviewer, note=(row.get("note") or "").strip() or None, created_at=at)
            else:
                record_decision(s, image_id, reviewer, kind, reason=fields["reason"], clade=fields["clade"],
                                crop=crop if kind == "crop" else None,
                                note=(row.get("note") or "").strip() or None, created_at=at)
        except FidError as exc:
            raise ReviewError(f"line {line}: {exc}") from None
        added += 1
    return {"added": added, "skipped": skipped}


def decision_counts(s: Session) -> dict:
    """The decision history in numbers: by decision, by reviewer (rules together), reject reasons."""
    from sqlalchemy import case

    who = case((Decision.reviewer.like("auto:%"), "automatic rules"), else_=Decision.reviewer)
    by_decision = dict(s.execute(select(Decision.decision, func.count()).group_by(Decision.decision)
                                 .order_by(func.count().desc(), Decision.decision)).all())
    by_reviewer = dict(s.execute(select(who, func.count()).group_by(who)
                                 .order_by(func.count().desc(), who)).all())
    reason = func.coalesce(Decision.reason, "unspecified")
    reasons = dict(s.execute(select(reason, func.count()).where(Decision.decision == "reject")
                             .group_by(reason).order_by(func.count().desc(), reason)).all())
    return {"total": sum(by_decision.values()), "by_decision": by_decision, "by_reviewer": by_reviewer,
            "reject_reasons_history": reasons}
