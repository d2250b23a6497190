"""Catalog reads and writes for the training layer: an export's items per split, training runs,
and the suspects queue. Nothing outside dataset_db writes SQL; training/ calls these."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from . import status as st
from .errors import FidError
from .models import Clade, ExportItem, Image, ReviewState, Suspect, TrainingRun, utcnow
from .repo_export import UnknownExportNameError, export_names, record_export, require_export  # noqa: F401

BATCH = 1000


# one definition of an unknown export, shared with the export writer
UnknownExportError = UnknownExportNameError


class UnknownTrainingRunError(FidError):
    pass


def _check_splits(splits) -> tuple[str, ...]:
    splits = tuple(splits)
    bad = [x for x in splits if x not in st.SPLITS]
    if bad:
        raise FidError(f"unknown split {bad[0]!r}; choose from: {', '.join(st.SPLITS)}")
    return splits


def get_export(s: Session, name: str) -> dict:
    """``{"id", "name", "taxonomy_version", "params", "counts", "out_dir"}`` of export ``name``."""
    return require_export(s, name)


def clade_superclades(s: Session) -> dict[str, str]:
    """Clade name -> superclade, in catalog order."""
    return dict(s.execute(select(Clade.name, Clade.superclade).order_by(Clade.order_index, Clade.name)).all())


def _scaled_crop(r) -> tuple[int, int, int, int] | None:
    """A reviewed crop (original-image pixels) scaled to the stored copy, clipped to it."""
    if r.crop_x0 is None or r.crop_x1 is None or r.crop_y0 is None or r.crop_y1 is None:
        return None
    sx = r.width / max(1, r.orig_width)
    sy = r.height / max(1, r.orig_height)
    x0 = min(max(0, int(round(r.crop_x0 * sx))), r.width - 1)
    y0 = min(max(0, int(round(r.crop_y0 * sy))), r.height - 1)
    x1 = min(max(x0 + 1, int(round(r.crop_x1 * sx))), r.width)
    y1 = min(max(y0 + 1, int(round(r.crop_y1 * sy))), r.height)
    if (x0, y0, x1, y1) == (0, 0, r.width, r.height):
        return None
    return (x0, y0, x1, y1)


def export_items(s: Session, name: str, splits=st.SPLITS, distinct_images: bool = False) -> list[dict]:
    """The items of export ``name`` in ``splits``, each as a dict:

    ``image_id, repeat, split, clade, superclade, group_key, store_path, width, height, crop``
    where ``crop`` is ``(x0, y0, x1, y1)`` in stored-copy pixels or None. Train items keep their
    repeats (oversampling); ``distinct_images`` keeps one row per image and split.
    """
    splits = _check_splits(splits)
    exp = get_export(s, name)
    sup = clade_superclades(s)
    q = (select(ExportItem.image_id, ExportItem.repeat, ExportItem.split, ExportItem.clade,
                ExportItem.group_key, Image.store_path, Image.width, Image.height, Image.orig_width,
                Image.orig_height, ReviewState.crop_x0, ReviewState.crop_y0, ReviewState.crop_x1,
                ReviewState.crop_y1)
         .join(Image, Image.id == ExportItem.image_id)
         .outerjoin(ReviewState, ReviewState.image_id == ExportItem.image_id)
         .where(ExportItem.export_id == exp["id"], ExportItem.split.in_(splits))
         .order_by(ExportItem.split, ExportItem.image_id, ExportItem.repeat))
    out, seen = [], set()
    for r in s.execute(q):
        if distinct_images:
            if (r.image_id, r.split) in seen:
                continue
            seen.add((r.image_id, r.split))
        out.append({"image_id": r.image_id, "repeat": r.repeat, "split": r.split, "clade": r.clade,
                    "superclade": sup.get(r.clade, ""), "group_key": r.group_key,
                    "store_path": r.store_path, "width": r.width, "height": r.height,
                    "crop": _scaled_crop(r)})
    return out


def create_export(s: Session, name: str, items: list[dict], taxonomy_version: str = "",
                  params: dict | None = None, out_dir: str = "") -> int:
    """Record an export and its items without writing files (synthetic demo and test data); the
    export writer's :func:`dataset_db.repo_export.record_export` does the work."""
    counts: dict[str, int] = {}
    for it in items:
        counts[it["split"]] = counts.get(it["split"], 0) + 1
    return record_export(s, name, items, params=params or {}, counts=counts,
                         taxonomy_version=taxonomy_version, out_dir=out_dir)


