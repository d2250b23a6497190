"""Benchmark: all pairs within a Hamming threshold among N 64-bit hashes (default 415,000, t = 8).

Usage:  .venv/bin/python bench/dedup_search.py [--n 415000] [--threshold 8] [--brute-sample 40000]
                                              [--full-brute] [--data random,clustered] [--seed 0]

Prints one row per (data set, backend): backend, n, threshold, wall seconds, CPU seconds, pairs,
recall on planted pairs, speed-up vs. numpy brute force, and whether the backend's pairs equal
brute force's exactly on a random subset of ``--brute-sample`` hashes.

Brute force is O(N^2) (~76 s at 415k on the 2-core reference machine), so by default it runs on a
random subset of ``--brute-sample`` hashes and its time is extrapolated by (n / sample)^2 (marked
``~``); ``--full-brute`` runs it on all N. Recall is never extrapolated: it is computed exactly,
on every planted pair, from the backend's full output.

Data sets
---------
random
    Uniform random 64-bit hashes, plus planted pairs: ``--planted`` disjoint (a, b) index pairs
    where b is a copy of a with k random bits flipped, k uniform in 0..threshold (each of those is
    a pair the search must find); as many again with k = threshold + 1 (must NOT be found).
clustered
    Hashes of real-looking generated images, where near-identical hashes pile up as they do on
    photos with plain backgrounds. ``--bases`` (default 3,000) 128-px images are drawn with
    Pillow: a plain or gently graded background shared by many images (a few greys, white, black,
    beige), and one to three fossil-like shapes (ellipses with ribs, spirals, polygons) of random
    size, position and tone; a quarter of them carry only a small object, so their hash is
    dominated by the background. Their ``imagehash.phash`` values are the bases (about 1% of
    base pairs already lie within distance 8 of each other: shared backgrounds). The N hashes are
    then made by picking a base uniformly (~140 copies each at 415k) and flipping k random bits,
    k uniform in 2..12 (``--jitter``), standing in for resized, recompressed and cropped copies:
    dense neighbourhoods that crowd the search's buckets, ~5 M true pairs at 415k, t = 8.
    Planted pairs are a random sample of copy pairs of the same base
    whose distance is within the threshold (checked by popcount).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.search import MultiIndexHash, NumpyBruteForce, popcount64  # noqa: E402

# ---------------------------------------------------------------------------------------------
# data


def random_hashes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)


def flip_bits(h: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each h[i] with k[i] distinct random bits flipped (k <= 64)."""
    h = np.asarray(h, dtype=np.uint64).copy()
    k = np.asarray(k)
    if h.size == 0:
        return h
    # random permutation of bit positions per row; flip the first k[i] of them
    keys = rng.random((h.size, 64))
    pos = np.argsort(keys, axis=1)
    take = np.arange(64)[None, :] < k[:, None]
    bits = np.where(take, np.left_shift(np.uint64(1), pos.astype(np.uint64)), np.uint64(0))
    return h ^ np.bitwise_or.reduce(bits, axis=1)


def plant_pairs(h: np.ndarray, n_pairs: int, threshold: int, seed: int = 0):
    """Overwrite hashes to plant pairs. Returns (hashes, positives (P, 2), negatives (P, 2)).

    positives: distance k uniform in 0..threshold (both ends of the range included);
    negatives: distance exactly threshold + 1. All planted indices are distinct (at most n // 4 pairs each).
    """
    rng = np.random.default_rng(seed + 1)
    h = h.copy()
    n_pairs = min(n_pairs, h.size // 4)
    idx = rng.permutation(h.size)[: 4 * n_pairs].reshape(2, 2, n_pairs)
    out = []
    for sign, (a, b) in zip((0, 1), idx):
        k = rng.integers(0, threshold + 1, size=n_pairs) if sign == 0 else np.full(n_pairs, threshold + 1)
        if sign == 0 and n_pairs >= 2:
            k[0], k[1] = 0, threshold
        h[b] = flip_bits(h[a], k, rng)
        out.append(np.sort(np.stack([a, b], axis=1), axis=1).astype(np.int64))
    return h, out[0], out[1]


def _fossil_image(rng: np.random.Generator, size: int = 128):
    from PIL import Image, ImageDraw, ImageFilter

    backgrounds = [(255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 200, 200), (235, 225, 200), (60, 60, 60)]
    bg = backgrounds[rng.integers(len(backgrounds))]
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.3:  # gentle vertical gradient (studio backdrop)
        for y in range(size):
            f = 0.85 + 0.15 * y / size
            d.line([(0, y), (size, y)], fill=tuple(int(c * f) for c in bg))
    small = rng.random() < 0.25
    for _ in range(rng.integers(1, 4)):
        s = rng.uniform(0.06, 0.15) if small else rng.uniform(0.2, 0.7)
        w, hgt = s * size * rng.uniform(0.6, 1.4), s * size * rng.uniform(0.6, 1.4)
        cx, cy = rng.uniform(w / 2, size - w / 2), rng.uniform(hgt / 2, size - hgt / 2)
        tone = tuple(int(v) for v in rng.integers(30, 225, 3))
        kind = rng.integers(3)
        box = [cx - w / 2, cy - hgt / 2, cx + w / 2, cy + hgt / 2]
        if kind == 0:  # bivalve / brachiopod: ellipse with ribs
            d.ellipse(box, fill=tone)
            for r in range(int(rng.integers(3, 9))):
                x = box[0] + (r + 1) * w / 10
                d.line([(cx, box[3]), (x, box[1])], fill=tuple(max(0, c - 40) for c in tone), width=1)
        elif kind == 1:  # ammonite: spiral of circles
            for r in range(6, 0, -1):
                rr = r / 6 * min(w, hgt) / 2
                d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], outline=tuple(max(0, c - 50) for c in tone),
                          fill=tone if r == 6 else None, width=2)
        else:  # trilobite-ish polygon
            n = int(rng.integers(5, 10))
            ang = np.sort(rng.uniform(0, 2 * math.pi, n))
            pts = [(cx + w / 2 * math.cos(a) * rng.uniform(0.6, 1), cy + hgt / 2 * math.sin(a) * rng.uniform(0.6, 1))
                   for a in ang]
            d.polygon(pts, fill=tone)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return img


