"""Near-duplicate groups from Hamming pairs, without chaining, and label conflicts.

Rule (bounded diameter, no chaining)
------------------------------------
Images are ranked by priority: larger pixel count first, then smaller id (ids are assigned in
creation order, so this is "earliest"). Walking the images in that order, an image that is not yet
in a group becomes a *representative* and claims every neighbour (a pair within the threshold)
that is not yet in a group. So every member is within the threshold of its group's representative
and a group's diameter is at most 2 x threshold, whatever the pair graph looks like: a chain
A~B~C~D~... of plain-background photos is cut into pieces instead of being merged (plain
union-find would merge it). Every image ends in exactly one group; images with no neighbour are
groups of one (``Grouping.groups()`` lists groups of two or more by default). The representative of
a group is therefore its highest-priority member, and it is never claimed by an earlier one.

Incremental updates (:func:`update_groups`)
-------------------------------------------
Every old image keeps its role: groups, representatives and members do not change (exports stay
stable), and an old image that was alone stays the representative of its (one-image) group. New
images are placed by the same greedy walk, with the old representatives walked first: each old
representative, in priority order, claims its unclaimed new neighbours; then each new image not
yet claimed, in priority order, becomes a representative and claims its unclaimed new neighbours.
So a new image joins an existing group only when it is within the threshold of that group's
representative (the highest-priority such representative), and every rule above still holds.
Consequences, documented on purpose:

* if every new image ranks below every old image (the usual case: same size, later ids), the
  result equals :func:`build_groups` on everything;
* a new, larger copy of an old image joins that image's group as a member instead of taking over
  as representative; a full rebuild (:func:`build_groups`) would make it the representative;
* pairs between two old images are ignored (a changed threshold or method needs a rebuild).

``method``: ``phash``, ``dhash`` or ``both`` (a pair must be within the threshold on both hashes:
the intersection of the two pair sets, computed as the pHash pairs whose dHash is also within).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from curation.search import HammingIndex, as_hash_array, default_index, hamming_distances, pairs_touching
from dataset_db.errors import FidError

__all__ = [
    "METHODS",
    "GroupingInputError",
    "UnknownMethodError",
    "DuplicateGroup",
    "GroupingSummary",
    "Grouping",
    "LabelConflict",
    "find_pairs",
    "build_groups",
    "update_groups",
    "member_distances",
    "label_conflicts",
    "conflicts_by_clade_pair",
]

METHODS = ("phash", "dhash", "both")


class GroupingInputError(FidError):
    """Inconsistent input to grouping (ids, pixels, pairs or previous groups)."""


class UnknownMethodError(FidError):
    def __init__(self, method):
        super().__init__(f"unknown dedup method {method!r}; choose from: {', '.join(METHODS)}")
        self.method = method


# --------------------------------------------------------------------------------------------
# pairs per method


def find_pairs(phash, dhash, threshold: int, method: str = "phash", index: HammingIndex | None = None,
               is_new=None) -> np.ndarray:
    """Index pairs (i < j, positions in the hash arrays) within ``threshold`` for ``method``.

    ``phash``/``dhash`` are aligned arrays of 64-bit hashes (the one the method does not use may be
    None). ``is_new`` (boolean mask): only pairs touching a new image, for :func:`update_groups`.
    """
    if method not in METHODS:
        raise UnknownMethodError(method)
    index = index or default_index()
    need = {"phash": ("phash",), "dhash": ("dhash",), "both": ("phash", "dhash")}[method]
    arrays = {"phash": phash, "dhash": dhash}
    for name in need:
        if arrays[name] is None:
            raise GroupingInputError(f"method {method!r} needs {name} values; got none")
    first = as_hash_array(arrays[need[0]])
    if is_new is None:
        pairs = index.pairs(first, threshold)
    else:
        pairs = pairs_touching(index, first, is_new, threshold)
    if method == "both" and len(pairs):
        other = as_hash_array(arrays["dhash"])
        if other.shape != first.shape:
            raise GroupingInputError(f"phash and dhash must be aligned; got {first.size} and {other.size} values")
        keep = hamming_distances(other[pairs[:, 0]], other[pairs[:, 1]]) <= threshold
        pairs = pairs[keep]
    return pairs


# --------------------------------------------------------------------------------------------
# groups


@dataclass(frozen=True)
class DuplicateGroup:
    representative: int
    members: tuple[int, ...]  # every member id, the representative first, then by priority

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class GroupingSummary:
    groups: int  # groups of two or more
    images_in_groups: int
    largest: int  # size of the largest group (1 when there is no duplicate)


@dataclass
class Grouping:
    """Every image's representative. ``ids`` ascending; ``rep[k]`` is the representative of ``ids[k]``."""

    ids: np.ndarray
    rep: np.ndarray
    pixels: np.ndarray = field(repr=False)

    def representative_of(self, image_id: int) -> int:
        k = int(np.searchsorted(self.ids, image_id))
        if k >= self.ids.size or self.ids[k] != image_id:
            raise GroupingInputError(f"image {image_id} is not in this grouping")
        return int(self.rep[k])

    def groups(self, min_size: int = 2) -> list[DuplicateGroup]:
        """Groups with at least ``min_size`` members, largest first (ties: smaller representative id)."""
        if self.ids.size == 0:
            return []
        prio = np.lexsort((self.ids, -self.pixels))  # members in priority order
        reps, inv, sizes = np.unique(self.rep, return_inverse=True, return_counts=True)
        big = sizes >= min_size
        if not big.any():
            return []
        sel = prio[big[inv[prio]]]
        by_group = sel[np.argsort(inv[sel], kind="stable")]
        bounds = np.cumsum(sizes[big])[:-1]
        out = []
        for rep, members in zip(reps[big].tolist(), np.split(self.ids[by_group], bounds)):
            # the representative first (it may rank below a member after update_groups)
            rest = tuple(int(m) for m in members if m != rep)
            out.append(DuplicateGroup(rep, (rep,) + rest))
        out.sort(key=lambda g: (-g.size, g.representative))
        return out

    def as_dict(self, min_size: int = 2) -> dict[int, list[int]]:
        """representative id -> member ids (representative first)."""
        return {g.representative: list(g.members) for g in self.groups(min_size)}

    def summary(self) -> GroupingSummary:
        if self.ids.size == 0:
            return GroupingSummary(0, 0, 0)
        _, sizes = np.unique(self.rep, return_counts=True)
        multi = sizes[sizes >= 2]
        return GroupingSummary(int(multi.size), int(multi.sum()), int(sizes.max()))


