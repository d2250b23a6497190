"""All pairs of 64-bit hashes within a Hamming distance, exactly, behind one small interface.

Every backend implements :class:`HammingIndex`:

* ``pairs(hashes, threshold)`` -> ``(M, 2)`` int64 array of index pairs ``i < j`` with
  ``popcount(hashes[i] ^ hashes[j]) <= threshold`` (distance == threshold is included);
* ``cross_pairs(queries, hashes, threshold)`` -> ``(M, 2)`` int64 array of
  ``(query index, hash index)`` pairs within the threshold (used for incremental dedup:
  new images against the catalog);
* ``search(query, hashes, threshold)`` -> indices of ``hashes`` within the threshold of one hash.

Row order is unspecified; each pair appears exactly once.

Backends
--------
``NumpyBruteForce``
    The reference: every pair is compared in blocks (``np.bitwise_count`` on numpy >= 2, a
    byte lookup table otherwise). O(N^2): ~76 s for 415k hashes on the 2-core reference machine.

``MultiIndexHash`` (the default, :func:`default_index`)
    Multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with multi-index
    hashing", CVPR 2012) in plain numpy. The 64 bits are cut into ``m`` disjoint substrings. If two
    hashes differ in at most ``t`` bits, the differing bits spread over ``m`` substrings, so by
    pigeonhole at least one substring differs in at most ``r = t // m`` bits. For each substring a
    counting-sort table (``2**w`` bucket offsets, w <= 24 bits) lists the hashes per substring
    value; each query probes every substring value within ``r`` flips of its own, the hashes in
    those buckets become candidates, and candidates are verified with a full 64-bit popcount.
    This is exact (recall 1.0): no pair within ``t`` can be missed, and nothing outside ``t``
    survives verification. A pair found through several substrings is kept only in the first
    substring where it qualifies, so no global de-duplication (sort) is needed.

    ``m`` is picked by a small cost model (probes + expected candidates, or plain brute force when
    that is cheaper, e.g. for a few thousand hashes). For 415,000 hashes and ``t = 8`` it picks
    three substrings of 21/21/22 bits probed with up to two flips (232 probes per substring) --
    the layout faiss's ``IndexBinaryMultiHash(64, 3, 21)`` with ``nflip = 2`` uses.

    Candidates are generated in blocks of queries, and a block whose buckets are crowded (real
    perceptual hashes cluster: plain backgrounds give thousands of near-identical hashes) is cut
    further by cumulative candidate count, so working memory stays at a few hundred MB whatever the
    clustering (``max_candidates`` per chunk); only the output itself grows with the number of
    true pairs. The substrings are processed on a thread pool (numpy releases the GIL in the heavy
    operations).

Why not faiss: ``faiss-cpu``'s ``IndexBinaryMultiHash`` is exact with the same layout but measured
~15 s for 415k hashes on the reference machine (above the 10 s target), and it is a large binary
dependency; ``IndexBinaryHash`` is fast but only ~96% recall. This numpy implementation has no
extra dependency and meets the target. Measured with ``bench/dedup_search.py`` on the 2-core
machine (415,000 hashes, t = 8, recall 1.0 on planted pairs, pair sets equal to brute force on a
40k sample): uniform random hashes 4.0 s CPU (5.0 s wall with 2 threads when the machine was
idle), clustered hashes of generated images (5.2 M true pairs) 5.9 s CPU; brute force ~100 s CPU
(random). Peak memory ~0.5 GB. Self-join tricks: a flipped probe is taken only from the side whose
substring is smaller, and a shared bucket only towards later positions, so each pair is generated
once per substring; candidates read a bucket's hashes contiguously (hashes copied in bucket order).
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from dataset_db.errors import FidError

__all__ = [
    "SearchInputError",
    "HammingIndex",
    "NumpyBruteForce",
    "MultiIndexHash",
    "default_index",
    "popcount64",
    "hamming_distances",
    "pairs_touching",
    "as_hash_array",
]

_EMPTY_PAIRS = np.empty((0, 2), dtype=np.int64)
_MAX_TABLE_BITS = 24  # a substring table has 2**w + 1 int64 offsets: 128 MiB at w = 24


class SearchInputError(FidError):
    """Bad input to a Hamming search (threshold out of range, hashes not 64-bit integers)."""


# --------------------------------------------------------------------------------------------
# helpers


if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def popcount64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Number of set bits of each uint64, as uint8."""
        return np.bitwise_count(x, out=out)

