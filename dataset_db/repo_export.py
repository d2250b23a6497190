"""Every SQL statement behind `fid export`: what an export reads from the catalog (images with
their review state and duplicate group, sightings, clades, dedup settings) and how an export's
membership is recorded (``Export`` + ``ExportItem``), which training then reads."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from . import status as st
from .errors import FidError
from .models import (Clade, DupGroup, Export, ExportItem, GroupMember, Image, ReviewState, Sighting,
                     TaxonomyVersion, TrainingRun, Url)

BATCH = 5000


class ExportError(FidError):
    """An export that cannot be made as asked."""


class UnknownExportNameError(ExportError):
    def __init__(self, name: str, known: list[str]):
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(f"unknown export {name!r}; choose from: {shown or '(none: run `fid export` first)'}")
        self.name = name


# ---- reads ------------------------------------------------------------------------------------

def load_images(s: Session) -> list:
    """One row per image: the Image columns an export needs, its review state (NULLs when never
    reviewed) and its duplicate group (NULLs when in none). Ordered by image id."""
    q = (select(Image.id, Image.sha256, Image.width, Image.height, Image.orig_width, Image.orig_height,
                Image.store_path, ReviewState.status, ReviewState.clade.label("review_clade"),
                ReviewState.reason, ReviewState.crop_x0, ReviewState.crop_y0, ReviewState.crop_x1,
                ReviewState.crop_y1, ReviewState.reviewer, ReviewState.updated_at.label("reviewed_at"),
                GroupMember.group_id, DupGroup.representative_id, DupGroup.conflict.label("group_conflict"),
                DupGroup.created_at.label("group_created_at"))
         .outerjoin(ReviewState, ReviewState.image_id == Image.id)
         .outerjoin(GroupMember, GroupMember.image_id == Image.id)
         .outerjoin(DupGroup, DupGroup.id == GroupMember.group_id)
         .order_by(Image.id))
    return list(s.execute(q))


def load_sightings(s: Session) -> dict[int, list[dict]]:
    """Image id -> its sightings (through every URL stored as that image), in sighting-id order."""
    q = (select(Url.image_id, Url.url, Sighting.id, Sighting.clade, Sighting.source, Sighting.page_url,
                Sighting.license, Sighting.rights_holder)
         .join(Url, Url.id == Sighting.url_id)
         .where(Url.image_id.is_not(None))
         .order_by(Url.image_id, Sighting.id))
    out: dict[int, list[dict]] = defaultdict(list)
    for r in s.execute(q):
        out[r.image_id].append({"id": r.id, "url": r.url, "clade": r.clade or "", "source": r.source or "",
                                "page_url": r.page_url or "", "license": r.license or "unknown",
                                "rights_holder": r.rights_holder or ""})
    return dict(out)


def clade_table(s: Session) -> list[tuple[str, str]]:
    """(name, superclade) of every catalog clade in class order."""
    return [(r.name, r.superclade) for r in
            s.execute(select(Clade.name, Clade.superclade).order_by(Clade.order_index, Clade.name))]


def taxonomy_version(s: Session) -> str:
    """The taxonomy version the catalog's clades come from (the latest loaded when they differ)."""
    versions = sorted(set(s.scalars(select(Clade.taxonomy_version))))
    if len(versions) == 1:
        return versions[0]
    last = s.scalar(select(TaxonomyVersion.version)
                    .order_by(TaxonomyVersion.loaded_at.desc(), TaxonomyVersion.id.desc()).limit(1))
    return last or ", ".join(versions)


def dedup_settings(s: Session) -> list[dict]:
    """The (method, threshold, hash version) the catalog's duplicate groups were made with."""
    q = (select(DupGroup.method, DupGroup.threshold, DupGroup.hash_version, func.count())
         .group_by(DupGroup.method, DupGroup.threshold, DupGroup.hash_version)
         .order_by(DupGroup.method, DupGroup.threshold, DupGroup.hash_version))
    return [{"method": m, "threshold": t, "hash_version": v, "groups": n} for m, t, v, n in s.execute(q)]


def reject_reasons(s: Session) -> dict[str, int]:
    q = (select(ReviewState.reason, func.count()).where(ReviewState.status == st.REVIEW_REJECTED)
         .group_by(ReviewState.reason).order_by(ReviewState.reason))
    return {(reason or "unspecified"): n for reason, n in s.execute(q)}


def export_names(s: Session) -> list[str]:
    return list(s.scalars(select(Export.name).order_by(Export.created_at, Export.name)))


def find_export(s: Session, name: str) -> dict | None:
    e = s.scalar(select(Export).where(Export.name == name))
    if e is None:
        return None
    return {"id": e.id, "name": e.name, "params": dict(e.params or {}), "counts": dict(e.counts or {}),
            "taxonomy_version": e.taxonomy_version or "", "out_dir": e.out_dir or ""}


def require_export(s: Session, name: str) -> dict:
    e = find_export(s, name)
    if e is None:
        raise UnknownExportNameError(name, export_names(s))
    return e


def export_members(s: Session, name: str) -> list[dict]:
    """Items of export ``name``: ``image_id, sha256, split, clade, group_key, repeat``, ordered."""
    e = require_export(s, name)
    q = (select(ExportItem.image_id, Image.sha256, ExportItem.split, ExportItem.clade, ExportItem.group_key,
                ExportItem.repeat)
         .join(Image, Image.id == ExportItem.image_id)
         .where(ExportItem.export_id == e["id"])
         .order_by(ExportItem.split, ExportItem.clade, Image.sha256, ExportItem.repeat))
    return [dict(r._mapping) for r in s.execute(q)]


# ---- writes -----------------------------------------------------------------------------------

def delete_export(s: Session, name: str) -> None:
    """Remove export ``name`` and its items (refused while a training run refers to it)."""
    e = require_export(s, name)
    runs = list(s.scalars(select(TrainingRun.id).where(TrainingRun.export_id == e["id"]).order_by(TrainingRun.id)))
    if runs:
        raise ExportError(f"export {name!r} is used by training run(s) {', '.join(map(str, runs[:5]))}; "
                          "choose another export name instead of --replace")
    s.execute(delete(ExportItem).where(ExportItem.export_id == e["id"]))
    s.execute(delete(Export).where(Export.id == e["id"]))


def record_export(s: Session, name: str, items: list[dict], *, params: dict, counts: dict,
                  taxonomy_version: str, out_dir: str, replace: bool = False) -> int:
    """Record an export and its items (dicts with image_id, split, clade, group_key, repeat, file).

    Runs in the caller's transaction (all or nothing: a failed export leaves no rows); the items
    go in with Core ``executemany`` in batches of :data:`BATCH`."""
    if find_export(s, name) is not None:
        if not replace:
            raise ExportError(f"export {name!r} already exists in the catalog; choose another name or pass --replace")
        delete_export(s, name)
        s.flush()
    bad = sorted({it["split"] for it in items} - set(st.SPLITS))
    if bad:
        raise ExportError(f"unknown split {bad[0]!r}; choose from: {', '.join(st.SPLITS)}")
    e = Export(name=name, params=params, counts=counts, taxonomy_version=taxonomy_version, out_dir=out_dir)
    s.add(e)
    s.flush()
    rows = [{"export_id": e.id, "image_id": it["image_id"], "repeat": int(it.get("repeat", 0)),
             "split": it["split"], "clade": it["clade"], "group_key": it.get("group_key", ""),
             "file": it.get("file", "")} for it in items]
    for i in range(0, len(rows), BATCH):
        s.execute(insert(ExportItem), rows[i:i + BATCH])
    return e.id
