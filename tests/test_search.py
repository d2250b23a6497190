"""Near-duplicate search: every backend returns exactly the brute-force pair set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from curation.search import (
    HammingIndex,
    MultiIndexHash,
    NumpyBruteForce,
    SearchInputError,
    default_index,
    hamming_distances,
    pairs_touching,
    popcount64,
)
from dataset_db.errors import FidError

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("dedup_search_bench", REPO / "bench" / "dedup_search.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _bench()


def as_set(pairs: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, np.asarray(pairs).tolist()))


def same_pairs(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as sets of unordered pairs (numpy, fast for millions of pairs)."""
    ca, cb = (np.unique(np.sort(p, axis=1) @ np.array([1 << 32, 1], dtype=np.int64)) for p in (a, b))
    return ca.size == len(a) and cb.size == len(b) and np.array_equal(ca, cb)


def check_pairs(pairs: np.ndarray, n: int):
    assert pairs.dtype == np.int64 and pairs.ndim == 2 and pairs.shape[1] == 2
    if len(pairs):
        assert (pairs[:, 0] < pairs[:, 1]).all() and pairs.min() >= 0 and pairs.max() < n
    assert len(as_set(pairs)) == len(pairs), "a pair was reported twice"


BACKENDS = [
    pytest.param(MultiIndexHash(), id="mih-auto"),
    pytest.param(MultiIndexHash(substrings=3), id="mih-3x21"),
    pytest.param(MultiIndexHash(substrings=4), id="mih-4x16"),
    pytest.param(MultiIndexHash(substrings=5, threads=1), id="mih-5x13"),
    pytest.param(MultiIndexHash(substrings=9), id="mih-9x7"),
    pytest.param(MultiIndexHash(substrings=3, max_candidates=5000, query_block=512), id="mih-small-chunks"),
]


@pytest.fixture(scope="module")
def random_planted():
    h, pos, neg = bench.plant_pairs(bench.random_hashes(12_000, seed=1), 1500, 8, seed=1)
    return h, pos, neg, NumpyBruteForce().pairs(h, 8)


@pytest.fixture(scope="module")
def clustered():
    # 100 generated fossil-like images on shared plain backgrounds, ~60 jittered copies each
    bases = bench.image_bases(100, seed=3)
    h, pos = bench.clustered_hashes(6_000, 8, bases=bases, n_planted=2000, seed=3, jitter=(0, 8))
    return h, pos, NumpyBruteForce().pairs(h, 8)


@pytest.mark.parametrize("index", BACKENDS)
def test_random_planted_equals_brute_force(index, random_planted):
    h, pos, neg, ref = random_planted
    got = index.pairs(h, 8)
    check_pairs(got, h.size)
    assert same_pairs(got, ref)
    assert as_set(pos) <= as_set(got)  # recall 1.0 on planted pairs (k = 0..8)
    assert not (as_set(neg) & as_set(got))  # distance 9 never reported


@pytest.mark.parametrize("index", BACKENDS)
def test_clustered_equals_brute_force(index, clustered):
    h, pos, ref = clustered
    assert len(ref) > 10 * h.size, "the clustered set should be dense in pairs"
    got = index.pairs(h, 8)
    check_pairs(got, h.size)
    assert same_pairs(got, ref)
    assert as_set(pos) <= as_set(got)


@pytest.mark.parametrize("index, threshold", [
    *[pytest.param(NumpyBruteForce(), t, id=f"brute-{t}") for t in (0, 1, 8, 20)],
    *[pytest.param(MultiIndexHash(), t, id=f"mih-auto-{t}") for t in (0, 1, 3, 8, 12, 20)],
    *[pytest.param(MultiIndexHash(substrings=3), t, id=f"mih-3-{t}") for t in (0, 2, 3, 8, 9)],
])
def test_threshold_boundary(index, threshold):
    rng = np.random.default_rng(threshold)
    base = bench.random_hashes(400, seed=threshold + 10)
    at = bench.flip_bits(base, np.full(400, threshold), rng)  # distance == threshold: included
    over = bench.flip_bits(base, np.full(400, threshold + 1), rng)  # threshold + 1: excluded
    h = np.concatenate([base, at, over])
    assert (hamming_distances(base, at) == threshold).all() and (hamming_distances(base, over) == threshold + 1).all()
    got = as_set(index.pairs(h, threshold))
    want = as_set(NumpyBruteForce().pairs(h, threshold))
    assert got == want
    for k in range(400):
        assert (k, 400 + k) in got
        assert (k, 800 + k) not in got