else:  # pragma: no cover - numpy 1.x
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def popcount64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.uint64)
        b = x.view(np.uint8).reshape(x.shape + (8,))
        return _POP8[b].sum(axis=-1, dtype=np.uint8, out=out)


def as_hash_array(hashes) -> np.ndarray:
    """Hashes as a 1-D uint64 array. Accepts uint64/int64 arrays or Python ints in [0, 2**64)."""
    if isinstance(hashes, np.ndarray):
        if hashes.ndim != 1:
            raise SearchInputError(f"hashes must be a 1-D array; got shape {hashes.shape}")
        if hashes.dtype == np.uint64:
            return hashes
        if hashes.dtype == np.int64:
            return hashes.view(np.uint64)
        if hashes.dtype.kind in "ui" and hashes.size and hashes.min() < 0:
            raise SearchInputError("hashes must be non-negative 64-bit integers; got negative values")
        if hashes.dtype.kind in "ui":
            return hashes.astype(np.uint64)
        if hashes.dtype == object:
            hashes = hashes.tolist()
        else:
            raise SearchInputError(f"hashes must be 64-bit integers; got dtype {hashes.dtype}")
    try:
        return np.array(list(hashes), dtype=np.uint64).reshape(-1)
    except (OverflowError, TypeError, ValueError) as exc:
        raise SearchInputError(f"hashes must be integers in [0, 2**64); got {exc}") from None


def _check_threshold(threshold) -> int:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)):
        raise SearchInputError(f"threshold must be an integer in 0..64; got {threshold!r}")
    t = int(threshold)
    if not 0 <= t <= 64:
        raise SearchInputError(f"threshold must be an integer in 0..64; got {t}")
    return t


def hamming_distances(a, b) -> np.ndarray:
    """Element-wise Hamming distance of two equal-length hash arrays (uint8)."""
    return popcount64(as_hash_array(a) ^ as_hash_array(b))


# --------------------------------------------------------------------------------------------
# interface


@runtime_checkable
class HammingIndex(Protocol):
    name: str

    def pairs(self, hashes: np.ndarray, threshold: int) -> np.ndarray:
        """(M, 2) int64 index pairs i < j with Hamming distance <= threshold."""

    def cross_pairs(self, queries: np.ndarray, hashes: np.ndarray, threshold: int) -> np.ndarray:
        """(M, 2) int64 (query index, hash index) pairs with Hamming distance <= threshold."""

    def search(self, query: int, hashes: np.ndarray, threshold: int) -> np.ndarray:
        """Indices of ``hashes`` within ``threshold`` of one ``query`` hash, ascending."""


class _SearchMixin:
    def search(self, query: int, hashes, threshold: int) -> np.ndarray:
        q = as_hash_array([int(query)])
        found = self.cross_pairs(q, hashes, threshold)[:, 1]
        return np.sort(found)


def pairs_touching(index: HammingIndex, hashes, is_new, threshold: int) -> np.ndarray:
    """Pairs (i < j, indices into ``hashes``) within ``threshold`` where i or j is new.

    For an incremental dedup: new-vs-new pairs plus new-vs-old pairs, without re-running the
    old-vs-old search. ``is_new`` is a boolean mask over ``hashes``.
    """
    h = as_hash_array(hashes)
    is_new = np.asarray(is_new, dtype=bool)
    if is_new.shape != h.shape:
        raise SearchInputError(f"is_new must have one flag per hash ({h.size}); got shape {is_new.shape}")
    new_idx = np.flatnonzero(is_new)
    old_idx = np.flatnonzero(~is_new)
    parts = []
    nn = index.pairs(h[new_idx], threshold)
    if len(nn):
        parts.append(new_idx[nn])
    if len(new_idx) and len(old_idx):
        no = index.cross_pairs(h[new_idx], h[old_idx], threshold)
        if len(no):
            a, b = new_idx[no[:, 0]], old_idx[no[:, 1]]
            parts.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    if not parts:
        return _EMPTY_PAIRS.copy()
    return np.concatenate(parts).astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------
