"""Seeded, stratified, leak-free train/val/test assignment (pure functions, no catalog access).

The unit of splitting is a *group* (a near-duplicate group, or with ``--group-by page`` a set of
groups that share a web page). Each unit has a stable key (the representative's sha256, or a hash
of a page URL) and belongs to one clade.

Assignment (per clade)
----------------------
1. Every unit gets a keyed hash: ``blake2b(key, key=str(seed))``, 64 bits. The hash is a pure
   function of the unit key and the seed, so it never changes when the catalog grows.
2. The clade's units are ordered by that hash and laid end to end on a line of length N (the
   number of images of the clade, each unit as long as its image count).
3. The line is cut at the cumulative ratio boundaries ``r_train * N`` and
   ``(r_train + r_val) * N``; a unit goes to the split in which its midpoint lies.

Each split is one contiguous run of units, so its image count differs from ``ratio * N`` by at
most the size of the largest unit of the clade ("within one group of target"; with one image per
group, within one image).

Stability trade-off
-------------------
A pure threshold rule (``hash < 0.8 -> train``) never moves a unit when new ones arrive, but its
per-clade ratios are only right on average (a 20-image clade can easily get 0 test images). The
cut rule above meets the ratio bound exactly and keeps the hash *order* fixed: units added later
slot in between existing ones, the two cut points move a little, and only units whose hash lies
between an old and a new cut point change split (about ``sqrt(new units)`` of them per boundary,
all next to the boundary). Those moved images are reported with ``fid export --since NAME``
(:func:`moved_items`). Same units + same seed -> the same assignment, always.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from dataset_db.errors import FidError

SPLITS = ("train", "val", "test")
DEFAULT_RATIOS = (0.80, 0.15, 0.05)


class SplitError(FidError):
    pass


@dataclass(frozen=True)
class Unit:
    """One unit of splitting: ``key`` (stable), ``clade`` and ``size`` (images it holds)."""

    key: str
    clade: str
    size: int = 1


def parse_ratios(value: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.80,0.15,0.05"`` (or three numbers) -> a checked (train, val, test) tuple summing to 1."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise SplitError(f"invalid ratios {value!r}; expected three numbers such as 0.80,0.15,0.05") from None
    else:
        nums = [float(v) for v in value]
    if len(nums) != 3 or any(not (0.0 <= r <= 1.0) for r in nums) or abs(sum(nums) - 1.0) > 1e-6:
        raise SplitError(f"invalid ratios {value!r}; expected three numbers in [0, 1] for train,val,test "
                         "that sum to 1, such as 0.80,0.15,0.05")
    if nums[0] <= 0:
        raise SplitError(f"invalid ratios {value!r}; the train ratio must be above 0")
    return (nums[0], nums[1], nums[2])


def keyed_hash(key: str, seed: int) -> int:
    """A 64-bit keyed hash of ``key`` under ``seed`` (blake2b with the seed as the MAC key)."""
    h = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8, key=str(int(seed)).encode("ascii"))
    return int.from_bytes(h.digest(), "big")


def hash_order(keys: Iterable[str], seed: int) -> list[str]:
    """``keys`` ordered by keyed hash (ties, practically impossible, by the key itself)."""
    return sorted(keys, key=lambda k: (keyed_hash(k, seed), k))


def _cut(units: list[Unit], ratios: Sequence[float], seed: int) -> dict[str, str]:
    ordered = sorted(units, key=lambda u: (keyed_hash(u.key, seed), u.key))
    total = sum(u.size for u in ordered)
    b1 = ratios[0] * total
    b2 = (ratios[0] + ratios[1]) * total
    out: dict[str, str] = {}
    start = 0
    for u in ordered:
        mid = start + u.size / 2.0
        out[u.key] = SPLITS[0] if mid < b1 else SPLITS[1] if mid < b2 else SPLITS[2]
        start += u.size
    return out


def assign_splits(units: Iterable[Unit], ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 42) -> dict[str, str]:
    """Unit key -> split, stratified per clade (see the module docstring). Keys must be unique."""
    ratios = parse_ratios(ratios)
    by_clade: dict[str, list[Unit]] = defaultdict(list)
    seen: set[str] = set()
    for u in units:
        if u.key in seen:
            raise SplitError(f"unit key {u.key!r} given twice; each unit needs a unique key")
        if u.size < 1:
            raise SplitError(f"unit {u.key!r} has size {u.size}; expected at least 1 image")
        seen.add(u.key)
        by_clade[u.clade].append(u)
    out: dict[str, str] = {}
    for clade in sorted(by_clade):
        out.update(_cut(by_clade[clade], ratios, seed))
    return out


def split_targets(n: int, ratios: Sequence[float]) -> tuple[float, float, float]:
    """The exact (fractional) image counts the ratios ask for out of ``n``."""
    return tuple(r * n for r in ratios)  # type: ignore[return-value]


def undersample(keys: Iterable[str], n: int, seed: int) -> list[str]:
    """A seeded choice of at most ``n`` of ``keys`` (the first ``n`` in keyed-hash order)."""
    if n < 0:
        raise SplitError(f"invalid sample size {n}; expected 0 or more")
    return hash_order(keys, seed)[:n]


def oversample(keys: Sequence[str], target: int, seed: int) -> list[tuple[str, int]]:
    """Extra copies that bring ``keys`` up to ``target`` items: ``[(key, repeat), ...]`` with
    repeat >= 1, cycling through the keys in keyed-hash order. Empty when already at target."""
    if target < 0:
        raise SplitError(f"invalid oversample target {target}; expected 0 or more")
    order = hash_order(keys, seed)
    c = len(order)
    if c == 0 or c >= target:
        return []
    return [(order[j % c], j // c + 1) for j in range(target - c)]


def moved_items(previous: Mapping[str, str], current: Mapping[str, str]) -> dict:
    """Compare two ``item -> split`` maps: items in both whose split changed, added, dropped."""
    moved = sorted((k, previous[k], current[k]) for k in previous.keys() & current.keys()
                   if previous[k] != current[k])
    return {"moved": [{"item": k, "from": a, "to": b} for k, a, b in moved],
            "added": len(current.keys() - previous.keys()),
            "dropped": len(previous.keys() - current.keys())}