def test_identical_hashes_bucket_blowup_in_chunks():
    # a plain background: 400 identical hashes + 400 one bit away -> ~320 k pairs, in small chunks
    rng = np.random.default_rng(5)
    h = np.concatenate([np.zeros(400, np.uint64), bench.flip_bits(np.zeros(400, np.uint64), np.ones(400, int), rng),
                        bench.random_hashes(3000, seed=5)])
    idx = MultiIndexHash(substrings=3, max_candidates=20_000, query_block=256)
    got = idx.pairs(h, 8)
    check_pairs(got, h.size)
    ref = NumpyBruteForce().pairs(h, 8)
    assert len(got) == len(ref) >= 800 * 799 // 2
    assert same_pairs(got, ref)


@pytest.mark.parametrize("index", [NumpyBruteForce(), MultiIndexHash(), MultiIndexHash(substrings=4)],
                         ids=["brute", "mih-auto", "mih-4"])
def test_cross_pairs_and_search(index, random_planted):
    h, _, _, _ = random_planted
    q, base = h[:3000], h[3000:]
    got = index.cross_pairs(q, base, 8)
    d = popcount64(q[:, None] ^ base[None, :])
    want = set(zip(*np.nonzero(d <= 8)))
    assert as_set(got) == {(int(a), int(b)) for a, b in want}
    qi = int(got[0, 0]) if len(got) else 0
    assert index.search(int(q[qi]), base, 8).tolist() == np.flatnonzero(d[qi] <= 8).tolist()


def test_pairs_touching_new(random_planted):
    h, _, _, full = random_planted
    is_new = np.zeros(h.size, bool)
    is_new[np.random.default_rng(2).choice(h.size, 2000, replace=False)] = True
    want = {p for p in as_set(full) if is_new[p[0]] or is_new[p[1]]}
    got = pairs_touching(MultiIndexHash(), h, is_new, 8)
    check_pairs(got, h.size)
    assert as_set(got) == want and len(want) > 0


def test_small_and_degenerate_inputs():
    for idx in (NumpyBruteForce(), MultiIndexHash(), MultiIndexHash(substrings=9)):
        assert idx.pairs(np.array([], np.uint64), 8).shape == (0, 2)
        assert idx.pairs(np.array([7], np.uint64), 8).shape == (0, 2)
        assert as_set(idx.pairs([0, 2**64 - 1, 1, 0], 1)) == {(0, 2), (0, 3), (2, 3)}
        assert as_set(idx.pairs([0, 2**64 - 1, 5], 64)) == {(0, 1), (0, 2), (1, 2)}
        assert idx.cross_pairs(np.array([], np.uint64), [1, 2], 3).shape == (0, 2)
    # signed 64-bit (as the catalog stores them) and unsigned views give the same answer
    h = bench.random_hashes(3000, seed=9)
    assert as_set(MultiIndexHash().pairs(h.view(np.int64), 20)) == as_set(NumpyBruteForce().pairs(h, 20))


@pytest.mark.parametrize("bad, msg", [(-1, "0..64"), (65, "0..64"), (2.5, "0..64"), ("8", "0..64")])
def test_bad_threshold(bad, msg):
    for idx in (NumpyBruteForce(), MultiIndexHash()):
        with pytest.raises(SearchInputError, match=msg):
            idx.pairs(np.zeros(3, np.uint64), bad)


def test_bad_hashes():
    with pytest.raises(SearchInputError, match="1-D"):
        MultiIndexHash().pairs(np.zeros((2, 2), np.uint64), 8)
    with pytest.raises(SearchInputError, match="64-bit"):
        MultiIndexHash().pairs(np.zeros(3, np.float64), 8)
    with pytest.raises(SearchInputError, match=r"\[0, 2\*\*64\)"):
        MultiIndexHash().pairs([1, -5], 8)
    with pytest.raises(SearchInputError, match="substrings"):
        MultiIndexHash(substrings=2).pairs(bench.random_hashes(10), 8)
    assert issubclass(SearchInputError, FidError)


def test_interface():
    for idx in (NumpyBruteForce(), MultiIndexHash(), default_index()):
        assert isinstance(idx, HammingIndex)
    plan = MultiIndexHash().plan(415_000, 415_000, 8)
    assert (plan.m, plan.radius) == (3, 2)  # pigeonhole: 3 substrings, <= 2 flips each covers 8


@pytest.mark.slow
def test_415k_random_exact():
    """At the paper's scale (415,000 hashes, threshold 8) every planted pair is found.

    Speed is measured by bench/dedup_search.py, not asserted here."""
    h, pos, neg = bench.plant_pairs(bench.random_hashes(415_000, seed=7), 20_000, 8, seed=7)
    got = MultiIndexHash(threads=1).pairs(h, 8)
    check_pairs(got, h.size)
    assert bench.recall(got, pos, h.size) == 1.0
    assert bench.recall(got, neg, h.size) == 0.0
    assert (popcount64(h[got[:, 0]] ^ h[got[:, 1]]) <= 8).all()

