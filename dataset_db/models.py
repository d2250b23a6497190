"""SQLAlchemy 2 models of the catalog. Schema changes go through Alembic (dataset_db/migrations)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

_2_63 = 1 << 63
_2_64 = 1 << 64


def to_signed64(value: int | None) -> int | None:
    """Unsigned 64-bit hash -> signed two's complement (what SQLite's INTEGER and BIGINT hold)."""
    if value is None:
        return None
    value = int(value)
    if not 0 <= value < _2_64:
        raise ValueError(f"hash {value} is not an unsigned 64-bit integer")
    return value - _2_64 if value >= _2_63 else value


def from_signed64(value: int | None) -> int | None:
    if value is None:
        return None
    value = int(value)
    return value + _2_64 if value < 0 else value


class Hash64(TypeDecorator):
    """An unsigned 64-bit perceptual hash stored as a signed BIGINT on every backend."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return to_signed64(value)

    def process_result_value(self, value, dialect):
        return from_signed64(value)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class TaxonomyVersion(Base):
    __tablename__ = "taxonomy_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Clade(Base):
    __tablename__ = "clades"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    superclade: Mapped[str] = mapped_column(String(64))
    order_index: Mapped[int] = mapped_column(Integer)
    taxonomy_version: Mapped[str] = mapped_column(String(64))
    keywords: Mapped[dict] = mapped_column(JSON, default=dict)  # language -> [keyword, ...]
    negative_keywords: Mapped[list] = mapped_column(JSON, default=list)
    taxon: Mapped[str | None] = mapped_column(String(128), nullable=True)  # scientific name for collections


class CladeRename(Base):
    """A rename or merge recorded when a taxonomy is loaded (old name -> new name)."""

    __tablename__ = "clade_renames"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_name: Mapped[str] = mapped_column(String(128), index=True)
    new_name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # rename | merge
    taxonomy_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    """One crawl, fetch or import run."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # crawl | fetch | import_urls | import_images
    source: Mapped[str] = mapped_column(String(64), default="")
    keyword: Mapped[str] = mapped_column(Text, default="")
    clade: Mapped[str] = mapped_column(String(128), default="")
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Url(Base):
    __tablename__ = "urls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha1 of the normalised URL: a fixed-width unique key (URLs can exceed index size limits)
    url_hash: Mapped[str] = mapped_column(String(40), unique=True)
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default="pending", index=True)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), nullable=True, index=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Sighting(Base):
    """Every time a URL is seen by a crawl or an import, with what that source said about it."""

    __tablename__ = "sightings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha1 of (url, source, keyword, clade, page_url): seeing the same thing twice adds no row
    sighting_key: Mapped[str] = mapped_column(String(40), unique=True)
    url_id: Mapped[int] = mapped_column(ForeignKey("urls.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(64), default="")
    keyword: Mapped[str] = mapped_column(Text, default="")
    clade: Mapped[str] = mapped_column(String(128), default="", index=True)  # proposed clade or 'unassigned'
    page_url: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(Text, default="")
    license: Mapped[str] = mapped_column(String(64), default="unknown")
    rights_holder: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # raw collection record etc.
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    # review queue of one clade: its url ids straight from the index (migration 0002)
    __table_args__ = (Index("ix_sightings_clade_url", "clade", "url_id"),)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # stored (normalised) copy: the content address
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    store_path: Mapped[str] = mapped_column(Text)  # relative to the store root
    # original bytes
    orig_sha256: Mapped[str] = mapped_column(String(64), index=True)
    orig_width: Mapped[int] = mapped_column(Integer)
    orig_height: Mapped[int] = mapped_column(Integer)
    orig_format: Mapped[str] = mapped_column(String(16))
    orig_size: Mapped[int] = mapped_column(Integer)
    orig_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # when the original is kept
    # perceptual hashes of the stored copy
    phash: Mapped[int | None] = mapped_column(Hash64, nullable=True)
    dhash: Mapped[int | None] = mapped_column(Hash64, nullable=True)
    hash_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DupGroup(Base):
    __tablename__ = "dup_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    representative_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int] = mapped_column(Integer)
    hash_version: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer, default=1)
    conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    clades: Mapped[list] = mapped_column(JSON, default=list)  # distinct proposed clades
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("dup_groups.id", ondelete="CASCADE"), index=True)
    distance: Mapped[int] = mapped_column(Integer, default=0)  # to the representative


class Decision(Base):
    """Append-only review history. Never updated or deleted."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))  # accept | reject | relabel | crop | reset
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clade: Mapped[str | None] = mapped_column(String(128), nullable=True)
    crop_x0: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_y0: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_x1: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_y1: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ReviewState(Base):
    """Current state of each reviewed image, updated in the same transaction as each decision."""

    __tablename__ = "review_state"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # unreviewed | accepted | rejected
    clade: Mapped[str | None] = mapped_column(String(128), nullable=True)  # relabelled clade
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    crop_x0: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_y0: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_x1: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crop_y1: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    last_decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Export(Base):
    __tablename__ = "exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    taxonomy_version: Mapped[str] = mapped_column(String(64), default="")
    out_dir: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ExportItem(Base):
    __tablename__ = "export_items"
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    repeat: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    split: Mapped[str] = mapped_column(String(8))
    clade: Mapped[str] = mapped_column(String(128))
    group_key: Mapped[str] = mapped_column(String(64), default="")
    file: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_export_items_split", "export_id", "split"),)


class TrainingRun(Base):
    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int | None] = mapped_column(ForeignKey("exports.id"), nullable=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    artefact_path: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ReviewLease(Base):
    """A short lease so two reviewers never get the same image from a queue at once."""

    __tablename__ = "review_leases"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class Suspect(Base):
    """Images whose label a model disputes (filled by `fid suspects`)."""

    __tablename__ = "suspects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"), nullable=True)
    given_clade: Mapped[str] = mapped_column(String(128))
    predicted_clade: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("image_id", "training_run_id", name="uq_suspect_image_run"),)
