"""Duplicate groups: no chaining, representative rule, incremental updates, label conflicts."""

from __future__ import annotations

import numpy as np
import pytest

from curation.grouping import (
    DuplicateGroup,
    Grouping,
    GroupingInputError,
    UnknownMethodError,
    build_groups,
    conflicts_by_clade_pair,
    find_pairs,
    label_conflicts,
    member_distances,
    update_groups,
)
from curation.search import NumpyBruteForce, popcount64
from dataset_db.errors import FidError

T = 8


def chain_hashes(length: int, step: int) -> np.ndarray:
    """h[k] differs from h[0] in the first step*k bits: adjacent links `step` apart, ends far apart."""
    return np.array([(1 << (step * k)) - 1 for k in range(length)], dtype=np.uint64)


def components(n: int, pairs: np.ndarray) -> int:
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs.tolist():
        parent[find(a)] = find(b)
    return len({find(x) for x in range(n)})


def clustered(n_bases=60, copies=8, jitter=5, seed=0):
    """Random base hashes, each with jittered copies (pairs within T inside a cluster, chains across)."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 2**64, n_bases, dtype=np.uint64, endpoint=False)
    h = np.repeat(bases, copies)
    flips = rng.integers(0, jitter + 1, h.size)
    for k in range(h.size):
        for b in rng.choice(64, flips[k], replace=False):
            h[k] ^= np.uint64(1 << int(b))
    return h


def check_invariants(g: Grouping, hashes_by_id: dict[int, int], pairs: np.ndarray, t: int = T):
    """Independent checks of the greedy rule on a result built from `pairs` (image ids)."""
    prio = {int(i): (-int(p), int(i)) for i, p in zip(g.ids, g.pixels)}
    rep = dict(zip(g.ids.tolist(), g.rep.tolist()))
    nbrs: dict[int, set[int]] = {i: set() for i in rep}
    for a, b in pairs.tolist():
        nbrs[a].add(b)
        nbrs[b].add(a)
    reps = {r for r in rep.values()}
    for i, r in rep.items():
        assert rep[r] == r  # a representative represents itself
        if i != r:
            # within the threshold of its representative -> diameter <= 2t
            assert bin(hashes_by_id[i] ^ hashes_by_id[r]).count("1") <= t
            # claimed by the highest-priority representative among its neighbours
            assert r == min((n for n in nbrs[i] if n in reps), key=prio.get)
            assert prio[r] < prio[i]
        else:
            # a representative has no higher-priority representative next to it
            assert not any(n in reps and prio[n] < prio[i] for n in nbrs[i])
    for grp in g.groups():
        hs = [hashes_by_id[m] for m in grp.members]
        assert max(bin(a ^ b).count("1") for a in hs for b in hs) <= 2 * t


# --------------------------------------------------------------------------------------------


def test_planted_chain_is_not_merged():
    h = chain_hashes(12, 5)  # neighbours 5 bits apart (<= 8), two steps 10 apart (> 8)
    ids = np.arange(100, 112)
    pairs_idx = find_pairs(h, None, T)
    assert components(len(h), pairs_idx) == 1, "plain union-find would merge the whole chain"
    assert {tuple(p) for p in pairs_idx.tolist()} == {(k, k + 1) for k in range(11)}
    g = build_groups(ids, np.full(12, 1000), ids[pairs_idx])
    groups = g.groups()
    assert [grp.members for grp in groups] == [(100 + 2 * k, 101 + 2 * k) for k in range(6)]
    assert max(grp.size for grp in groups) == 2
    check_invariants(g, dict(zip(ids.tolist(), map(int, h))), ids[pairs_idx])
    assert (member_distances(g, h) <= T).all()


def test_chain_with_larger_middle_image():
    # the biggest image sits in the middle: it takes both neighbours, the chain splits around it
    h = chain_hashes(7, 5)
    ids = np.arange(1, 8)
    pixels = np.array([10, 10, 10, 99, 10, 10, 10])
    g = build_groups(ids, pixels, ids[find_pairs(h, None, T)])
    assert g.as_dict() == {4: [4, 3, 5], 1: [1, 2], 6: [6, 7]}


def test_representative_rule_and_input_order():
    # five mutual near-duplicates: largest pixel count wins, ties go to the smallest (earliest) id
    ids = np.array([7, 3, 9, 5, 11])
    pixels = np.array([640 * 480, 1024 * 768, 1024 * 768, 320 * 240, 1024 * 768])
    pairs = np.array([(a, b) for a in ids for b in ids if a < b])
    g = build_groups(ids, pixels, pairs)
    (grp,) = g.groups()
    assert grp.representative == 3
    assert grp.members == (3, 9, 11, 7, 5)  # then by priority
    assert g.representative_of(5) == 3
    perm = np.random.default_rng(1).permutation(5)
    g2 = build_groups(ids[perm], pixels[perm], pairs[::-1, ::-1])
    assert g2.groups() == g.groups()
    assert g.summary().groups == 1 and g.summary().images_in_groups == 5 and g.summary().largest == 5


def test_singletons_and_summary():
    g = build_groups([1, 2, 3, 4], [5, 5, 5, 5], np.array([[2, 4]]))
    assert g.groups() == [DuplicateGroup(2, (2, 4))]
    assert len(g.groups(min_size=1)) == 3
    s = g.summary()
    assert (s.groups, s.images_in_groups, s.largest) == (1, 2, 2)
    assert build_groups([], [], np.empty((0, 2))).groups() == []


def test_greedy_rule_on_clustered_hashes():
    h = clustered(seed=2)
    rng = np.random.default_rng(2)
    ids = rng.permutation(np.arange(1000, 1000 + h.size))
    pixels = rng.choice([100, 200, 300], h.size)
    pairs_idx = find_pairs(h, None, T)
    assert components(h.size, pairs_idx) < h.size * 0.5
    g = build_groups(ids, pixels, ids[pairs_idx])
    check_invariants(g, dict(zip(ids.tolist(), map(int, h))), ids[pairs_idx])


def test_method_both_is_the_intersection():
    rng = np.random.default_rng(4)
    ph, dh = clustered(seed=4), clustered(seed=5)
    bf = NumpyBruteForce()
    sp = {tuple(p) for p in bf.pairs(ph, T).tolist()}
    sd = {tuple(p) for p in bf.pairs(dh, T).tolist()}
    both = {tuple(p) for p in find_pairs(ph, dh, T, "both").tolist()}
    assert both == sp & sd and sp != sd and both
    assert {tuple(p) for p in find_pairs(None, dh, T, "dhash").tolist()} == sd
    is_new = rng.random(ph.size) < 0.2
    touching = {tuple(p) for p in find_pairs(ph, dh, T, "both", is_new=is_new).tolist()}
    assert touching == {p for p in sp & sd if is_new[p[0]] or is_new[p[1]]}


def test_method_errors():
    with pytest.raises(UnknownMethodError, match="unknown dedup method 'ahash'; choose from: phash, dhash, both"):
        find_pairs([1], [1], T, "ahash")
    with pytest.raises(GroupingInputError, match="needs dhash"):
        find_pairs([1, 2], None, T, "both")
    with pytest.raises(GroupingInputError, match="not in ids"):
        build_groups([1, 2], [1, 1], np.array([[1, 3]]))
    with pytest.raises(GroupingInputError, match="unique"):
        build_groups([1, 1], [1, 1], [])
    assert issubclass(UnknownMethodError, FidError) and issubclass(GroupingInputError, FidError)


# --------------------------------------------------------------------------------------------
# incremental


def _split(h, n_old, seed, pixels=None):
    ids = np.arange(1, h.size + 1)  # creation order: new images get later ids
    pixels = np.full(h.size, 500) if pixels is None else pixels
    is_new = np.zeros(h.size, bool)
    is_new[n_old:] = True
    old_pairs = find_pairs(h[:n_old], None, T)
    old = build_groups(ids[:n_old], pixels[:n_old], ids[:n_old][old_pairs])
    touching = ids[find_pairs(h, None, T, is_new=is_new)]
    return ids, pixels, old, touching


def test_incremental_equals_full_rebuild_when_new_images_rank_last():
    rng = np.random.default_rng(6)
    h = clustered(n_bases=80, copies=6, seed=6)
    h = h[rng.permutation(h.size)]
    ids, pixels, old, touching = _split(h, 300, 6)
    assert old.summary().groups > 10
    up = update_groups(old, ids, pixels, touching, ids[300:])
    full = build_groups(ids, pixels, ids[find_pairs(h, None, T)])
    assert up.groups(min_size=1) == full.groups(min_size=1)
    joined = [g for g in up.groups() if g.representative <= 300 and max(g.members) > 300]
    fresh = [g for g in up.groups() if g.representative > 300]
    assert joined and fresh  # new images both joined old groups and formed new ones
    # also from a plain {rep: members} mapping
    up2 = update_groups(old.as_dict(), ids, pixels, touching, ids[300:])
    assert up2.groups(min_size=1) == full.groups(min_size=1)


def test_incremental_keeps_existing_groups_stable():
    rng = np.random.default_rng(7)
    h = clustered(n_bases=80, copies=6, seed=7)
    h = h[rng.permutation(h.size)]
    pixels = rng.choice([100, 400, 900], h.size)  # new images may outrank old ones
    ids, pixels, old, touching = _split(h, 300, 7, pixels)
    up = update_groups(old, ids, pixels, touching, ids[300:])
    for grp in old.groups():
        assert up.representative_of(grp.representative) == grp.representative
        for m in grp.members:
            assert up.representative_of(m) == grp.representative
    # every member still within the threshold of its representative
    assert (member_distances(up, h) <= T).all()
    hb = dict(zip(ids.tolist(), map(int, h)))
    for g in up.groups():
        assert g.members[0] == g.representative
        assert all(bin(hb[m] ^ hb[g.representative]).count("1") <= T for m in g.members)


def test_incremental_bigger_copy_joins_instead_of_taking_over():
    a, b = 0x0F0F0F0F0F0F0F0F, 0x0F0F0F0F0F0F0F0E  # distance 1
    old = build_groups([1, 2], [100, 100], [(1, 2)])
    assert old.as_dict() == {1: [1, 2]}
    big_copy = a ^ 0b11  # distance 2 to the representative
    up = update_groups(old, [1, 2, 3], [100, 100, 10_000], [(1, 3), (2, 3)], [3])
    assert up.as_dict() == {1: [1, 3, 2]}  # representative stays; the bigger copy is listed next
    assert build_groups([1, 2, 3], [100, 100, 10_000], [(1, 2), (1, 3), (2, 3)]).as_dict() == {3: [3, 1, 2]}
    assert popcount64(np.array([a ^ big_copy, b ^ big_copy], np.uint64)).max() <= T


def test_incremental_new_images_join_old_singletons_or_form_groups():
    old = build_groups([1, 2], [100, 100], np.empty((0, 2)))
    # 3 (bigger) is next to the old lone image 2: 2 keeps its role and takes 3; 4 and 5 are new-only
    up = update_groups(old, [1, 2, 3, 4, 5], [100, 100, 5000, 10, 20], [(2, 3), (3, 4), (4, 5)], [3, 4, 5])
    assert up.as_dict() == {2: [2, 3], 5: [5, 4]}
    assert up.representative_of(1) == 1


def test_incremental_errors():
    old = build_groups([1, 2], [1, 1], [(1, 2)])
    with pytest.raises(GroupingInputError, match="overlap"):
        update_groups(old, [1, 2, 3], [1, 1, 1], [], [2, 3])
    with pytest.raises(GroupingInputError, match="not in ids"):
        update_groups({9: [9, 1]}, [1, 2, 3], [1, 1, 1], [], [3])


# --------------------------------------------------------------------------------------------
# label conflicts


def test_label_conflicts():
    g = build_groups(range(1, 9), [10] * 8, [(1, 2), (1, 3), (4, 5), (6, 7)])
    clades = {
        1: {"Ammonoidea"}, 2: {"Ammonoidea"}, 3: {"Trilobita"},  # group 1: conflict
        4: {"Crinoidea"}, 5: {"Crinoidea"},  # group 4: agrees
        6: {"Bivalvia"},  # 7 unsighted: no conflict
        8: {"Gastropoda", "Bivalvia"},  # one image (one URL) sighted under two clades
    }
    conflicts = label_conflicts(g, clades)
    assert [(c.group.representative, c.clades) for c in conflicts] == [
        (1, ("Ammonoidea", "Trilobita")),
        (8, ("Bivalvia", "Gastropoda")),
    ]
    assert conflicts[0].clades_by_image == {1: ("Ammonoidea",), 2: ("Ammonoidea",), 3: ("Trilobita",)}
    assert conflicts[1].group.members == (8,)
    assert label_conflicts(g.groups(), clades) == conflicts  # a list of groups works too
    three = label_conflicts([DuplicateGroup(1, (1, 2, 3))], {1: {"a"}, 2: {"b"}, 3: {"c"}})
    assert conflicts_by_clade_pair(conflicts + three) == {
        ("Ammonoidea", "Trilobita"): 1, ("Bivalvia", "Gastropoda"): 1, ("a", "b"): 1, ("a", "c"): 1, ("b", "c"): 1,
    }
    assert label_conflicts(g, {1: {"x"}, 2: {"x"}}) == []