def image_bases(n_bases: int, seed: int = 0) -> np.ndarray:
    """phash of ``n_bases`` generated fossil-like images on shared plain backgrounds."""
    import imagehash

    rng = np.random.default_rng(seed)
    out = np.empty(n_bases, dtype=np.uint64)
    for i in range(n_bases):
        out[i] = np.uint64(int(str(imagehash.phash(_fossil_image(rng))), 16))
    return out


def clustered_hashes(n: int, threshold: int, n_bases: int = 3000, n_planted: int = 20_000, seed: int = 0,
                     bases: np.ndarray | None = None, jitter: tuple[int, int] = (2, 12)):
    """(hashes, planted positive pairs) -- see the module docstring."""
    rng = np.random.default_rng(seed + 2)
    if bases is None:
        bases = image_bases(n_bases, seed)
    n_bases = bases.size
    base_of = rng.integers(0, n_bases, size=n)
    k = rng.integers(jitter[0], jitter[1] + 1, size=n)
    h = flip_bits(bases[base_of], k, rng)
    # planted: random same-base pairs within the threshold
    order = np.argsort(base_of, kind="stable")
    counts = np.bincount(base_of, minlength=n_bases)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    multi = np.flatnonzero(counts >= 2)
    want = n_planted * 3
    b = rng.choice(multi, size=want, p=counts[multi] ** 2 / (counts[multi] ** 2).sum())
    x = starts[b] + (rng.random(want) * counts[b]).astype(np.int64)
    y = starts[b] + (rng.random(want) * counts[b]).astype(np.int64)
    a, c = order[x], order[y]
    ok = (a != c) & (popcount64(h[a] ^ h[c]) <= threshold)
    pairs = np.unique(np.sort(np.stack([a[ok], c[ok]], axis=1), axis=1), axis=0)[:n_planted]
    return h, pairs.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# measuring


def _codes(pairs: np.ndarray, n: int) -> np.ndarray:
    p = np.sort(pairs, axis=1)
    return p[:, 0].astype(np.int64) * n + p[:, 1]