def add_stored_images(s: Session, rows: list[dict]) -> list[int]:
    """Register already-stored image files (dicts with the Image columns); returns their ids in
    order. For synthetic demo and test data: real imports go through the store's own writer."""
    ids = []
    for r in rows:
        r = {"orig_sha256": r["sha256"], "orig_width": r["width"], "orig_height": r["height"],
             "orig_format": "JPEG", "orig_size": 0, **r}
        img = Image(**r)
        s.add(img)
        s.flush()
        ids.append(img.id)
    return ids


def ensure_clades(s: Session, clades: list[tuple[str, str]], taxonomy_version: str = "synthetic") -> None:
    """Add (name, superclade) clades the catalog does not have yet (for synthetic demo data)."""
    have = set(s.scalars(select(Clade.name)))
    start = len(have)
    for i, (name, sup) in enumerate(c for c in clades if c[0] not in have):
        s.add(Clade(name=name, superclade=sup, order_index=start + i, taxonomy_version=taxonomy_version,
                    keywords={}, negative_keywords=[]))
    s.flush()


# ---- training runs ----------------------------------------------------------------------------

def start_training_run(s: Session, export_name: str | None, config: dict, artefact_path: str) -> int:
    export_id = get_export(s, export_name)["id"] if export_name else None
    run = TrainingRun(export_id=export_id, config=config, metrics={}, artefact_path=artefact_path,
                      status="running")
    s.add(run)
    s.flush()
    return run.id


def finish_training_run(s: Session, run_id: int, metrics: dict, status: str = "done") -> None:
    s.execute(update(TrainingRun).where(TrainingRun.id == run_id)
              .values(metrics=metrics, status=status, ended_at=utcnow()))


def set_training_status(s: Session, run_id: int, status: str) -> None:
    s.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(status=status))


def latest_training_run(s: Session) -> dict | None:
    """The most recent training run, or None when there is none."""
    run_id = s.scalar(select(TrainingRun.id).order_by(TrainingRun.id.desc()).limit(1))
    return None if run_id is None else get_training_run(s, run_id)


def get_training_run(s: Session, run_id: int) -> dict:
    r = s.get(TrainingRun, run_id)
    if r is None:
        known = list(s.scalars(select(TrainingRun.id).order_by(TrainingRun.id.desc()).limit(12)))
        raise UnknownTrainingRunError(
            f"unknown training run {run_id}; latest runs: {', '.join(map(str, known)) or '(none)'}")
    return {"id": r.id, "export_id": r.export_id, "config": dict(r.config or {}),
            "metrics": dict(r.metrics or {}), "artefact_path": r.artefact_path, "status": r.status,
            "started_at": r.started_at, "ended_at": r.ended_at}


def merge_training_metrics(s: Session, run_id: int, extra: dict) -> None:
    """Add keys (e.g. evaluation results) to a run's metrics."""
    run = get_training_run(s, run_id)
    s.execute(update(TrainingRun).where(TrainingRun.id == run_id)
              .values(metrics={**run["metrics"], **extra}))


# ---- suspects ---------------------------------------------------------------------------------

def replace_suspects(s: Session, training_run_id: int | None, rows: list[dict]) -> int:
    """Replace the suspects a run found with ``rows`` (image_id, given_clade, predicted_clade,
    score; most suspicious first = highest score). Returns the number written."""
    cond = (Suspect.training_run_id == training_run_id if training_run_id is not None
            else Suspect.training_run_id.is_(None))
    s.execute(delete(Suspect).where(cond))
    now = utcnow()
    data = [{"image_id": r["image_id"], "training_run_id": training_run_id,
             "given_clade": r["given_clade"], "predicted_clade": r["predicted_clade"],
             "score": float(r["score"]), "created_at": now} for r in rows]
    for i in range(0, len(data), BATCH):
        s.execute(insert(Suspect), data[i:i + BATCH])
    return len(data)


def suspects(s: Session, training_run_id: int | None = None, limit: int | None = None) -> list[dict]:
    """Suspects, most suspicious first."""
    q = select(Suspect).order_by(Suspect.score.desc(), Suspect.id)
    if training_run_id is not None:
        q = q.where(Suspect.training_run_id == training_run_id)
    if limit:
        q = q.limit(limit)
    return [{"image_id": r.image_id, "training_run_id": r.training_run_id, "given_clade": r.given_clade,
             "predicted_clade": r.predicted_clade, "score": r.score} for r in s.scalars(q)]