def _prepare(ids, pixels, pairs):
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1)
    if ids.shape != pixels.shape:
        raise GroupingInputError(f"ids and pixels must have the same length; got {ids.size} and {pixels.size}")
    order = np.argsort(ids, kind="stable")
    ids, pixels = ids[order], pixels[order]
    if ids.size > 1 and (np.diff(ids) == 0).any():
        dup = int(ids[1:][np.diff(ids) == 0][0])
        raise GroupingInputError(f"image ids must be unique; got {dup} more than once")
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise GroupingInputError(f"pairs must be an (M, 2) array of image ids; got shape {pairs.shape}")
    pos = _positions(ids, pairs.reshape(-1), "pairs").reshape(-1, 2)
    pos = pos[pos[:, 0] != pos[:, 1]]
    return ids, pixels, pos


def _positions(ids: np.ndarray, values, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        if values.size:
            raise GroupingInputError(f"{what} mention image id {int(values[0])}, which is not in ids")
        return values
    lo, span = int(ids[0]), int(ids[-1]) - int(ids[0]) + 1
    if span <= 4 * ids.size + 1024:  # dense ids (the usual autoincrement): a lookup table
        table = np.full(span, -1, dtype=np.int64)
        table[ids - lo] = np.arange(ids.size)
        rel = values - lo
        inside = (rel >= 0) & (rel < span)
        k = np.full(values.size, -1, dtype=np.int64)
        k[inside] = table[rel[inside]]
        bad = k < 0
    else:
        k = np.minimum(np.searchsorted(ids, values), ids.size - 1)
        bad = ids[k] != values
    if bad.any():
        raise GroupingInputError(f"{what} mention image id {int(values[np.argmax(bad)])}, which is not in ids")
    return k


def _greedy(ids, pixels, pos, assigned: np.ndarray, fixed_rep: np.ndarray) -> np.ndarray:
    """The greedy walk (see the module docstring). ``assigned``: rep position or -1, updated in place.

    Walks the fixed representatives, then the other images, each in priority order: a fixed
    representative claims its unassigned neighbours; an unassigned image becomes a representative
    and claims its unassigned neighbours; an assigned one is skipped.
    """
    n = ids.size
    indptr = np.zeros(n + 1, dtype=np.int64)
    if len(pos):
        # CSR adjacency: sort (source << 32 | neighbour) keys, no stable argsort needed
        src = np.concatenate((pos[:, 0], pos[:, 1]))
        key = (src << 32) | np.concatenate((pos[:, 1], pos[:, 0]))
        key.sort()
        nbr = key & 0xFFFFFFFF
        del key
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        del src
    else:
        nbr = np.empty(0, dtype=np.int64)
    degree = np.diff(indptr)
    walk = np.flatnonzero(fixed_rep | (assigned < 0))
    walk = walk[np.lexsort((ids[walk], -pixels[walk], ~fixed_rep[walk]))]
    # images with no pair: their own representative, no claims to make
    lone = walk[(degree[walk] == 0) & (assigned[walk] < 0)]
    assigned[lone] = lone
    walk = walk[degree[walk] > 0]
    starts, ends = indptr[walk].tolist(), indptr[walk + 1].tolist()
    fixed = fixed_rep[walk].tolist()
    for i, a, b, f in zip(walk.tolist(), starts, ends, fixed):
        if assigned.item(i) < 0:
            assigned[i] = i
        elif not f:
            continue
        nb = nbr[a:b]
        free = nb[assigned[nb] < 0]
        if free.size:
            assigned[free] = i
    return assigned


def build_groups(ids, pixels, pairs) -> Grouping:
    """Groups over all images. ``pairs``: (M, 2) image ids within the threshold (any order)."""
    ids, pixels, pos = _prepare(ids, pixels, pairs)
    assigned = np.full(ids.size, -1, dtype=np.int64)
    _greedy(ids, pixels, pos, assigned, np.zeros(ids.size, dtype=bool))
    return Grouping(ids, ids[assigned], pixels)


def update_groups(previous: Grouping | Mapping[int, Iterable[int]], ids, pixels, pairs, new_ids) -> Grouping:
    """Add ``new_ids`` to existing groups without recomputing them (see the module docstring).

    ``previous``: a :class:`Grouping` or ``{representative: member ids}`` (groups of one may be
    omitted: every old image in no group is alone); ``ids``/``pixels``: every image, old and new;
    ``pairs``: image-id pairs within the threshold that touch a new image (old-old pairs are
    ignored), e.g. ``find_pairs(..., is_new=mask)``.
    """
    ids, pixels, pos = _prepare(ids, pixels, pairs)
    n = ids.size
    is_new = np.zeros(n, dtype=bool)
    is_new[_positions(ids, new_ids, "new_ids")] = True
    if isinstance(previous, Grouping):
        prev = previous.as_dict(min_size=2)
    else:
        prev = {int(r): [int(m) for m in ms] for r, ms in previous.items()}
    assigned = np.full(n, -1, dtype=np.int64)
    if prev:
        # one vectorised lookup for every previous representative and member
        reps = np.fromiter(prev, dtype=np.int64, count=len(prev))
        sizes = np.fromiter((len(ms) for ms in prev.values()), dtype=np.int64, count=len(prev))
        members = np.fromiter((m for ms in prev.values() for m in ms), dtype=np.int64, count=int(sizes.sum()))
        r_pos = _positions(ids, reps, "previous groups")
        m_pos = _positions(ids, members, "previous groups")
        owner = np.repeat(r_pos, sizes)  # representative position of each member
        if is_new[r_pos].any() or is_new[m_pos].any():
            bad = reps[is_new[r_pos]] if is_new[r_pos].any() else np.repeat(reps, sizes)[is_new[m_pos]]
            raise GroupingInputError(f"new_ids overlap the previous group of representative {int(bad[0])}")
        both = np.concatenate([r_pos, m_pos])
        want = np.concatenate([r_pos, owner])
        order = np.argsort(both, kind="stable")
        both, want = both[order], want[order]
        same = both[1:] == both[:-1]
        clash = same & (want[1:] != want[:-1])
        if clash.any():
            at = int(want[1:][clash][0])
            raise GroupingInputError(f"previous groups overlap at the group of representative {int(ids[at])}")
        assigned[both] = want
    # old images in no previous group were alone: representatives of one-image groups
    alone = (assigned < 0) & ~is_new
    assigned[alone] = np.flatnonzero(alone)
    fixed_rep = assigned == np.arange(n)
    # ignore pairs between two old images
    pos = pos[is_new[pos[:, 0]] | is_new[pos[:, 1]]] if len(pos) else pos
    _greedy(ids, pixels, pos, assigned, fixed_rep)
    return Grouping(ids, ids[assigned], pixels)


def member_distances(grouping: Grouping, hashes) -> np.ndarray:
    """Hamming distance of every image (``grouping.ids`` order) to its representative."""
    h = as_hash_array(hashes)
    if h.shape != grouping.ids.shape:
        raise GroupingInputError(f"need one hash per image ({grouping.ids.size}); got {h.size}")
    rep_pos = np.searchsorted(grouping.ids, grouping.rep)
    return hamming_distances(h, h[rep_pos])


# --------------------------------------------------------------------------------------------
# label conflicts


@dataclass(frozen=True)
class LabelConflict:
    group: DuplicateGroup
    clades: tuple[str, ...]  # the distinct clades its images were sighted under, sorted
    clades_by_image: dict[int, tuple[str, ...]]


def label_conflicts(groups: Iterable[DuplicateGroup] | Grouping,
                    clades_of_image: Mapping[int, Iterable[str]]) -> list[LabelConflict]:
    """Groups whose images were sighted under more than one clade.

    An image sighted under two clades conflicts on its own: images in ``clades_of_image`` that are
    in none of ``groups`` are checked as groups of one. Order: largest group first.
    """
    if isinstance(groups, Grouping):
        groups = groups.groups(min_size=2)
    out = []
    seen: set[int] = set()
    for g in groups:
        seen.update(g.members)
        by_image = {m: tuple(sorted(set(clades_of_image.get(m, ())))) for m in g.members}
        union = sorted({c for cs in by_image.values() for c in cs})
        if len(union) > 1:
            out.append(LabelConflict(g, tuple(union), {m: cs for m, cs in by_image.items() if cs}))
    for image_id, clades in clades_of_image.items():
        if image_id in seen:
            continue
        cs = tuple(sorted(set(clades)))
        if len(cs) > 1:
            out.append(LabelConflict(DuplicateGroup(int(image_id), (int(image_id),)), cs, {int(image_id): cs}))
    out.sort(key=lambda c: (-c.group.size, c.group.representative))
    return out


def conflicts_by_clade_pair(conflicts: Iterable[LabelConflict]) -> dict[tuple[str, str], int]:
    """Number of conflicting groups per clade pair (a group with clades a, b, c counts for ab, ac, bc)."""
    counts: Counter[tuple[str, str]] = Counter()
    for c in conflicts:
        counts.update(combinations(c.clades, 2))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