def recall(found: np.ndarray, planted: np.ndarray, n: int) -> float:
    if len(planted) == 0:
        return float("nan")
    return float(np.isin(_codes(planted, n), _codes(found, n)).mean())


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def run(data: str, n: int, threshold: int, brute_sample: int, full_brute: bool, seed: int, n_bases: int,
        planted: int, jitter: tuple[int, int] = (2, 12)) -> list[dict]:
    t0 = time.perf_counter()
    if data == "random":
        h, pos, neg = plant_pairs(random_hashes(n, seed), planted, threshold, seed)
    else:
        h, pos = clustered_hashes(n, threshold, n_bases=n_bases, n_planted=planted, seed=seed, jitter=jitter)
        neg = np.empty((0, 2), dtype=np.int64)
    print(f"[{data}] generated {n:,} hashes in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    rows = []
    brute = NumpyBruteForce()
    rng = np.random.default_rng(seed + 3)
    sample = np.sort(rng.choice(n, size=min(n, brute_sample), replace=False)) if not full_brute else np.arange(n)
    bf_pairs, bf_wall, bf_cpu = _timed(lambda: brute.pairs(h[sample], threshold))
    scale = (n / sample.size) ** 2
    est = sample.size < n
    bf_row = dict(backend=brute.name, n=n, threshold=threshold, wall=bf_wall * scale, cpu=bf_cpu * scale,
                  estimated=est, pairs=(f"{len(bf_pairs):,} of {sample.size:,}" if est else f"{len(bf_pairs):,}"),
                  recall=(recall(bf_pairs, pos, n) if not est else float("nan")), exact="reference")
    rows.append(bf_row)

    mih = MultiIndexHash()
    found, wall, cpu = _timed(lambda: mih.pairs(h, threshold))
    sub, _, _ = _timed(lambda: mih.pairs(h[sample], threshold))
    exact = (len(sub) == len(bf_pairs)) and np.array_equal(np.sort(_codes(sub, n)), np.sort(_codes(bf_pairs, n)))
    false_pos = int(np.isin(_codes(neg, n), _codes(found, n)).sum()) if len(neg) else 0
    dist_ok = bool((popcount64(h[found[:, 0]] ^ h[found[:, 1]]) <= threshold).all()) if len(found) else True
    plan = mih.plan(n, n, threshold)
    label = f"{mih.name} (m={plan.m}, r={plan.radius})" if plan.m else f"{mih.name} (brute)"
    rows.append(dict(backend=label, n=n, threshold=threshold, wall=wall,
                     cpu=cpu, estimated=False, pairs=f"{len(found):,}", recall=recall(found, pos, n),
                     exact=("yes" if exact and dist_ok and false_pos == 0 else "NO")))
    for r in rows:
        r["data"] = data
        r["ratio"] = bf_row["wall"] / r["wall"] if r["wall"] else float("inf")
        r["cpu_ratio"] = bf_row["cpu"] / r["cpu"] if r["cpu"] else float("inf")
        r["planted"] = len(pos)
    return rows


def print_rows(rows: list[dict], brute_sample: int, n: int) -> None:
    """The results table (also used by bench/dedup.py)."""
    hdr = (f"{'data':<10} {'backend':<34} {'n':>8} {'t':>2} {'seconds':>9} {'cpu s':>8} {'pairs':>18} "
           f"{'recall':>7} {'planted':>8} {'vs brute':>9} {'(cpu)':>7}  exact on sample")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        mark = "~" if r["estimated"] else " "
        rec = "n/a" if math.isnan(r["recall"]) else f"{r['recall']:.4f}"
        print(f"{r['data']:<10} {r['backend']:<34} {r['n']:>8,} {r['threshold']:>2} {mark}{r['wall']:>8.2f} "
              f"{mark}{r['cpu']:>7.2f} {r['pairs']:>18} {rec:>7} {r['planted']:>8,} {r['ratio']:>8.1f}x "
              f"{r['cpu_ratio']:>6.1f}x  {r['exact']}")
    print(f"~ = extrapolated by (n / sample)^2 from brute force on a {min(brute_sample, n):,}-hash sample. "
          "recall: exact, over every planted pair. 'exact on sample': the backend's pairs equal brute force's "
          "on that sample. 'cpu s' counts all threads; wall seconds depend on other load on the machine.")


def rows_ok(rows: list[dict]) -> bool:
    """Every backend exact on the sample and every planted pair found."""
    return all(r["exact"] in ("yes", "reference") and (math.isnan(r["recall"]) or r["recall"] == 1.0)
               for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=415_000)
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--brute-sample", type=int, default=40_000, help="hashes brute force runs on (time extrapolated)")
    ap.add_argument("--full-brute", action="store_true", help="run brute force on all N hashes (slow)")
    ap.add_argument("--data", default="random,clustered")
    ap.add_argument("--bases", type=int, default=3000, help="generated images for the clustered set")
    ap.add_argument("--planted", type=int, default=20_000, help="planted pairs per data set")
    ap.add_argument("--jitter", default="2,12", help="clustered set: bits flipped per copy, LO,HI")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    try:
        lo, hi = (int(v) for v in a.jitter.split(","))
    except ValueError:
        ap.error(f"--jitter must be LO,HI (e.g. 2,12); got {a.jitter!r}")
    sets = [d.strip() for d in a.data.split(",") if d.strip()]
    for data in sets:
        if data not in ("random", "clustered"):
            ap.error(f"unknown data set {data!r}; choose from: random, clustered")
    rows = []
    for data in sets:
        rows += run(data, a.n, a.threshold, a.brute_sample, a.full_brute, a.seed, a.bases, a.planted, (lo, hi))

    print_rows(rows, a.brute_sample, a.n)
    return 0 if rows_ok(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