# brute force (reference)


@dataclass
class NumpyBruteForce(_SearchMixin):
    """Every pair compared, in cache-sized blocks of ``row_block`` x ``col_block`` (preallocated)."""

    row_block: int = 128
    col_block: int = 4096
    name: str = "numpy-brute-force"

    def pairs(self, hashes, threshold: int) -> np.ndarray:
        h = as_hash_array(hashes)
        return self._blocks(h, h, _check_threshold(threshold), self_join=True)

    def cross_pairs(self, queries, hashes, threshold: int) -> np.ndarray:
        return self._blocks(as_hash_array(queries), as_hash_array(hashes), _check_threshold(threshold), False)

    def _blocks(self, q: np.ndarray, h: np.ndarray, t: int, self_join: bool) -> np.ndarray:
        rb, cb = self.row_block, self.col_block
        x = np.empty((rb, cb), dtype=np.uint64)
        c = np.empty((rb, cb), dtype=np.uint8)
        m = np.empty((rb, cb), dtype=bool)
        out = []
        for i0 in range(0, q.size, rb):
            i1 = min(q.size, i0 + rb)
            rows = q[i0:i1, None]
            for j0 in range(i0 if self_join else 0, h.size, cb):
                j1 = min(h.size, j0 + cb)
                xv, cv, mv = x[: i1 - i0, : j1 - j0], c[: i1 - i0, : j1 - j0], m[: i1 - i0, : j1 - j0]
                np.bitwise_xor(rows, h[None, j0:j1], out=xv)
                popcount64(xv, out=cv)
                np.less_equal(cv, t, out=mv)
                if self_join and j0 == i0:  # diagonal block: keep j > i only
                    mv[np.tril_indices(i1 - i0, 0, j1 - j0)] = False
                if mv.any():
                    ii, jj = np.nonzero(mv)
                    out.append(np.stack([ii + i0, jj + j0], axis=1))
        return np.concatenate(out).astype(np.int64) if out else _EMPTY_PAIRS.copy()


# --------------------------------------------------------------------------------------------
# multi-index hashing


def _split_widths(m: int) -> list[int]:
    base, extra = divmod(64, m)
    return [base] * (m - extra) + [base + 1] * extra


def _n_probes(w: int, r: int) -> int:
    return sum(math.comb(w, k) for k in range(0, min(r, w) + 1))


@dataclass(frozen=True)
class _Plan:
    m: int  # 0 means brute force
    widths: tuple[int, ...]
    radius: int
    cost: float


# Rough costs in ns per element on numpy 2: a probe (xor, table gathers, filtering), a candidate
# (repeat, gather, xor, popcount, compare), a cache-blocked brute-force compare, a substring's setup.
_C_PROBE, _C_CAND, _C_BRUTE, _C_SUBSTRING = 7.0, 15.0, 1.0, 2.0e5


def _plan(n_query: int, n_index: int, t: int, self_join: bool, force_m: int | None = None) -> _Plan:
    brute = _Plan(0, (), 0, _C_BRUTE * n_query * n_index * (0.5 if self_join else 1.0))
    best = None
    ms = [force_m] if force_m else range(1, 65)
    for m in ms:
        widths = _split_widths(m)
        if max(widths) > _MAX_TABLE_BITS:
            continue
        r = t // m
        cost = 0.0
        for w in widths:
            p = _n_probes(w, r)
            cand = n_query * p * (n_index / 2.0**w)
            cost += _C_PROBE * n_query * p + _C_CAND * cand + _C_SUBSTRING + 2 ** min(w, 30) * 0.5
        if best is None or cost < best.cost:
            best = _Plan(m, tuple(widths), r, cost)
    if force_m:
        if best is None:
            raise SearchInputError(f"substrings must be in 3..64 (at most {_MAX_TABLE_BITS} bits each); got {force_m}")
        return best
    return brute if best is None or brute.cost <= best.cost else best


