"""Queries and writes the other layers call. Nothing outside dataset_db writes SQL."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import status as st
from .models import Clade, GroupMember, DupGroup, ReviewState, Run, Sighting, Url, utcnow

UNASSIGNED = "unassigned"


# ---- runs -------------------------------------------------------------------------------------

def start_run(s: Session, kind: str, source: str = "", keyword: str = "", clade: str = "",
              settings: dict | None = None) -> int:
    run = Run(kind=kind, source=source, keyword=keyword, clade=clade, settings=settings or {}, counts={})
    s.add(run)
    s.flush()
    return run.id


def finish_run(s: Session, run_id: int, counts: dict, status: str = "done") -> None:
    s.execute(update(Run).where(Run.id == run_id).values(counts=counts, status=status, ended_at=utcnow()))


# ---- clades -----------------------------------------------------------------------------------

def clade_names(s: Session) -> list[str]:
    return list(s.scalars(select(Clade.name).order_by(Clade.order_index, Clade.name)))


def require_clade(s: Session, name: str, allow_unassigned: bool = False) -> str:
    """Return the catalog's spelling of clade ``name`` (case-insensitive) or raise UnknownCladeError."""
    from .errors import UnknownCladeError

    if allow_unassigned and name.lower() == UNASSIGNED:
        return UNASSIGNED
    names = clade_names(s)
    by_lower = {n.lower(): n for n in names}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    raise UnknownCladeError(name, names)


# ---- status -----------------------------------------------------------------------------------

STATUS_COLUMNS = ("urls", "pending", "downloaded", "failed", "images", "duplicates", "reviewed", "accepted")


def status_summary(s: Session) -> dict:
    """Per clade and in total: URLs by status bucket, unique images, duplicates, review counts.

    A URL or image sighted under two clades counts under both; totals count each once. The
    bucket of each status comes from :mod:`dataset_db.status`.
    """
    def empty():
        return {k: 0 for k in STATUS_COLUMNS}

    clades: dict[str, dict] = {name: empty() for name in clade_names(s)}

    def row(name):
        return clades.setdefault(name or UNASSIGNED, empty())

    # URLs per clade: straight from the (clade, url_id) index. Only non-pending URLs are joined
    # per status; pending is the rest (the pending bucket is the single status `pending`).
    for clade, n in s.execute(select(Sighting.clade, func.count(func.distinct(Sighting.url_id)))
                              .group_by(Sighting.clade)):
        row(clade)["urls"] += n
    q = (select(Sighting.clade, Url.status, func.count(func.distinct(Url.id)))
         .join(Sighting, Sighting.url_id == Url.id).where(Url.status != "pending")
         .group_by(Sighting.clade, Url.status))
    for clade, status_name, n in s.execute(q):
        row(clade)[st.bucket(status_name)] += n
    for r in clades.values():
        r["pending"] = r["urls"] - r["downloaded"] - r["failed"]
    totals = empty()
    for status_name, n in s.execute(select(Url.status, func.count()).group_by(Url.status)):
        totals["urls"] += n
        totals[st.bucket(status_name)] += n

    # images, duplicates (non-representative members of a duplicate group), review state
    dup = (select(GroupMember.image_id).join(DupGroup, DupGroup.id == GroupMember.group_id)
           .where(GroupMember.image_id != DupGroup.representative_id))
    img = (select(Sighting.clade.label("clade"), Url.image_id.label("image_id"))
           .join(Url, Url.id == Sighting.url_id).where(Url.image_id.is_not(None)).distinct().subquery())
    q = (select(img.c.clade, func.count(),
                func.count(ReviewState.image_id).filter(ReviewState.status != st.REVIEW_UNREVIEWED),
                func.count(ReviewState.image_id).filter(ReviewState.status == st.REVIEW_ACCEPTED),
                func.count().filter(img.c.image_id.in_(dup)))
         .select_from(img).outerjoin(ReviewState, ReviewState.image_id == img.c.image_id)
         .group_by(img.c.clade))
    for clade, n, reviewed, accepted, dups in s.execute(q):
        r = row(clade)
        r.update(images=n, reviewed=reviewed, accepted=accepted, duplicates=dups)
    imgs = select(Url.image_id).where(Url.image_id.is_not(None)).distinct().subquery()
    n, reviewed, accepted, dups = s.execute(
        select(func.count(),
               func.count(ReviewState.image_id).filter(ReviewState.status != st.REVIEW_UNREVIEWED),
               func.count(ReviewState.image_id).filter(ReviewState.status == st.REVIEW_ACCEPTED),
               func.count().filter(imgs.c.image_id.in_(dup)))
        .select_from(imgs).outerjoin(ReviewState, ReviewState.image_id == imgs.c.image_id)).one()
    totals.update(images=n, reviewed=reviewed, accepted=accepted, duplicates=dups)
    return {"totals": totals, "clades": [{"clade": name, **vals} for name, vals in clades.items()]}
