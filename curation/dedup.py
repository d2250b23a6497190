"""`fid dedup`: perceptual hashes for every stored image, near-duplicate groups, label conflicts.

Steps (:func:`run_dedup`):

1. **Hashes.** Images whose pHash/dHash is missing or of another :data:`~curation.hashing.HASH_VERSION`
   are hashed from their store files with :func:`curation.hashing.hash_files` (the function ingest
   uses, in a process pool), saved in batches of :data:`HASH_BATCH`, one transaction each, so an
   interrupted run keeps what it computed. A file that is missing or cannot be decoded keeps no
   hash, is left out of grouping, counted, and tried again next run. Hashes of another version
   are never compared: only images hashed with the current version take part.
2. **Mode.** A *full build* groups every image (:func:`curation.grouping.build_groups`). It is
   used on the first run, with ``rebuild=True``, and whenever the method, threshold or hash
   version differs from the stored groups or the previous run (the summary says why). Otherwise
   the run is *incremental*: the previous run recorded exactly which images it grouped, the
   others are new, only pairs touching a new image are searched
   (:func:`curation.search.pairs_touching`) and :func:`curation.grouping.update_groups` places
   them, leaving every old group as it was (see that module for the rule and its consequences).
3. **Conflicts.** An image's clades are the distinct ``Sighting.clade`` over its URLs, ignoring
   ``unassigned``. A group whose images carry more than one clade is flagged, and so is a lone
   image sighted under two clades (stored as a group of one, so the review conflicts queue sees
   it). Reviews do not clear the flag: `fid export` decides when a curator resolved it.
4. **Store** the groups by difference in one transaction (:func:`dataset_db.repo_dedup.save_groups`:
   unchanged groups keep their row and ``created_at``) together with a record of this run.
5. Optionally write the HTML report (:mod:`curation.dedup_report`).

A member's ``distance`` is its Hamming distance to the representative on the method's hash (for
``both``: the larger of the two).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from dataset_db import repo_dedup as rd
from dataset_db.errors import FidError

from .grouping import (METHODS, DuplicateGroup, Grouping, UnknownMethodError, build_groups,
                       conflicts_by_clade_pair, find_pairs, label_conflicts, member_distances, update_groups)
from .hashing import HASH_VERSION, hash_files
from .search import default_index
from .store import ImageStore, StoreError

__all__ = ["DedupError", "HASH_BATCH", "DEFAULT_THRESHOLD", "run_dedup", "compute_missing_hashes"]

DEFAULT_THRESHOLD = 8
HASH_BATCH = 8192
LARGEST_SHOWN = 10

#: ``progress(stage, advance, total)``: stage "hashing" advances once per file
Progress = Callable[[str, int, int], None]


class DedupError(FidError):
    """A dedup that cannot run as asked."""


def _check_options(threshold, method) -> int:
    if method not in METHODS:
        raise UnknownMethodError(method)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or not 0 <= int(threshold) <= 64:
        raise DedupError(f"threshold must be an integer in 0..64 (Hamming bits of 64); got {threshold!r}")
    return int(threshold)


def compute_missing_hashes(catalog, store_root, processes: int | None = None,
                           progress: Progress | None = None) -> dict:
    """Hash every image whose hashes are missing or outdated. Returns ``{"computed", "failed",
    "failed_ids"}`` (the first few ids that could not be hashed)."""
    store = ImageStore(store_root)
    with catalog.session() as s:
        todo = rd.images_needing_hashes(s, HASH_VERSION)
    computed, failed = 0, []
    total = len(todo)
    if progress:
        progress("hashing", 0, total)
    for i in range(0, total, HASH_BATCH):
        batch = todo[i:i + HASH_BATCH]
        paths, ok_ids = [], []
        for image_id, rel in batch:
            try:
                paths.append(store.abs_path(rel))
                ok_ids.append(image_id)
            except StoreError:
                failed.append(image_id)
                if progress:
                    progress("hashing", 1, total)
        hashes = hash_files(paths, processes=processes,
                            progress=(lambda n: progress("hashing", n, total)) if progress else None)
        rows = []
        for image_id, h in zip(ok_ids, hashes):
            if h is None:
                failed.append(image_id)
            else:
                rows.append((image_id, h[0], h[1]))
        with catalog.session() as s:
            computed += rd.save_hashes(s, rows, HASH_VERSION)
    return {"computed": computed, "failed": len(failed), "failed_ids": sorted(failed)[:20]}


def _decide_mode(s, arrays: rd.HashArrays, method: str, threshold: int, rebuild: bool):
    """(mode, reason, previous {rep: members} or None, is_new mask or None)."""
    if rebuild:
        return "rebuild", "--rebuild asked", None, None
    last = rd.last_dedup_run(s)
    stored = rd.group_settings(s)
    want = (method, threshold, HASH_VERSION)
    if last is None:
        if stored:
            return "rebuild", "groups in the catalog were not made by a recorded dedup run", None, None
        return "build", "first dedup run on this catalog", None, None
    for name, old, new in (("method", last["method"], method), ("threshold", last["threshold"], threshold),
                           ("hash version", last["hash_version"], HASH_VERSION)):
        if old != new:
            return "rebuild", f"{name} changed since the last run ({old} -> {new})", None, None
    other = [g for g in stored if g != want]
    if other:
        m, t, v = other[0]
        return "rebuild", f"stored groups were made with method {m}, threshold {t}, hash version {v}", None, None
    if last["image_ids"] is None:
        return "rebuild", "the last run's record is unreadable", None, None
    is_old = np.isin(arrays.ids, last["image_ids"])
    groups = rd.load_groups(s)
    previous: dict[int, list[int]] = {}
    present = set(arrays.ids[is_old].tolist())
    for g in groups.values():
        members = set(g.members) | {g.representative_id}
        if not members <= present:
            return "rebuild", "images of stored groups are gone or were re-hashed since the last run", None, None
        if len(members) >= 2:
            previous[g.representative_id] = [g.representative_id] + sorted(members - {g.representative_id})
    return "incremental", f"{int((~is_old).sum()):,} new images since the last run", previous, ~is_old


def _distances(grouping: Grouping, arrays: rd.HashArrays, method: str) -> np.ndarray:
    """Each image's distance to its representative on the method's hash (``both``: the larger)."""
    # grouping.ids equals arrays.ids (both ascending, the same images)
    if method in ("phash", "dhash"):
        return member_distances(grouping, getattr(arrays, method)).astype(np.int64)
    return np.maximum(member_distances(grouping, arrays.phash),
                      member_distances(grouping, arrays.dhash)).astype(np.int64)


def _clades_needed(ids: np.ndarray, codes: np.ndarray, names: list[str],
                   groups: list[DuplicateGroup]) -> dict[int, tuple[str, ...]]:
    """Clades of the images that can conflict: members of groups, and images with two clades."""
    if ids.size == 0:
        return {}
    u, counts = np.unique(ids, return_counts=True)
    want = u[counts > 1]
    if groups:
        want = np.union1d(want, np.fromiter((m for g in groups for m in g.members), dtype=np.int64))
    keep = np.isin(ids, want)
    out: dict[int, list[str]] = {}
    for i, c in zip(ids[keep].tolist(), codes[keep].tolist()):
        out.setdefault(i, []).append(names[c])
    return {i: tuple(cs) for i, cs in out.items()}


def run_dedup(catalog, store_root, threshold: int = DEFAULT_THRESHOLD, method: str = "phash",
              rebuild: bool = False, report_dir: str | os.PathLike | None = None, report_largest: int = 50,
              processes: int | None = None, progress: Progress | None = None, index=None) -> dict:
    """Hash, group and flag conflicts across the whole catalog (see the module docstring).

    Returns a JSON-able summary: ``mode`` (build | rebuild | incremental) and ``reason``, hashing
    counts, ``groups`` (two or more images), ``images_in_groups``, ``largest`` (size,
    representative, group id) and ``largest_groups``, ``conflicts`` (flagged groups, lone images
    included) with ``conflicts_by_clade_pair``, the stored ``changes`` and timings; plus
    ``report`` (the index file) when ``report_dir`` is given.
    """
    threshold = _check_options(threshold, method)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    hashing = compute_missing_hashes(catalog, store_root, processes=processes, progress=progress)
    timings["hashing"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with catalog.session() as s:
        n_images = rd.count_images(s)
        arrays = rd.load_hash_arrays(s, HASH_VERSION)
        mode, reason, previous, is_new = _decide_mode(s, arrays, method, threshold, rebuild)
        clade_ids, clade_codes, clade_names = rd.image_clade_arrays(s)
    timings["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    index = index or default_index()
    pairs_pos = find_pairs(arrays.phash, arrays.dhash, threshold, method, index=index, is_new=is_new)
    pairs = arrays.ids[pairs_pos] if len(pairs_pos) else np.empty((0, 2), dtype=np.int64)
    timings["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if mode == "incremental":
        grouping = update_groups(previous, arrays.ids, arrays.pixels, pairs, arrays.ids[is_new])
    else:
        grouping = build_groups(arrays.ids, arrays.pixels, pairs)
    dist = _distances(grouping, arrays, method)
    dist_of = dict(zip(grouping.ids.tolist(), dist.tolist()))
    dup_groups = grouping.groups(min_size=2)
    clades = _clades_needed(clade_ids, clade_codes, clade_names, dup_groups)
    conflicts = label_conflicts(dup_groups, clades)
    conflict_reps = {c.group.representative: c for c in conflicts}
    to_store = []
    for g in dup_groups:
        c = conflict_reps.get(g.representative)
        labels = c.clades if c else sorted({x for m in g.members for x in clades.get(m, ())})
        to_store.append({"representative_id": g.representative,
                         "members": {m: int(dist_of[m]) for m in g.members},
                         "conflict": c is not None, "clades": list(labels)})
    lone = [c for c in conflicts if c.group.size == 1 and c.group.representative in dist_of]
    for c in lone:
        to_store.append({"representative_id": c.group.representative, "members": {c.group.representative: 0},
                         "conflict": True, "clades": list(c.clades)})
    # a lone conflicting image that could not be hashed stays out of the groups (reported)
    stored_conflicts = [c for c in conflicts if c.group.size > 1 or c.group.representative in dist_of]
    timings["grouping"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    summary = grouping.summary()
    counts = {"images": n_images, "hashed": len(arrays), "groups": summary.groups,
              "images_in_groups": summary.images_in_groups, "conflicts": len(stored_conflicts),
              "pairs": int(len(pairs)), "mode": mode}
    with catalog.session() as s:
        changes = rd.save_groups(s, to_store, method=method, threshold=threshold, hash_version=HASH_VERSION,
                                 run_record={"image_ids": arrays.ids, "counts": counts})
    timings["store"] = time.perf_counter() - t0

    def describe(g: DuplicateGroup) -> dict:
        return {"group_id": changes.group_ids.get(g.representative), "representative_id": g.representative,
                "size": g.size}

    largest = describe(dup_groups[0]) if dup_groups else None
    result = {
        "mode": mode, "reason": reason, "method": method, "threshold": threshold, "hash_version": HASH_VERSION,
        "images": n_images, "hashed": len(arrays), "hashes_computed": hashing["computed"],
        "hash_failures": hashing["failed"], "hash_failure_ids": hashing["failed_ids"],
        "new_images": int(is_new.sum()) if is_new is not None else len(arrays), "pairs": int(len(pairs)),
        "groups": summary.groups, "images_in_groups": summary.images_in_groups,
        "largest": largest, "largest_groups": [describe(g) for g in dup_groups[:LARGEST_SHOWN]],
        "conflicts": len(stored_conflicts),
        "conflict_images": sum(c.group.size for c in stored_conflicts),
        "conflicts_by_clade_pair": [{"clades": list(k), "groups": v}
                                    for k, v in conflicts_by_clade_pair(stored_conflicts).items()],
        "changes": changes.as_dict(), "backend": getattr(index, "name", type(index).__name__),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    if report_dir is not None:
        from .dedup_report import write_report

        t0 = time.perf_counter()
        rep = write_report(catalog, store_root, report_dir, largest=report_largest, processes=processes,
                           summary=result)
        result["report"] = rep
        result["seconds"]["report"] = round(time.perf_counter() - t0, 3)
    return result