def _flip_masks(w: int, r: int) -> np.ndarray:
    masks = [0]
    for k in range(1, min(r, w) + 1):
        for bits in itertools.combinations(range(w), k):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.int64)


@dataclass
class MultiIndexHash(_SearchMixin):
    """Exact multi-index hashing in numpy (see the module docstring).

    ``substrings`` forces the number of substrings (3..64); by default a cost model picks it, and
    falls back to brute force when that is cheaper. ``max_candidates`` bounds the candidates held
    at once (memory ~ 40 bytes each). ``threads`` processes substrings in parallel (default: CPU
    count, at most the number of substrings).
    """

    substrings: int | None = None
    max_candidates: int = 4_000_000
    query_block: int = 16384
    threads: int | None = None
    name: str = "numpy-multi-index-hash"

    def pairs(self, hashes, threshold: int) -> np.ndarray:
        h = as_hash_array(hashes)
        t = _check_threshold(threshold)
        return self._run(h, h, t, self_join=True)

    def cross_pairs(self, queries, hashes, threshold: int) -> np.ndarray:
        q = as_hash_array(queries)
        h = as_hash_array(hashes)
        t = _check_threshold(threshold)
        return self._run(q, h, t, self_join=False)

    def plan(self, n_query: int, n_index: int, threshold: int, self_join: bool = True) -> _Plan:
        """The layout that would be used (``m == 0``: brute force)."""
        return _plan(n_query, n_index, _check_threshold(threshold), self_join, self.substrings)

    # -- internals ---------------------------------------------------------------------------

    def _run(self, q: np.ndarray, h: np.ndarray, t: int, self_join: bool) -> np.ndarray:
        if q.size == 0 or h.size == 0 or (self_join and h.size < 2):
            return _EMPTY_PAIRS.copy()
        plan = _plan(q.size, h.size, t, self_join, self.substrings)
        if plan.m == 0:
            bf = NumpyBruteForce()
            return bf.pairs(h, t) if self_join else bf.cross_pairs(q, h, t)
        shifts = np.cumsum((0,) + plan.widths[:-1]).tolist()
        masks = [np.uint64(((1 << w) - 1) << s) for w, s in zip(plan.widths, shifts)]
        jobs = list(range(plan.m))
        threads = self.threads or min(os.cpu_count() or 1, plan.m)
        # A substring's pair "belongs" to it only if no earlier substring already qualifies it.
        run = lambda k: self._substring(q, h, t, plan, k, shifts, masks, self_join)  # noqa: E731
        if threads > 1 and plan.m > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                parts = list(pool.map(run, jobs))
        else:
            parts = [run(k) for k in jobs]
        parts = [p for p in parts if len(p)]
        return np.concatenate(parts) if parts else _EMPTY_PAIRS.copy()

    def _substring(self, q, h, t, plan: _Plan, k: int, shifts, masks, self_join: bool) -> np.ndarray:
        w, s, r = plan.widths[k], shifts[k], plan.radius
        wmask = np.uint64((1 << w) - 1)
        # int32 keys/offsets halve the memory traffic of the random gathers (w <= 24, n < 2**31)
        idx_t = np.int32 if h.size < 2**31 and q.size < 2**31 else np.int64
        hkey = ((h >> np.uint64(s)) & wmask).astype(np.int32)
        order = np.argsort(hkey, kind="stable").astype(idx_t)
        counts = np.bincount(hkey, minlength=1 << w).astype(idx_t)
        del hkey
        starts = np.zeros(1 << w, dtype=idx_t)
        np.cumsum(counts[:-1], out=starts[1:])
        occupied = counts > 0  # 1 byte per bucket: the hot gather stays in cache
        h_sorted = np.take(h, order)  # a bucket's hashes are contiguous: candidates read sequentially
        qkey_all = ((q >> np.uint64(s)) & wmask).astype(np.int32)
        flips = _flip_masks(w, r).astype(np.int32)  # flips[0] == 0: the query's own bucket
        n_flip = flips.size
        if self_join:
            # Each unordered pair is generated once: through a flipped probe only from the side
            # whose key is smaller (probe key > own key), and within the shared bucket only
            # towards later positions of the sorted order.
            pos_of = np.empty(h.size, dtype=idx_t)
            pos_of[order] = np.arange(h.size, dtype=idx_t)
        earlier = masks[:k]
        out = []
        block = max(1, min(self.query_block, self.max_candidates // max(1, n_flip)))
        for b0 in range(0, q.size, block):
            b1 = min(q.size, b0 + block)
            qk = qkey_all[b0:b1]
            probe = qk[:, None] ^ flips[None, :]
            valid = np.take(occupied, probe)
            if self_join:
                valid &= probe > qk[:, None]
            nz = np.flatnonzero(valid)
            del valid
            probe = probe.ravel()[nz]
            cnt = np.take(counts, probe)
            st = np.take(starts, probe)
            qi = (nz // n_flip + b0).astype(idx_t)
            del probe, nz
            if self_join:
                own = np.arange(b0, b1, dtype=idx_t)
                st0 = pos_of[own] + 1
                cnt0 = np.take(starts, qk) + np.take(counts, qk) - st0
                more = cnt0 > 0
                cnt = np.concatenate((cnt, cnt0[more]))
                st = np.concatenate((st, st0[more]))
                qi = np.concatenate((qi, own[more]))
            if cnt.size == 0:
                continue
            # cut into chunks of about max_candidates candidates (one probe may exceed it alone)
            cum = np.cumsum(cnt, dtype=np.int64)
            total = int(cum[-1])
            if total <= self.max_candidates:
                cuts = [0, cnt.size]
            else:
                bounds = np.arange(self.max_candidates, total, self.max_candidates)
                inner = np.searchsorted(cum, bounds, side="right")
                cuts = np.unique(np.concatenate(([0], inner, [cnt.size]))).tolist()
            del cum
            for c0, c1 in zip(cuts[:-1], cuts[1:]):
                if c1 > c0:
                    res = self._verify(q, h_sorted, order, t, r, cnt[c0:c1], st[c0:c1], qi[c0:c1], earlier)
                    if res is not None:
                        out.append(res)
        if not out:
            return _EMPTY_PAIRS.copy()
        res = np.concatenate(out)
        if self_join:
            res.sort(axis=1)
        return res

    @staticmethod
    def _verify(q, h_sorted, order, t, r, cnt, st, qi, earlier):
        n = int(cnt.sum())
        # candidate positions st[p] .. st[p] + cnt[p] - 1 in the sorted order, for every probe p
        end = np.cumsum(cnt, dtype=np.int64)
        offs = np.repeat((st - (end - cnt)).astype(np.int64), cnt)
        offs += np.arange(n, dtype=np.int64)
        x = np.take(h_sorted, offs)
        x ^= np.repeat(np.take(q, qi), cnt)
        hit = np.flatnonzero(popcount64(x) <= t)
        if hit.size == 0:
            return None
        x = x[hit]
        j = np.take(order, offs[hit])
        del offs
        i = np.take(qi, np.searchsorted(end, hit, side="right"))
        if earlier:  # keep a pair only in the first substring through which it qualifies
            dup = np.zeros(hit.size, dtype=bool)
            for em in earlier:
                dup |= popcount64(x & em) <= r
            if dup.any():
                keep = ~dup
                i, j = i[keep], j[keep]
        if i.size == 0:
            return None
        return np.stack([i.astype(np.int64), j.astype(np.int64)], axis=1)


def default_index() -> HammingIndex:
    """The backend fid uses for ``fid dedup``."""
    return MultiIndexHash()
